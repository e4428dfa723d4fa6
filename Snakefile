# diffmem sweep workflow: a table of contents. The rules live in workflow/rules/, the config schema in
# the diffmem package (src/diffmem/pipeline/config.schema.yaml). Run the default sweep with `make run`, or:
#   snakemake --cores 2 --configfile config/config.yaml --rerun-incomplete
# Partial targets: `sweep` (simulations only), `theory`, `figures`, `paper` (finite-size analysis,
# measured-versus-predicted table and the paper's figures).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/lock.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/paper.smk"


rule all:
    input:
        get_block_markers(),
        THEORY,
        PHASE,
        get_figures(),
        SUMMARY,
        ANALYSIS,
        rules.paper.input,
    default_target: True


rule sweep:
    input:
        get_block_markers(),


rule theory:
    input:
        THEORY,


rule figures:
    input:
        get_figures(),
