#!/usr/bin/env bash
# Run by `snakemake --sdm conda` inside the new environment, right after creating it from gpu.yaml.
# Snakemake copies this script and the yaml under .snakemake/conda/, so no path relative to them
# reaches the checkout: the workflow (workflow/rules/common.smk) exports DIFFMEM_SOURCE, the
# directory of its Snakefile, and this installs the diffmem found there. Editable, so the rules run
# the checkout's code; without dependencies and build isolation, so that nothing but what the yaml
# lists is installed, and the check below fails if the yaml misses a dependency of diffmem[workflow].
set -euo pipefail
if [ -z "${DIFFMEM_SOURCE:-}" ] || [ ! -f "${DIFFMEM_SOURCE}/pyproject.toml" ]; then
    echo "post-deploy: DIFFMEM_SOURCE must name the diffmem checkout (got '${DIFFMEM_SOURCE:-}')" >&2
    exit 1
fi
python -m pip install --quiet --no-deps --no-build-isolation --editable "${DIFFMEM_SOURCE}"
python - <<'PY'
import importlib.metadata as md
import re

missing = []
for req in md.requires("diffmem") or []:
    name, _, marker = req.partition(";")
    if marker and "workflow" not in marker:
        continue  # test and gpu extras are not part of this environment's contract
    dist = re.split(r"[\s\[<>=!~]", name.strip(), maxsplit=1)[0]
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        missing.append(dist)
if missing:
    raise SystemExit(f"post-deploy: the environment lacks {', '.join(missing)} (add it to envs/)")
print("post-deploy: diffmem installed from", md.distribution("diffmem").locate_file(""))
PY
