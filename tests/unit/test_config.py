"""The sweep config schema: defaults, completeness, and errors that name the offending key."""

import copy
from pathlib import Path

import pytest
import yaml

from diffmem.errors import ParameterError
from diffmem.pipeline.config import load_config, validate_config
from diffmem.pipeline.grid import Grid
from diffmem.pipeline.schema import schema_path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "src" / "diffmem" / "pipeline" / "config.schema.yaml"
SHIPPED = sorted((ROOT / "config").glob("*.yaml"))


def _schema():
    return yaml.safe_load(SCHEMA.read_text())


def _walk(node, path="config"):
    """Every (path, subschema) of the schema's object properties, recursively (through $defs too)."""
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _walk(sub, f"{path}.{name}")
    for key in ("oneOf", "anyOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _walk(sub, f"{path}<{key}{i}>")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_schema_is_the_one_the_package_uses():
    assert schema_path() == SCHEMA


def test_every_schema_key_has_a_description():
    doc = _schema()
    missing = [p for p, sub in _walk(doc) if not sub.get("description")]
    missing += [p for p, sub in _walk(doc["$defs"]["range"], "range") if not sub.get("description")]
    assert not missing, f"schema keys without description: {missing}"


def test_every_top_level_and_section_key_has_a_default():
    doc = _schema()
    sections = [
        doc,
        doc["properties"]["grid"],
        doc["properties"]["cluster"],
        doc["properties"]["cluster"]["properties"]["slurm"],
    ]
    for section in sections:
        for name, sub in section["properties"].items():
            assert "default" in sub, f"{name} has no default"


def test_objects_reject_unknown_keys():
    doc = _schema()
    for path, sub in [("config", doc), *_walk(doc)]:
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, f"{path} accepts unknown keys"


def test_schema_defaults_validate_with_only_a_grid_in_alpha():
    # The only thing without a usable default is the choice alpha vs P.
    config = validate_config({"grid": {"alpha": [0.1]}})
    assert config["sweep"] == "default" and config["grid"]["N"] == [32]
    assert config["cluster"]["kind"] == "local" and config["retries"] == 2
    assert Grid(config).n_cells == 1


def test_our_defaults_match_snakemakes_validate():
    from snakemake.utils import validate

    raw = {"grid": {"alpha": [0.1], "N": [16]}, "t": [0.1, 1.0]}
    ours = validate_config(raw)
    theirs = copy.deepcopy(raw)
    validate(theirs, str(SCHEMA), set_default=True)
    assert theirs["grid"].pop("D") is None  # ours drops the unused grid.D (README: grid in D)
    assert ours == theirs


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = validate_config(load_config(path))
    assert Grid(config).n_cells >= 1
    assert len(Grid(config).block_names()) >= 1


def _base():
    return {"grid": {"alpha": [0.1, 0.2], "N": [16, 32]}, "t": {"start": 0.1, "stop": 2.0, "num": 5}}


def _with(path, value):
    config = _base()
    node = config
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


BAD = [
    # (dotted path to set, bad value, key the error must name)
    ("samples", 0, "samples"),
    ("samples", "many", "samples"),
    ("mode", "langevin", "mode"),
    ("unknown_key", 1, "unknown_key"),
    ("grid.Nn", [3], "grid.Nn"),
    ("grid.N", [], "grid.N"),
    ("grid.N", [16, 1], "grid.N[1]"),
    ("grid.alpha_D", [0.5, 1.5], "grid.alpha_D[1]"),
    ("grid.seed", [-1], "grid.seed[0]"),
    ("grid.nonlinearity", ["cubic"], "grid.nonlinearity[0]"),
    ("t", [0.5, 0.2, 1.0], "t"),
    ("t", [0.0, 1.0], "t[0]"),
    ("t", {"start": 0.0, "stop": 1.0, "num": 3, "spacing": "log"}, "t.start"),
    ("rho", [1.0, 0.5], "rho"),
    ("grid.P", [100], "grid.alpha"),
    ("grid.alpha", [2.0], "grid.alpha"),
    ("cluster.kind", "kubernetes", "cluster.kind"),
    ("cluster.kind", "address", "cluster.address"),
    ("cluster.slurm.walltime", "soon", "cluster.slurm.walltime"),
    ("cluster.slurm.partition", "x", "cluster.slurm.partition"),
    ("block_size", 0, "block_size"),
    ("family", "isotropic", "grid.nonlinearity"),
]


@pytest.mark.parametrize("path,value,key", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_invalid_config_names_the_key(path, value, key):
    config = _with(path, value)
    if path == "family":
        config["grid"]["nonlinearity"] = ["linear", "tanh"]
    with pytest.raises(ParameterError) as info:
        validate_config(config)
    assert info.value.name == key, str(info.value)


def test_snakemake_validate_names_the_key_too():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    with pytest.raises(WorkflowError) as info:
        validate(_with("samples", -3), str(SCHEMA), set_default=True)
    assert "samples" in str(info.value)
