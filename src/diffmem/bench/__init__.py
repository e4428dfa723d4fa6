"""Benchmarks and measurements that run the engine, kept out of it (``diffmem bench``).

- :mod:`diffmem.bench.kernels`: the streamed kernel against the machine's own matrix multiply, the
  naive baseline, peak memory and scaling (``diffmem bench``);
- :mod:`diffmem.bench.cells`: one cell in both sampling schemes, side by side (``diffmem bench --cells``),
  and on the fixed against placed time grids, with precision per CPU second (``--cells --grids``);
- :mod:`diffmem.bench.peers`: the fused pass against what a user would write in torch on the CPU
  (``diffmem bench --peers``; torch is the optional extra ``peers``);
- :mod:`diffmem.bench.ge_error`: the simulations behind the measured error of the Gaussian-equivalent
  theory (``scripts/ge_error.py``; the table from their records is :mod:`diffmem.analysis.ge_error`).

This layer sits above :mod:`diffmem.engine`, :mod:`diffmem.theory` and :mod:`diffmem.analysis`, beside
(and independent of) :mod:`diffmem.pipeline` and :mod:`diffmem.plots`. ``kernels`` and ``cells`` import
neither zarr nor dask, so the benchmarks run on the GPU image (``scripts/gpu-check.sh``). Nothing here
asserts a speed.
"""
