# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring a diffmem sweep
#
# This notebook opens the store of a finished sweep (by default the one `make run` leaves in
# `results/default/`), measures the collapse, generalization and trap-onset times with the
# `ds.diffmem` accessor, and draws the phase diagram with the large-N theory overlaid.
#
# It is a [jupytext](https://jupytext.readthedocs.io) notebook in the percent format: open it in
# Jupyter as a notebook (with jupytext installed), run it as a script
# (`python docs/examples/explore_sweep.py`), or convert it (`jupytext --to ipynb explore_sweep.py`).
# Run it from the repository root, or point `DIFFMEM_STORE` at another sweep store.

# %% tags=["parameters"]
import os

# The sweep store to explore; the tests run this notebook on the store their workflow run builds.
STORE = os.environ.get("DIFFMEM_STORE", "results/default/sweep.zarr")

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import diffmem  # noqa: F401  (registers the ds.diffmem accessor)
from diffmem.plots.figures import plot_phase_diagram

# %% [markdown]
# ## The store
#
# A plain xarray dataset: one labelled cell per (nonlinearity, alpha_D, N, alpha, seed), each with
# its observables on the time grid `t`, and a `done` flag per cell. Cells that are not done are
# missing data: the accessor ignores them, and `t_c_nseed` below says how many seeds each mean has.

# %%
ds = xr.open_zarr(STORE)
done = ds["done"].load()
print(f"{STORE}: {int(done.sum())} of {done.size} cells done")
print(dict(ds.sizes))

# %% [markdown]
# ## Measured times, per cell and over seeds
#
# `collapse_time` (phi = 1/2), `generalization_time` (minimum of the held-out loss) and
# `onset_time` (half the points are traps) return per-cell values with the mean, its standard error
# and a 95 % confidence interval over seeds. `realized()` gives the realized alpha = log(P)/N.

# %%
t_c = ds.diffmem.collapse_time()
t_g = ds.diffmem.generalization_time()
t_o = ds.diffmem.onset_time()
realized = ds.diffmem.realized()
t_c[["t_c_mean", "t_c_lo", "t_c_hi", "t_c_nseed"]].to_dataframe().head()

# %% [markdown]
# ## Theory
#
# `theory(spectrum="limit", at="nominal")` evaluates the N -> infinity predictions at the grid's
# requested alpha and alpha_D; `theory()` gives the quenched theory of each cell's own random
# features F at its realized alpha = log(P)/N instead, what a finite-N measurement compares with.

# %%
limit = ds.diffmem.theory(spectrum="limit", at="nominal")
limit[["t_g", "t_c", "t_o"]].to_dataframe().head()

# %% [markdown]
# ## Phase diagram
#
# One panel per (nonlinearity, alpha_D): the theory lines t_g < t_c < t_o against alpha, and the
# measured times of the largest N (mean over seeds with its 95 % interval) at the realized alpha.
# Below t_c the reverse dynamics collapses onto training points (memorization); traps appear
# between t_c and t_o.

# %%
COLORS = {"t_g": "tab:green", "t_c": "tab:red", "t_o": "tab:blue"}
measured = {"t_g": t_g, "t_c": t_c, "t_o": t_o}
N = int(ds["N"].max())
nonlinearities = np.atleast_1d(ds["nonlinearity"].values)
alpha_Ds = np.atleast_1d(ds["alpha_D"].values)
fig, axes = plt.subplots(
    len(nonlinearities), len(alpha_Ds), figsize=(4.2 * len(alpha_Ds), 3.4 * len(nonlinearities)),
    squeeze=False, sharex=True, sharey=True, layout="constrained",
)
x_measured = realized["alpha_eff"].sel(N=N).values
for r, nonlinearity in enumerate(nonlinearities):
    for c, alpha_D in enumerate(alpha_Ds):
        ax = axes[r, c]
        for q, color in COLORS.items():
            theory = limit[q].sel(nonlinearity=nonlinearity, alpha_D=alpha_D)
            ax.plot(theory["alpha"], theory, "-", color=color, label=f"{q} theory (N -> inf)")
            cell = measured[q].sel(nonlinearity=nonlinearity, alpha_D=alpha_D, N=N)
            mean = cell[f"{q}_mean"].values
            err = np.nan_to_num(np.vstack([mean - cell[f"{q}_lo"].values, cell[f"{q}_hi"].values - mean]))
            ax.errorbar(x_measured, mean, yerr=err, fmt="o", color=color, ms=4, capsize=2,
                        label=f"{q} measured, N = {N}")
        ax.set_title(f"{nonlinearity}, alpha_D = {alpha_D:g}", fontsize=10)
        ax.set_xlabel("alpha = log(P)/N")
        ax.set_ylabel("t")
        ax.set_ylim(bottom=0)
axes[0, 0].legend(fontsize=7)
plt.show()

# %% [markdown]
# The sweep's `phase.zarr` (written by the workflow's `extract_phase` rule) holds the same times
# beside both theories; the package draws the figure of the workflow from it into any axes:

# %%
phase_store = Path(STORE).with_name("phase.zarr")
if phase_store.exists():
    phase = xr.open_zarr(phase_store)
    fig, axes = plt.subplots(
        phase.sizes["nonlinearity"], phase.sizes["alpha_D"], squeeze=False, layout="constrained",
        figsize=(4.2 * phase.sizes["alpha_D"], 3.4 * phase.sizes["nonlinearity"]),
    )
    plot_phase_diagram(phase, ax=axes)
    plt.show()
else:
    print(f"no {phase_store} (run the workflow's extract_phase rule to make it)")
