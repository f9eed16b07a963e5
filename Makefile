# The two commands of the quick start: `make run` (the service) and `make test`.
# Each creates .venv and installs nurture into it (with its dev tools) when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nurture check workflows
	$(BIN)/nurture serve --workflows workflows

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# One test process per core (pytest-xdist; the CI machine has two): the suite is CPU-bound in
# Python, so this takes it from ~5 to ~3.3 minutes there. Every test makes its own database.
unit: $(STAMP)
	$(BIN)/pytest -q -n auto --maxprocesses 4 --dist worksteal

bench: $(STAMP)
	$(BIN)/python bench/check_speed.py
	$(BIN)/python -m bench.ingest_speed
	$(BIN)/python -m bench.simulate_speed
	$(BIN)/python -m bench.tick_speed
	$(BIN)/python -m bench.heavy_decay
	$(BIN)/python -m bench.push_speed
	$(BIN)/python -m bench.http_clients
	$(BIN)/python -m bench.http_ingest
	$(BIN)/python -m bench.prune_speed
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
