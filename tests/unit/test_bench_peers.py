"""``diffmem bench --peers``: the fused pass against torch programs on the same cell, and the same log Z."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

from diffmem.bench.cells import QUICK_CELL
from diffmem.cli import main


def test_quick_cell_json_three_contenders_agree(capsys):
    pytest.importorskip("torch")
    from diffmem.bench.peers import CONTENDERS, TOLERANCE, format_peer_report

    assert main(["bench", "--peers", "--quick", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert "[bench --peers]" in err  # progress on stderr, stdout is the JSON alone
    assert set(result["wall_s"]) == set(CONTENDERS) and all(v > 0 for v in result["wall_s"].values())
    for name in ("torch-per-time", "torch-shared"):
        assert result["ratio"][name] == pytest.approx(result["wall_s"][name] / result["wall_s"]["diffmem"])
        assert 0 <= result["max_rel_log_z_diff"][name] <= TOLERANCE
    assert result["agree"] is True and result["all_finite"] is True and result["tolerance"] == 1e-10
    assert result["P"] == 1339 and result["n_t"] == QUICK_CELL.t_num
    assert result["queries"] == result["n_t"] * (3 * 32 + 14 * 8 + 2 * 32)
    assert result["element_times"] == result["queries"] * result["P"]
    # one thread count for every contender, recorded as it was during the timings
    assert result["torch_threads"] == result["numba_threads"] >= 1
    assert result["torch_version"].startswith("2.")
    assert set(result) >= {"load_before", "load_after", "config", "ns_per_element_time", "max_abs_log_z_diff"}
    text = format_peer_report(result)
    assert all(name in text for name in CONTENDERS) and "agree" in text


def test_every_contender_computes_the_natural_log_partition_function():
    # an independent reference: the planted queries x_t = e^-t a^mu0 + sqrt(Delta_t) xi built from the
    # draws themselves (not from the table), their logits (c1 x.a - c2 |a|^2 / 2) / Delta and scipy's logsumexp
    torch = pytest.importorskip("torch")
    from diffmem.bench.peers import peer_problem, torch_per_time, torch_shared
    from diffmem.engine.kernels import stream_shared

    problem = peer_problem(QUICK_CELL)
    draws, table, times, A, sq = (problem[k] for k in ("draws", "table", "times", "A", "sq"))
    first, count = table.blocks["planted"]
    expected = np.empty((count, times.size))
    for i, t in enumerate(times):
        c1, c2, delta = np.exp(-t), np.exp(-2 * t), -np.expm1(-2 * t)
        x = c1 * draws.a_planted + np.sqrt(delta) * draws.xi
        expected[:, i] = logsumexp((c1 * x @ A.T - c2 * sq / 2) / delta, axis=1)
    At, sqt = torch.from_numpy(A), torch.from_numpy(sq)
    # chunks and batches that do not divide P or Q: the running log-sum-exp over ragged pieces
    got = {
        "diffmem": stream_shared(problem["ctx"], draws.V, table)["log_z"],
        "torch-per-time": torch_per_time(draws.V, table, At, sqt, chunk_size=300),
        "torch-shared": torch_shared(draws.V, table, At, sqt, chunk_size=300, batch_rows=7),
    }
    lo, hi = first * table.n_t, (first + count) * table.n_t
    for name, log_z in got.items():
        assert log_z.shape == (table.size,)
        planted = log_z[lo:hi].reshape(count, table.n_t)
        np.testing.assert_allclose(planted, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    # and every block (trap, basins, test, KDE) agrees with the fused pass
    for name in ("torch-per-time", "torch-shared"):
        gap = np.abs(got[name] - got["diffmem"]) / np.maximum(1.0, np.abs(got["diffmem"]))
        assert gap.max() <= 1e-10, name


def test_without_torch_the_error_names_peers_and_the_install_command():
    # torch made unimportable in a child process: the condition of an environment without the package
    code = (
        "import sys; sys.modules['torch'] = None; from diffmem.cli import main; "
        "sys.exit(main(['bench', '--peers', '--quick', '--json']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("diffmem bench: error: --peers: needs torch")
    assert "pip install 'torch==2.13.0+cpu'" in line


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--peers", "--quick", "--cell-times", "1"], "--cell-times"),
        (["--peers", "--quick", "--cell-alpha", "0"], "--cell-alpha"),
        (["--peers", "--quick", "--repeats", "0"], "--repeats"),
        (["--peers", "--cells", "--quick"], "--peers"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, named):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert f"error: {named}:" in err and len(err.strip().splitlines()) == 1
