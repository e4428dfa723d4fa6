"""Placed time grids: per-group times, their bits, the refinement pass, the resolution they carry."""

import numpy as np
import pytest

from diffmem.analysis import placement
from diffmem.analysis.estimators import grid_resolution
from diffmem.engine.cell import run_cell
from diffmem.engine.observables import GROUP_OUTPUTS
from diffmem.errors import ParameterError
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid, cell_key
from diffmem.spec import MEASURE_GROUPS, CellSpec

LATTICE = tuple(np.geomspace(0.01, 2.0, 41))
CELL = dict(N=24, alpha=0.3, alpha_D=0.5, t=LATTICE, samples=32, test_samples=32, basin_samples=8, seed=1)
SETTINGS = {"background": 6, "points": 5, "width": 1.3}


def _measure(groups):
    return tuple((g, tuple(groups.get(g, ()))) for g in MEASURE_GROUPS)


@pytest.fixture(scope="module")
def full():
    return {s: run_cell(CellSpec(**CELL, sampling=s)) for s in ("shared", "independent")}


@pytest.mark.parametrize("sampling", ["shared", "independent"])
def test_a_group_measured_at_some_times_has_the_full_grids_bits_there_and_nan_elsewhere(full, sampling):
    groups = {"collapse": (0, 13, 14, 15, 40), "trap": (20, 21), "basin": (0, 1, 2), "loss": (5, 6, 39)}
    part = run_cell(CellSpec(**CELL, sampling=sampling, measure=_measure(groups)))
    for group, index in groups.items():
        mask = np.zeros(len(LATTICE), dtype=bool)
        mask[list(index)] = True
        for name in GROUP_OUTPUTS[group]:
            a, b = np.asarray(full[sampling][name]), np.asarray(part[name])
            assert np.array_equal(a[mask], b[mask], equal_nan=True), name
            assert np.isnan(b[~mask]).all(), name
    # what is not per time (the nearest-neighbour distance of the test points) is unchanged
    assert part["d_nn"] == full[sampling]["d_nn"]


def test_measure_is_validated_and_enters_the_identity():
    with pytest.raises(ParameterError, match="measure"):
        CellSpec(**CELL, measure=(("collapse", (0,)),))
    with pytest.raises(ParameterError, match=r"\[0, 40\]"):
        CellSpec(**CELL, measure=_measure({"collapse": (41,)}))
    fixed = CellSpec(**CELL)
    placed = fixed.replace(placement=tuple(SETTINGS.items()))
    assert cell_key(fixed) != cell_key(placed)
    # the opt-in tile skipping too: its cells are other cells, a default cell keeps its key
    assert cell_key(fixed) != cell_key(fixed.replace(skip_tiles=True))
    assert "placement" not in placement.check_placement(None)  # () for a fixed grid
    with pytest.raises(ParameterError, match="placement needs its times|a placed cell"):
        run_cell(placed)


def test_a_fixed_grid_keeps_its_identity_and_hash():
    """A config without placement has the science config and cell keys it had before placements existed."""
    config = validate_config({"sweep": "x", "grid": {"N": [16], "alpha": [0.3]}, "t": [0.1, 0.5]})
    grid = Grid(config)
    assert grid.cells[0].placement == () and grid.cells[0].measure == ()
    from diffmem.pipeline.grid import cell_identity, science_config

    assert "placement" not in cell_identity(grid.cells[0]) and "measure" not in cell_identity(grid.cells[0])
    assert "placement" not in science_config(config)
    with_placement = validate_config({**config, "placement": SETTINGS})
    assert science_config(with_placement)["placement"] == SETTINGS
    assert Grid(with_placement).cell_key(0) != grid.cell_key(0)


