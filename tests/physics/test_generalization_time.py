"""Generalization time t_g: argmin of the held-out loss L(t) and the nearest-neighbour estimate
(1/2) log(1 + d_NN) against the quenched theory and against each other (docs/theory.md,
sections 3.6 and 4.7).

Measured offsets (estimate / t_g - 1, mean +- standard error over seeds 0-3, alpha = 0.15,
test_samples = 256, L on 13 times in 0.7-1.3 t_g, minimum from a parabola through the lowest three):

=========  ====  ================  ================
family     N     argmin L          (1/2)log(1+d_NN)
=========  ====  ================  ================
isotropic  32    +0.137 +- 0.010   +0.101 +- 0.008
isotropic  48    +0.104 +- 0.004   +0.075 +- 0.004
isotropic  64    +0.079 +- 0.002   +0.056 +- 0.002
hmm 0.5    32    +0.213 +- 0.019   +0.194 +- 0.018
hmm 0.5    48    +0.149 +- 0.005   +0.134 +- 0.005
hmm 0.5    64    +0.122 +- 0.007   +0.111 +- 0.007
=========  ====  ================  ================

Both estimates sit above t_g and approach it roughly like log(N)/N: the theory's t_g is the
N -> infinity nearest distance (the point where the rate function of the distance reaches alpha),
while the minimum of P finite-N distances lies above it by an extreme-value correction of order
log(N)/N. argmin L sits a further 2-4 % of t_g above the nearest-neighbour estimate at every N:
the loss minimum balances the nearest point against the next few, whose distances are larger, so it
is set by a slightly larger effective distance than d_NN alone.
"""

import numpy as np
import pytest
from sim import cell, mean_and_error, theory

SEEDS = range(4)
ALPHA = 0.15


def loss_minimum(t, loss):
    """argmin of L on the grid refined by a parabola through the lowest point and its neighbours."""
    k = int(np.clip(np.argmin(loss), 1, len(t) - 2))
    c = np.polyfit(t[k - 1 : k + 2], loss[k - 1 : k + 2], 2)
    return -c[1] / (2 * c[0])


def generalization_offsets(family, N):
    by_loss, by_nn = [], []
    for seed in SEEDS:
        t_g = theory(family, N, ALPHA, seed)["t_g"]
        grid = t_g * np.linspace(0.7, 1.3, 13)
        out = cell(family, N, ALPHA, seed, grid, samples=4, test_samples=256)
        by_loss.append(loss_minimum(grid, np.array(out["loss"])) / t_g - 1)
        by_nn.append(out["t_g_nn"] / t_g - 1)
    return np.array(by_loss), np.array(by_nn)


@pytest.mark.parametrize(
    "family, loss_band, nn_band",
    # Bands of about 4 standard errors around the measured N = 48 offsets (table above); a 10 %
    # error in t_g moves both offsets by 0.1 and fails.
    [("isotropic", (0.085, 0.125), (0.055, 0.095)), ("hmm", (0.125, 0.175), (0.11, 0.16))],
)
def test_loss_minimum_and_nearest_neighbour_sit_just_above_t_g(family, loss_band, nn_band):
    by_loss, by_nn = generalization_offsets(family, 48)
    assert loss_band[0] < by_loss.mean() < loss_band[1], mean_and_error(by_loss)
    assert nn_band[0] < by_nn.mean() < nn_band[1], mean_and_error(by_nn)
    # argmin L above the nearest-neighbour estimate in every seed (measured gap 0.015-0.035 of t_g)
    assert np.all(by_loss > by_nn), (by_loss, by_nn)
    assert (by_loss - by_nn).mean() < 0.06


def test_generalization_offsets_shrink_with_N():
    """Isotropic N = 32 against N = 64: offsets 0.137 -> 0.079 (argmin L), 0.101 -> 0.056 (d_NN)."""
    loss_small, nn_small = generalization_offsets("isotropic", 32)
    loss_large, nn_large = generalization_offsets("isotropic", 64)
    assert 0 < loss_large.mean() < loss_small.mean()
    assert 0 < nn_large.mean() < nn_small.mean()
