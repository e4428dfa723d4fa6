# Two commands on a fresh machine (Python >= 3.11 and git):
#   make run    set up the environment and run the default sweep end to end (config/config.yaml)
#   make test   set up the environment and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup run test test-fast bench clean

$(BIN)/diffmem: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[workflow,test]"
	touch $@

setup: $(BIN)/diffmem

run: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --rerun-incomplete --rerun-triggers mtime

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not slurm"

bench: setup
	$(BIN)/diffmem bench

clean:
	rm -rf results logs benchmarks .snakemake