def test_cell_measure_places_windows_around_the_predictions():
    t = np.asarray(LATTICE)
    predicted = {"t_c": 0.3, "t_o": 0.6, "t_g": 0.05}
    measure = dict(placement.cell_measure(t, predicted, **SETTINGS))
    background = set(placement.background_indices(t.size, SETTINGS["background"]))
    assert {0, t.size - 1} <= background and len(background) == SETTINGS["background"]
    for group, name in placement.WINDOWS.items():
        window = sorted(set(measure[group]) - background)
        assert len(window) >= 3, group
        lo, hi = predicted[name] / SETTINGS["width"], predicted[name] * SETTINGS["width"]
        # every window time is the lattice point nearest a target inside [t*/w, t* w]: within one lattice step
        step = t[1] / t[0]
        assert t[window[0]] >= lo / step and t[window[-1]] <= hi * step, group
        assert background <= set(measure[group])
    assert all(t[i] <= predicted["t_o"] * SETTINGS["width"] for i in measure["basin"])
    # no prediction: the background alone, and an unknown onset leaves the basin on every background time
    blind = dict(placement.cell_measure(t, dict.fromkeys(predicted, np.nan), **SETTINGS))
    assert all(set(v) == background for v in blind.values())


def test_placement_settings_are_checked():
    for bad, key in (({"background": 1, "points": 5, "width": 1.3}, "placement.background"),
                     ({"background": 6, "points": 1, "width": 1.3}, "placement.points"),
                     ({"background": 6, "points": 5, "width": 1.0}, "placement.width"),
                     ({"background": 6, "points": 5}, "placement")):  # fmt: skip
        with pytest.raises(ParameterError, match=key):
            placement.check_placement(bad)


def test_refinement_recentres_a_window_the_theory_put_in_the_wrong_place(full):
    """Windows placed a factor 3 off the transitions: the second pass measures around what the first read,
    and the merged cell has the full lattice's bits at every time it measured."""
    t = np.asarray(LATTICE)
    true = {name: value for name, (value, _) in placement.read_transitions(full["shared"]).items()}
    assert all(np.isfinite(list(true.values())))
    wrong = {name: value * 3.0 if value * 3.0 < t[-1] else value / 3.0 for name, value in true.items()}
    spec = CellSpec(**CELL, placement=tuple(SETTINGS.items()))
    spec = spec.replace(measure=placement.cell_measure(t, wrong, **SETTINGS))
    first = run_cell(spec)
    again = placement.refinement(spec, first)
    assert again is not None
    added = dict(again.measure)
    for group, name in placement.WINDOWS.items():
        new = sorted(added[group])
        assert new and t[new[0]] < true[name] < t[new[-1]], group
    merged = placement.merge(first, run_cell(again))
    for group in MEASURE_GROUPS:
        for name in GROUP_OUTPUTS[group]:
            a, b = np.asarray(full["shared"][name]), np.asarray(merged[name])
            seen = ~np.isnan(b)
            assert np.array_equal(a[seen], b[seen]), name
    # the merged cell now reads every transition on the window's fine spacing, not the background's
    for name, (value, resolution) in placement.read_transitions(merged).items():
        kind = placement.READ_FROM[name][1]
        coarse = grid_resolution(t[sorted(placement.background_indices(t.size, SETTINGS["background"]))], value, kind)
        assert resolution < coarse / 2, name
    # and a second refinement has nothing left to do
    assert placement.refinement(merged_spec(spec, again), merged) is None


def merged_spec(first, second):
    """The spec whose measure is the union of two passes' (what the merged result measured)."""
    a, b = dict(first.measure), dict(second.measure)
    return first.replace(measure=tuple((g, tuple(sorted(set(a[g]) | set(b[g])))) for g in MEASURE_GROUPS))


def test_run_placed_leaves_a_fixed_grid_alone(full):
    result = placement.run_placed(CellSpec(**CELL))
    for name in ("phi", "trap", "loss", "basin_static"):
        assert np.array_equal(np.asarray(result[name]), np.asarray(full["shared"][name]), equal_nan=True)
