"""The import contract of the package (layers, no cycles) and a command line that imports only the
command it runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffmem.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def _env():
    """This tree's sources first, so the contract is checked on them and not on an installed copy."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }


def test_import_contract_of_pyproject_holds():
    # cli > report > plots | pipeline | bench > analysis > theory | engine > foundation, and no cycle
    # among siblings at any depth ([tool.importlinter] in pyproject.toml).
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_imports_only_the_chosen_command(command):
    code = (
        "import sys\n"
        "from diffmem.cli import build_parser\n"
        f"build_parser({command!r})\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('diffmem.cli.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"diffmem.cli.{command}"]


def test_help_lists_every_command_without_importing_them(capsys):
    from diffmem.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for command, help_text in COMMANDS.items():
        assert f"{command} {help_text}" in text, command


def test_paper_command_refuses_a_missing_store(tmp_path, capsys):
    from diffmem.cli import main

    assert main(["paper", "--store", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffmem paper: error: --store:") and err.count("\n") == 1
