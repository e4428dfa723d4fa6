#!/usr/bin/env bash
# The whole paper grid (config/paper.yaml: 900 cells, placed grids) on this machine, cheapest cells first,
# resumable, its stores outside the checkout (a new checkout does not carry results/):
#
#   bash scripts/paper-full.sh /work/paper-store [workers]      # then rerun the same line to resume
#
# A cell's identity does not depend on the sweep it is computed in, so the grid runs in three parts
# whose done cells the full sweep imports bit for bit (`reuse:`): part 1, N = 48-96 (720 cells, minutes);
# part 2, N = 128 at alpha = 0.08, 0.10 (120 cells); then the full sweep computes what is left, the 60
# cells with N = 128 and alpha = 0.12 (P = 4.7e6). Stopped at any point (even SIGKILL), the same command
# resumes where it stopped. At the end: the analysis copy, and the committed results in docs/paper/
# (summary.csv, provenance, figures, the generated tables of docs/paper.md) from whatever is done.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/paper-full.sh STORE_DIR [workers]}
workers=${2:-2}
BIN=.venv/bin
mkdir -p "$out"
case "$(realpath "$out")" in "$(realpath .)"/*) echo "paper-full: keep $out outside the checkout" >&2; exit 2 ;; esac

# The three configs: config/paper.yaml with a part of its grid (same identity for every cell).
$BIN/python - "$out" <<'EOF'
import sys, yaml
out = sys.argv[1]
config = yaml.safe_load(open("config/paper.yaml"))
parts = {
    "part1": {"N": [48, 64, 80, 96]},
    "part2": {"N": [128], "alpha": [0.08, 0.10]},
}
for name, grid in parts.items():
    part = dict(config, sweep=f"paper-{name}", grid={**config["grid"], **grid})
    yaml.safe_dump(part, open(f"{out}/{name}.yaml", "w"), sort_keys=False)
full = dict(config, reuse=[f"{out}/{name}/sweep.zarr" for name in parts])
yaml.safe_dump(full, open(f"{out}/paper.yaml", "w"), sort_keys=False)
EOF

for name in part1 part2 paper; do
    echo "paper-full: $name ($(date -u +%H:%M:%S))" >&2
    $BIN/diffmem sweep run --configfile "$out/$name.yaml" --store "$out/$name/sweep.zarr" --threads "$workers"
done
$BIN/diffmem sweep pack --store "$out/paper/sweep.zarr" --out "$out/paper/analysis.zarr"
$BIN/diffmem paper --store "$out/paper/analysis.zarr" --out "$out/paper/paper" --docs docs/paper \
    --machine "$(nproc)-core $(uname -m) CPU"
