# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins an old boto3: it lives in its own virtualenv, never the app's.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: test lint demo chaos bench coldstart package lambda-lock checkov clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'  # 25.1: the first to install --group
	$(BIN)/python -m pip install --quiet -e '.[cli,local]' --group dev
	touch $(STAMP)

$(CHECKOV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --group checkov
	touch $(CHECKOV_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(CHECKOV_STAMP)
	$(BIN)/pytest

# The Lambda zip the Terraform module deploys: build/lambda/outbox.zip, from infra/lambda-requirements.txt.
package: $(STAMP)
	$(BIN)/python -m infra.package

# Cold start of each handler from the zip against a bare boto3 function (bench/coldstart.py).
coldstart: package
	$(BIN)/python -m bench.coldstart

# Rewrite infra/lambda-requirements.txt: the installed versions, hashes of the target's wheels (pip download).
lambda-lock: $(STAMP)
	$(BIN)/python -m infra.package --lock

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d infra/terraform --framework terraform --skip-download --compact --quiet

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
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
