# Configuration check, paths and input functions shared by every rule.
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from snakemake.utils import validate

from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from diffmem.pipeline.schema import schema_path
from diffmem.plots.figures import FIGURES


# Types, ranges, defaults and unknown keys (the schema), then what a schema cannot say (exactly one of
# grid.alpha / grid.P, increasing t grid, P in range, cluster section): diffmem's own validator, the one
# the CLI uses, runs first because it names the offending key for every bad config (Snakemake's
# validate(set_default=True) crashes with AttributeError on an empty grid list such as `grid.N: []`).
# It raises ParameterError while the workflow is parsed, before any job exists. The validated config,
# defaults filled, replaces `config` in place (rules and their config file see the same values); Snakemake's
# validate then re-checks the result against the same schema.
_validated = validate_config(config)
config.clear()
config.update(_validated)
validate(config, str(schema_path()), set_default=True)


def local_cores():
    """Cores of a local run; None with a cluster executor (no fixed number) or without --cores."""
    if not workflow.local_exec:
        return None
    try:
        return workflow.cores
    except Exception:  # noqa: BLE001 - no --cores (lint, dry run): nothing runs
        return None


# `blocks: cores`: one block per core of a local run, its cells dealt round-robin, so that each core
# starts one Python process and the cores finish together (job start-up and imports cost about as
# much as a block of small cells). Resolved here, before the config file is written, so that every
# job sees the same blocks; on a cluster executor (no fixed cores) block_size applies.
if config.get("blocks") == "cores":
    config["blocks"] = local_cores() or None
# The sweep's cells and blocks, built once from the validated config.
GRID = Grid(config)

# With --sdm conda, envs/*.post-deploy.sh installs the diffmem of this checkout into each new
# environment; Snakemake runs it from a copy under .snakemake/conda/, so it learns where the checkout
# is from this variable.
os.environ["DIFFMEM_SOURCE"] = workflow.basedir

# The rules need PATH (below); declaring it also passes it on to cluster jobs.
envvars:
    "PATH",
    "DIFFMEM_SOURCE",


# Rules call the `diffmem` command. Put the bin directory of the Python running Snakemake (the venv of
# `make run`, where diffmem is installed) first on PATH so it is found without activating the venv;
# with --sdm conda the rule's environment is activated in front of it and wins.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

SWEEP = config["sweep"]
RESULTS = f"results/{SWEEP}"
STORE = f"{RESULTS}/sweep.zarr"
# Markers live under the config hash (grid and physics, diffmem.pipeline.grid.config_hash): after a change of
# the grid they are missing, so init_store runs again and refuses the existing store with a message
# naming the changed key, instead of Snakemake reporting the old blocks as up to date.
CONFIG_HASH = GRID.config_hash[:12]
MARKERS = f"{RESULTS}/markers/{CONFIG_HASH}"
# With `reuse:` stores the marker names them too, so that adding a store to reuse runs init_store
# (which imports their matching cells) again. A grown grid has another config hash: new markers, so
# init_store grows the store, every block runs (skipping the done cells) and the analysis copy,
# theory, phase store, figures and paper are rebuilt from the grown store.
_REUSE = sorted(config.get("reuse") or [])
INIT_MARKER = (
    f"{MARKERS}/sweep-reuse-{hashlib.sha256(json.dumps(_REUSE).encode()).hexdigest()[:12]}.init"
    if _REUSE else f"{MARKERS}/sweep.init"
)
# Block markers under the split of the cells into blocks as well (diffmem.pipeline.grid.Grid.block_layout):
# a run with another split (another block_size, or `blocks: cores` with other --cores) has its own
# markers, and its blocks skip the cells already done.
BLOCK_MARKERS = f"{MARKERS}/{GRID.block_layout}"
THEORY = f"{RESULTS}/theory.zarr"
PHASE = f"{RESULTS}/phase.zarr"
FIGURE_DIR = f"{RESULTS}/figures"
SUMMARY = f"{RESULTS}/summary.txt"
BLOCKS = GRID.block_names()
# GPU sweeps: each block job asks for one GPU (a `gpu` resource for the SLURM executor) and uses the
# conda environment with cupy.
GPUS_PER_BLOCK = 1 if config["backend"] == "cupy" else 0
CONDA_ENV = "../../envs/gpu.yaml" if GPUS_PER_BLOCK else "../../envs/cpu.yaml"
# Where a run records when it started and on how many cores (record_run_start, below): the summary
# divides the cells' compute by cores x the workflow's wall time (the sweep's efficiency).
RUN_START = f"{RESULTS}/run-start.json"


def write_config_file(config, results):
    """Write the validated config (defaults filled) once, as JSON named by its content; return the path.

    Every step gets this file (``--configfile``) instead of the config inline: the CLI re-validates
    it and the store checks its hash, so a step can never run against a store of another config, and a
    failing command stays short enough to read. A file is never rewritten: another config (another
    cluster section, say) gets another name, so runs with different configs never race on one file.
    """
    text = json.dumps(config, sort_keys=True, indent=1) + "\n"
    path = Path(results) / "config" / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as fh:
            fh.write(text)
        os.replace(fh.name, path)  # atomic: readers see the whole file or none
    return str(path)


CONFIG_FILE = write_config_file(config, RESULTS)

# Rules whose output goes to their log end in `|| (s=$?; tail -n 1 {log} >&2; exit $s)`: when the
# command fails, the log's last line (diffmem prints its one-line cause, `diffmem <command>: error:
# ...`, last) is printed on the terminal as well, and the exit status is kept.


def blocks_run_in_parallel():
    """Whether several block jobs may run at once (their progress bars would overwrite each other)."""
    if not workflow.local_exec:
        return True
    cores = local_cores()
    return cores is not None and cores > 1


# The per-block progress bars are shown only when one block runs at a time; otherwise the hint below
# points at the whole sweep's bar (`diffmem status --watch`).
BLOCK_PROGRESS = "--progress" if config["progress"] and not blocks_run_in_parallel() else "--no-progress"


def record_run_start():
    """Record when this run started and on how many cores (RUN_START), and point at the sweep's
    progress bar; called by the workflow's onstart handler (lock.smk)."""
    Path(RESULTS).mkdir(parents=True, exist_ok=True)
    Path(RUN_START).write_text(json.dumps({"start": time.time(), "cores": local_cores()}) + "\n")
    if config["progress"] and blocks_run_in_parallel():
        print(f"progress of the whole sweep: diffmem status --watch {STORE}", file=sys.stderr)


wildcard_constraints:
    block=r"b\d+",


def get_block_markers():
    """Completion markers of every block of the sweep."""
    return expand(f"{BLOCK_MARKERS}/{{block}}.done", block=BLOCKS)


def get_output_dir(wildcards, output):
    """Directory of a rule's first output (where the CLI writes all of them)."""
    return os.path.dirname(output[0])


def get_figures(ext=("png", "pdf")):
    """Every figure of the sweep, PNG and PDF."""
    return expand(f"{FIGURE_DIR}/{{figure}}.{{ext}}", figure=FIGURES, ext=ext)
