"""diffmem: memorization and generalization of diffusion models on hidden manifolds.

Simulation with the exact empirical score of P training points (streamed kernels on numpy or cupy),
the large-N random-energy-model theory of ``docs/theory.md``, and reproducible Snakemake/dask sweeps into
labelled xarray/zarr stores.
"""

from diffmem.version import __version__  # noqa: F401

try:  # registers the ``ds.diffmem`` xarray accessor; xarray is a dependency, the guard keeps import light
    from diffmem.analysis import accessor  # noqa: F401
except ImportError:  # pragma: no cover - only without xarray
    pass
