"""CF metadata of the derived stores (diffmem.analysis.cf)."""

import numpy as np
import xarray as xr

from diffmem.analysis.cf import to_cf
from diffmem.analysis.phase import write_dataset


def test_natural_units_become_parseable_and_se_are_linked(tmp_path):
    ds = xr.Dataset(
        {
            "t_c": ("cell", np.ones(2), {"long_name": "collapse time", "units": "time (OU units)"}),
            "t_c_se": ("cell", np.ones(2), {"long_name": "its standard error", "units": "time (OU units)"}),
            "f": ("cell", np.ones(2), {"long_name": "excess entropy", "units": "nats per dimension"}),
            "n": ("cell", np.ones(2), {"long_name": "seeds", "units": "1"}),
        }
    )
    write_dataset(ds, tmp_path / "phase.zarr")
    back = xr.open_zarr(tmp_path / "phase.zarr")
    assert back.attrs["Conventions"].startswith("CF-")
    assert {back[v].attrs["units"] for v in back.data_vars} == {"1"}
    assert back.t_c.attrs["long_name"] == "collapse time, in Ornstein-Uhlenbeck time units"
    assert back.f.attrs["long_name"] == "excess entropy, in nats per dimension"
    assert back.t_c.attrs["ancillary_variables"] == "t_c_se" and "ancillary_variables" not in back.f.attrs
    assert ds.t_c.attrs["units"] == "time (OU units)"  # the input is not modified
    assert to_cf(to_cf(ds)).f.attrs == to_cf(ds).f.attrs  # idempotent
