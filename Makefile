# The two commands of the README: `make demo` (the main job) and `make test`.
# Both set themselves up: virtual environment, the locked packages, and the
# Debian package WeasyPrint needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint lock bench clean

$(STAMP): requirements.lock pyproject.toml
	@bash .ci/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	@$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# Python reads bytecode it finds but, where PYTHONDONTWRITEBYTECODE is set (as on
# many CI machines and containers), never writes it: every process would compile
# every module it imports, seconds per command. The installed packages are
# compiled at install (--compile-bytecode above) and the project's own modules
# here; an up-to-date file is skipped.
SOURCES := audits core govreg migrations policies registry reports serving validation

# The suite runs in parallel, one pytest-xdist worker per core (`make test
# TEST_WORKERS=0` runs it in one process). Each worker builds its own template homes
# (tests/govreg_homes.py) and every test its own folder and database schema.
TEST_WORKERS ?= auto

setup: $(STAMP)
	@$(BIN)/python -m compileall -q $(SOURCES) > /dev/null

demo: setup
	@$(BIN)/govreg demo

test: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@$(BIN)/lint-imports
	@$(BIN)/bandit -q -c pyproject.toml -r audits core govreg registry reports serving validation migrations
	@$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

bench: setup
	@$(BIN)/python benchmarks/ledger.py

clean:
	rm -rf $(VENV) .govreg .mypy_cache .pytest_cache .ruff_cache
