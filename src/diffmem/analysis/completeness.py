"""Use only what is finished: keep the seeds done everywhere, or mask groups with a missing seed.

Cells not done are NaN in a sweep store, and ``.mean("seed")`` skips NaN: during a sweep (or after a
failed cell) it silently averages whichever seeds happen to be done, so neighbouring points of a
curve can average different seeds. Two remedies, both pure functions of the dataset (its ``done``
flag), reached from the accessor as ``ds.diffmem.complete(...)``:

- :func:`complete_seeds`: keep only the seeds whose every cell is done; every mean then averages
  the same seeds everywhere;
- :func:`mask_incomplete`: keep every seed but make each cell-dimension group (all seeds of one
  ``nonlinearity, alpha_D, N, alpha``) NaN unless all of its seeds are done, so a mean over seeds
  is either over all of them or NaN.
"""

import numpy as np

from diffmem.errors import ParameterError

__all__ = ["complete_seeds", "mask_incomplete", "complete"]


def _done(ds):
    if "done" not in ds.data_vars:
        raise ParameterError("dataset", "has no 'done' variable: not a diffmem sweep store")
    return ds["done"].astype(bool)


def complete_seeds(ds, dim="seed"):
    """``ds`` restricted to the values of ``dim`` whose every cell is done (possibly none)."""
    done = _done(ds)
    others = [d for d in done.dims if d != dim]
    keep = done.all(others).values if others else done.values
    return ds.isel({dim: np.flatnonzero(keep)})


def mask_incomplete(ds, dim="seed"):
    """``ds`` with every variable over the cell grid NaN (NaT, False) where a ``dim`` group is incomplete.

    Variables without ``dim`` (coordinates, attributes) are unchanged; ``done`` itself is kept as is,
    so the mask can be undone.
    """
    done = _done(ds)
    group_complete = done.all(dim)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if name == "done" or dim not in var.dims:
            continue
        out[name] = var.where(group_complete)
    return out


def complete(ds, how="seeds", dim="seed"):
    """:func:`complete_seeds` (``how="seeds"``) or :func:`mask_incomplete` (``how="mask"``)."""
    if how == "seeds":
        return complete_seeds(ds, dim)
    if how == "mask":
        return mask_incomplete(ds, dim)
    raise ParameterError("how", f"must be 'seeds' or 'mask', got {how!r}")
