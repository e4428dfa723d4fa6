"""The built wheel carries what the package needs at run time: installed outside the repository, it
validates the shipped default config (the schema is package data) and runs one cell.

The wheel is built without build isolation (offline: the build backend of the test environment) and
installed with ``--no-deps`` into a fresh virtual environment that sees the test environment's
dependencies through a ``.pth`` file; only diffmem itself comes from the wheel. Everything runs from
a temporary directory, with no ``PYTHONPATH``, so nothing can be imported from the checkout.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=600):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _site_packages(prefix):
    """The purelib directory of the environment at ``prefix``."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(python of a fresh venv with the built diffmem wheel installed, a directory outside the repo, env)."""
    work = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # Build from a copy of what the sdist holds, so the build leaves nothing in the checkout.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--skip-dependency-check",
            "--outdir",
            work / "dist",
            source,
        ],
        cwd=work,
        env=env,
    )
    (wheel,) = (work / "dist").glob("diffmem-*.whl")
    prefix = work / "venv"
    venv.EnvBuilder(with_pip=False).create(prefix)
    python = prefix / "bin" / "python"
    # The test environment's packages (numpy, jsonschema, ...) behind the venv's own site-packages;
    # its editable diffmem is not picked up (a .pth line adds a directory, not the .pth files in it).
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, env).strip())
    (site / "test-environment.pth").write_text(str(_site_packages(sys.prefix)) + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel],
        cwd=work,
        env=env,
    )
    return python, work, env


def test_wheel_validates_the_default_config_outside_the_repository(wheel_env):
    python, work, env = wheel_env
    code = (
        "import sys, diffmem\n"
        "from diffmem.pipeline.config import load_config, validate_config\n"
        "from diffmem.pipeline.grid import Grid\n"
        "from diffmem.pipeline.schema import schema_path\n"
        f"config = validate_config(load_config({str(ROOT / 'config' / 'config.yaml')!r}))\n"
        "print(diffmem.__file__)\n"
        "print(schema_path())\n"
        "print(Grid(config).n_cells)\n"
    )
    module, schema, n_cells = _run([python, "-c", code], work, env).split()
    assert Path(module).is_relative_to(work / "venv"), module  # diffmem came from the wheel
    assert Path(schema).is_relative_to(work / "venv") and Path(schema).is_file(), schema
    assert int(n_cells) == 180  # the default sweep of the README


def test_wheel_metadata_has_the_package_version(wheel_env):
    # The version is written once (diffmem/version.py); the build puts it in the wheel's metadata.
    python, work, env = wheel_env
    code = "import importlib.metadata as m, diffmem; print(m.version('diffmem'), diffmem.__version__)"
    metadata, package = _run([python, "-c", code], work, env).split()
    assert metadata == package


def test_wheel_runs_a_cell_from_its_console_script(wheel_env):
    python, work, env = wheel_env
    out = _run(
        [
            python.with_name("diffmem"),
            "cell",
            "--family",
            "hmm",
            "--N",
            "8",
            "--P",
            "20",
            "--alpha-D",
            "0.5",
            "--t",
            "0.5",
            "--samples",
            "8",
            "--basin-samples",
            "2",
            "--rho",
            "1.0",
            "--json",
        ],
        work,
        env,
    )
    assert '"P": 20' in out and '"D": 4' in out
