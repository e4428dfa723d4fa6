"""The cell spec: one immutable, validated description of a grid cell, and the size rule.

A *cell* is one data set (family, sigma, sizes, seed) measured on one time grid. Every layer takes a
:class:`CellSpec`: the engine simulates it, the theory predicts it, the pipeline's grid builds one per
cell and the store's coordinates are read off them. It is built once, at the boundary (CLI, config
grid, accessor), and passed down unchanged.

The size rule (docs/theory.md#sizes) lives here and nowhere else:

    P = floor(e^{alpha N} + 1/2),    D = floor(alpha_D N + 1/2),

so the *realized* ratios are alpha = log(P)/N and alpha_D = D/N. :func:`n_points` and
:func:`latent_dim` apply it elementwise (scalars, numpy arrays, xarray objects); :class:`CellSpec`
turns their result into integers and checks the limits.
"""

from dataclasses import dataclass, field, fields
from math import isfinite, log

import numpy as np

from diffmem import nonlinearities
from diffmem.errors import ParameterError, check_range, check_times

__all__ = [
    "CellSpec",
    "FAMILIES",
    "MODES",
    "SAMPLING",
    "DEFAULT_SAMPLING",
    "MAX_P",
    "DEFAULT_RHO",
    "DEFAULT_BASIN_SAMPLES",
    "DEFAULT_CHUNK_SIZE",
    "PHYSICS_VERSION",
    "DEFAULT_EXPONENTIAL",
    "DEFAULT_SAMPLES",
    "DEFAULT_BACKEND",
    "DEFAULT_DTYPE",
    "EXPONENTIALS",
    "MEASURE_GROUPS",
    "n_points",
    "latent_dim",
]

FAMILIES = ("hmm", "isotropic", "gaussian-mixture")
MODES = ("marginal", "sde", "ode")
# Marginal-mode queries: the same draws at every t (common random numbers; the whole time grid in
# one streamed pass, curves correlated across t) or fresh draws per t (one pass per t, independent).
SAMPLING = ("shared", "independent")
DEFAULT_SAMPLING = "shared"
# Largest training set a cell may ask for: the streamed kernel visits every point once per query
# batch, and 10^12 points is already days of compute on any machine this runs on.
MAX_P = 10**12
# Squared basin perturbation radii per dimension (units of Delta_t): log-spaced enough to place the
# 1/2 crossing of the basin probability for t from 0.05 to 2.
DEFAULT_RHO = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
# The defaults of a cell's statistics and numerics, the one source for CellSpec, the sweep config
# (its schema's defaults are checked against these) and ``diffmem cell`` (its flags are made from
# CellSpec's fields).
DEFAULT_SAMPLES = 256  # queries per time
# Basin queries per (t, rho): 32 gives a standard error <= 0.088 on P[w_mu0 > 1/2], enough to place
# the 1/2 crossing on the default 14-point rho grid; len(rho) x 32 queries per t.
DEFAULT_BASIN_SAMPLES = 32
DEFAULT_CHUNK_SIZE = 8192  # training points per kernel chunk (memory ~ 2 x query_batch x chunk x 8 B)
DEFAULT_BACKEND = "numpy"
DEFAULT_DTYPE = "float64"
# The exponentials of the fused time-shared pass (diffmem.engine.kernels.numba_pass): the default,
# within 1 ulp, and an opt-in mixed-precision one (2^f in float32, each weight within 2e-7).
EXPONENTIALS = ("minimax11-fma", "mixed-f32")
# Version of the numbers the engine computes for a given cell: part of every cell's identity key
# (diffmem.pipeline.grid.cell_key), so a store's finished cells are reused (resumed, grown, imported)
# only by code that computes the same numbers. Bump it in the same commit as any change of the engine
# that changes a cell's bits (a kernel's summation order, an exponential, a seeding stream); never on
# other commits (a refactor, docs, the pipeline), which would throw finished cells away for nothing.
PHYSICS_VERSION = 1
DEFAULT_EXPONENTIAL = EXPONENTIALS[0]
# The observables of a marginal-mode cell come in groups that share their queries; a cell may measure
# each group at its own subset of the time grid (CellSpec.measure, placed around the transition the
# group resolves: diffmem.analysis.placement). collapse: phi, y2, g_num, y2_fresh (t_c); trap: the trap
# fraction (t_o); basin: the static basin (radius); loss: loss and loss_raw (t_g).
MEASURE_GROUPS = ("collapse", "trap", "basin", "loss")


