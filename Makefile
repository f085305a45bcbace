# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo chaos bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# 300 messages keep the first run short; `outbox demo -n 1000` is the full benchmark.
demo: $(STAMP)
	$(BIN)/outbox demo -n 300

# Every benchmark, ours against a naive baseline in the same run; rewrites bench/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run

# 10,000 messages through the local stack with 20 % of AWS calls faulted; exits 1 on any violation.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --messages 10000 --fault-rate 0.2

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
