# Two commands set up everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast lint bench models multilingual presets voices system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package definition or the pinned versions change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

models: $(VENV)/.installed
	$(BIN)/voxgate models pull

run: models
	$(BIN)/voxgate serve

# Debian packages the tests need, installed only when missing: espeak-ng speaks the test
# questions; postgresql's server binaries run a throwaway database (the client alone is not
# enough); chromium runs the browser test (Playwright drives it; it never downloads one);
# nginx balances two replicas in the scale-out test (its own process, config and port).
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The multilingual Whisper: the language tests and benchmarks hear French and Spanish.
multilingual: models
	$(BIN)/voxgate models pull whisper-base

# The `accurate` and `speculative` presets' 1.5B LLM: its tests and the preset benchmark.
presets: models
	$(BIN)/voxgate models pull qwen2.5-coder-1.5b-instruct

# Piper joe, the default voice before hibari: tests and benchmarks speak questions in it.
voices: models
	$(BIN)/voxgate models pull piper-en_US-joe-medium

# Before any test runs: ruff's rules and format (pyproject.toml) on all Python code, and
# mypy (with the pydantic plugin) on the package.
lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: lint multilingual presets voices system-deps
	$(BIN)/pytest

# The fast tier alone: the app in-process with fake engines and the unit tests, in seconds.
test-fast: lint
	$(BIN)/pytest -m "not real"

# Speed targets live here, not in the tests: a buffered turn, then streaming and realtime.
bench: multilingual presets voices
	$(BIN)/python bench/turn.py
	$(BIN)/python bench/streaming.py
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/stt.py
	$(BIN)/python bench/voices.py
	$(BIN)/python bench/presets.py
	$(BIN)/python bench/realtime.py

clean:
	rm -rf $(VENV) build src/*.egg-info
