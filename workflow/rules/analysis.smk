# Theory for every cell, measured phase quantities, figures and the run summary.


rule compute_theory:
    input:
        INIT_MARKER,
    output:
        directory(THEORY),
    log:
        f"logs/compute_theory/{SWEEP}.log",
    params:
        config=CONFIG_FILE,
    # Processes evaluating the theory of every cell (nonlinear sigma: ~0.5 s per cell and spectrum);
    # Snakemake lowers it to --cores when fewer are given.
    threads: 2
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep theory --configfile {params.config:q} --out {output} --threads {threads} "
        "> {log} 2>&1 || (s=$?; tail -n 1 {log} >&2; exit $s)"


# The analysis rules read the analysis copy (pack_store, sweep.smk), not the live store: the same
# values in a few chunks instead of one per cell and variable, which load in a fraction of the time.


rule extract_phase:
    input:
        get_block_markers(),
        store=ANALYSIS,
        theory=THEORY,
    output:
        directory(PHASE),
    log:
        f"logs/extract_phase/{SWEEP}.log",
    params:
        config=CONFIG_FILE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep phase --configfile {params.config:q} --store {input.store:q} "
        "--theory {input.theory} --out {output} > {log} 2>&1 || (s=$?; tail -n 1 {log} >&2; exit $s)"


rule plot_figures:
    input:
        get_block_markers(),
        store=ANALYSIS,
        theory=THEORY,
        phase=PHASE,
    output:
        [
            report(
                f"{FIGURE_DIR}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
        expand(f"{FIGURE_DIR}/{{name}}.pdf", name=FIGURES),
    log:
        f"logs/plot_figures/{SWEEP}.log",
    params:
        config=CONFIG_FILE,
        outdir=get_output_dir,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep plot --configfile {params.config:q} --store {input.store:q} "
        "--theory {input.theory} --phase {input.phase} --outdir {params.outdir} > {log} 2>&1 || (s=$?; tail -n 1 {log} >&2; exit $s)"


rule summarize_sweep:
    # The last job of the run (after every analysis rule), so that the efficiency it prints covers
    # the whole workflow.
    input:
        get_block_markers(),
        get_figures(),
        THEORY,
        PHASE,
        # analyze_paper is defined later (paper.smk): its outputs are looked up when the DAG is built
        lambda wildcards: rules.analyze_paper.output,
    output:
        SUMMARY,
    log:
        f"logs/summarize_sweep/{SWEEP}.log",
    params:
        store=STORE,
        run_start=RUN_START,
    conda:
        "../../envs/cpu.yaml"
    shell:
        # Printed on the terminal at the end of the run: cells done, per-cell time and the efficiency.
        "diffmem status {params.store:q} --timing --run-start {params.run_start:q} > {output:q} 2> {log:q} "
        "|| (s=$?; tail -n 1 {log} >&2; exit $s); cat {output:q}"
