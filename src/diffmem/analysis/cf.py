"""CF-style metadata for the derived stores (``theory.zarr``, ``phase.zarr``).

The analysis code labels its quantities in the project's natural units ("time (OU units)", "nats
per dimension", "Delta_t per dimension"), which UDUNITS-2 cannot parse. :func:`to_cf` rewrites them
when a dataset is written: ``units`` becomes "1" (they are dimensionless) and the natural unit moves
into ``long_name``; ``Conventions`` is set, and each ``<q>_se`` present is linked from ``<q>``
through ``ancillary_variables``.
"""

__all__ = ["CONVENTIONS", "NATURAL_UNITS", "to_cf"]

CONVENTIONS = "CF-1.10"

# natural unit -> what ``long_name`` gains
NATURAL_UNITS = {
    "time (OU units)": "in Ornstein-Uhlenbeck time units",
    "nats per dimension": "in nats per dimension",
    "Delta_t per dimension": "squared, per dimension, in units of Delta_t",
    "Delta_t": "in units of Delta_t",
    "count": "a count",
}


def to_cf(ds):
    """A shallow copy of ``ds`` with CF units, ``Conventions`` and ``ancillary_variables``."""
    out = ds.copy()
    for name, var in out.variables.items():
        units = var.attrs.get("units")
        if units in NATURAL_UNITS:
            attrs = dict(var.attrs)
            attrs["units"] = "1"
            attrs["long_name"] = f"{attrs.get('long_name', name)}, {NATURAL_UNITS[units]}"
            var.attrs = attrs
    for name in list(out.data_vars):
        if name.endswith("_se") and name[: -len("_se")] in out.data_vars:
            out[name[: -len("_se")]].attrs["ancillary_variables"] = name
    out.attrs = {**ds.attrs, "Conventions": CONVENTIONS}
    return out
