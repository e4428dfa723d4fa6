"""The fused fold of the previous release against this one's exponentials, on the same synthetic block.

    git show 0e05173:src/diffmem/engine/fused.py > /tmp/fused_old.py
    .venv/bin/python scripts/bench_fold.py /tmp/fused_old.py

Steady state (each timed fold is a second block of its rows), median of 9 interleaved repetitions on
the process's numba threads, then 5 on one thread; prints JSON (docs/benchmarks.md, "The fused pass").
"""

import importlib
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np

from diffmem.engine.kernels import numba_pass as new

sys.path.insert(0, str(Path(sys.argv[1]).resolve().parent))
fused_old = importlib.import_module(Path(sys.argv[1]).stem)  # the previous release's fused.py

rng = np.random.default_rng(1)
R, n, Q = 64, 4096, 20000
G = rng.standard_normal((R, n)) * 3
sq = rng.random(n) * 2
row_a = rng.integers(0, R, Q).astype(np.int64)
row_b = rng.integers(-1, R, Q).astype(np.int64)
ca = rng.random(Q)
cb = rng.random(Q)
cs = rng.random(Q) * 0.1
index = np.full(Q, -1, np.int64)


def state():
    return np.full(Q, -np.inf), np.zeros(Q), np.zeros(Q), np.full(Q, -np.inf)


# every timed fold is a second block of the row (its shift already set by a first one), as almost
# every block of a cell is: the first block of a row also computes the row's exact maximum
def old():
    shift, s1, s2, li = state()
    fused_old.fold_block(G, sq, 0, row_a, ca, row_b, cb, cs, index, shift, s1, s2, li)
    t = time.perf_counter()
    fused_old.fold_block(G, sq, 0, row_a, ca, row_b, cb, cs, index, shift, s1, s2, li)
    return time.perf_counter() - t, shift + np.log2(s1)


def cur(mixed):
    def run():
        shift, s1, s2, li = state()
        new.fold_block(G, sq, 0, row_a, ca, row_b, cb, cs, index, shift, s1, s2, li, None, np.zeros(Q, np.int64), mixed)
        t = time.perf_counter()
        new.fold_block(G, sq, 0, row_a, ca, row_b, cb, cs, index, shift, s1, s2, li, None, np.zeros(Q, np.int64), mixed)
        return time.perf_counter() - t, shift + np.log2(s1)

    return run


runs = {"previous (reassoc, Taylor-13)": old, "minimax11-fma": cur(False), "mixed-f32": cur(True)}
for f in runs.values():
    f()
times = {k: [] for k in runs}
lz = {}
for _rep in range(9):
    for k, f in runs.items():
        dt, z = f()
        times[k].append(dt)
        lz[k] = z
ref = lz["minimax11-fma"]
out = {
    "shape": {"R": R, "n": n, "Q": Q},
    "numba_threads": numba.get_num_threads(),
    "repeats": 9,
    "ns_per_element_median": {k: float(np.median(v) / (Q * n) * 1e9) for k, v in times.items()},
    "vs_default": {k: float(np.median(v) / np.median(times["minimax11-fma"])) for k, v in times.items()},
    "max_abs_log2z_vs_default": {k: float(np.max(np.abs(v - ref))) for k, v in lz.items()},
}
print(json.dumps(out, indent=1))
numba.set_num_threads(1)
for f in runs.values():
    f()
t1 = {k: [] for k in runs}
for _rep in range(5):
    for k, f in runs.items():
        dt, z = f()
        t1[k].append(dt)
print("one thread ns/elem", {k: round(float(np.median(v) / (Q * n) * 1e9), 3) for k, v in t1.items()})
