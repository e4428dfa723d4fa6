# Paper analysis: measured versus predicted times, extrapolated to N -> infinity, and
# figures (a)-(g), from the sweep store alone (ds.diffmem accessor; diffmem.plots.paper_figures).
# Needs common.smk (RESULTS, SWEEP, get_block_markers) and sweep.smk (ANALYSIS). Target: `snakemake paper`.
from diffmem.plots.paper_figures import ANSWERS as PAPER_ANSWERS
from diffmem.plots.paper_figures import FIGURES as PAPER_FIGURES
from diffmem.plots.paper_figures import TABLE as PAPER_TABLE

PAPER_DIR = f"{RESULTS}/paper"


rule analyze_paper:
    input:
        get_block_markers(),
        # the analysis copy (sweep.smk): the same values as the live store, fast to load
        store=ANALYSIS,
    output:
        table=report(
            f"{PAPER_DIR}/{PAPER_TABLE}",
            caption="../report/paper/times.rst",
            category="Paper",
            subcategory="Table",
        ),
        answers=f"{PAPER_DIR}/{PAPER_ANSWERS}",
        png=[
            report(
                f"{PAPER_DIR}/figures/{name}.png",
                caption=f"../report/paper/{name}.rst",
                category="Paper",
                subcategory="Figures",
            )
            for name in PAPER_FIGURES
        ],
        pdf=expand(f"{PAPER_DIR}/figures/{{name}}.pdf", name=PAPER_FIGURES),
    log:
        f"logs/analyze_paper/{SWEEP}.log",
    params:
        outdir=get_output_dir,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem paper --store {input.store:q} --out {params.outdir} > {log} 2>&1 || (s=$?; tail -n 1 {log} >&2; exit $s)"


rule paper:
    input:
        rules.analyze_paper.output,
