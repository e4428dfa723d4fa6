#!/usr/bin/env bash
# The benchmark of docs/benchmarks.md in one command, for a QUIET machine (nothing else running):
#
#     bash scripts/bench-final.sh [OUTDIR]      # default OUTDIR: benchmarks/final (git-ignored)
#
# 1. float64: kernel against today's matmul reference and the best GEMM the machine reaches on the same
#    shapes, float32 against float64 on the same data, scaling in M and in P up to 10^8 (the 10^8 row is
#    streamed from the seed: several minutes), the reverse step;
# 2. float32: kernel against the best float32 GEMM.
# Writes bench-float64.json, bench-float32.json and their Markdown tables (tables.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/final}
mkdir -p "$OUT"
DIFFMEM=${DIFFMEM:-.venv/bin/diffmem}
PY=${PY:-.venv/bin/python}
$DIFFMEM bench --json --repeats 9 --p-max 1e8 > "$OUT/bench-float64.json"
$DIFFMEM bench --json --repeats 9 --dtype float32 --M 256 --P 1000 --no-float32 > "$OUT/bench-float32.json"
$PY - "$OUT" <<'PYEOF'
import json, sys
from diffmem.bench.kernels import format_markdown
out = sys.argv[1]
with open(f"{out}/tables.md", "w") as fh:
    for dtype in ("float64", "float32"):
        fh.write(f"## {dtype}\n\n" + format_markdown(json.load(open(f"{out}/bench-{dtype}.json"))) + "\n\n")
print(open(f"{out}/tables.md").read())
PYEOF
