"""Packaging metadata agrees with the code: declared dependencies, conda environments, citation, licence.

These are static checks of files a user installs from; they fail when an import, a dependency or a
version is added in one place and forgotten in another.
"""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _package_version():
    """``__version__`` of src/diffmem/version.py, read without importing it (as setuptools reads it)."""
    tree = ast.parse((ROOT / "src" / "diffmem" / "version.py").read_text())
    (value,) = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__version__"]
    ]
    return value


VERSION = _package_version()
ENVS = sorted((ROOT / "envs").glob("*.yaml"))

# Import name -> distribution name, where they differ.
DIST_OF_IMPORT = {
    "yaml": "pyyaml",
    "array_api_compat": "array-api-compat",
    "dask_jobqueue": "dask-jobqueue",
    "array_api_strict": "array-api-strict",
    "cupy": "cupy-cuda12x",
}
# pip distribution -> conda-forge/bioconda package, where they differ.
CONDA_OF_DIST = {"matplotlib": "matplotlib-base", "snakemake": "snakemake-minimal"}


def _name(requirement):
    """Distribution name of a PEP 508 requirement, normalized ('dask[array]>=1' -> 'dask')."""
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _specifier(requirement):
    return re.sub(r"\s+", "", re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", requirement.split(";")[0]))


def _declared(*extras):
    reqs = list(PROJECT["dependencies"])
    for extra in extras:
        reqs += PROJECT["optional-dependencies"][extra]
    return {_name(r): r for r in reqs}


def _third_party_imports(folder):
    """Top-level names imported anywhere under ``folder`` that are neither stdlib nor diffmem."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "diffmem"}


def test_every_import_of_the_package_is_declared():
    declared = _declared(*PROJECT["optional-dependencies"])
    imports = _third_party_imports(ROOT / "src" / "diffmem")
    assert {"numpy", "xarray", "zarr", "pandas"} <= imports  # the scan sees the package
    missing = {n for n in imports if DIST_OF_IMPORT.get(n, n).replace("_", "-") not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_every_import_of_the_tests_is_declared():
    declared = _declared(*PROJECT["optional-dependencies"])
    # modules of the test folders themselves (helpers, conftest, tests/physics/sim) are not packages
    local = {path.stem for path in (ROOT / "tests").rglob("*.py")}
    imports = _third_party_imports(ROOT / "tests") - {"tests"} - local
    missing = {n for n in imports if DIST_OF_IMPORT.get(n, n).replace("_", "-") not in declared}
    assert not missing, f"imported by tests but not declared in pyproject.toml: {sorted(missing)}"


def test_build_backend_reads_the_pep639_license():
    # `license = "MIT"` (an SPDX expression) and `license-files` need setuptools >= 77.
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if _name(r) == "setuptools"]
    floor = re.search(r">=\s*(\d+)", setuptools)
    assert floor and int(floor.group(1)) >= 77, setuptools
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_zarr_pin_admits_the_tested_version_and_later_3x():
    import zarr

    spec = _specifier(_declared()["zarr"])
    assert spec == ">=3.1,<4", spec
    major, minor = (int(v) for v in zarr.__version__.split(".")[:2])
    assert (major, minor) >= (3, 1) and major < 4, zarr.__version__


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_conda_environment_lists_every_dependency_and_no_relative_path(env):
    spec = yaml.safe_load(env.read_text())
    conda = {}
    for dep in spec["dependencies"]:
        assert isinstance(dep, str), f"{env.name}: a pip section ({dep}) would need a path to the checkout"
        name, _, version = dep.partition(" ")
        conda[name] = version.replace(" ", "")
    assert "nodefaults" in spec["channels"]
    for dist, requirement in _declared("workflow").items():
        package = CONDA_OF_DIST.get(dist, dist)
        assert package in conda, f"{env.name} lacks {package} (pyproject: {requirement})"
        assert conda[package] in ("", _specifier(requirement)) or package == "numpy", (
            f"{env.name}: {package} {conda[package]} differs from pyproject's {requirement}"
        )
    assert "setuptools" in conda  # post-deploy installs without build isolation


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_post_deploy_script_installs_the_checkout_named_by_the_workflow(env, tmp_path):
    script = env.with_suffix(".post-deploy.sh")
    assert script.exists(), f"{script.name} missing: Snakemake would create {env.name} without diffmem"
    text = script.read_text()
    assert '--editable "${DIFFMEM_SOURCE}"' in text and "--no-deps" in text
    # The workflow is what tells the script where the checkout is.
    assert 'os.environ["DIFFMEM_SOURCE"] = workflow.basedir' in (ROOT / "workflow/rules/common.smk").read_text()
    # Snakemake runs a copy from .snakemake/conda/; without the variable it must stop, naming it.
    copy = tmp_path / "0123abcd.post-deploy.sh"
    copy.write_text(text)
    out = subprocess.run(
        ["bash", str(copy)], cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert out.returncode == 1 and "DIFFMEM_SOURCE" in out.stderr


def test_post_deploy_scripts_differ_only_in_their_environment_name():
    cpu, gpu = ((ROOT / "envs" / f"{name}.post-deploy.sh").read_text() for name in ("cpu", "gpu"))
    assert cpu.replace("cpu.yaml", "gpu.yaml") == gpu


def test_citation_cites_the_package_and_both_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == VERSION and cff["license"] == PROJECT["license"]
    dois = {i["value"] for ref in cff["references"] for i in ref["identifiers"] if i["type"] == "doi"}
    assert dois == {"10.48550/arXiv.2502.09578", "10.48550/arXiv.2402.18491"}
    families = [{a["family-names"] for a in ref["authors"]} for ref in cff["references"]]
    assert {"Achilli", "Ambrogioni", "Lucibello", "Mézard", "Ventura"} in families
    assert {"Biroli", "Bonnaire", "de Bortoli", "Mézard"} in families


def test_changelog_has_unreleased_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert f"## [{VERSION}] - " in text


def test_the_version_is_written_once():
    # pyproject.toml takes it from diffmem.version (setuptools' attr:), and nothing else writes it.
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "diffmem.version.__version__"}
    import diffmem

    assert diffmem.__version__ == VERSION and re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
