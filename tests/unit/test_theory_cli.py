"""``diffmem theory`` command line."""

import json
import subprocess
import sys

import pytest

from diffmem.cli import main


def run(argv, capsys):
    code = main(["theory", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_output_with_times(capsys):
    code, out, _ = run(["--family", "hmm", "--alpha", "0.1", "--alpha-D", "0.5", "--t", "0.2", "0.5", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert {"t_c", "t_o", "t_g", "t_s", "params", "t", "f", "rho_b", "loss"} <= set(data)
    assert data["t_c"] == pytest.approx(0.7776, abs=1e-3)  # docs/theory.md#reference-tables
    assert len(data["f"]) == len(data["rho_b"]) == len(data["loss"]) == 2


def test_json_for_nonlinear_is_rs_with_ge_beside(capsys):
    code, out, _ = run(["--family", "hmm", "--nonlinearity", "sign", "--alpha", "0.1", "--t", "0.5", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["t_c"] > 0 and len(data["f"]) == 1
    # RS distance theory is the main value (docs/theory.md#rs-distance) ...
    assert data["params"]["approximation"] is None
    assert data["t_o"] == pytest.approx(1.1634, abs=1.5e-4) and data["t_g"] == pytest.approx(0.3431, abs=1.5e-4)
    assert len(data["rho_b"]) == len(data["loss"]) == 1 and data["voronoi_radius"] > 0
    assert 0 <= data["replicon_t_o"] < 1 and 0 <= data["replicon_t_g"] < 1
    # ... and the Gaussian-equivalent approximation sits beside it, labelled
    ge = data["gaussian_equivalent"]
    assert ge["approximation"] == "gaussian-equivalent" and "docs/theory.md#ge-error" in ge["approximation_note"]
    assert ge["t_o"] == pytest.approx(1.1512, abs=1.5e-4) and ge["t_g"] == pytest.approx(0.3425, abs=1.5e-4)


@pytest.mark.parametrize("name", ["relu", "sign", "tanh", "erf"])
def test_text_for_nonlinear_prints_rs_with_ge_labelled(name, capsys):
    code, out, _ = run(
        ["--family", "hmm", "--nonlinearity", name, "--normalize", "--alpha", "0.1", "--alpha-D", "0.5"], capsys
    )
    assert code == 0 and "replica-symmetric distance theory" in out
    for label in ("onset time t_o", "generalization time t_g", "basin radius r*"):
        line = next(line for line in out.splitlines() if label in line)
        rs_value, ge_part = line.split(":", 1)[1].split("GE approx.:")
        assert float(rs_value) > 0 and float(ge_part.split()[0]) > 0
    assert "RS replicon at t_o" in out and "RS replicon at t_g" in out


def test_quenched_and_readable_summary(capsys):
    code, out, _ = run(
        ["--family", "hmm", "--N", "40", "--P", "500", "--alpha-D", "0.5", "--seed", "3", "--t", "0.4"], capsys
    )
    assert code == 0
    assert "quenched" in out and "collapse time t_c" in out and "N=40 D=20 P=500" in out


def test_mixture_and_isotropic(capsys):
    code, out, _ = run(
        ["--family", "gaussian-mixture", "--N", "100", "--P", "5000", "--m-tilde", "0.5", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["t_s"] is not None
    code, out, _ = run(["--family", "isotropic", "--alpha", "0.3", "--json"], capsys)
    assert json.loads(out)["t_g"] == pytest.approx(0.2394, abs=1e-3)
    assert json.loads(out)["t_s"] is None  # docs/theory.md#speciation-time: no spike, no t_S


def test_no_speciation_time_without_a_spike(capsys):
    code, out, _ = run(["--family", "hmm", "--alpha", "0.1", "--alpha-D", "0.25", "--json"], capsys)
    assert code == 0 and json.loads(out)["t_s"] is None
    code, out, _ = run(["--family", "isotropic", "--N", "64", "--P", "1000"], capsys)
    assert code == 0 and "speciation time t_S: undefined" in out


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--family", "hmm", "--alpha", "0"], "alpha"),
        (["--family", "hmm", "--alpha", "0.1", "--alpha-D", "2"], "alpha_D"),
        (["--family", "hmm", "--P", "100"], "P"),
        (["--family", "hmm", "--alpha", "0.1", "--nonlinearity", "cube"], "nonlinearity"),
        (["--family", "hmm", "--alpha", "0.1", "--t", "-1"], "t"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, word, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffmem theory: error:") and word in lines[0]


def test_usage_errors_are_one_line():
    # argparse errors (missing --alpha/--P) exit 2 with one line, through the real entry point.
    proc = subprocess.run(
        [sys.executable, "-m", "diffmem", "theory", "--family", "hmm"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--alpha" in proc.stderr
