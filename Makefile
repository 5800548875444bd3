# Every target does its own setup and is quick when already set up.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: setup browser test lint fmt run bench clean mutation

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
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

test: setup $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: setup
	$(BIN)/python -m devstack

bench: setup
	$(BIN)/python -m bench

# Mutation testing of the pure core (scope and tests: [tool.mutmut] in pyproject.toml); slow,
# so not part of `make test`. See docs/testing.md.
mutation: setup
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutation nice -n 10 $(BIN)/mutmut run --max-children 2
	$(BIN)/python scripts/mutation_score.py

clean:
	rm -rf $(VENV) node_modules .local .mypy_cache .ruff_cache .pytest_cache mutants
