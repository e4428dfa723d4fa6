"""Exact tile skipping on and off in the fused time-shared pass, on one paper-like cell (docs/benchmarks.md).

    .venv/bin/python scripts/bench_skip.py [N] [repeats]      # N = 96, 3 repeats by default

Interleaved repetitions, best of each; prints JSON: the two wall times, their ratio, whether log Z is
bitwise unchanged, and the fraction of tiles skipped at every sixth of the 48 times.
"""

import json
import sys
import time

import numpy as np

from diffmem.engine import timeshare
from diffmem.engine.backend import resolve
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.kernels.shared_cpu import stream_shared_cpu
from diffmem.engine.observables import Context, test_points
from diffmem.spec import DEFAULT_RHO

N = int(sys.argv[1]) if len(sys.argv) > 1 else 96
alpha = 0.1
P = int(np.floor(np.exp(alpha * N) + 0.5))
spec = DataSpec("hmm", N, N // 2, P, 0, "linear")
be = resolve("numpy")
ctx = Context(spec, be, TrainingSet(spec, chunk_size=8192, device_put=be.put))
times = np.geomspace(0.002, 3.0, 48)
b = test_points(spec, 512, 0)
draws = timeshare.shared_draws(ctx, b, samples=256, seed=0, basin_samples=32)
table = timeshare.query_table(draws, times, list(DEFAULT_RHO))
res = {}
for skip in (True, False):  # warm-up (compile)
    stream_shared_cpu(ctx, draws.V, table, skip=skip)
walls = {True: [], False: []}
for _rep in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    for skip in (True, False):
        t0 = time.perf_counter()
        r = stream_shared_cpu(ctx, draws.V, table, skip=skip)
        walls[skip].append(time.perf_counter() - t0)
        res[skip] = r
Q = table.size
tiles = -(-P // 16)
frac = res[True]["skipped"].reshape(-1, table.n_t).sum(0) / (Q / table.n_t * tiles)
print(
    json.dumps(
        {
            "N": N,
            "P": P,
            "Q": Q,
            "skip_on_s": min(walls[True]),
            "skip_off_s": min(walls[False]),
            "ratio": min(walls[True]) / min(walls[False]),
            "max_log_z_diff": float(np.max(np.abs(res[True]["log_z"] - res[False]["log_z"]))),
            "bitwise_equal_log_z": bool(np.array_equal(res[True]["log_z"], res[False]["log_z"])),
            "skipped_fraction_by_t": [round(float(x), 3) for x in frac[::6]],
        },
        indent=1,
    )
)
