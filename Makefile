# The verbs a person types. Every target bootstraps .venv from pyproject.toml when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint format bench bench-nightly bench-gx evaluate services clean distclean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv, install the project with its dev tools, and the state folder (expansion init)
	$(BIN)/expansion init

run: $(STAMP) ## demo extracts into the landing zone (unless it holds files), then the whole pipeline
	$(BIN)/expansion demo-data --skip-if-present
	$(BIN)/expansion run

# test files run on TEST_WORKERS processes (pytest-xdist); a file stays on one worker, in order,
# so a module's fixtures (a project, a first run) are built once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP) services ## the whole test suite (unit, dbt, end-to-end), on TEST_WORKERS processes
	$(BIN)/python -m pytest $(XDIST)

test-fast: $(STAMP) ## unit tests only, no end-to-end run
	$(BIN)/python -m pytest -m "not e2e"

.PHONY: reliability
reliability: $(STAMP) services ## tests/reliability with the real-run suites: a run SIGKILLed at every crash point, concurrent runs, readers and syncs (~10 min on 2 cores)
	RELIABILITY_SUITE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(XDIST) tests/reliability/test_faults.py tests/reliability/test_concurrency.py

SIZE ?= S
BENCH_ARGS ?=
bench: $(STAMP) ## pipeline benchmark at SIZE=S|M|L, by hand or nightly, never in make test (bench/README.md)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m bench.pipeline_bench --size $(SIZE) $(BENCH_ARGS)

bench-nightly: $(STAMP) ## the pipeline benchmark at S, M and L (L scores with S's champion); a few hours
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m bench.pipeline_bench --size S $(BENCH_ARGS)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m bench.pipeline_bench --size M --clean $(BENCH_ARGS)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m bench.pipeline_bench --size L --clean $(BENCH_ARGS)

bench-gx: $(STAMP) ## GX validation speed: 1M rows x 20 expectations
	$(BIN)/python bench/gx_speed.py

evaluate: $(STAMP) ## the champion judged on its backtest pooled over the cut-offs, with bootstrap intervals (models/acceptance.py), and its action list
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python scripts/evaluate.py

lint: $(STAMP) ## ruff, ruff format, mypy, import contracts, dbt parse, sqlfluff (CI runs it first)
	$(BIN)/ruff check flows models demo tests scripts bench
	$(BIN)/ruff format --check flows models demo tests scripts bench
	$(BIN)/python scripts/render_contract_doc.py --check
	$(BIN)/python scripts/render_exposures.py --check
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd dbt_project && EXPANSION_WAREHOUSE_PATH=/tmp/expansion-parse.duckdb ../$(BIN)/dbt parse --profiles-dir ../profiles --quiet
	cd dbt_project && EXPANSION_WAREHOUSE_PATH=/tmp/expansion-sqlfluff.duckdb ../$(BIN)/sqlfluff lint models tests

format: $(STAMP)
	$(BIN)/ruff check --fix flows models demo tests scripts bench
	$(BIN)/ruff format flows models demo tests scripts bench

services: ## make sure the local PostgreSQL (and Chromium) some tests use are there
	@scripts/ensure-postgres.sh
	@scripts/ensure-chromium.sh

clean: ## remove run state (warehouse, models, serving files, demo data)
	rm -rf state data dbt_project/target dbt_project/logs

distclean: clean
	rm -rf $(VENV)
