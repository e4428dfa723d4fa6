"""The output contract: every variable a cell produces, its extra dimensions and its metadata.

The engine (:func:`diffmem.engine.cell.run_cell`) fills exactly these keys; the store
(:mod:`diffmem.pipeline.store`) creates one data variable for each, with ``long_name`` and ``units`` attributes,
on top of the sweep's cell dimensions (N, alpha_D, alpha or P, nonlinearity, seed). Variables not
measured in a given mode are NaN (e.g. ``phi_dyn`` in marginal mode).

Extra dims: ``t`` (the time grid of the cell), ``rho`` (basin perturbation radius grid).
"""

__all__ = ["VARIABLES", "CellResult", "Variable", "names_with_dims", "standard_error_of"]

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Variable:
    """One output variable.

    ``units`` is a UDUNITS-2 string (CF conventions); the quantities here are dimensionless, so it is
    "1" and ``long_name`` says what the number measures and in which natural unit (nats per
    dimension, Delta_t, Ornstein-Uhlenbeck time), none of which UDUNITS knows.
    """

    name: str
    dims: tuple  # extra dims beyond the cell dims, subset of ("t", "rho"), in this order
    long_name: str
    units: str = "1"
    dtype: str = "float64"


_V = Variable
VARIABLES = {
    v.name: v
    for v in [
        # marginal mode, per time (docs/theory.md#observables)
        _V("phi", ("t",), "collapse order parameter E[w_mu0(x,t)]"),
        _V("phi_se", ("t",), "standard error of phi"),
        _V("y2", ("t",), "participation ratio sum_mu w_mu^2 on planted x"),
        _V("y2_se", ("t",), "standard error of y2"),
        _V("y2_fresh", ("t",), "participation ratio sum_mu w_mu^2 on fresh x ~ P_t (REM order parameter)"),
        _V("y2_fresh_se", ("t",), "standard error of y2_fresh"),
        _V("g_num", ("t",), "entropy gap estimator, in nats per dimension"),
        _V("g_num_se", ("t",), "standard error of g_num, in nats per dimension"),
        _V("loss", ("t",), "held-out cross-entropy L(t) of the contraction-undone KDE, in nats per dimension"),
        _V("loss_se", ("t",), "standard error of loss, in nats per dimension"),
        _V(
            "loss_raw", ("t",), "held-out cross-entropy of P^e_t without undoing the contraction, in nats per dimension"
        ),
        _V("loss_raw_se", ("t",), "standard error of loss_raw, in nats per dimension"),
        _V("trap", ("t",), "fraction of training points whose centre a e^{-t} has w_mu0 > 1/2 (traps, onset t_o)"),
        _V("trap_se", ("t",), "standard error of trap"),
        _V(
            "basin_radius",
            ("t",),
            "static basin radius rho_b_sim(t): P[w_mu0 > 1/2] = 1/2 crossing in log rho, squared, per dimension, "
            "in units of Delta_t",
        ),
        # gaussian-mixture only (NaN for the other families), per time (docs/theory.md#speciation)
        _V(
            "class_agreement",
            ("t",),
            "class agreement phi_S(t) of two clones of a reverse trajectory at t "
            "(posterior class weight, gaussian-mixture)",
        ),
        _V("class_agreement_se", ("t",), "standard error of class_agreement"),
        # reverse trajectories (sde / ode modes), per recorded time
        _V("phi_dyn", ("t",), "E[w_mu*(x(t),t)] along reverse trajectories, mu* = final nearest point"),
        _V("phi_dyn_se", ("t",), "standard error of phi_dyn"),
        # basins, per time and radius
        _V("basin_static", ("t", "rho"), "P[w_mu0(x,t) > 1/2] for x = a e^{-t} + sqrt(rho Delta_t) u"),
        _V("basin_static_se", ("t", "rho"), "standard error of basin_static"),
        _V("basin_dynamic", ("t", "rho"), "P[ODE from x at t ends at mu0] (ode mode)"),
        _V("basin_dynamic_se", ("t", "rho"), "standard error of basin_dynamic"),
        # per cell
        _V("d_nn", (), "mean nearest-neighbour squared distance per dimension of a test point to the training set"),
        _V("d_nn_se", (), "standard error of d_nn"),
        _V(
            "t_g_nn",
            (),
            "generalization time from nearest neighbours, (1/2) log(1 + d_nn), in Ornstein-Uhlenbeck time units",
        ),
        _V("memorization_fraction", (), "fraction of generated samples with d1/d2 < 1/3 at t_min (sde/ode modes)"),
        _V("memorization_fraction_se", (), "standard error of memorization_fraction"),
        _V("n_samples", (), "number of samples per time point", "1", "int64"),
        _V("steps", (), "number of reverse integration steps (0 in marginal mode)", "1", "int64"),
    ]
}


def names_with_dims(*dims):
    """Names of the variables whose extra dims are exactly ``dims``."""
    return [v.name for v in VARIABLES.values() if v.dims == tuple(dims)]


def standard_error_of(name):
    """The variable whose standard error ``name`` is (``phi`` for ``phi_se``), or None."""
    if name.endswith("_se") and name[: -len("_se")] in VARIABLES:
        return name[: -len("_se")]
    return None


@dataclass(frozen=True)
class CellResult(Mapping):
    """What :func:`diffmem.engine.cell.run_cell` returns: every variable of :data:`VARIABLES` as a numpy
    array of its extra dims (0-d for a per-cell scalar; int64 variables as int64), the cell's grids, the
    parameters it ran with and its wall time.

    It reads like the mapping it replaces (``result["phi"]``, ``result["params"]``, ``result.get``) and
    crosses dask as it is; JSON is made only where it is written (:meth:`to_json_types`, used by
    ``diffmem cell --json``).
    """

    variables: dict[str, np.ndarray]
    t: np.ndarray
    rho: np.ndarray
    params: dict[str, Any]
    wall_time: float

    _OTHER: ClassVar[tuple[str, ...]] = ("params", "t", "rho", "wall_time")

    def __getitem__(self, key: str) -> Any:
        if key in self.variables:
            return self.variables[key]
        if key in self._OTHER:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from ("params", "t", "rho", *self.variables, "wall_time")

    def __len__(self) -> int:
        return len(self.variables) + len(self._OTHER)

    def to_json_types(self) -> dict[str, Any]:
        """A plain dict of Python lists, floats and ints (NaN kept: the caller writes it as null)."""
        out = {"params": self.params, "t": self.t.tolist(), "rho": self.rho.tolist()}
        out.update({name: value.tolist() for name, value in self.variables.items()})
        out["wall_time"] = float(self.wall_time)
        return out
