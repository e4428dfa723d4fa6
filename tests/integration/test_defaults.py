"""One source of defaults: a cell run by ``diffmem cell`` and the same cell of a sweep, neither giving any
statistics or numerics setting, are the same cell and give the same numbers."""

import json
from dataclasses import fields
from pathlib import Path

import helpers
import numpy as np
import yaml

from diffmem.engine.reverse import DEFAULT_STEPS
from diffmem.engine.variables import VARIABLES
from diffmem.spec import DEFAULT_RHO, CellSpec

SCHEMA = Path(helpers.ROOT) / "src" / "diffmem" / "pipeline" / "config.schema.yaml"
# config keys that are CellSpec fields of the same name (the grid axes aside)
CELL_KEYS = (
    "family",
    "normalize",
    "m_tilde",
    "sigma",
    "samples",
    "mode",
    "sampling",
    "basin_samples",
    "chunk_size",
    "backend",
    "dtype",
    "exponential",
)


def test_schema_defaults_are_cellspecs():
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]
    defaults = {f.name: f.default for f in fields(CellSpec)}
    for key in CELL_KEYS:
        assert properties[key]["default"] == defaults[key], key
    # the three CellSpec defaults that mean "the engine's": rho, steps, test_samples (= samples)
    assert properties["rho"]["default"] is None and defaults["rho"] == DEFAULT_RHO
    assert defaults["steps"] is None and properties["steps"]["default"] == DEFAULT_STEPS
    assert defaults["test_samples"] is None and properties["test_samples"]["default"] == defaults["samples"]
    # and the grid axes' defaults are CellSpec's
    grid = properties["grid"]["properties"]
    assert grid["nonlinearity"]["default"] == [defaults["nonlinearity"]]
    assert grid["alpha_D"]["default"] == [defaults["alpha_D"]]
    assert grid["seed"]["default"] == [defaults["seed"]]


def test_diffmem_cell_and_a_one_cell_sweep_give_the_same_numbers(tmp_path):
    t = np.geomspace(0.05, 2.0, 6)
    config = {
        "sweep": "onecell",
        "grid": {"N": [16], "alpha": [0.3], "alpha_D": [0.5]},
        "t": [float(x) for x in t],
        "progress": False,
        "cluster": {"n_workers": 1},
    }
    store = helpers.uninterrupted_run(tmp_path, config, threads=1)
    out = helpers.diffmem(
        "cell",
        "--family",
        "hmm",
        "--N",
        16,
        "--alpha",
        0.3,
        "--alpha-D",
        0.5,
        "--t",
        *(repr(float(x)) for x in t),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    cell = json.loads(out.stdout)
    ds = helpers.open_store(store)
    for name in VARIABLES:
        got = np.asarray(ds[name].values, dtype=float).reshape(np.shape(cell[name]) or ())
        want = np.array([np.nan if v is None else v for v in np.ravel(cell[name])], dtype=float).reshape(got.shape)
        np.testing.assert_array_equal(got, want, err_msg=name)
    # the store says which pass and exponential made the cell, and on what platform
    assert ds["kernel"].values.ravel().tolist() == ["fused"] == [cell["params"]["kernel"]]
    assert ds["exponential"].values.ravel().tolist() == ["minimax11-fma"]
    assert ds["platform"].values.ravel()[0] == cell["params"]["platform"] and "numpy" in cell["params"]["platform"]
