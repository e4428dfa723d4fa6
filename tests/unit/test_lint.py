"""The habits of a maintained library, checked with the test suite: ruff's lint and format, and mypy on
the annotated public API (configured in pyproject.toml: [tool.ruff], [tool.mypy])."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*command):
    tool = BIN / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} is not installed in this environment (pip install -e .[test])")
    return subprocess.run([str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_is_clean():
    out = _run("ruff", "check", ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_is_clean():
    out = _run("ruff", "format", "--check", "src", "tests", "scripts")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_on_the_public_api():
    out = _run("mypy", "--cache-dir", "/tmp/diffmem-mypy-cache")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
