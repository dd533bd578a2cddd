# Every target works on a fresh machine: the venv is created and the project installed on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: install test test-fast lint format demo bench image-check mutate mutate-results clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

# everything but the tests that start the CLI, the emulator or a venv as a subprocess
test-fast: install
	$(BIN)/python -m pytest -m "not e2e"

lint: install image-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# No Docker engine here: lint the Dockerfile (tests/test_image.py installs the wheel as it does).
image-check: install
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile

demo: install
	$(BIN)/python -m batchrun.demo

# batchrun and the azure-mgmt-datafactory peer against the emulator; `make bench BENCH_ARGS=--quick`
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Mutation testing (slow, not in CI): `make mutate` over every module in [tool.mutmut] of
# pyproject.toml, or `make mutate MUTANTS='batchrun.run.reconcile*'` for one; MUTATE_JOBS bounds
# the parallel test runs. A mutant that makes a test hang fails it after MUTATE_TEST_TIMEOUT
# seconds (the in-process tests take well under one), not the suite's 300. Survivors are killed
# by a test or explained in tests/MUTATION.md.
MUTANTS ?=
MUTATE_JOBS ?= 2
MUTATE_TEST_TIMEOUT ?= 20
MUTATE_STAMP := $(VENV)/.mutate-installed

$(MUTATE_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,mutate]'
	touch $@

mutate: $(MUTATE_STAMP)
	PYTEST_TIMEOUT=$(MUTATE_TEST_TIMEOUT) $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/mutmut results

mutate-results: $(MUTATE_STAMP)
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist build mutants
