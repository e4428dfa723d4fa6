"""The benchmark command runs on a tiny size and reports every figure (no timing assertions)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from diffmem.engine import bench
from diffmem.engine.backend import resolve
from diffmem.cli import main
from diffmem.engine.kernels import stream_logits

TOP_KEYS = {
    "ratio_vs_matmul", "speedup_vs_naive", "peak_rss_mb", "peak_rss_P", "scaling_P", "scaling_M", "by_N",
    "reverse", "machine", "config", "gemm_passes", "wall_s",
}
SHAPE_KEYS = {"N", "M", "P", "kernel_s", "kernel_gflops", "matmul_gflops", "ratio_vs_matmul", "speedup_vs_naive"}
P_KEYS = {"N", "M", "P", "mode", "kernel_s", "kernel_gflops", "peak_rss_mb"}
MACHINE_KEYS = {"cpu_count", "blas", "numpy", "backend", "dtype", "load_average"}


@pytest.fixture(scope="module")
def quick_json():
    proc = subprocess.run(
        [sys.executable, "-m", "diffmem", "bench", "--quick", "--json", "--backend", "numpy"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_quick_json_has_every_key(quick_json):
    result, _ = quick_json
    assert TOP_KEYS <= set(result)
    assert MACHINE_KEYS <= set(result["machine"])
    assert len(result["by_N"]) == len(bench.QUICK.N_values)
    assert len(result["scaling_M"]) == len(bench.QUICK.M_values)
    assert [r["P"] for r in result["scaling_P"]] == list(bench.QUICK.P_values)
    for row in result["by_N"] + result["scaling_M"]:
        assert SHAPE_KEYS <= set(row)
    for row in result["scaling_P"]:
        assert P_KEYS <= set(row)
        assert row["peak_rss_mb"] > 0
    assert {"step_s", "kernel_call_s", "step_over_kernel_call"} <= set(result["reverse"])


def test_quick_figures_are_consistent(quick_json):
    """Headline figures are the worst by_N rows, rates are positive, the kernel agrees with naive."""
    result, stderr = quick_json
    assert result["ratio_vs_matmul"] == min(r["ratio_vs_matmul"] for r in result["by_N"])
    assert result["speedup_vs_naive"] == min(r["speedup_vs_naive"] for r in result["by_N"])
    assert result["peak_rss_mb"] == result["scaling_P"][-1]["peak_rss_mb"]
    for row in result["by_N"]:
        assert row["kernel_gflops"] > 0 and row["matmul_gflops"] > 0
        # float64 kernel vs the dense scipy computation: rounding only (logits O(N / Delta_t) ~ 10^2)
        assert row["max_rel_error_vs_naive"] < 1e-10
    assert "[bench]" in stderr  # progress goes to stderr, stdout holds only the JSON


def test_text_report_runs(capsys):
    assert main(["bench", "--quick", "--backend", "numpy", "--P", "600", "--N", "8", "--M", "4"]) == 0
    out = capsys.readouterr().out
    assert "ratio vs matmul" in out and "scaling P" in out


@pytest.mark.parametrize(
    "argv, name",
    [(["--P", "1"], "--P"), (["--N", "0"], "--N"), (["--t", "0"], "--t"), (["--repeats", "0"], "--repeats")],
)
def test_bad_sizes_exit_2_with_one_line(argv, name, capsys):
    assert main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]


@pytest.mark.parametrize("t", [0.05, 1.0])
def test_naive_baseline_matches_kernel(t):
    """The baseline computes the same figures as the kernel (independent dense code path)."""
    rng = np.random.default_rng(3)
    N, M, P = 12, 9, 700
    A = rng.standard_normal((P, N))
    index = rng.integers(0, P, M)
    c1, c2, delta = math.exp(-t), math.exp(-2 * t), -math.expm1(-2 * t)
    X = A[index] * c1 + math.sqrt(delta) * rng.standard_normal((M, N))
    naive = bench.naive_scores(X, A, c1=c1, c2=c2, delta=delta, index=index)
    chunks = [(s, A[s:s + 256], np.einsum("ij,ij->i", A[s:s + 256], A[s:s + 256])) for s in range(0, P, 256)]
    res = stream_logits(X, chunks, c1=c1, c2=c2, delta=delta, index=index, want_mean=True)
    # rounding of logits of size N / Delta_t (< 10^3 here) in float64
    np.testing.assert_allclose(res.log_z, naive["log_z"], rtol=1e-12)
    np.testing.assert_array_equal(res.argmax, naive["argmax"])
    np.testing.assert_allclose(res.sum_w2, naive["sum_w2"], rtol=1e-9)
    np.testing.assert_allclose(res.w_index, naive["w_index"], rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(res.mean, naive["mean"], rtol=1e-9, atol=1e-12)


def test_time_best_interleaves_and_keeps_minimum():
    calls = []
    best = bench.time_best([lambda: calls.append("a"), lambda: calls.append("b")], repeats=3)
    assert calls == ["a", "b"] * 3
    assert len(best) == 2 and all(b >= 0 for b in best)


@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_reference_runs_every_chunk(threads):
    """The reference visits every chunk exactly once whatever the thread split."""
    seen = []

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    chunks = []
    for s in range(0, 10, 3):
        A = rng.standard_normal((min(3, 10 - s), 3))
        chunks.append((s, A, None))

    def counted():
        for item in chunks:
            seen.append(item[0])
            yield item

    bench.matmul_reference(X, counted(), threads=threads)
    assert sorted(seen) == [0, 3, 6, 9]


def test_machine_info_names_blas():
    info = bench.machine_info(resolve("numpy"))
    assert info["cpu_count"] >= 1 and info["numpy"] == np.__version__
    assert info["blas"]  # a list of BLAS libraries, or why it is unknown


def test_child_peak_rss_is_its_own():
    """A child's peak is not the parent's: ru_maxrss would inherit the parent's high-water mark."""
    ballast = np.ones(300 * 1024**2 // 8)  # 300 MiB touched in this process
    row = bench.measure_P_in_child(resolve("numpy"), N=4, M=2, P=100, t=0.5, chunk_size=64)
    assert row["peak_rss_mb"] < bench.peak_rss_mb() - 200, (row["peak_rss_mb"], bench.peak_rss_mb())
    assert row["mode"] == "cached" and ballast[-1] == 1.0


def test_markdown_tables_from_quick_result(quick_json):
    result, _ = quick_json
    text = bench.format_markdown(result)
    assert text.count("|---|") >= 3  # by_N, scaling_M, scaling_P tables
    assert f"| {bench.QUICK.P_values[-1]:.0e} |" in text
