# The newcomer's path: make setup; make run; make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# pytest workers (pytest-xdist): the DAG tests keep about 1.3 of 2 cores busy, so two workers fill the
# gaps. Tests that share a session DAG run (or a module's runs) stay on one worker (tests/conftest.py).
TEST_WORKERS ?= 2

.PHONY: setup run test lint clean

setup: $(BIN)/acceflow

$(BIN)/acceflow: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# pyradiomics 3.0.1 ships only an sdist whose build needs numpy at build time: install the
	# build requirements first and build it without isolation.
	$(BIN)/pip install -q -c constraints.txt "numpy>=1.26" setuptools wheel "versioneer[toml]"
	$(BIN)/pip install -q -c constraints.txt --no-build-isolation "pyradiomics==3.0.1"
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=25

lint: setup
	$(BIN)/lint-imports
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
