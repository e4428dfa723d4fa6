"""Benchmarks, kept out of the simulation engine (``diffmem bench``).

- :mod:`diffmem.bench.kernels`: the streamed kernel against the machine's own matrix multiply, the
  naive baseline, peak memory and scaling (``diffmem bench``);
- :mod:`diffmem.bench.cells`: one cell in both sampling schemes, side by side (``diffmem bench --cells``).

This layer sits above :mod:`diffmem.engine`, which it times, and imports neither zarr nor dask, so the
benchmarks run on the GPU image (``scripts/gpu-check.sh``). Nothing here asserts a speed.
"""
