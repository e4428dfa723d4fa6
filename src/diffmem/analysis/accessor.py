"""``ds.diffmem``: the analysis of a sweep store in one call each.

Registered on :class:`xarray.Dataset` when :mod:`diffmem` is imported, so a store opened with plain
``xarray.open_zarr`` gets it::

    import xarray as xr
    import diffmem  # registers the accessor

    ds = xr.open_zarr("results/paper/sweep.zarr")
    tc = ds.diffmem.collapse_time()           # phi = 1/2 crossing per cell, mean and CI over seeds
    tg = ds.diffmem.generalization_time()     # argmin of L(t), and the nearest-neighbour estimate
    th = ds.diffmem.theory()                  # quenched theory per cell, at its realized alpha, alpha_D
    nom = ds.diffmem.theory(spectrum="limit", at="nominal")   # N -> infinity at the requested point
    ex = ds.diffmem.extrapolate("t_c")        # N -> infinity: deviation from realized-size theory

Layout expected (the pipeline's store, ``diffmem.pipeline.store``): cell dimensions among ``nonlinearity``,
``alpha_D``, ``N``, ``alpha`` (with ``P`` a coordinate over (N, alpha)) or ``P`` (with ``alpha`` a
coordinate), and ``seed``; extra dimensions ``t`` and ``rho``; one data variable per entry of
:data:`diffmem.engine.variables.VARIABLES` and a per-cell ``done`` flag. Cells not done are treated as missing.
Per-cell extraction is :mod:`diffmem.analysis.finite_size` mapped over the cells, the seed summary is
:mod:`diffmem.analysis.estimators` (names ``q``, ``q_mean``, ``q_mean_se``, ``q_lo``, ``q_hi``,
``q_nseed``), the theory of a cell is :mod:`diffmem.analysis.cell_theory`.
"""

import json
import warnings
from typing import Any

import numpy as np
import xarray as xr

from diffmem.analysis import cell_theory, estimators
from diffmem.analysis import finite_size as fs
from diffmem.errors import ParameterError
from diffmem.spec import latent_dim as round_latent_dim
from diffmem.theory.approximation import GE, ge_attrs

__all__ = ["DiffmemAccessor", "CELL_DIMS"]

# Dimensions that index cells (anything else, t and rho, is a per-cell axis). Order = display order.
CELL_DIMS = ("nonlinearity", "alpha_D", "D", "N", "alpha", "P", "seed")

# Time quantities the accessor knows how to measure, and the theory key each is compared with.
QUANTITIES = {
    "t_c": "collapse time: phi = 1/2 crossing",
    "t_o": "onset time: trap fraction = 1/2 crossing",
    "t_g": "generalization time: argmin of the held-out loss L(t)",
    "t_g_nn": "generalization time from nearest neighbours, (1/2) log(1 + d_nn)",
}
THEORY_KEY = {"t_c": "t_c", "t_o": "t_o", "t_g": "t_g", "t_g_nn": "t_g"}
MEASURE = {"t_c": "collapse_time", "t_o": "onset_time", "t_g": "generalization_time", "t_g_nn": "generalization_time"}


def _store_config(ds):
    """The sweep config recorded in the dataset attributes (a dict, or a JSON string), else {}."""
    for key in ("config", "sweep_config", "diffmem_config"):
        raw = ds.attrs.get(key)
        if isinstance(raw, dict):
            return raw
        if isinstance(raw, str):
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                continue
    return {}


def _first(mapping, *keys, default=None):
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return default


