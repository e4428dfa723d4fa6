"""The small-D table of docs/theory.md#small-d from the store of config/small-d.yaml.

    .venv/bin/python scripts/small_d_table.py /work/small-d/sweep.zarr

Per sigma and N (D = alpha_D N): t_c, t_o, t_g measured (seed mean +- total error: seed scatter and
the resolution of the times each was read on), the theory of record at the realized point in the
N -> infinity limit (Marchenko-Pastur for linear, RS for sign), and measured / theory - 1.
"""

import sys

import numpy as np
import xarray as xr

import diffmem.analysis.accessor  # noqa: F401 - registers ds.diffmem
from diffmem.analysis.phase import resolved_times

ds = xr.open_zarr(sys.argv[1], consolidated=False).load()
times = resolved_times(ds.diffmem.times(), ds["t"].values, curves=ds)
theory = ds.diffmem.theory(spectrum="limit")
sel = {"alpha_D": ds["alpha_D"].values[0], "alpha": ds["alpha"].values[0]}
print(
    "| sigma | N | D | P | "
    + " | ".join(f"{q} measured | {q} theory | {q} rel. dev." for q in ("t_c", "t_o", "t_g"))
    + " |"
)
print("|---|---|---|---|" + "---|---|---|" * 3)
for nl in ds["nonlinearity"].values:
    for N in ds["N"].values:
        cell = dict(sel, nonlinearity=nl, N=N)
        D = int(ds["D"].sel(alpha_D=sel["alpha_D"], N=N)) if "D" in ds.coords else int(round(0.05 * N))
        P = int(ds["P"].sel(N=N, alpha=sel["alpha"])) if "P" in ds.coords else None
        parts = []
        for q in ("t_c", "t_o", "t_g"):
            m = float(times[f"{q}_mean"].sel(cell))
            e = float(times[f"{q}_mean_se_total"].sel(cell))
            th = theory[q].sel(cell)
            th = float(th.mean("seed")) if "seed" in th.dims else float(th)
            dev = m / th - 1 if np.isfinite(m) and np.isfinite(th) and th > 0 else np.nan
            parts.append(f"{m:.3g} +- {e:.2g} | {th:.3g} | {dev:+.2f}")
        print(f"| {nl} | {N} | {D} | {P} | " + " | ".join(parts) + " |")
