"""Helpers of the simulation-versus-theory tests: one cell at its realized sizes and its theory.

Every comparison is made with :func:`diffmem.theory.predict` at the cell's realized (N, P, D) and,
for the hidden manifold, the quenched spectrum of the cell's own feature matrix (docs/theory.md,
sections 1.2 and 4.1), so that D rounding and the sample spectrum are not mistaken for finite-size effects.
"""

import numpy as np

from diffmem.engine.cell import run_cell
from diffmem.spec import n_points
from diffmem.theory import predict

ALPHA_D = 0.5  # latent ratio of the linear hidden-manifold cells


def sizes(N, alpha):
    """The realized training-set size of a cell asked for as (N, alpha)."""
    return dict(N=N, P=int(n_points(alpha, N)))


def theory(family, N, alpha, seed, t=None):
    """Quenched theory at the realized sizes of the cell (family, N, alpha, seed)."""
    return predict(family=family, alpha_D=ALPHA_D, seed=seed, t=t, **sizes(N, alpha))


def cell(family, N, alpha, seed, t, **settings):
    """run_cell at the realized sizes, measurement settings from ``settings``."""
    defaults = dict(samples=256, basin_samples=2, rho=[1.0], test_samples=4)
    return run_cell(
        family=family, alpha_D=ALPHA_D, seed=seed, t=list(map(float, t)), **sizes(N, alpha), **{**defaults, **settings}
    )


def crossing(t, y, level=0.5):
    """First t where y falls through ``level`` (linear interpolation); NaN when it does not."""
    for k in range(1, len(t)):
        if y[k - 1] >= level > y[k]:
            return t[k - 1] + (y[k - 1] - level) / (y[k - 1] - y[k]) * (t[k] - t[k - 1])
    return float("nan")


def mean_and_error(values):
    """Mean over seeds and its standard error."""
    values = np.asarray(values, dtype=float)
    return values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(values))
