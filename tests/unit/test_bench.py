"""The benchmark command runs on a tiny size and reports every figure (no timing assertions)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from diffmem.bench import kernels as bench
from diffmem.cli import main
from diffmem.engine.backend import resolve
from diffmem.engine.kernels import stream_logits

TOP_KEYS = {
    "ratio_vs_matmul",
    "speedup_vs_naive",
    "peak_rss_mb",
    "peak_rss_P",
    "scaling_P",
    "scaling_M",
    "by_N",
    "reverse",
    "machine",
    "config",
    "gemm_passes",
    "wall_s",
}
SHAPE_KEYS = {"N", "M", "P", "kernel_s", "kernel_gflops", "matmul_gflops", "ratio_vs_matmul", "speedup_vs_naive"}
P_KEYS = {"N", "M", "P", "mode", "kernel_s", "kernel_gflops", "peak_rss_mb"}
MACHINE_KEYS = {"cpu_count", "blas", "numpy", "backend", "dtype", "load_average"}


@pytest.fixture(scope="module")
def quick_json():
    proc = subprocess.run(
        [sys.executable, "-m", "diffmem", "bench", "--quick", "--json", "--backend", "numpy"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
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
    chunks = [(s, A[s : s + 256], np.einsum("ij,ij->i", A[s : s + 256], A[s : s + 256])) for s in range(0, P, 256)]
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


def test_best_gemm_reference_is_reported_beside_todays(quick_json):
    """by_N rows carry the best-GEMM search; its best includes today's reference, so it is never slower."""
    result, _ = quick_json
    assert result["ratio_vs_best_gemm"] == min(r["ratio_vs_best_gemm"] for r in result["by_N"])
    for row in result["by_N"]:
        names = set(row["gemm_variants_gflops"])
        # the child measures with its own BLAS thread count, which the names carry ("2-python-threads ...")
        threads = {int(n.split("-")[0]) for n in names if "-python-threads" in n} or {1}
        assert len(threads) == 1
        assert names == {bench.variant_name(v) for v in bench.gemm_variants(threads.pop())}
        assert row["best_gemm_gflops"] >= row["matmul_gflops"] * (1 - 1e-12)
        assert row["ratio_vs_best_gemm"] <= row["ratio_vs_matmul"] * (1 + 1e-12)
        assert row["best_gemm_variant"] in names | {"matmul reference"}


def test_float32_table_in_quick_run(quick_json):
    result, _ = quick_json
    rows = result["float32_vs_float64"]
    assert [r["N"] for r in rows] == list(bench.QUICK.N_values)
    assert result["float32_speedup"] == min(r["float32_speedup"] for r in rows)
    for row in rows:
        # float32 logits of size N / Delta_t ~ 50 rounded to eps32 sqrt(N): log Z within 1e-5 relative
        assert 0 < row["float32_log_z_max_rel_dev"] < 1e-5


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows, cols", [(None, 7), (3, 4), (64, 1000)])
def test_gemm_pass_matches_the_flop_count_shapes(threads, rows, cols, monkeypatch):
    """Every (query, training point) pair is multiplied exactly once per GEMM, whatever the blocking."""
    rng = np.random.default_rng(1)
    X, A = rng.standard_normal((5, 3)), rng.standard_normal((23, 3))
    seen = np.zeros((5, 23), int)
    real_matmul = np.matmul

    def offset(view, base):  # first row of a row-block view of base
        return (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // base.strides[0]

    def counting_matmul(a, b, out=None):
        if a.shape[1] == 3:  # the logits GEMM X_rows @ A_cols^T (b is A_cols^T)
            i, j = offset(a, X), offset(b.T, A)
            seen[i : i + a.shape[0], j : j + b.shape[1]] += 1
        return real_matmul(a, b, out=out)

    monkeypatch.setattr(np, "matmul", counting_matmul)
    bench.gemm_pass(X, A, threads=threads, rows=rows, cols=cols)
    assert (seen == 1).all()


def test_streamed_child_reports_regeneration_share():
    """A set over the cache budget is regenerated on the pass; the generator's time is part of it."""
    row = bench.measure_P_in_child(resolve("numpy"), N=8, M=4, P=3000, t=0.5, chunk_size=512, memory_budget=0)
    assert row["mode"] == "streamed"
    assert 0 < row["regeneration_s"] <= row["kernel_s"] and 0 < row["regeneration_share"] <= 1


def test_p_max_extends_the_decades():
    import argparse

    from diffmem.cli.bench import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(), "bench")
    config = config_from_args(parser.parse_args(["bench", "--p-max", "1e8"]))
    assert config.P_values == (10**3, 10**4, 10**5, 10**6, 10**7, 10**8)
    assert config_from_args(parser.parse_args(["bench", "--p-max", "1e8", "--P", "500"])).P_values == (500,)
    assert config_from_args(parser.parse_args(["bench", "--no-float32"])).compare_float32 is False


def test_bad_p_max_exits_2(capsys):
    assert main(["bench", "--quick", "--p-max", "10"]) == 2
    assert "--p-max" in capsys.readouterr().err


def test_gemm_pass_runs_on_a_strict_namespace():
    """The device branch (any array-API namespace, e.g. cupy) of the best-GEMM search."""
    be = resolve("array_api_strict")
    rng = np.random.default_rng(2)
    X, A = be.put(rng.standard_normal((5, 3))), be.put(rng.standard_normal((23, 3)))
    for threads, rows, cols in bench.gemm_variants(2):
        bench.gemm_pass(X, A, threads=threads, rows=rows, cols=cols)
