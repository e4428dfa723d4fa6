# Simulation: create the store once, then one job per block of cells, each running its cells as dask
# tasks and writing them into the store as they finish. Blocks output small markers, never the store
# (a directory() output would be deleted when a job starts or fails).


rule init_store:
    output:
        INIT_MARKER,
    log:
        f"logs/init_store/{SWEEP}.log",
    params:
        config=CONFIG_JSON,
        store=STORE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep init --config-json {params.config:q} --store {params.store} "
        "--marker {output} > {log} 2>&1"


rule simulate_block:
    input:
        INIT_MARKER,
    output:
        f"{MARKERS}/blocks/{{block}}.done",
    log:
        f"logs/simulate_block/{SWEEP}/{{block}}.log",
    params:
        config=CONFIG_JSON,
        store=STORE,
    # One dask worker per thread (when cluster.n_workers is null): with --cores 2 two blocks run side
    # by side. Executor profiles may raise it (profiles/slurm: set-threads).
    threads: 1
    resources:
        gpu=GPUS_PER_BLOCK,
    conda:
        CONDA_ENV
    shell:
        # tee: the progress bar is live on the terminal and kept in the log.
        "diffmem sweep run-block --config-json {params.config:q} --store {params.store} "
        "--block {wildcards.block} --threads {threads} --marker {output} 2>&1 | tee {log}"
