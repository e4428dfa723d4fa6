# Theory for every cell, measured phase quantities, figures and the run summary.


rule compute_theory:
    input:
        INIT_MARKER,
    output:
        directory(THEORY),
    log:
        f"logs/compute_theory/{SWEEP}.log",
    params:
        config=CONFIG_JSON,
    # Processes evaluating the theory of every cell (nonlinear sigma: ~0.5 s per cell and spectrum);
    # Snakemake lowers it to --cores when fewer are given.
    threads: 2
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep theory --config-json {params.config:q} --out {output} --threads {threads} "
        "> {log} 2>&1"


rule extract_phase:
    input:
        get_block_markers(),
        theory=THEORY,
    output:
        directory(PHASE),
    log:
        f"logs/extract_phase/{SWEEP}.log",
    params:
        config=CONFIG_JSON,
        store=STORE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep phase --config-json {params.config:q} --store {params.store} "
        "--theory {input.theory} --out {output} > {log} 2>&1"


rule plot_figures:
    input:
        get_block_markers(),
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
        config=CONFIG_JSON,
        store=STORE,
        outdir=get_output_dir,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep plot --config-json {params.config:q} --store {params.store} "
        "--theory {input.theory} --phase {input.phase} --outdir {params.outdir} > {log} 2>&1"


rule summarize_sweep:
    input:
        get_block_markers(),
        get_figures(),
    output:
        SUMMARY,
    log:
        f"logs/summarize_sweep/{SWEEP}.log",
    params:
        store=STORE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        # Printed on the terminal at the end of the run: cells done, total and per-cell time.
        "diffmem status {params.store} --timing > {output} 2> {log} && cat {output}"
