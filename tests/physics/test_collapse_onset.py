"""Collapse time t_c (phi crossing 1/2) and onset time t_o (trap fraction crossing 1/2) against the
quenched theory at the cell's realized sizes (docs/theory.md, sections 4.3, 4.4 and 6.1).

Measured offsets (crossing / theory - 1, mean +- standard error over seeds 0-3, alpha = 0.15,
samples = 256, time grid 0.75-1.35 t_c in 13 steps or 0.8-1.2 t_o in 9 steps; the same under
shared and independent sampling):

=========  ====  ================  ================
family     N     t_c offset        t_o offset
=========  ====  ================  ================
isotropic  32    +0.091 +- 0.014   -0.002 +- 0.005
isotropic  48    +0.034 +- 0.009   -0.003 +- 0.002
isotropic  64    +0.025 +- 0.006   -0.004 +- 0.001
hmm 0.5    32    +0.106 +- 0.010   -0.029 +- 0.007
hmm 0.5    48    +0.067 +- 0.015   -0.013 +- 0.003
hmm 0.5    64    +0.063 +- 0.011   -0.008 +- 0.001
=========  ====  ================  ================

The phi crossing lies above t_c at every N and the offset shrinks with N: at finite N the collapse
is a smooth crossover whose midpoint sits on the high-t side of the REM transition (the planted
point keeps an O(1) weight while the free-entropy gap is O(1/N)). The trap fraction tracks t_o to
better than 1 % already at N = 32, because it is set by the typical-centre free energy, which has no
condensation correction; for the hidden manifold (t_o offsets measured with samples = 512 on
0.8-1.6 t_o) it lies slightly below t_o and converges from below.
"""

import numpy as np
import pytest
from sim import cell, crossing, mean_and_error, theory

SEEDS = range(4)
ALPHA = 0.15


def collapse_offsets(family, N, sampling):
    offsets = []
    for seed in SEEDS:
        t_c = theory(family, N, ALPHA, seed)["t_c"]
        grid = t_c * np.linspace(0.75, 1.35, 13)
        out = cell(family, N, ALPHA, seed, grid, sampling=sampling)
        offsets.append(crossing(grid, out["phi"]) / t_c - 1)
    return mean_and_error(offsets)


def onset_offsets(family, N, sampling):
    offsets = []
    for seed in SEEDS:
        t_o = theory(family, N, ALPHA, seed)["t_o"]
        grid = t_o * np.linspace(0.8, 1.2, 9)
        out = cell(family, N, ALPHA, seed, grid, sampling=sampling)
        offsets.append(crossing(grid, out["trap"]) / t_o - 1)
    return mean_and_error(offsets)


@pytest.mark.parametrize("sampling", ["shared", "independent"])
@pytest.mark.parametrize(
    "family, low, high",
    # Bands around the measured N = 48 offset (+0.034 +- 0.009 isotropic, +0.067 +- 0.015 hmm):
    # about 3 standard errors each side, positive (the sign of the finite-N offset is part of the
    # physics). A 10 % error in t_c moves the offset by 0.1 and fails.
    [("isotropic", 0.005, 0.065), ("hmm", 0.02, 0.115)],
)
def test_phi_crosses_half_just_above_the_quenched_t_c(family, low, high, sampling):
    mean, error = collapse_offsets(family, 48, sampling)
    assert low < mean < high, (mean, error)


def test_collapse_offset_shrinks_with_N():
    """Isotropic offsets at N = 32 and 64: +0.091 +- 0.014 and +0.025 +- 0.006, 4 standard errors apart."""
    small, small_error = collapse_offsets("isotropic", 32, "shared")
    large, large_error = collapse_offsets("isotropic", 64, "shared")
    assert 0 < large < small, (small, small_error, large, large_error)
    assert small - large > 2 * np.hypot(small_error, large_error)


@pytest.mark.parametrize("sampling", ["shared", "independent"])
@pytest.mark.parametrize(
    "family, N, low, high",
    # Isotropic: measured |offset| <= 0.004 with standard errors <= 0.005 at N = 32-64, a 2 % band
    # (4 standard errors at N = 32). Hmm: -0.013 +- 0.003 at N = 48 (seed 0 alone with 256 samples:
    # -0.022), band of about 5 standard errors. Both fail a 3-4 % error in t_o.
    [("isotropic", 32, -0.02, 0.02), ("isotropic", 48, -0.02, 0.02), ("hmm", 48, -0.035, 0.01)],
)
def test_trap_fraction_crosses_half_at_the_quenched_t_o(family, N, low, high, sampling):
    mean, error = onset_offsets(family, N, sampling)
    assert low < mean < high, (mean, error)
