# Two commands set up everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench models system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package definition or the pinned versions change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

models: $(VENV)/.installed
	$(BIN)/voxgate models prepare

run: models
	$(BIN)/voxgate serve

# espeak-ng speaks the test questions; Debian's package is installed only when missing.
system-deps:
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq espeak-ng >/dev/null; }

test: models system-deps
	$(BIN)/pytest

bench: models
	$(BIN)/python bench/turn.py

clean:
	rm -rf $(VENV) build src/*.egg-info