@xr.register_dataset_accessor("diffmem")
class DiffmemAccessor:
    """Analysis of a diffmem sweep store; see the module docstring."""

    def __init__(self, ds):
        self._ds = ds
        # xarray keeps one accessor per Dataset object: results cached here live as long as the
        # dataset and never leak between stores (theory calls repeat across seeds and panels).
        self._theory_cache = {}
        self._times_cache = {}

    # -- layout ---------------------------------------------------------------------------------
    @property
    def cell_dims(self):
        """The dimensions that index cells, in :data:`CELL_DIMS` order."""
        return tuple(d for d in CELL_DIMS if d in self._ds.dims)

    @property
    def grid_dim(self):
        """``"alpha"`` when the store's grid is in alpha, ``"P"`` when in P."""
        if "alpha" in self._ds.dims:
            return "alpha"
        if "P" in self._ds.dims:
            return "P"
        raise ParameterError("dataset", "has neither an 'alpha' nor a 'P' dimension: not a diffmem sweep store")

    @property
    def latent_dim(self):
        """``"alpha_D"`` when the store's grid is in alpha_D, ``"D"`` when in the latent dimension."""
        return "D" if "D" in self._ds.dims else "alpha_D"

    @property
    def has_nominal_limit(self):
        """Whether N -> infinity at fixed grid values exists: an alpha grid and an alpha_D grid.

        At fixed P (or fixed D) alpha = log(P)/N (or alpha_D = D/N) tends to 0 with N.
        """
        return self.grid_dim == "alpha" and self.latent_dim == "alpha_D"

    @property
    def config(self):
        """The sweep config recorded in the store attributes ({} when absent)."""
        return _store_config(self._ds)

    def complete(self, how: str = "seeds") -> xr.Dataset:
        """Only finished data: ``how="seeds"`` keeps the seeds done in every cell, ``how="mask"``
        makes NaN every group of seeds with a cell not done (:mod:`diffmem.analysis.completeness`),
        so that ``.mean("seed")`` never averages a varying subset of seeds."""
        from diffmem.analysis.completeness import complete

        return complete(self._ds, how=how)

    def _require(self, name):
        if name not in self._ds.data_vars:
            have = ", ".join(sorted(self._ds.data_vars)) or "none"
            raise ParameterError(name, f"is not a variable of this dataset (has: {have})")

    def _measured(self, name):
        """Variable ``name`` loaded in memory, NaN where the cell is not done."""
        self._require(name)
        da = self._ds[name]
        if "done" in self._ds.data_vars:
            da = da.where(self._ds["done"].astype(bool))
        return da.astype(float).load()

    def realized(self):
        """Realized parameters per (N, grid) (docs/theory.md#sizes): P, D, alpha = log(P)/N, alpha_D = D/N, log(P)/D."""
        ds = self._ds
        # Work on bare Variables: P is a coordinate (over N and alpha, or a dimension itself) and must
        # become a data variable here without clashing with the coordinate of the same name.
        N = ds["N"].variable.astype(float)
        P = ds["P"].variable.astype(float)
        data = {"P": P, "alpha_eff": np.log(P) / N}
        if "alpha_D" in ds.coords:
            D = round_latent_dim(ds["alpha_D"].variable.astype(float), N)
            data.update(D=D, alpha_D_eff=D / N, logP_over_D=np.log(P) / D)
        dims = [d for d in ds.dims if any(d in v.dims for v in data.values())]
        out = xr.Dataset(data, coords={d: ds[d].values for d in dims if d != "P"})
        if "P" in ds.dims:
            out = out.assign_coords(P=ds["P"].values)
        out = out.transpose(*dims).load()  # coordinates of an opened store are lazy; these are tiny
        labels = {
            "alpha_eff": "realized alpha = log(P)/N",
            "alpha_D_eff": "realized alpha_D = D/N",
            "logP_over_D": "log(P)/D",
            "D": "latent dimension D",
        }
        for k, v in labels.items():
            if k in out:
                out[k].attrs = {"long_name": v}
        return out

    # -- per-cell extraction -------------------------------------------------------------------
    def _summary(self, per_cell, per_cell_se, name, long_name, confidence):
        """Per-seed values plus mean, se and Student-t CI over seeds (:func:`estimators.summarize_seeds`)."""
        return estimators.summarize_seeds(per_cell, per_cell_se, name, long_name, confidence=confidence)

    def _neighbour_correlation(self, like):
        """Per cell, the correlation bound between neighbouring times of a marginal-mode curve.

        1 for cells made with shared sampling (common random numbers across t: the correlation is
        positive and at most 1, the bound keeps crossing errors conservative), 0 for independent
        sampling and for stores that predate the ``sampling`` record.
        """
        cell_dims = [d for d in like.dims if d != "t"]
        if "sampling" not in self._ds.data_vars:
            return xr.zeros_like(like.isel(t=0, drop=True))
        shared = (self._ds["sampling"].load() == "shared").astype(float)
        return shared.broadcast_like(like.isel(t=0, drop=True)).transpose(*cell_dims).load()

    def _crossing(self, var, name, long_name, level, confidence):
        y = self._measured(var)
        se = self._measured(f"{var}_se") if f"{var}_se" in self._ds.data_vars else xr.full_like(y, np.nan)
        t = self._ds["t"].values
        correlation = self._neighbour_correlation(y)

        def one(v, s, r):
            return fs.crossing_time(t, v, level=level, y_se=s, correlation=r)

        tc, tc_se = xr.apply_ufunc(
            one, y, se, correlation, input_core_dims=[["t"], ["t"], []], output_core_dims=[[], []], vectorize=True
        )
        return self._summary(tc, tc_se, name, long_name, confidence)

    def collapse_time(self, level: float = 0.5, confidence: float = 0.95) -> xr.Dataset:
        """Collapse time t_c: where phi(t) crosses ``level`` (1/2), interpolated in log t.

        Returns
        -------
        xarray.Dataset
            ``t_c`` and ``t_c_se`` per cell (se propagated from ``phi_se``); ``t_c_mean``,
            ``t_c_mean_se``, ``t_c_lo``, ``t_c_hi`` (Student-t interval at ``confidence``) and
            ``t_c_nseed`` over seeds. NaN where the crossing lies outside the t grid.
        """
        return self._crossing("phi", "t_c", QUANTITIES["t_c"], level, confidence)

    def onset_time(self, level: float = 0.5, confidence: float = 0.95) -> xr.Dataset:
        """Onset time t_o: where the trap fraction crosses ``level`` (1/2); same layout as collapse_time."""
        return self._crossing("trap", "t_o", QUANTITIES["t_o"], level, confidence)

    def generalization_time(self, confidence: float = 0.95) -> xr.Dataset:
        """Generalization time t_g: argmin of L(t), refined by a parabola in log t (docs/theory.md#loss-minimum).

        Returns
        -------
        xarray.Dataset
            ``t_g`` per cell with ``t_g_mean``, ``t_g_mean_se``, ``t_g_lo``, ``t_g_hi``, ``t_g_nseed``
            over seeds (NaN where the minimum sits at the edge of the t grid), and the same set for the
            nearest-neighbour estimate ``t_g_nn`` stored by the engine.
        """
        loss = self._measured("loss")
        t = self._ds["t"].values
        tg = xr.apply_ufunc(lambda v: fs.minimum_time(t, v), loss, input_core_dims=[["t"]], vectorize=True)
        out = self._summary(tg, xr.full_like(tg, np.nan), "t_g", QUANTITIES["t_g"], confidence)
        if "t_g_nn" in self._ds.data_vars:
            nn = self._measured("t_g_nn")
            if "d_nn_se" in self._ds.data_vars:
                # t = (1/2) log(1 + d): dt/dd = 1 / (2 (1 + d))
                nn_se = self._measured("d_nn_se") / (2 * (1 + self._measured("d_nn")))
            else:
                nn_se = xr.full_like(nn, np.nan)
            out = out.merge(self._summary(nn, nn_se, "t_g_nn", QUANTITIES["t_g_nn"], confidence), compat="override")
        return out

    def basin_radius(self, source: str = "stored", confidence: float = 0.95) -> xr.Dataset:
        """Static basin radius rho_b_sim(t), mean and se over seeds.

        Parameters
        ----------
        source : {"stored", "static"}
            ``"stored"`` uses the engine's ``basin_radius``; ``"static"`` recomputes it from
            ``basin_static(t, rho)`` (1/2 crossing in log rho, docs/theory.md#crossing-times).
        """
        if source == "stored":
            rb = self._measured("basin_radius")
        elif source == "static":
            p = self._measured("basin_static")
            rho = self._ds["rho"].values
            rb = xr.apply_ufunc(lambda v: fs.radius_from_static(rho, v), p, input_core_dims=[["rho"]], vectorize=True)
        else:
            raise ParameterError("source", f"must be 'stored' or 'static', got {source!r}")
        out = self._summary(rb, xr.full_like(rb, np.nan), "rho_b", "static basin radius", confidence)
        for v in out.data_vars:
            out[v].attrs["units"] = "Delta_t per dimension"
        return out

    def times(self, confidence: float = 0.95) -> xr.Dataset:
        """t_c, t_o, t_g and t_g_nn (with their seed summaries) in one Dataset."""
        parts = [self._seed_mean("t_c", confidence), self._seed_mean("t_g", confidence)]
        if "trap" in self._ds.data_vars:
            parts.append(self._seed_mean("t_o", confidence))
        return xr.merge(parts, compat="override")

    # -- theory --------------------------------------------------------------------------------
    def _theory_params(self, overrides):
        cfg = self.config
        params = {
            "family": _first(cfg, "family", default="hmm"),
            "normalize": bool(_first(cfg, "normalize", default=False)),
            "m_tilde": float(_first(cfg, "m_tilde", default=1.0)),
            "sigma": float(_first(cfg, "sigma", default=1.0)),
        }
        params.update(overrides)
        return params

    def _theory_dims(self, at, spectrum):
        """Cell dims the theory at (at, spectrum) depends on: no seed off the quenched spectrum, no N at nominal."""
        dims = list(self.cell_dims)
        if spectrum == "limit":
            dims = [d for d in dims if d != "seed"]
        if at == "nominal":
            if not self.has_nominal_limit:
                raise ParameterError(
                    "at",
                    "'nominal' needs an alpha and an alpha_D grid (on a P or D grid, alpha = log(P)/N "
                    "or alpha_D = D/N has no N -> infinity value)",
                )
            dims = [d for d in dims if d != "N"]
        return dims

    def _cell(self, dims, coords, idx):
        """One cell as a plain dict: its coordinates, plus P and D read from the store's coordinates."""
        ds = self._ds
        # Scalar coordinates (left by .sel(N=64)) are cell parameters too.
        cell = {d: ds[d].values.item() for d in CELL_DIMS if d in ds.coords and ds[d].ndim == 0}
        cell.update({d: coords[d][i] for d, i in zip(dims, idx)})
        # P and D (alpha_D on a D grid) are coordinates over (N, grid value): the cell's realized sizes.
        for name in ("P", "D", "alpha_D"):
            if name in cell or name not in ds.coords:
                continue
            da = ds[name]
            sel = {d: cell[d] for d in da.dims if d in cell}
            if len(sel) == da.ndim:
                value = da.sel(sel).values.item()
                cell[name] = float(value) if name == "alpha_D" else int(value)
        if "P" not in cell and "N" in cell:
            raise ParameterError("P", "the dataset has no P coordinate: not a diffmem sweep store")
        return cell

    def theory(
        self,
        spectrum: str = "quenched",
        at: str = "realized",
        t: Any = None,
        approximation: str | None = None,
        limit: Any = None,
        **overrides: Any,
    ) -> xr.Dataset:
        """Theory of every cell (docs/theory.md#sweep-theory), through
        :func:`diffmem.analysis.cell_theory.predict_kwargs`.

        The same (``spectrum``, ``at``) pair names the same point in ``theory.zarr`` and ``phase.zarr``.

        Parameters
        ----------
        spectrum : {"quenched", "limit"}
            ``"quenched"`` (default): the spectrum of each cell's own F, one value per seed.
            ``"limit"``: the N -> infinity formulas; no seed dimension.
        at : {"realized", "nominal"}
            ``"realized"`` (default): the cell's realized alpha = log(P)/N and alpha_D = D/N, what a
            finite-N measurement is compared with. ``"nominal"``: the grid's requested alpha and
            alpha_D (``spectrum="limit"`` and an alpha grid only; no N dimension), what an
            N -> infinity extrapolation is compared with.
        t : array, optional
            Times at which to also return ``f``, ``rho_b`` and ``loss``; ``True`` uses the store's t.
        approximation : str, optional
            Passed to ``predict``: ``"gaussian-equivalent"`` for the GE approximation of a nonlinear
            sigma (every variable then carries :func:`diffmem.theory.ge_attrs`; a linear sigma
            still gets its exact theory).
        limit : bool, optional
            Deprecated: ``limit=True`` is ``spectrum="limit", at="nominal"``.
        **overrides
            Theory parameters not recorded in the store (``family``, ``normalize``, ``m_tilde``,
            ``sigma``).

        Returns
        -------
        xarray.Dataset
            ``t_c``, ``t_o``, ``t_g``, ``t_s``, ``t_L`` on the cell dims it depends on, plus ``f``,
            ``rho_b``, ``loss`` on ``t`` when ``t`` is given; NaN where the theory is undefined.
        """
        if limit is not None:
            warnings.warn(
                "theory(limit=True) is theory(spectrum='limit', at='nominal')", DeprecationWarning, stacklevel=2
            )
            if limit:
                spectrum, at = "limit", "nominal"
        ds = self._ds
        base = self._theory_params(overrides)
        if t is True:
            t = ds["t"].values
        t_key = None if t is None else tuple(float(v) for v in np.atleast_1d(t))
        dims = self._theory_dims(at, spectrum)
        coords = {d: ds[d].values for d in dims}
        shape = tuple(len(coords[d]) for d in dims)
        out_s = {k: np.full(shape, np.nan) for k in cell_theory.TIMES}
        out_a = {k: np.full(shape + (len(t_key),), np.nan) for k in cell_theory.CURVES} if t_key else {}
        for idx in np.ndindex(*shape):
            cell = self._cell(dims, coords, idx)
            if "nonlinearity" not in cell:
                cell["nonlinearity"] = _first(self.config, "nonlinearity", default="linear")
            res = cell_theory.cell_theory(
                cell,
                at=at,
                spectrum=spectrum,
                base=base,
                approximation=approximation,
                t=t_key,
                cache=self._theory_cache,
            )
            for k in out_s:
                if res.get(k) is not None:
                    out_s[k][idx] = float(res[k])
            for k in out_a:
                if res.get(k) is not None:
                    out_a[k][idx] = np.asarray(res[k], dtype=float)
        data = {k: (dims, v) for k, v in out_s.items()}
        data.update({k: (dims + ["t"], v) for k, v in out_a.items()})
        if t_key:
            coords["t"] = np.asarray(t_key)
        res = xr.Dataset(data, coords=coords)
        res.attrs = {
            "spectrum": spectrum,
            "at": at,
            "approximation": approximation or "none",
            **{k: str(v) for k, v in base.items()},
        }
        if approximation == GE:
            for name in res.data_vars:
                res[name].attrs = ge_attrs(f"theory {name} ({spectrum}, {at})")
        return res

    def limit_at(
        self,
        alpha: Any,
        alpha_D: Any,
        nonlinearity: str = "linear",
        approximation: str | None = None,
        **overrides: Any,
    ) -> dict[str, float]:
        """N -> infinity theory times at any (alpha, alpha_D) with this store's family (for curves).

        Returns
        -------
        dict
            ``t_c``, ``t_o``, ``t_g``, ``t_s``, ``t_L`` as floats (NaN where undefined); {} when the
            point itself is invalid (for example alpha <= 0). Cached on this accessor.
        """
        cell = {"alpha": float(alpha), "alpha_D": float(alpha_D), "nonlinearity": str(nonlinearity)}
        try:
            res = cell_theory.cell_theory(
                cell,
                at="nominal",
                spectrum="limit",
                base=self._theory_params(overrides),
                approximation=approximation,
                cache=self._theory_cache,
            )
        except ParameterError:
            return {}
        return {k: (np.nan if res.get(k) is None else float(res[k])) for k in cell_theory.TIMES}

    # -- finite size ---------------------------------------------------------------------------
    def _seed_mean(self, quantity, confidence):
        """The measurement of ``quantity`` with its seed summary, computed once per accessor."""
        if quantity not in QUANTITIES:
            raise ParameterError("quantity", f"unknown {quantity!r}; choose one of {', '.join(QUANTITIES)}")
        method = MEASURE[quantity]
        if (method, confidence) not in self._times_cache:
            self._times_cache[method, confidence] = getattr(self, method)(confidence=confidence)
        return self._times_cache[method, confidence]

    def extrapolate(
        self,
        quantity: str = "t_c",
        method: str = "deviation",
        form: str = "logN/N",
        degree: int = 1,
        confidence: float = 0.95,
        reference: str = "quenched",
        relative_to: Any = None,
    ) -> xr.Dataset:
        """Extrapolate a measured time to N -> infinity by a fit in x = log(N)/N (docs/theory.md#finite-size).

        Parameters
        ----------
        quantity : {"t_c", "t_o", "t_g", "t_g_nn"}
        method : {"deviation", "raw"}
            ``"deviation"`` (default): fit the deviation of each cell from the theory at its own
            realized (N, P, D) (``reference`` spectrum; seed by seed, then averaged over seeds), which
            tends to 0 as N -> infinity whatever the rounding of D and P; ``value`` is its intercept
            plus the N -> infinity theory at the nominal (alpha, alpha_D). ``"raw"``: fit the seed-mean
            time itself (an alpha grid only); D jumping with N enters this fit as noise.
        form : {"logN/N", "1/N"}
        degree : {1, 2}
        reference : {"quenched", "limit"}
            The realized-size theory the deviation is taken from: the cell's own spectrum (default;
            removes the seed-to-seed scatter of F too) or the N -> infinity formulas at the realized
            alpha and alpha_D.
        relative_to : deprecated
            ``relative_to="theory"`` is ``method="deviation"``.

        Returns
        -------
        xarray.Dataset
            On the cell dims other than N and seed: ``value`` and ``se`` (the N -> infinity estimate of
            the quantity and its standard error), ``slope``, ``slope_se``, ``chi2``, ``dof``, ``n``;
            ``theory`` (N -> infinity theory at the nominal point, NaN on a P grid) and ``deviation``
            (``value - theory``, the intercept of the deviation fit); ``measured`` / ``measured_se``
            (the seed means per N that were fitted: deviations for ``"deviation"``). On a P or D grid the
            nominal point does not exist: ``value`` is NaN and ``deviation`` carries the result.
        """
        if relative_to is not None:
            warnings.warn(
                "extrapolate(relative_to='theory') is extrapolate(method='deviation')", DeprecationWarning, stacklevel=2
            )
            method = "deviation" if relative_to == "theory" else "raw"
        if method not in ("deviation", "raw"):
            raise ParameterError("method", f"must be 'deviation' or 'raw', got {method!r}")
        if "N" not in self._ds.dims:
            raise ParameterError("N", "the dataset has no N dimension to extrapolate along")
        res = self._seed_mean(quantity, confidence)
        key = THEORY_KEY[quantity]
        nominal = self.theory(spectrum="limit", at="nominal")[key] if self.has_nominal_limit else None
        if method == "deviation":
            ref = self.theory(spectrum=reference, at="realized")[key]
            dev = res[quantity] - ref
            mean = self._summary(dev, res[f"{quantity}_se"], "dev", "deviation from realized-size theory", confidence)
            y, y_se = mean["dev_mean"], mean["dev_mean_se"]
        else:
            if nominal is None:
                raise ParameterError(
                    "method",
                    "this store has a P or D grid (alpha = log(P)/N or alpha_D = D/N changes with N): use "
                    "method='deviation' or sweep on an alpha and alpha_D grid",
                )
            y, y_se = res[f"{quantity}_mean"], res[f"{quantity}_mean_se"]
        Ns = self._ds["N"].values.astype(float)

        def fit(v, s):
            r = fs.extrapolate(Ns, v, s, form=form, degree=degree)
            return r.value, r.se, r.slope, r.slope_se, r.chi2, float(r.dof), float(r.n)

        names = ("value", "se", "slope", "slope_se", "chi2", "dof", "n")
        out = xr.apply_ufunc(fit, y, y_se, input_core_dims=[["N"], ["N"]], output_core_dims=[[]] * 7, vectorize=True)
        ex = xr.Dataset(dict(zip(names, out)))
        theory_nominal = xr.full_like(ex["value"], np.nan) if nominal is None else nominal
        if method == "deviation":
            ex["deviation"] = ex["value"]
            ex["value"] = ex["deviation"] + theory_nominal
        else:
            ex["deviation"] = ex["value"] - theory_nominal
        ex["theory"] = theory_nominal
        ex["measured"] = y
        ex["measured_se"] = y_se
        ex = ex.drop_vars([c for c in ex.coords if "N" in ex[c].dims and c != "N"])
        ex.attrs = {
            "quantity": quantity,
            "form": form,
            "degree": degree,
            "method": method,
            "reference": reference if method == "deviation" else "none",
        }
        return ex

    def scaling_variable(self, t_c=None):
        """alpha_D (e^{2 t_c} - 1) (docs/theory.md#scaling-variable), with alpha_D = D/N realized per cell.

        ``t_c`` defaults to the seed-mean measured collapse time; pass a theory ``t_c`` DataArray to
        get the predicted curve. As alpha_D -> 0 it tends to 1/(e^{2 log(P)/D} - 1).
        """
        if t_c is None:
            t_c = self.collapse_time()["t_c_mean"]
        real = self.realized()
        out = real["alpha_D_eff"] * np.expm1(2 * t_c)
        out.attrs = {"long_name": "alpha_D (e^{2 t_c} - 1)", "units": "1"}
        return out.rename("scaling_variable")
