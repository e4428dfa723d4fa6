"""One grid cell: validate parameters, build the data, measure every variable of the output contract.

:func:`run_cell` is what the command line (``diffmem cell``) and the sweep call. Its result is a
JSON-serializable dict with ``params``, ``t``, ``rho``, one entry per variable of
:data:`diffmem.engine.variables.VARIABLES` (shaped by its extra dims; NaN where the mode does not measure
it) and ``wall_time``.
"""

import time
from math import exp, floor, isfinite, log

import numpy as np

from diffmem import __version__

from diffmem import nonlinearities

from diffmem.engine import variables
from diffmem.engine.backend import resolve
from diffmem.engine.data import FAMILIES, DataSpec, TrainingSet
from diffmem.errors import ParameterError, check_range, check_times
from diffmem.engine.observables import (
    Context,
    nearest_neighbour,
    test_points,
    time_observables,
)
from diffmem.engine.reverse import DEFAULT_STEPS, default_T, dynamic_basin, reverse_observables

__all__ = ["run_cell", "MODES", "DEFAULT_BASIN_SAMPLES", "DEFAULT_CHUNK_SIZE", "resolve_sizes"]

MODES = ("marginal", "sde", "ode")
# Basin queries per (t, rho): 64 gives a standard error <= 0.0625 on P[w_mu0 > 1/2], enough to place
# the 1/2 crossing on the default 14-point rho grid; len(rho) x 64 queries per t.
DEFAULT_BASIN_SAMPLES = 64
DEFAULT_CHUNK_SIZE = 4096  # training points per kernel chunk (memory ~ 2 x query_batch x chunk x 8 B)
MAX_P = 10**12


def resolve_sizes(N, P=None, alpha=None, alpha_D=1.0):
    """Validate (N, P or alpha, alpha_D) and return (N, P, D) with THEORY.md section 1 rounding.

    P = floor(exp(alpha N) + 1/2) when alpha is given; D = floor(alpha_D N + 1/2).
    """
    N = check_range("N", N, low=1, integer=True)
    if (P is None) == (alpha is None):
        raise ParameterError("P", "give exactly one of P (integer >= 2) or alpha (> 0)")
    if P is not None:
        P = check_range("P", P, low=2, high=MAX_P, integer=True)
    else:
        alpha = check_range("alpha", alpha, low=0, low_open=True)
        exponent = float(alpha) * N
        if exponent > log(MAX_P):
            raise ParameterError("alpha", f"exp(alpha N) must be <= {MAX_P:g}, got alpha N = {exponent:g}")
        P = int(floor(exp(exponent) + 0.5))
        if P < 2:
            raise ParameterError(
                "alpha", f"P = floor(exp(alpha N) + 1/2) must be >= 2, i.e. alpha >= {log(1.5) / N:.4g}; got {alpha!r}"
            )
    alpha_D = check_range("alpha_D", alpha_D, low=0, high=1, low_open=True)
    D = int(floor(float(alpha_D) * N + 0.5))
    if D < 1:
        raise ParameterError(
            "alpha_D", f"D = floor(alpha_D N + 1/2) must be >= 1, i.e. alpha_D >= {0.5 / N:.4g}; got {alpha_D!r}"
        )
    return N, P, D


def _check_rho(rho):
    values = [float(r) for r in np.atleast_1d(rho)]
    if not values or any(not (isfinite(r) and r > 0) for r in values):
        raise ParameterError("rho", f"basin radii must lie in (0, inf), got {list(rho)!r}")
    if any(b <= a for a, b in zip(values[:-1], values[1:])):
        raise ParameterError("rho", "basin radii must be strictly increasing")
    return values


def _check_choice(name, value, choices):
    if value not in choices:
        raise ParameterError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _optional_int(name, value, low):
    return None if value is None else check_range(name, value, low=low, integer=True)


