# Two commands do all the set-up on a fresh machine:
#   make run    installs into .venv, applies migrations, serves on SQLite + local disk (:8080)
#   make test   installs with the test extras, runs the lint (ruff, mypy), then the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench bench-pinned clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/cronchat migrate
	$(BIN)/cronchat serve

test: lint browser-deps
	$(BIN)/pytest -q

# The browser tests (tests/test_browser.py) drive Debian's chromium with playwright-core.
# Best effort: what cannot be installed here makes those tests skip (fail under CI=true).
browser-deps:
	-@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && \
		{ [ "$$(id -u)" = 0 ] && SUDO= || SUDO="sudo -n"; \
		  $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null 2>&1 || \
		  { $$SUDO apt-get update -qq >/dev/null 2>&1 && \
		    $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null 2>&1; }; }; } || \
		echo "browser-deps: chromium not installed; the browser tests will skip"
	-@test -d tests/browser/node_modules || { command -v npm >/dev/null && \
		(cd tests/browser && npm ci --no-audit --no-fund --silent); } || \
		echo "browser-deps: node packages not installed; the browser tests will skip"

# The standard benchmark set (bench/): one JSON line per run on stdout; needs MariaDB and Redis.
bench: $(VENV)/.installed
	$(BIN)/python -m bench --standard

# The pinned set: the server on one core, the generator on the other, one send in flight
# per sender (the workload of the comparison with ejabberd in the README).
bench-pinned: $(VENV)/.installed
	$(BIN)/python -m bench --pinned

# Style and types: ruff, then mypy on cronchat/, cli/ and storage/ (configured in pyproject.toml).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
