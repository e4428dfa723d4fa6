# Configuration check, paths and input functions shared by every rule.
import json
import os
import sys

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
# defaults filled, replaces `config` in place (rules and --config-json see the same values); Snakemake's
# validate then re-checks the result against the same schema.
_validated = validate_config(config)
config.clear()
config.update(_validated)
validate(config, str(schema_path()), set_default=True)
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
INIT_MARKER = f"{MARKERS}/sweep.init"
THEORY = f"{RESULTS}/theory.zarr"
PHASE = f"{RESULTS}/phase.zarr"
FIGURE_DIR = f"{RESULTS}/figures"
SUMMARY = f"{RESULTS}/summary.txt"
BLOCKS = GRID.block_names()
# GPU sweeps: each block job asks for one GPU (a `gpu` resource for the SLURM executor) and uses the
# conda environment with cupy.
GPUS_PER_BLOCK = 1 if config["backend"] == "cupy" else 0
CONDA_ENV = "../../envs/gpu.yaml" if GPUS_PER_BLOCK else "../../envs/cpu.yaml"
# The validated config (defaults filled) travels to every step as JSON: the CLI re-validates it and
# the store checks its hash, so a step can never run against a store of another config.
CONFIG_JSON = json.dumps(config, sort_keys=True)


wildcard_constraints:
    block=r"b\d+",


def get_block_markers():
    """Completion markers of every block of the sweep."""
    return expand(f"{MARKERS}/blocks/{{block}}.done", block=BLOCKS)


def get_output_dir(wildcards, output):
    """Directory of a rule's first output (where the CLI writes all of them)."""
    return os.path.dirname(output[0])


def get_figures(ext=("png", "pdf")):
    """Every figure of the sweep, PNG and PDF."""
    return expand(f"{FIGURE_DIR}/{{figure}}.{{ext}}", figure=FIGURES, ext=ext)
