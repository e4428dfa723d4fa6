"""The sweep config schema, shipped as package data: every key's type, range, description and default.

Snakemake validates with the same file (:func:`schema_path`); defaults are read from it only, the
cluster section's included (:func:`schema_defaults`). :func:`validate` checks a config, or one of its
sections, against it with jsonschema, fills the defaults in and names the first offending key.
"""

import copy
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from diffmem.errors import ParameterError

__all__ = ["schema_path", "load_schema", "schema_defaults", "section_schema", "validate"]


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


def section_schema(*keys):
    """A schema of ``{keys[0]: {keys[1]: ...}}`` holding only the section at ``keys`` (e.g. ``("cluster",)``).

    Validating a section alone through it names its keys as in the whole config (``cluster.slurm.cores``).
    """
    root = load_schema()
    node = root
    for key in keys:
        node = node["properties"][key]
    for key in reversed(keys):
        node = {"type": "object", "properties": {key: node}, "required": [key]}
    return {**node, "$defs": root.get("$defs", {})}


def _key_path(error_path):
    """'grid.N[0]' from a jsonschema error path deque."""
    text = ""
    for part in error_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def _error_key(error):
    """The config key a jsonschema error is about (the unknown key for additionalProperties)."""
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        if extra:
            prefix = "" if key == "config" else key + "."
            return f"{prefix}{extra[0]}", f"unknown key; valid keys are {', '.join(allowed)}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch that got furthest (deepest path), e.g. grid.N[1] below minimum.
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            return _error_key(best)
        description = error.schema.get("description", "").strip()
        # A branch whose type fits failed on a constraint of the value itself (an empty or repeated
        # list): its message ("[] should be non-empty") says more than "is not valid".
        fitting = [e for e in error.context if e.validator != "type"]
        if fitting:
            return key, f"{fitting[0].message} ({description})" if description else fitting[0].message
        return key, f"{error.instance!r} is not valid: {description}".strip()
    return key, error.message


def validate(instance, schema_doc=None):
    """Validate ``instance`` against ``schema_doc`` (default: the whole schema), filling its defaults in.

    The same rules as Snakemake's ``snakemake.utils.validate(config, schema, set_default=True)``:
    every missing key with a default gets it, in nested sections too. ``instance`` is changed in place.

    Raises
    ------
    ParameterError
        naming the first offending key in key order (e.g. ``grid.N[0]``) and what is accepted.
    """
    schema_doc = load_schema() if schema_doc is None else schema_doc
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, item, schema_node):
        if isinstance(item, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    item.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, item, schema_node)

    validator_class = jsonschema.validators.extend(base, {"properties": set_defaults})
    # Report the first error in key order (paths mix str and int: compare them as text).
    errors = sorted(validator_class(schema_doc).iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    if errors:
        name, message = _error_key(errors[0])
        raise ParameterError(name, message)
    return instance
