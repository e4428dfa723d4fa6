"""The cell spec: the size rule, its limits, validation naming the parameter, immutability."""

import dataclasses
import math

import numpy as np
import pytest

from diffmem.errors import ParameterError
from diffmem.spec import MAX_P, CellSpec, latent_dim, n_points


@pytest.mark.parametrize("N, alpha, alpha_D", [(12, 0.25, 0.5), (16, 0.15, 1.0), (48, 0.1, 0.05), (80, 0.3, 0.33)])
def test_size_rule_and_realized_ratios(N, alpha, alpha_D):
    cell = CellSpec(N=N, alpha=alpha, alpha_D=alpha_D)
    # Written out independently with the standard library: round half up of e^{alpha N} and alpha_D N.
    P = math.floor(math.exp(alpha * N) + 0.5)
    D = math.floor(alpha_D * N + 0.5)
    assert (cell.P, cell.D) == (P, D)
    assert cell.alpha == alpha and cell.alpha_D == alpha_D  # the nominal values are kept
    assert cell.alpha_realized == math.log(P) / N and cell.alpha_D_realized == D / N


def test_rule_is_elementwise_on_arrays():
    N = np.array([[48], [64]])
    np.testing.assert_array_equal(latent_dim(0.05, N), [[2.0], [3.0]])
    np.testing.assert_array_equal(n_points(np.array([0.1, 0.2]), N), np.floor(np.exp(N * [0.1, 0.2]) + 0.5))


def test_one_limit_for_P_whether_given_as_P_or_alpha():
    assert CellSpec(N=10, P=MAX_P).P == MAX_P
    with pytest.raises(ParameterError) as info:
        CellSpec(N=10, P=MAX_P + 1)
    assert info.value.name == "P"
    with pytest.raises(ParameterError) as info:
        CellSpec(N=10, alpha=math.log(MAX_P) / 10 * 1.001)
    assert info.value.name == "alpha"


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"N": 0, "P": 10}, "N"),
        ({"N": 10}, "P"),  # neither P nor alpha
        ({"N": 10, "P": 10, "alpha": 0.2}, "P"),  # both
        ({"N": 10, "alpha": 0.01}, "alpha"),  # P rounds to 1
        ({"N": 10, "P": 10, "alpha_D": 0.04}, "alpha_D"),  # D rounds to 0
        ({"N": 10, "P": 10, "alpha_D": 1.5}, "alpha_D"),
        ({"N": 10, "P": 10, "family": "cube"}, "family"),
        ({"N": 10, "P": 10, "nonlinearity": "cubic"}, "nonlinearity"),
        ({"N": 10, "P": 10, "mode": "langevin"}, "mode"),
        ({"N": 10, "P": 10, "t": [0.5, -1.0]}, "t"),
        ({"N": 10, "P": 10, "rho": [1.0, 0.5]}, "rho"),
        ({"N": 10, "P": 10, "samples": 0}, "samples"),
        ({"N": 10, "P": 10, "t": [1.0], "T": 0.5}, "T"),
    ],
)
def test_invalid_parameters_name_themselves(kwargs, name):
    with pytest.raises(ParameterError) as info:
        CellSpec(**kwargs)
    assert info.value.name == name, str(info.value)


def test_immutable_hashable_and_replace_revalidates():
    cell = CellSpec(N=16, alpha=0.2, alpha_D=0.5, t=[0.1, 1.0], seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.N = 32
    assert cell == CellSpec(N=16, alpha=0.2, alpha_D=0.5, t=(0.1, 1.0), seed=3)
    assert len({cell, CellSpec(N=16, alpha=0.2, alpha_D=0.5, t=(0.1, 1.0), seed=3)}) == 1
    bigger = cell.replace(N=32)  # the nominal alpha sets P at the new N
    assert bigger.P == math.floor(math.exp(0.2 * 32) + 0.5) and bigger.seed == 3
    assert cell.replace(P=100).alpha is None
    # Changes that leave the size alone keep the nominal alpha and its P (a spec built from alpha
    # holds both, which must not read as "both P and alpha given").
    later = cell.replace(t=(0.5,), seed=4)
    assert (later.alpha, later.P, later.t, later.seed) == (0.2, cell.P, (0.5,), 4)
    assert CellSpec(N=16, P=30, alpha_D=0.5, t=[0.1]).replace(seed=1).P == 30
    with pytest.raises(ParameterError):
        cell.replace(samples=-1)
    assert cell.test_samples == cell.samples  # held-out points default to the query count
