"""Time the time-shared pass of one cell against its own GEMMs; one JSON object on stdout.

scripts/gpu-check.sh runs it on cupy for the largest cell of config/paper.yaml (N = 128, alpha = 0.12,
48 times, shared sampling). It runs on any backend (``--backend numpy`` runs the same array-API pass on
the CPU, for a small cell). Needs only the engine (numpy, scipy, array-api-compat; cupy for cupy).

Figures (the pass is timed after one untimed pass that generates the training set and compiles):

- ``pass_s``: the array-API time-shared pass (:func:`diffmem.engine.kernels.shared_device.stream_shared_device`);
- ``gemm_s``: its GEMMs alone, ``V A^T`` over the same column blocks (a floor for the pass);
- ``gemm_share``: gemm_s / pass_s (1 = the pass costs no more than its GEMMs);
- ``shared_path``: the pass :func:`diffmem.engine.cell.run_cell` takes on this backend ("device" on cupy);
- ``ratio_vs_gemm``: the rate of the pass counted in the flops of the per-time kernel's logits GEMMs
  (2 Q N P for Q = queries x times) over the GEMM rate measured here, the ``diffmem bench`` ratio
  for the shared scheme (above 1: faster than the per-time kernel could be at GEMM speed).
"""

import argparse
import json
import sys
import time

import numpy as np

from diffmem.engine.backend import resolve
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.kernels.shared_device import (
    DEVICE_BLOCK_ELEMENTS,
    HOST_BLOCK_ELEMENTS,
    block_shape,
    stream_shared_device,
)
from diffmem.engine.observables import Context, test_points
from diffmem.engine.timeshare import query_table, shared_draws, shared_path
from diffmem.spec import CellSpec


def _sync(be):
    if be.name == "cupy":
        be.xp.cuda.Device().synchronize()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cupy")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--N", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=0.12)
    parser.add_argument("--alpha-D", type=float, default=0.5)
    parser.add_argument("--times", type=int, default=48)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--test-samples", type=int, default=512)
    parser.add_argument("--basin-samples", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args(argv)

    t = np.geomspace(0.002, 3.0, args.times).tolist()
    extra = {} if args.chunk_size is None else {"chunk_size": args.chunk_size}
    spec = CellSpec(
        family="hmm",
        nonlinearity="linear",
        normalize=True,
        N=args.N,
        alpha=args.alpha,
        alpha_D=args.alpha_D,
        t=t,
        samples=args.samples,
        test_samples=args.test_samples,
        basin_samples=args.basin_samples,
        seed=0,
        backend=args.backend,
        dtype=args.dtype,
        sampling="shared",
        **extra,
    )
    be = resolve(spec.backend, spec.dtype)
    data = DataSpec.of(spec)
    ctx = Context(data, be, TrainingSet(data, chunk_size=spec.chunk_size, device_put=be.put))
    b = test_points(data, spec.test_samples, spec.seed)
    draws = shared_draws(ctx, b, samples=spec.samples, seed=spec.seed, basin_samples=spec.basin_samples)
    table = query_table(draws, t, list(spec.rho))

    start = time.perf_counter()
    first = stream_shared_device(ctx, draws.V, table)  # generates (or caches) the training set, compiles
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    res = stream_shared_device(ctx, draws.V, table)
    pass_s = time.perf_counter() - start

    R, N, P = draws.V.shape[0], ctx.N, ctx.P
    n_base = table.size // table.n_t
    elements = DEVICE_BLOCK_ELEMENTS if be.name == "cupy" else HOST_BLOCK_ELEMENTS
    columns, times_per_block = block_shape(R, n_base, table.n_t, spec.chunk_size, elements)
    Vd = be.put(draws.V)
    _sync(be)
    start = time.perf_counter()
    for _, A, _ in ctx.train.chunks():
        for lo in range(0, A.shape[0], columns):
            Vd @ A[lo : lo + columns, :].T
    _sync(be)
    gemm_s = time.perf_counter() - start

    gemm_gflops = 2.0 * R * N * P / gemm_s / 1e9
    per_time_gflops = 2.0 * table.size * N * P / pass_s / 1e9
    summary = {
        "backend": be.name,
        "device": be.device,
        "dtype": be.dtype,
        "shared_path": shared_path(ctx),
        "N": N,
        "P": P,
        "times": table.n_t,
        "queries": table.size,
        "base_queries": n_base,
        "base_vectors": R,
        "chunk_size": spec.chunk_size,
        "columns": columns,
        "times_per_block": times_per_block,
        "first_pass_s": first_s,
        "pass_s": pass_s,
        "gemm_s": gemm_s,
        "gemm_share": gemm_s / pass_s,
        "gemm_gflops": gemm_gflops,
        "per_time_equivalent_gflops": per_time_gflops,
        "ratio_vs_gemm": per_time_gflops / gemm_gflops,
        "repeatable": bool(all(np.array_equal(first[k], res[k]) for k in res)),
        "finite": bool(all(np.all(np.isfinite(res[k])) for k in res)),
    }
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
