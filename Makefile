# Two commands matter: `make run` (the bundled demo) and `make test` (the whole suite, lint and types included).
PY ?= python3
# pytest-xdist workers: one per core, at most 4 (tests run real training subprocesses, one thread each)
TEST_WORKERS ?= $(shell $(PY) -c 'import os; print(max(1, min(4, os.cpu_count() or 1)))')
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# SMAC3 for bench/search.py's smac peer: built once per venv (pyrfr from source); a failed build is retried next time
SMAC := $(VENV)/.smac

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(SMAC): $(STAMP)
	@bash scripts/bench-smac.sh $(BIN) && touch $(SMAC) || true

run: $(STAMP)
	$(BIN)/nightlab demo

test: $(STAMP) $(SMAC)
	bash scripts/test-deps.sh
	$(BIN)/ruff check nightlab tests bench
	$(BIN)/mypy nightlab
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check nightlab tests bench

typecheck: $(STAMP)
	$(BIN)/mypy nightlab

pytest: $(STAMP) $(SMAC)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
