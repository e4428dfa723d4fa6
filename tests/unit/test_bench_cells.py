"""``diffmem bench --cells``: both sampling schemes of one cell, side by side, in one run."""

import json

import numpy as np
import pytest

from diffmem.bench.cells import QUICK_CELL, format_cell_report, run_cell_benchmark
from diffmem.cli import main


def test_quick_cell_json_has_both_schemes(capsys):
    assert main(["bench", "--cells", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["wall_s"]) == {"independent", "shared"}
    assert result["speedup"] == pytest.approx(result["wall_s"]["independent"] / result["wall_s"]["shared"])
    assert result["P"] == 1339 and result["config"]["t_num"] == QUICK_CELL.t_num
    assert result["element_times"] == result["queries_per_time"] * result["P"] * QUICK_CELL.t_num
    # same physics in both schemes: phi curves within 5 combined standard errors (8 times)
    assert result["max_phi_gap_in_se"] < 5
    # the shared scheme's numerics side by side: same draws, so phi moves only by their rounding:
    # mixed-f32 by at most 2 x 2e-7 relative per weight; float32 by its G rounding (docs/benchmarks.md)
    variants = result["variants"]
    assert set(variants) == {"shared-mixed-f32", "shared-float32", "shared-skip"}
    # skipped tiles add < 2^-100 each: phi moves by less than one ulp of the sums, if at all
    assert variants["shared-skip"]["max_abs_phi_gap"] <= 1e-15
    assert 0 < variants["shared-mixed-f32"]["max_abs_phi_gap"] < 4e-7
    assert 0 < variants["shared-float32"]["max_abs_phi_gap"] < 1e-4


def test_text_report_and_bad_arguments(capsys):
    print(format_cell_report(run_cell_benchmark(QUICK_CELL, progress=None)))
    assert "speed-up" in capsys.readouterr().out
    assert main(["bench", "--cells", "--quick", "--cell-times", "1"]) == 2
    assert "--cell-times" in capsys.readouterr().err


def test_fixed_and_placed_grids_estimate_the_same_times_and_report_their_precision():
    """Both schemes read t_c, t_o, t_g of the same cell: their seed means agree within their total errors
    (seed scatter and resolution), and the placed grids read them on finer windows."""
    from diffmem.bench.cells import QUICK_CELL, format_grid_report, run_grid_benchmark

    result = run_grid_benchmark(QUICK_CELL, seeds=(0, 1, 2), progress=None)
    schemes = result["schemes"]
    assert set(schemes) == {"fixed", "placed", "placed-lean"}
    for name in ("placed", "placed-lean"):
        for q in ("t_c", "t_o", "t_g"):
            a, b = schemes["fixed"]["times"][q], schemes[name]["times"][q]
            assert abs(a["mean"] - b["mean"]) < 3 * np.hypot(a["se_total"], b["se_total"]), (name, q)
            assert b["resolution"] < a["resolution"], (name, q)
            assert schemes[name]["precision_per_cpu_second_ratio"][q] > 0
        # every seed measured fewer (group, time) pairs than the lattice has times
        assert all(max(seed.values()) < result["lattice_points"] for seed in schemes[name]["group_times"])
    assert "precision per CPU second" in format_grid_report(result)