def n_points(alpha, N):
    """P = floor(e^{alpha N} + 1/2), elementwise, as floats (the one place P is rounded)."""
    with np.errstate(over="ignore"):
        return np.floor(np.exp(np.multiply(alpha, N)) + 0.5)


def latent_dim(alpha_D, N):
    """D = floor(alpha_D N + 1/2), elementwise, as floats (the one place D is rounded)."""
    return np.floor(np.multiply(alpha_D, N) + 0.5)


def _choice(name, value, choices):
    if value not in choices:
        raise ParameterError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _optional_int(name, value, low):
    return None if value is None else check_range(name, value, low=low, integer=True)


def _increasing_radii(rho):
    values = tuple(float(r) for r in np.atleast_1d(rho))
    if not values or any(not (isfinite(r) and r > 0) for r in values):
        raise ParameterError("rho", f"basin radii must lie in (0, inf), got {list(values)!r}")
    if any(b <= a for a, b in zip(values[:-1], values[1:])):
        raise ParameterError("rho", "basin radii must be strictly increasing")
    return values


def _measure(measure, n_t):
    """``measure`` as a tuple of (group, sorted time indices), one entry per group of MEASURE_GROUPS."""
    if not measure:
        return ()
    pairs = dict(measure)
    if sorted(pairs) != sorted(MEASURE_GROUPS) or len(pairs) != len(tuple(measure)):
        raise ParameterError(
            "measure", f"give the time indices of each of {', '.join(MEASURE_GROUPS)} once, got {sorted(pairs)}"
        )
    out = []
    for group in MEASURE_GROUPS:
        index = sorted({int(i) for i in pairs[group]})
        if index and not (0 <= index[0] and index[-1] < n_t):
            raise ParameterError("measure", f"{group}: time indices must lie in [0, {n_t - 1}], got {index}")
        out.append((group, tuple(index)))
    return tuple(out)


def _training_size(N, P, alpha):
    """Validated P from exactly one of P and alpha."""
    if (P is None) == (alpha is None):
        raise ParameterError("P", "give exactly one of P (integer >= 2) or alpha (> 0)")
    if P is not None:
        return check_range("P", P, low=2, high=MAX_P, integer=True), None
    alpha = float(check_range("alpha", alpha, low=0, low_open=True))
    if alpha * N > log(MAX_P):
        raise ParameterError("alpha", f"exp(alpha N) must be <= {MAX_P:g}, got alpha N = {alpha * N:g}")
    P = int(n_points(alpha, N))
    if P < 2:
        raise ParameterError(
            "alpha", f"P = floor(exp(alpha N) + 1/2) must be >= 2, i.e. alpha >= {log(1.5) / N:.4g}; got {alpha!r}"
        )
    return P, alpha


