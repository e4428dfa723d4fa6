"""Training, test and query data: the hidden manifold model and the reference families (THEORY.md 1)."""

import numpy as np

from .seeding import FEATURES, generator


def feature_matrix(N, D, seed):
    """Feature matrix F of shape (N, D), i.i.d. N(0, 1), drawn from stream FEATURES of ``seed``.

    The theory's quenched spectrum uses the same call, so one cell's theory and simulation share F.
    """
    return generator(seed, FEATURES).standard_normal((int(N), int(D)))
