"""``diffmem bench --cells``: both sampling schemes of one cell, side by side, in one run."""

import json

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
    assert set(variants) == {"shared-mixed-f32", "shared-float32"}
    assert 0 < variants["shared-mixed-f32"]["max_abs_phi_gap"] < 4e-7
    assert 0 < variants["shared-float32"]["max_abs_phi_gap"] < 1e-4


def test_text_report_and_bad_arguments(capsys):
    print(format_cell_report(run_cell_benchmark(QUICK_CELL, progress=None)))
    assert "speed-up" in capsys.readouterr().out
    assert main(["bench", "--cells", "--quick", "--cell-times", "1"]) == 2
    assert "--cell-times" in capsys.readouterr().err
