"""Memorization fraction of the reverse SDE against the marginal law it should sample
(docs/theory.md, sections 2.5 and 3.7).

At t_min the reverse SDE samples the empirical marginal P^e_{t_min}, a mixture of Gaussians centred
on a^mu e^{-t_min}; the fraction of its samples with d1/d2 < 1/3 (nearest and second-nearest
training distances after undoing the contraction) is therefore an exact finite-N number, computed
here densely from 20000 draws of that mixture. Measured (N = 16, P = 50, seed 1, 512 SDE samples,
80 steps), SDE +- standard error against the dense marginal value:

=========  ======  ===============  ======
family     t_min   SDE              dense
=========  ======  ===============  ======
isotropic  0.02    0.975 +- 0.007   0.978
isotropic  0.04    0.650 +- 0.021   0.651
isotropic  0.06    0.338 +- 0.021   0.328
isotropic  0.09    0.117 +- 0.014   0.102
hmm 0.5    0.02    0.641 +- 0.021   0.629
hmm 0.5    0.04    0.203 +- 0.018   0.197
=========  ======  ===============  ======

All pulls are below 1.1; the test allows 3.5 (a sampler that misses the marginal by 10 % of the
fraction, about 3 standard errors at the middle points, fails on at least one of them).
"""

import numpy as np
import pytest

from diffmem.engine.cell import run_cell
from diffmem.engine.data import DataSpec, training_block
from diffmem.spec import CellSpec


def dense_memorized_fraction(spec, t, n, seed):
    """Fraction of n draws of P^e_t with d1/d2 < 1/3, by brute force over the whole training set."""
    data = DataSpec.of(spec)
    points = np.concatenate([training_block(data, k) for k in range(data.n_blocks)])
    rng = np.random.default_rng(seed)
    centres = points[rng.integers(0, len(points), n)]
    y = centres + np.sqrt(np.expm1(2 * t)) * rng.standard_normal(centres.shape)  # e^{t} x_t
    squared = (y**2).sum(1)[:, None] - 2 * y @ points.T + (points**2).sum(1)[None, :]
    squared.sort(axis=1)
    fraction = np.mean(np.sqrt(np.maximum(squared[:, 0], 0)) / np.sqrt(squared[:, 1]) < 1 / 3)
    return fraction, np.sqrt(fraction * (1 - fraction) / n)


@pytest.mark.parametrize(
    "family, t_min", [("isotropic", 0.02), ("isotropic", 0.04), ("isotropic", 0.06), ("hmm", 0.02), ("hmm", 0.04)]
)
def test_sde_memorizes_as_often_as_its_marginal(family, t_min):
    spec = CellSpec(
        family=family,
        N=16,
        P=50,
        alpha_D=0.5,
        seed=1,
        t=(t_min, 0.5),
        samples=512,
        mode="sde",
        steps=80,
        basin_samples=2,
        rho=(1.0,),
        test_samples=4,
    )
    out = run_cell(spec)
    expected, expected_error = dense_memorized_fraction(spec, t_min, 20000, seed=7)
    assert 0.1 < expected < 0.99  # the fraction is resolvable, neither 0 nor saturated
    pull = (out["memorization_fraction"] - expected) / np.hypot(out["memorization_fraction_se"], expected_error)
    assert abs(pull) < 3.5, (out["memorization_fraction"], expected, pull)
