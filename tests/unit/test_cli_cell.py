"""``diffmem cell``: JSON and table output, and every input error as one line with exit status 2."""

import json
import math
import subprocess
import sys

import pytest

from diffmem.cli import main
from diffmem.engine import variables
from diffmem.engine.backend import cupy_available

BASE = [
    "cell",
    "--family",
    "hmm",
    "--N",
    "8",
    "--P",
    "40",
    "--t",
    "0.2",
    "0.9",
    "--samples",
    "8",
    "--basin-samples",
    "4",
    "--rho",
    "0.5",
    "2",
]


def run_main(argv, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse-level errors exit from inside parse_args
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_output_has_params_times_and_every_variable(capsys):
    status, out, err = run_main(BASE + ["--json", "--alpha-D", "0.5"], capsys)
    assert status == 0, err
    data = json.loads(out)  # strict JSON: NaN must have become null
    assert data["t"] == [0.2, 0.9]
    prm = data["params"]
    assert (prm["N"], prm["P"], prm["D"]) == (8, 40, 4)
    assert prm["alpha"] == pytest.approx(math.log(40) / 8)
    for name in variables.VARIABLES:
        assert name in data
    assert len(data["phi"]) == 2 and data["phi_dyn"] == [None, None]  # not measured in marginal mode
    assert "NaN" not in out


def test_alpha_sets_p_by_rounding(capsys):
    status, out, _ = run_main(
        [
            "cell",
            "--family",
            "isotropic",
            "--N",
            "10",
            "--alpha",
            "0.3",
            "--t",
            "0.5",
            "--samples",
            "4",
            "--basin-samples",
            "2",
            "--json",
        ],
        capsys,
    )
    assert status == 0
    assert json.loads(out)["params"]["P"] == math.floor(math.exp(3.0) + 0.5)


def test_table_output(capsys):
    status, out, _ = run_main(BASE + ["--mode", "sde", "--steps", "5"], capsys)
    assert status == 0
    assert "phi_dyn" in out and "N=8" in out and "mode=sde" in out
    assert len([line for line in out.splitlines() if not line.startswith("#")]) == 3  # header + two times


def test_same_seed_same_json(capsys):
    first = json.loads(run_main(BASE + ["--json", "--seed", "7"], capsys)[1])
    second = json.loads(run_main(BASE + ["--json", "--seed", "7"], capsys)[1])
    first.pop("wall_time"), second.pop("wall_time")
    assert first == second


ERRORS = [
    (["--N", "0"], "N", "[1, inf"),
    (["--N", "abc"], "--N", "invalid int"),
    (["--P", "1"], "P", "[2,"),
    (["--alpha", "0"], "alpha", "(0, inf"),
    (["--alpha", "0.01"], "alpha", ">= 2"),  # exp(0.01 * 8) rounds to P = 1
    (["--alpha-D", "1.5"], "alpha_D", "(0, 1]"),
    (["--alpha-D", "0"], "alpha_D", "(0, 1]"),
    (["--alpha-D", "0.05"], "alpha_D", "D = floor(alpha_D N + 1/2) must be >= 1"),  # 0.05 * 8 -> 0
    (["--t", "0"], "t", "(0, inf"),
    (["--t", "0.5", "-1"], "t", "(0, inf"),
    (["--nonlinearity", "cubic"], "nonlinearity", "linear, tanh, relu, sign, erf"),
    (["--family", "spiral"], "--family", "invalid choice"),
    (["--samples", "0"], "samples", "[1, inf"),
    (["--mode", "langevin"], "--mode", "invalid choice"),
    (["--dtype", "float16"], "--dtype", "invalid choice"),
    (["--sigma", "0"], "sigma", "(0, inf"),
    (["--rho", "2", "1"], "rho", "increasing"),
]


def argv_with(changes):
    """BASE with the flags in ``changes`` replaced (flag followed by its values)."""
    argv = list(BASE)
    flags = [k for k, c in enumerate(changes) if c.startswith("--")]
    for j, k in enumerate(flags):
        flag, values = changes[k], changes[k + 1 : flags[j + 1] if j + 1 < len(flags) else len(changes)]
        if flag == "--alpha":  # exclusive with --P
            pos = argv.index("--P")
            del argv[pos : pos + 2]
        if flag in argv:
            pos = argv.index(flag) + 1
            end = pos
            while end < len(argv) and not argv[end].startswith("--"):
                end += 1
            argv[pos:end] = values
        else:
            argv += [flag, *values]
    return argv


@pytest.mark.parametrize("changes, name, fragment", ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_errors_are_one_line_naming_the_parameter(changes, name, fragment, capsys):
    status, out, err = run_main(argv_with(changes), capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("diffmem cell: error:")
    assert name in lines[0] and fragment in lines[0], lines[0]
    assert "Traceback" not in err and out == ""


def test_missing_required_flag_is_one_line(capsys):
    status, _, err = run_main(["cell", "--family", "hmm", "--N", "8", "--P", "40"], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and "--t" in err


def test_p_and_alpha_are_exclusive(capsys):
    status, _, err = run_main(BASE + ["--alpha", "0.3"], capsys)
    assert status == 2 and "--alpha" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(cupy_available(), reason="a CUDA GPU is present: cupy is a valid request here")
def test_cupy_without_gpu_is_a_clear_error(capsys):
    status, _, err = run_main(BASE + ["--backend", "cupy"], capsys)
    assert status == 2
    assert err.strip() == "diffmem cell: error: backend: cupy requested but no CUDA GPU/cupy available; use numpy"


def test_python_dash_m_and_console_script_agree():
    """``python -m diffmem cell`` and the ``diffmem`` entry point: same JSON, same error handling."""
    args = BASE[1:] + ["--json"]
    by_module = subprocess.run([sys.executable, "-m", "diffmem", "cell", *args], capture_output=True, text=True)
    assert by_module.returncode == 0, by_module.stderr
    script = subprocess.run(
        [sys.executable, "-c", "import sys; from diffmem.cli import main; sys.exit(main())", "cell", *args],
        capture_output=True,
        text=True,
    )
    a, b = json.loads(by_module.stdout), json.loads(script.stdout)
    a.pop("wall_time"), b.pop("wall_time")
    assert a == b
    bad = subprocess.run(
        [sys.executable, "-m", "diffmem", "cell", *argv_with(["--N", "0"])[1:]], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
