# relaybox: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-deps

## Start relaybox with the built-in Dropbox sandbox on http://$(HOST):$(PORT)
run: $(VENV)/.run-deps
	$(BIN)/relaybox serve --sandbox --host $(HOST) --port $(PORT)

## Lint, type-check and run the whole test suite
test: lint typecheck
	$(BIN)/pytest

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check relaybox tests bench
	$(BIN)/ruff format --check relaybox tests bench

typecheck: $(VENV)/.dev-deps
	$(BIN)/mypy --strict relaybox

unit: $(VENV)/.dev-deps
	$(BIN)/pytest tests/unit

## The benchmark suite (docs/BENCHMARKS.md): make bench BENCH_ARGS="--quick" for a smoke run
bench: $(VENV)/.dev-deps
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) relaybox-data .pytest_cache .mypy_cache .ruff_cache
