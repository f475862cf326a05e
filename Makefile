# The newcomer's path: make setup; make run; make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

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
	$(BIN)/python -m pytest -q --durations=25

lint: setup
	$(BIN)/lint-imports
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
