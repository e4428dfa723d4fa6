"""One grid cell: build the data of a :class:`diffmem.spec.CellSpec`, measure every variable of the output contract.

:func:`run_cell` is what the command line (``diffmem cell``) and the sweep's runner call. Its result is a
``CellResult`` (numpy arrays; a read-only mapping) with ``params``, ``t``, ``rho``, one entry per variable of
:data:`diffmem.engine.variables.VARIABLES` (shaped by its extra dims; NaN where the mode does not measure
it) and ``wall_time``.
"""

import time
from typing import Any

import numpy as np

from diffmem.engine import variables
from diffmem.engine.backend import platform_fingerprint, resolve
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.observables import (
    Context,
    measured_only,
    nearest_neighbour,
    test_points,
    time_observables,
)
from diffmem.engine.reverse import DEFAULT_STEPS, default_T, dynamic_basin, reverse_observables
from diffmem.engine.speciation import class_agreement
from diffmem.errors import ParameterError
from diffmem.spec import CellSpec
from diffmem.version import __version__

__all__ = ["run_cell"]


def run_cell(spec: CellSpec | None = None, *, progress: bool = False, **parameters: Any) -> variables.CellResult:
    """Simulate one cell and measure every variable of :data:`diffmem.engine.variables.VARIABLES`.

    Parameters
    ----------
    spec : CellSpec, optional
        The cell. Without it, ``parameters`` are the keyword arguments of
        :class:`diffmem.spec.CellSpec` (``N``, ``P`` or ``alpha``, ``alpha_D``, ``t``, ...), validated
        into one here.
    progress : bool
        Show a progress bar on stderr (over t, or over training chunks with shared sampling).

    Returns
    -------
    diffmem.engine.variables.CellResult
        Every variable as a numpy array, with params, t, rho and wall_time (seconds); it reads as a
        mapping (``result["phi"]``) and gives JSON types with ``to_json_types()``. Marginal
        observables are measured in every mode; sde/ode add phi_dyn and the memorization fraction,
        ode also the dynamic basin; gaussian-mixture cells (m_tilde > 0) add the class agreement.
    """
    start_clock = time.perf_counter()
    if spec is None:
        spec = CellSpec(**parameters)
    elif parameters:
        raise ParameterError(next(iter(parameters)), "give either a CellSpec or keyword parameters, not both")
    if not spec.t:
        raise ParameterError("t", "give at least one time t > 0")
    if spec.placement and not spec.measure:
        raise ParameterError(
            "placement", "a placed cell needs its times: run diffmem.analysis.placement.place(spec, placement) first"
        )
    times, rho, seed, samples = list(spec.t), list(spec.rho), spec.seed, spec.samples
    T = default_T(times) if spec.T is None else spec.T
    steps = spec.steps
    mode = spec.mode
    be = resolve(spec.backend, spec.dtype)
    reverse_steps = (steps or DEFAULT_STEPS) if mode != "marginal" else 0
    basin_samples = spec.basin_samples

    data = DataSpec.of(spec)
    train = TrainingSet(data, chunk_size=spec.chunk_size, device_put=be.put)
    ctx = Context(data, be, train)

    result = _empty_result(len(times), len(rho))
    b = test_points(data, spec.test_samples, seed)
    result.update(nearest_neighbour(ctx, b))
    for i, at_t in enumerate(
        _marginal_observables(
            ctx,
            times,
            b,
            spec.sampling,
            samples=samples,
            seed=seed,
            rho=rho,
            basin_samples=basin_samples,
            progress=progress,
            exponential=spec.exponential,
            measured=spec.measured() if spec.measure else None,
            skip=spec.skip_tiles,
        )
    ):
        for key, value in at_t.items():
            result[key][i] = value

    if spec.family == "gaussian-mixture" and spec.m_tilde > 0:
        result["class_agreement"], result["class_agreement_se"] = class_agreement(
            ctx, times, samples=samples, seed=seed
        )

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

    kernel = _kernel_name(ctx, spec)
    params = {
        "family": spec.family,
        "nonlinearity": spec.nonlinearity,
        "normalize": spec.normalize,
        "N": spec.N,
        "P": spec.P,
        "alpha": spec.alpha_realized,
        "alpha_requested": spec.alpha,
        "alpha_D": spec.alpha_D_realized,
        "alpha_D_requested": spec.alpha_D,
        "D": spec.D,
        "m_tilde": spec.m_tilde,
        "sigma": spec.sigma,
        "samples": samples,
        "seed": seed,
        "mode": mode,
        "steps": reverse_steps,
        "T": T if mode != "marginal" else None,
        "basin_samples": basin_samples,
        "test_samples": spec.test_samples,
        "backend": be.name,
        "device": be.device,
        "dtype": be.dtype,
        "chunk_size": spec.chunk_size,
        "sampling": spec.sampling,
        "kernel": kernel,
        "exponential": spec.exponential if kernel == "fused" else "library",
        "skip_tiles": bool(spec.skip_tiles and kernel == "fused"),
        "platform": platform_fingerprint(),
        "version": __version__,
    }
    return variables.CellResult(
        variables=_as_arrays(result),
        t=np.asarray(times, dtype=np.float64),
        rho=np.asarray(rho, dtype=np.float64),
        params=params,
        wall_time=time.perf_counter() - start_clock,
    )


def _kernel_name(ctx, spec):
    """The pass that made the marginal observables: ``fused`` (numba, with ``spec.exponential``),
    ``device`` (array-API time-shared pass) or ``per-time`` (one streamed pass per t, the backend's
    own exp)."""
    from diffmem.engine.kernels import shared_path

    return shared_path(ctx) if spec.sampling == "shared" else "per-time"


def _marginal_observables(
    ctx, times, b, sampling, *, samples, seed, rho, basin_samples, progress, exponential, measured, skip
):
    """Per-time observable dicts, in the order of ``times``, in the given sampling scheme.

    shared: every t from the same draws, the whole grid in one streamed pass
    (:func:`diffmem.engine.timeshare.shared_time_observables`); independent: time index i draws from
    its own stream i, one pass per t. ``measured`` (group -> mask over ``times``, None: all): a group's
    outputs only at its times; a time no group is measured at is not computed.
    """
    kwargs = dict(samples=samples, seed=seed, rho=rho, basin_samples=basin_samples)
    if sampling == "shared":
        from diffmem.engine.timeshare import shared_time_observables

        return shared_time_observables(
            ctx, times, b, progress=progress, exponential=exponential, measured=measured, skip=skip, **kwargs
        )
    groups_at = [[g for g, mask in (measured or {}).items() if mask[i]] for i in range(len(times))]
    iterator = range(len(times))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="t", unit="t")
    if measured is None:
        return [time_observables(ctx, times[i], i, b, **kwargs) for i in iterator]
    return [
        measured_only(time_observables(ctx, times[i], i, b, **kwargs), groups_at[i]) if groups_at[i] else {}
        for i in iterator
    ]


def _empty_result(n_t, n_rho):
    """NaN-filled arrays for every contract variable, shaped by its extra dims."""
    sizes = {"t": n_t, "rho": n_rho}
    result = {}
    for name, var in variables.VARIABLES.items():
        shape = tuple(sizes[d] for d in var.dims)
        result[name] = np.full(shape, np.nan) if shape else float("nan")
    return result


def _as_arrays(result):
    """Every contract variable as a numpy array of its dtype (0-d for per-cell scalars)."""
    return {name: np.asarray(result[name], dtype=var.dtype) for name, var in variables.VARIABLES.items()}
