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
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@$(BIN)/govreg demo

test: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@$(BIN)/lint-imports
	@$(BIN)/bandit -q -c pyproject.toml -r audits core govreg registry reports serving validation migrations
	@$(BIN)/pytest

lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

bench: $(STAMP)
	@$(BIN)/python benchmarks/ledger.py

clean:
	rm -rf $(VENV) .govreg .mypy_cache .pytest_cache .ruff_cache
