# Every target does its own setup and is quick when already set up.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The Python worker check runs on 3.13 (azure-functions-runtime needs it); pyenv provides it here.
PY313   ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))
WORKER  := .venv-worker
WORKER_STAMP := $(WORKER)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: setup worker browser test lint fmt run bench clean mutation

setup: $(STAMP) $(NODE_STAMP)

worker: $(WORKER_STAMP)

$(WORKER_STAMP): requirements.txt requirements-worker.txt
	@test -n "$(PY313)" || { echo "need Python 3.13 for the worker check (pyenv install 3.13, or set PY313=/path/to/python3.13)"; exit 1; }
	@test -x $(WORKER)/bin/python || $(PY313) -m venv $(WORKER)
	$(WORKER)/bin/python -m pip install -q --disable-pip-version-check -r requirements-worker.txt
	@touch $@

# The pinned requirements, then the project itself (editable, no dependencies) for the
# `batchctl` command: .venv/bin/batchctl.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "need Node.js 20 and npm (apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it does not download browsers).
browser: $(CHROMIUM)

$(CHROMIUM):
	@command -v apt-get >/dev/null 2>&1 || { echo "need Chromium at $@ (Debian package chromium)"; exit 1; }
	$$(test "$$(id -u)" -eq 0 || echo sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$(test "$$(id -u)" -eq 0 || echo sudo) apt-get install -y -qq chromium
	@test -x $@

test: setup worker $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: setup worker
	$(BIN)/python -m devstack

bench: setup
	$(BIN)/python -m bench

# Mutation testing of the pure core (scope and tests: [tool.mutmut] in pyproject.toml); slow,
# so not part of `make test`. See docs/testing.md. The copy in mutants/ has no node_modules:
# the blob-mode tests find Azurite on PATH.
mutation: setup
	rm -rf mutants
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" HYPOTHESIS_PROFILE=mutation nice -n 10 $(BIN)/mutmut run --max-children 2
	$(BIN)/python scripts/mutation_score.py

clean:
	rm -rf $(VENV) $(WORKER) node_modules .local .mypy_cache .ruff_cache .pytest_cache mutants
