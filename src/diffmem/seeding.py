"""Counter-based seeding: every random array derives from (seed, stream, index...).

``generator(seed, STREAM, k)`` returns the same ``numpy.random.Generator`` on any worker, in any
order, so chunk k of the training set, the feature matrix or the query batch of one time point can be
regenerated without storing anything (docs/theory.md#seeding).
"""

import numpy as np

__all__ = ["generator", "feature_matrix", "FEATURES", "TRAIN", "TEST", "QUERY", "NOISE", "CELL"]

# Stream identifiers: the first element of the spawn key. Never renumber (stores depend on them).
FEATURES = 0  # feature matrix F of the hidden manifold (or the mixture's class signs)
TRAIN = 1  # training set, one key per generation block
TEST = 2  # held-out test points b ~ P_0
QUERY = 3  # query points of marginal mode / basins, one key per time index
NOISE = 4  # Brownian increments of the reverse SDE, start points x(T)
CELL = 5  # per-cell seeds derived by the sweep


def generator(seed, *key):
    """A ``numpy.random.Generator`` (PCG64) for ``seed`` and spawn ``key`` (ints >= 0)."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
    return np.random.Generator(np.random.PCG64(ss))


def feature_matrix(N, D, seed):
    """Feature matrix F of shape (N, D), i.i.d. N(0, 1), drawn from stream FEATURES of ``seed``.

    The engine's hidden manifold and the theory's quenched spectrum both call it, so one cell's
    simulation and theory share F.
    """
    return generator(seed, FEATURES).standard_normal((int(N), int(D)))
