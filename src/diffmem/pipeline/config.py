"""The sweep config: load, validate against the schema (package data), resolve, hash.

The schema (:mod:`diffmem.pipeline.schema`, package data) holds every key's type, range, description
and default, and nothing else does. :func:`validate_config` fills the defaults and applies the
checks a schema cannot express, including building the :class:`diffmem.pipeline.grid.Grid` of the
sweep, so an invalid cell is refused before any job starts, naming the key.
"""

import copy

import numpy as np
import yaml

from diffmem.errors import ParameterError
from diffmem.pipeline.cluster import validate_cluster_spec
from diffmem.pipeline.grid import Grid, expand_axis
from diffmem.pipeline.schema import load_schema, validate

__all__ = [
    "load_config",
    "validate_config",
    "resolve_config",
]


def load_config(path):
    """Read a YAML (or JSON) sweep config file into a dict (not yet validated)."""
    with open(path) as fh:
        config = yaml.safe_load(fh)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ParameterError("config", f"{path} must hold a mapping, got {type(config).__name__}")
    return config


def validate_config(config, schema=None):
    """Validate ``config`` against the schema and fill its defaults (returns a new dict).

    The same rules as Snakemake's ``snakemake.utils.validate(config, schema, set_default=True)``,
    followed by :func:`resolve_config`'s checks, which include building the :class:`Grid` (so every
    cell's spec is valid).

    Raises
    ------
    ParameterError
        naming the offending key (e.g. ``grid.N[0]``) and what is accepted.
    """
    if schema is None:
        schema_doc = load_schema()
    else:
        with open(schema) as fh:
            schema_doc = yaml.safe_load(fh)
    config = copy.deepcopy(config)
    raw_grid = config.get("grid") if isinstance(config.get("grid"), dict) else {}
    if raw_grid.get("D") is not None and raw_grid.get("alpha_D") is not None:
        raise ParameterError("grid.D", "give at most one of grid.alpha_D and grid.D (the other null)")
    validate(config, schema_doc)
    return resolve_config(config)


def _check_increasing(name, values, low=0.0):
    if np.any(~np.isfinite(values)) or np.any(values <= low):
        raise ParameterError(name, f"values must be finite and > {low}, got {values.tolist()}")
    if np.any(np.diff(values) <= 0):
        raise ParameterError(name, f"must be strictly increasing, got {values.tolist()}")


def resolve_config(config):
    """Checks the schema cannot express; returns ``config`` (already default-filled).

    - exactly one of ``grid.alpha`` and ``grid.P``; at most one of ``grid.alpha_D`` and ``grid.D``
      (``grid.alpha_D`` is set to null when the grid is given in D, ``grid.D`` removed when it is not);
    - ``t`` strictly increasing;
    - families other than hmm take one nonlinearity and one alpha_D (they have no manifold);
    - the ``cluster`` section (:func:`diffmem.pipeline.cluster.validate_cluster_spec`);
    - every cell a valid :class:`diffmem.spec.CellSpec` (sizes within range, P and D rounded from
      alpha and alpha_D at least 2 and 1, ...), by building the :class:`Grid`.

    Raises
    ------
    ParameterError
        naming the offending key.
    """
    grid = config["grid"]
    if (grid.get("alpha") is None) == (grid.get("P") is None):
        raise ParameterError("grid.alpha", "give exactly one of grid.alpha and grid.P (the other null)")
    if grid.get("D") is not None:
        grid["alpha_D"] = None
    else:
        # An unused D is dropped, so a grid in alpha_D resolves to the same config (and store
        # attributes) as before D existed.
        grid.pop("D", None)
    if grid.get("alpha_D") is None and grid.get("D") is None:
        raise ParameterError("grid.alpha_D", "give one of grid.alpha_D and grid.D")
    _check_increasing("t", expand_axis("t", config["t"]))
    if config["family"] != "hmm":
        latent = "D" if grid.get("D") is not None else "alpha_D"
        for name in ("nonlinearity", latent):
            values = (
                grid[name] if name == "nonlinearity" else expand_axis(f"grid.{name}", grid[name], integer=name == "D")
            )
            if len(values) != 1:
                raise ParameterError(f"grid.{name}", f"family {config['family']!r} has no manifold: give one value")
    validate_cluster_spec(config.get("cluster") or {})
    Grid(config)
    return config