@dataclass(frozen=True, kw_only=True)
class CellSpec:
    """One cell: data, sizes, time grid and measurement settings, validated on construction.

    Give the training-set size as ``P`` or as ``alpha`` (then P = floor(e^{alpha N} + 1/2) and
    ``alpha`` is kept as the nominal value); ``alpha_D`` is the nominal latent ratio. The realized
    sizes are the properties :attr:`D`, :attr:`alpha_realized` and :attr:`alpha_D_realized`.

    Attributes
    ----------
    family : {"hmm", "isotropic", "gaussian-mixture"}
    nonlinearity : str
        Registered sigma of the hidden manifold (:mod:`diffmem.nonlinearities`).
    normalize : bool
        Unit second moment per component.
    N : int >= 1
        Ambient dimension.
    P : int in [2, MAX_P]
        Number of training points (derived from ``alpha`` when that is given).
    alpha : float or None
        Nominal log(P)/N as requested, None when the cell was given by P.
    alpha_D : float in (0, 1]
        Nominal latent ratio; D = floor(alpha_D N + 1/2) must be >= 1.
    seed : int >= 0
        Seed of every random array of the cell (:mod:`diffmem.seeding`).
    m_tilde, sigma : float
        Gaussian-mixture centre scale (>= 0) and per-class standard deviation (> 0).
    t : tuple of float > 0
        Times, in the given order (may be empty for a theory-only cell).
    samples : int >= 1
        Queries per time.
    mode : {"marginal", "sde", "ode"}
    sampling : {"shared", "independent"}
        Marginal-mode queries: the same draws at every t (one streamed pass for the whole grid;
        errors correlated across t) or fresh draws per t. Each t's estimate and standard error have
        the same distribution in both schemes.
    steps : int >= 1 or None
        Reverse steps from T to min(t) (None: the engine's default).
    rho : tuple of float > 0, increasing
        Basin grid (squared radius per dimension in units of Delta_t).
    basin_samples, test_samples, chunk_size : int >= 1
        Queries per (t, rho), held-out test points, training points per kernel chunk.
    T : float or None
        Start time of reverse trajectories (None: the engine's default); must exceed max(t).
    backend, dtype : str
        Array backend and compute dtype (checked by the engine's backend resolution).
    exponential : {"minimax11-fma", "mixed-f32"}
        Exponential of the fused time-shared pass (the default is within 1 ulp; mixed-f32 evaluates
        2^f in float32, each weight within 2e-7 relative). Part of the cell's identity.
    skip_tiles : bool
        Fused time-shared pass: skip the tiles of 16 training points whose logit bound lies 100 (base 2)
        below the query's shift (each adds < 2^-100; :func:`diffmem.engine.kernels.numba_pass.tile_bounds`).
        Off by default: it does not pay yet (docs/benchmarks.md, "The fused pass"). Part of the cell's
        identity when on.
    measure : tuple of (group, tuple of int)
        Marginal mode: the indices into ``t`` at which each group of :data:`MEASURE_GROUPS` is
        measured (NaN elsewhere); empty (the default) measures every group at every time. Made by
        :mod:`diffmem.analysis.placement` for placed grids; part of the cell's identity when given.
    placement : tuple of (key, value)
        A placed grid's settings (``background``, ``points``, ``width``; validated by
        :func:`diffmem.analysis.placement.check_placement`), from which the sweep's runner makes
        ``measure`` before the cell runs; part of the cell's identity when given. Empty: a fixed grid.
    """

    family: str = field(default="hmm", metadata={"help": "data family"})
    nonlinearity: str = field(default="linear", metadata={"help": "hidden-manifold sigma (registry name)"})
    normalize: bool = field(default=False, metadata={"help": "unit second moment per component"})
    N: int = field(metadata={"help": "ambient dimension (>= 1)"})
    P: int | None = field(default=None, metadata={"help": "number of training points (>= 2)"})
    alpha: float | None = field(default=None, metadata={"help": "P = floor(exp(alpha N) + 1/2) (alpha > 0)"})
    alpha_D: float = field(default=1.0, metadata={"help": "latent ratio in (0, 1]; D = floor(alpha_D N + 1/2)"})
    seed: int = field(default=0, metadata={"help": "seed of every random array"})
    m_tilde: float = field(default=1.0, metadata={"help": "gaussian-mixture centre scale"})
    sigma: float = field(default=1.0, metadata={"help": "gaussian-mixture per-class standard deviation"})
    t: tuple = field(default=(), metadata={"help": "times (> 0)"})
    samples: int = field(default=DEFAULT_SAMPLES, metadata={"help": "queries per time"})
    mode: str = field(default="marginal", metadata={"help": "marginal sampling, or reverse sde/ode"})
    sampling: str = field(
        default=DEFAULT_SAMPLING,
        metadata={
            "help": "marginal queries: the same draws at every t, the whole grid in one pass (shared), or fresh "
            "draws per t (independent)"
        },
    )
    steps: int | None = field(default=None, metadata={"help": "reverse steps from T to min(t) (None: 200)"})
    rho: tuple = field(default=DEFAULT_RHO, metadata={"help": "basin radii (increasing)"})
    basin_samples: int = field(default=DEFAULT_BASIN_SAMPLES, metadata={"help": "queries per (t, rho)"})
    test_samples: int | None = field(default=None, metadata={"help": "held-out points (None: samples)"})
    chunk_size: int = field(default=DEFAULT_CHUNK_SIZE, metadata={"help": "training points per kernel chunk"})
    T: float | None = field(
        default=None, metadata={"help": "start time of reverse trajectories (None: max(4, max t + 2))"}
    )
    backend: str = field(
        default=DEFAULT_BACKEND, metadata={"help": "array backend (auto: cupy when it works, else numpy)"}
    )
    dtype: str = field(default=DEFAULT_DTYPE, metadata={"help": "compute dtype"})
    exponential: str = field(
        default=DEFAULT_EXPONENTIAL,
        metadata={
            "help": "exponential of the fused time-shared pass: minimax11-fma (within 1 ulp) or mixed-f32 "
            "(2^f in float32, each weight within 2e-7 relative)"
        },
    )

    skip_tiles: bool = field(
        default=False,
        metadata={"help": "fused pass: skip tiles of 16 points that provably add < 2^-100 each (opt-in)"},
    )
    measure: tuple = field(default=(), metadata={"help": "time indices per observable group (empty: all)"})
    placement: tuple = field(
        default=(), metadata={"help": "placed-grid settings (background, points, width); empty: fixed grid"}
    )

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        put("family", _choice("family", self.family, FAMILIES))
        nonlinearities.get(self.nonlinearity)  # ParameterError naming the registered ones
        put("normalize", bool(self.normalize))
        put("skip_tiles", bool(self.skip_tiles))
        put("mode", _choice("mode", self.mode, MODES))
        put("sampling", _choice("sampling", self.sampling, SAMPLING))
        put("exponential", _choice("exponential", self.exponential, EXPONENTIALS))
        N = check_range("N", self.N, low=1, integer=True)
        put("N", N)
        P, alpha = _training_size(N, self.P, self.alpha)
        put("P", P)
        put("alpha", alpha)
        alpha_D = float(check_range("alpha_D", self.alpha_D, low=0, high=1, low_open=True))
        put("alpha_D", alpha_D)
        if latent_dim(alpha_D, N) < 1:
            raise ParameterError(
                "alpha_D",
                f"D = floor(alpha_D N + 1/2) must be >= 1, i.e. alpha_D >= {0.5 / N:.4g}; got {alpha_D!r}",
            )
        put("seed", check_range("seed", self.seed, low=0, integer=True))
        put("m_tilde", float(check_range("m_tilde", self.m_tilde, low=0)))
        put("sigma", float(check_range("sigma", self.sigma, low=0, low_open=True)))
        put("t", tuple(check_times(self.t)) if len(np.atleast_1d(self.t)) else ())
        put("samples", check_range("samples", self.samples, low=1, integer=True))
        put("steps", _optional_int("steps", self.steps, 1))
        put("rho", _increasing_radii(self.rho))
        put("basin_samples", check_range("basin_samples", self.basin_samples, low=1, integer=True))
        put("test_samples", _optional_int("test_samples", self.test_samples, 1) or self.samples)
        put("chunk_size", check_range("chunk_size", self.chunk_size, low=1, integer=True))
        put("measure", _measure(self.measure, len(self.t)))
        put("placement", tuple(sorted((str(k), v) for k, v in dict(self.placement).items())))
        if self.T is not None:
            low = max(self.t) if self.t else 0.0
            put("T", float(check_range("T", self.T, low=low, low_open=True)))

    @property
    def D(self):
        """Latent dimension D = floor(alpha_D N + 1/2)."""
        return int(latent_dim(self.alpha_D, self.N))

    @property
    def alpha_realized(self):
        """Realized log(P)/N."""
        return log(self.P) / self.N

    @property
    def alpha_D_realized(self):
        """Realized D/N."""
        return self.D / self.N

    def measured(self):
        """Per group of :data:`MEASURE_GROUPS`, a boolean mask over ``t`` of the times it is measured at."""
        n_t = len(self.t)
        if not self.measure:
            return {group: np.ones(n_t, dtype=bool) for group in MEASURE_GROUPS}
        out = {}
        for group, index in self.measure:
            mask = np.zeros(n_t, dtype=bool)
            mask[list(index)] = True
            out[group] = mask
        return out

    def replace(self, **changes):
        """A new, validated spec with ``changes`` applied (P or alpha replaces both size keys)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if "P" in changes or "alpha" in changes:
            values["P"], values["alpha"] = changes.pop("P", None), changes.pop("alpha", None)
        elif values["alpha"] is not None:
            values["P"] = None  # the nominal alpha sets P (again, or at a new N)
        values.update(changes)
        return CellSpec(**values)
