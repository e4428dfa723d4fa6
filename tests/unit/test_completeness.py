"""Only finished data (diffmem.analysis.completeness): complete seeds, masked incomplete groups."""

import numpy as np
import pytest
import xarray as xr

import diffmem  # noqa: F401 - registers ds.diffmem
from diffmem.errors import ParameterError


def partial_store():
    # 2 alpha x 3 seeds; seed 2 is missing at alpha = 0.2, everything else is done.
    done = np.array([[True, True, False], [True, True, True]])
    phi = np.where(done, np.array([[1.0, 2.0, 9.0], [3.0, 4.0, 5.0]]), np.nan)
    return xr.Dataset(
        {"phi": (("alpha", "seed"), phi), "done": (("alpha", "seed"), done)},
        coords={"alpha": [0.2, 0.3], "seed": [0, 1, 2]},
    )


def test_complete_seeds_keeps_the_seeds_done_everywhere():
    ds = partial_store()
    kept = ds.diffmem.complete("seeds")
    assert kept.seed.values.tolist() == [0, 1]
    np.testing.assert_array_equal(kept.phi.mean("seed").values, [1.5, 3.5])


def test_mask_makes_incomplete_means_nan_instead_of_silently_partial():
    ds = partial_store()
    # The trap: the plain mean at alpha = 0.2 averages two seeds, at 0.3 three.
    np.testing.assert_array_equal(ds.phi.mean("seed").values, [1.5, 4.0])
    masked = ds.diffmem.complete("mask")
    mean = masked.phi.mean("seed").values
    assert np.isnan(mean[0]) and mean[1] == 4.0
    np.testing.assert_array_equal(masked.done.values, ds.done.values)


def test_bad_choice_is_named():
    with pytest.raises(ParameterError, match="how"):
        partial_store().diffmem.complete("some")