def run_cell(
    *,
    family="hmm",
    nonlinearity="linear",
    normalize=False,
    N,
    P=None,
    alpha=None,
    alpha_D=1.0,
    m_tilde=1.0,
    sigma=1.0,
    t,
    samples=256,
    seed=0,
    mode="marginal",
    steps=None,
    rho=variables.DEFAULT_RHO,
    basin_samples=None,
    test_samples=None,
    backend="auto",
    dtype="float64",
    chunk_size=None,
    progress=False,
    T=None,
):
    """Simulate one cell and measure every variable of :data:`diffmem.engine.variables.VARIABLES`.

    Parameters
    ----------
    family : {"hmm", "isotropic", "gaussian-mixture"}
    nonlinearity : str
        Registered sigma of the hidden manifold (hmm).
    normalize : bool
        Unit second moment per component (THEORY.md 1).
    N : int >= 1
        Ambient dimension.
    P : int >= 2, optional
        Number of training points; exclusive with ``alpha`` (P = floor(exp(alpha N) + 1/2)).
    alpha : float > 0, optional
    alpha_D : float in (0, 1]
        Latent ratio; D = floor(alpha_D N + 1/2) >= 1.
    m_tilde, sigma : float
        Gaussian-mixture centre scale (>= 0) and per-class standard deviation (> 0).
    t : sequence of float > 0
        Times, kept in the given order in the output.
    samples : int >= 1
        Queries per time for phi, y2, y2_fresh, g_num, trap, and reverse trajectories in sde/ode.
    seed : int >= 0
    mode : {"marginal", "sde", "ode"}
        Marginal observables are measured in every mode; sde/ode add phi_dyn and the memorization
        fraction, ode also the dynamic basin.
    steps : int >= 1, optional
        Geometric reverse steps from T to min(t) (default 200; requested times are added).
    rho : sequence of float > 0, increasing
        Basin grid (squared radius per dimension in units of Delta_t).
    basin_samples : int >= 1, optional
        Queries per (t, rho) for the basins (default 64).
    test_samples : int >= 1, optional
        Held-out test points for the loss and d_nn (default ``samples``).
    backend : {"auto", "numpy", "cupy"}
    dtype : {"float64", "float32"}
        float32 is accurate only while logits N/Delta_t stay far below 1/eps32 (see tests).
    chunk_size : int >= 1, optional
        Training points per kernel chunk (default 4096). Results do not depend on it beyond rounding.
    progress : bool
        Show a progress bar over t on stderr.
    T : float, optional
        Start time of reverse trajectories (default max(4, max(t) + 2)); must exceed max(t).

    Returns
    -------
    dict
        JSON-serializable: params, t, rho, every variable, wall_time (seconds).
    """
    start_clock = time.perf_counter()
    family = _check_choice("family", family, FAMILIES)
    nonlinearities.get(nonlinearity)  # ParameterError naming the registered ones
    mode = _check_choice("mode", mode, MODES)
    alpha_D_requested = alpha_D
    N, P, D = resolve_sizes(N, P, alpha, alpha_D)
    m_tilde = float(check_range("m_tilde", m_tilde, low=0))
    sigma = float(check_range("sigma", sigma, low=0, low_open=True))
    times = check_times(t)
    samples = check_range("samples", samples, low=1, integer=True)
    seed = check_range("seed", seed, low=0, integer=True)
    steps = _optional_int("steps", steps, 1)
    rho = _check_rho(rho)
    basin_samples = _optional_int("basin_samples", basin_samples, 1) or DEFAULT_BASIN_SAMPLES
    test_samples = _optional_int("test_samples", test_samples, 1) or samples
    chunk_size = _optional_int("chunk_size", chunk_size, 1) or DEFAULT_CHUNK_SIZE
    if T is None:
        T = default_T(times)
    else:
        T = float(check_range("T", T, low=max(times), low_open=True))
    be = resolve(backend, dtype)
    reverse_steps = (steps or DEFAULT_STEPS) if mode != "marginal" else 0

    spec = DataSpec(family, N, D, P, seed, nonlinearity, bool(normalize), m_tilde, sigma)
    train = TrainingSet(spec, chunk_size=chunk_size, device_put=be.put)
    ctx = Context(spec, be, train)

    result = _empty_result(len(times), len(rho))
    b = test_points(spec, test_samples, seed)
    result.update(nearest_neighbour(ctx, b))
    iterator = range(len(times))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="t", unit="t")
    for i in iterator:
        at_t = time_observables(ctx, times[i], i, b, samples=samples, seed=seed, rho=rho, basin_samples=basin_samples)
        for key, value in at_t.items():
            result[key][i] = value

    if mode != "marginal":
        rev = reverse_observables(ctx, times, mode=mode, samples=samples, seed=seed, steps=reverse_steps, T=T)
        result["phi_dyn"], result["phi_dyn_se"] = rev["phi_dyn"], rev["phi_dyn_se"]
        result["memorization_fraction"] = rev["memorization_fraction"]
        result["memorization_fraction_se"] = rev["memorization_fraction_se"]
        reverse_steps = rev["steps"]
    if mode == "ode":
        prob, se = dynamic_basin(
            ctx, times, rho, basin_samples=basin_samples, seed=seed, steps=steps or DEFAULT_STEPS, T=T
        )
        result["basin_dynamic"], result["basin_dynamic_se"] = prob, se
    result["n_samples"] = samples
    result["steps"] = reverse_steps

    params = {
        "family": family,
        "nonlinearity": nonlinearity,
        "normalize": bool(normalize),
        "N": N,
        "P": P,
        "alpha": log(P) / N,
        "alpha_requested": None if alpha is None else float(alpha),
        "alpha_D": D / N,
        "alpha_D_requested": float(alpha_D_requested),
        "D": D,
        "m_tilde": m_tilde,
        "sigma": sigma,
        "samples": samples,
        "seed": seed,
        "mode": mode,
        "steps": reverse_steps,
        "T": T if mode != "marginal" else None,
        "basin_samples": basin_samples,
        "test_samples": test_samples,
        "backend": be.name,
        "device": be.device,
        "dtype": be.dtype,
        "chunk_size": chunk_size,
        "version": __version__,
    }
    out = {"params": params, "t": list(times), "rho": list(rho)}
    out.update(_to_json_types(result))
    out["wall_time"] = time.perf_counter() - start_clock
    return out


def _empty_result(n_t, n_rho):
    """NaN-filled arrays for every contract variable, shaped by its extra dims."""
    sizes = {"t": n_t, "rho": n_rho}
    result = {}
    for name, var in variables.VARIABLES.items():
        shape = tuple(sizes[d] for d in var.dims)
        result[name] = np.full(shape, np.nan) if shape else float("nan")
    return result


def _to_json_types(result):
    """numpy arrays -> nested lists of Python floats; int64 variables -> int."""
    out = {}
    for name, var in variables.VARIABLES.items():
        value = result[name]
        if var.dtype == "int64":
            out[name] = int(value)
        elif isinstance(value, np.ndarray):
            out[name] = np.asarray(value, dtype=np.float64).tolist()
        else:
            out[name] = float(value)
    return out
