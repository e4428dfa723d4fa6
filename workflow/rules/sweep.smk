# Simulation: create the store once, then one job per block of cells, each running its cells as dask
# tasks and writing them into the store as they finish. Blocks output small markers, never the store
# (a directory() output would be deleted when a job starts or fails). Needs common.smk and lock.smk
# (READ_ONLY_RUN).


# A done flag says a cell was written, not that it is still intact: before an executing run, every
# done cell of the store is verified against the digest written with it (and decoded), and the block
# of a cell that must be redone loses its marker, so the block runs again and recomputes exactly that
# cell (diffmem.pipeline.store.cells_to_redo; about 20 ms per done cell on 2 loaded cores).
if workflow.is_main_process and not READ_ONLY_RUN:
    from diffmem.pipeline.store import cells_to_redo as _cells_to_redo

    _redo = _cells_to_redo(STORE, GRID)
    for _block in BLOCKS if _redo else ():
        _marker = Path(f"{BLOCK_MARKERS}/{_block}.done")
        if _marker.exists() and _redo.intersection(GRID.block_cells(_block)):
            print(f"diffmem: block {_block} has cells to redo: it runs again", file=_sys.stderr, flush=True)
            _marker.unlink()


rule init_store:
    output:
        INIT_MARKER,
    log:
        f"logs/init_store/{SWEEP}.log",
    params:
        config=CONFIG_FILE,
        store=STORE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep init --configfile {params.config:q} --store {params.store:q} "
        "--marker {output:q} > {log:q} 2>&1 || (s=$?; tail -n 1 {log} >&2; exit $s)"


rule simulate_block:
    input:
        INIT_MARKER,
    output:
        f"{BLOCK_MARKERS}/{{block}}.done",
    log:
        f"logs/simulate_block/{SWEEP}/{{block}}.log",
    params:
        config=CONFIG_FILE,
        store=STORE,
        progress=BLOCK_PROGRESS,
    # One dask worker per thread (when cluster.n_workers is null): with --cores 2 two blocks run side
    # by side. Executor profiles may raise it (profiles/slurm: set-threads).
    threads: 1
    resources:
        gpu=GPUS_PER_BLOCK,
    conda:
        CONDA_ENV
    shell:
        # tee: what the block prints (its progress bar when blocks run one at a time, the cause of a
        # failure) is live on the terminal and kept in the log.
        "diffmem sweep run-block --configfile {params.config:q} --store {params.store:q} "
        "--block {wildcards.block} --threads {threads} {params.progress} --marker {output:q} 2>&1 | tee {log:q}"


# The analysis copy (diffmem.pipeline.pack): the finished store in a few large chunks, about 0.1 file
# per cell instead of 30, for fast loading. Written whole into a temporary and renamed, never cell by
# cell, so it needs none of the live store's single-writer rules.
ANALYSIS = f"{RESULTS}/analysis.zarr"


rule pack_store:
    input:
        get_block_markers(),
    output:
        directory(ANALYSIS),
    log:
        f"logs/pack_store/{SWEEP}.log",
    params:
        store=STORE,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "diffmem sweep pack --store {params.store:q} --out {output:q} > {log:q} 2>&1"
