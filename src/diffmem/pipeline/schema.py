"""The sweep config schema, shipped as package data: every key's type, range, description and default.

Snakemake validates with the same file (:func:`schema_path`); defaults are read from it only, the
cluster section's included (:func:`schema_defaults`).
"""

import copy
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["schema_path", "load_schema", "schema_defaults"]


def schema_path():
    """Path of ``config.schema.yaml`` inside the installed package."""
    return Path(str(resources.files("diffmem.pipeline").joinpath("config.schema.yaml")))


@cache
def _schema_text():
    return schema_path().read_text()


def load_schema():
    """The schema as a fresh dict (callers may change it)."""
    return yaml.safe_load(_schema_text())


def schema_defaults(*keys):
    """The defaults of the schema section at ``keys`` (e.g. ``("cluster", "slurm")``), as a new dict."""
    node = load_schema()
    for key in keys:
        node = node["properties"][key]
    return {name: copy.deepcopy(sub["default"]) for name, sub in node["properties"].items() if "default" in sub}
