# Two commands on a fresh machine (Python >= 3.11 and git):
#   make run    set up the environment and run the default sweep end to end (config/config.yaml)
#   make test   set up the environment and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup run test test-fast bench paper paper-2core clean

$(BIN)/diffmem: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[workflow,test]"
	touch $@

setup: $(BIN)/diffmem

CONFIG ?= config/config.yaml

# Resumable: after any interruption (even SIGKILL) the same `make run` finishes the sweep without
# recomputing finished cells. One run per sweep: a second `make run` while one is running is refused,
# naming it (host and PID); the lock a killed run leaves is cleared by the next run
# (workflow/rules/lock.smk). Prints the total wall time at the end; the per-cell times are in the
# summary the workflow prints (results/<sweep>/summary.txt).
run: setup
	@start=$$(date +%s); \
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete --rerun-triggers mtime \
	&& echo "make run: total wall time $$(( $$(date +%s) - start )) s (workflow, setup excluded)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not slurm"

bench: setup
	$(BIN)/diffmem bench

# The committed paper-grid results (docs/paper/, the generated tables of docs/paper.md) in one command:
# the whole of config/paper.yaml (placed grids), its stores in PAPER_STORE outside the checkout, then its
# docs. Resumable: the same command continues a stopped run (scripts/paper-full.sh).
PAPER_STORE ?= $(abspath ..)/paper-store
paper: setup
	bash scripts/paper-full.sh $(PAPER_STORE) $(CORES)

# The fixed-grid part of the paper grid that fits on 2 cores in about an hour (the release before
# placed grids) and its analysis, in results/paper-2core/ (the committed docs come from `make paper`).
paper-2core: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/paper-2core.yaml --rerun-incomplete
	$(BIN)/diffmem paper --store results/paper-2core/analysis.zarr --out results/paper-2core/paper

clean:
	rm -rf results logs benchmarks .snakemake
