# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
# Every install comes from a hash-locked file under requirements/ (docs/dependencies.md): a release
# upstream changes nothing here until `make lock` (or `make upgrade`) writes a new lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins an old boto3: it lives in its own virtualenv and lock, never the app's.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# The lowest versions pyproject.toml allows for the run-time dependencies (`make test-lowest`).
LOWEST_VENV  := .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.installed
# uv resolves the locks (`make lock`); nothing installs with it.
UV := .venv-uv/bin/uv
PIP_LOCKED = python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes

.PHONY: test test-lowest lint demo chaos bench coldstart package lock upgrade checkov clean

# $(1): the virtualenv, $(2): its lock; the project itself goes in editable, its dependencies from the lock only.
define locked_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/$(PIP_LOCKED) -r $(2)
endef

$(STAMP): requirements/dev.txt pyproject.toml
	$(call locked_venv,$(VENV),requirements/dev.txt)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(LOWEST_STAMP): requirements/lowest.txt pyproject.toml
	$(call locked_venv,$(LOWEST_VENV),requirements/lowest.txt)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(LOWEST_STAMP)

$(CHECKOV_STAMP): requirements/checkov.txt
	$(call locked_venv,$(CHECKOV_VENV),requirements/checkov.txt)
	touch $(CHECKOV_STAMP)

$(UV): requirements/uv.txt
	$(call locked_venv,.venv-uv,requirements/uv.txt)

# Re-resolve every lock from pyproject.toml, keeping the versions already locked where they still fit.
lock: $(UV)
	$(PYTHON) -m infra.lock --uv $(UV) $(LOCK_ARGS)

# The same with the newest versions allowed: then `make test`, and commit the locks with what changed.
upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(CHECKOV_STAMP)
	$(BIN)/pytest --whole-suite

# The unit and integration tests on the lowest versions pyproject.toml allows (not in `make test`: a
# second environment and the slow half of the suite; run it after changing a lower bound).
test-lowest: $(LOWEST_STAMP)
	$(LOWEST_VENV)/bin/pytest tests/unit tests/integration -p no:cacheprovider

# The Lambda zip the Terraform module deploys: build/lambda/outbox.zip, from infra/lambda-requirements.txt.
package: $(STAMP)
	$(BIN)/python -m infra.package

# Each function's first request served, from the zip, against a bare boto3 function (bench/coldstart.py).
coldstart: package
	$(BIN)/python -m bench.coldstart

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
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOWEST_VENV) .venv-uv build *.egg-info .pytest_cache .mypy_cache .ruff_cache
