# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ./var
PYTEST_ARGS ?= -n auto

.PHONY: demo test lint typecheck unit audit soak fmt bench bench-smoke compat-matrix docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: set up, initialise an embedded SQLite ledger under ./var and run the real PVE path on the simulator
demo: $(STAMP)
	ASSET_LEDGER_DATA_DIR=$(DATA) $(BIN)/asset-ledger demo

## test: set up and run the whole suite (format, lint, types, tests)
test: $(STAMP) lint typecheck unit audit

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## audit: known vulnerabilities in the installed dependencies (pip-audit; says SKIPPED when PyPI is unreachable)
audit: $(STAMP)
	$(BIN)/python scripts/audit.py $(AUDIT_ARGS)

## soak: 50 simulated PVE sources, 2 workers, API reads, on PostgreSQL (see docs/reliability.md)
soak: $(STAMP)
	$(BIN)/python benchmarks/soak_load.py $(SOAK_ARGS)

fmt: $(STAMP)
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

## bench: performance figures (~20 min; PostgreSQL at 127.0.0.1:5432) -> benchmarks/results/latest.{md,json,png}
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py --docs docs/performance.md $(BENCH_ARGS)

## bench-smoke: the same benchmarks at tiny sizes (seconds), results in var/bench-smoke
bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/run.py --smoke --out $(DATA)/bench-smoke $(BENCH_ARGS)

## compat-matrix: run every PVE profile through healthcheck/detect/collect and rewrite the matrix from the results
compat-matrix: $(STAMP)
	$(BIN)/python tests/collectors/pve/compat_matrix.py --output docs/pve/compatibility-matrix.md

## docs: refresh the generated blocks of the design docs from the schemas and the error-code registry
docs: $(STAMP)
	$(BIN)/python -m asset_ledger.contract.docs --write

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache
