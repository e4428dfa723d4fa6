"""Missing or malformed files given to any `diffmem` command: one line naming the file, exit status 2."""

from pathlib import Path

import pytest

from diffmem.cli import main

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def _one_error_line(capsys, argv):
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("grid: [1,\n", "is not valid YAML at line"),
        ("- 1\n- 2\n", "must hold a mapping"),
    ],
    ids=["missing", "malformed", "not-a-mapping"],
)
@pytest.mark.parametrize("step", ["init", "blocks", "run-block", "theory", "phase"])
def test_bad_config_file_is_one_line_naming_it(tmp_path, capsys, content, expected, step):
    path = tmp_path / "sweep.yaml"
    if content is not None:
        path.write_text(content)
    extra = {
        "run-block": ["--block", "b0000"],
        "theory": ["--out", str(tmp_path / "t.zarr")],
        "phase": ["--out", str(tmp_path / "p.zarr")],
    }.get(step, [])
    err = _one_error_line(capsys, ["sweep", step, "--configfile", str(path), *extra])
    assert err.startswith(f"diffmem sweep: error: --configfile: {path}")
    assert expected in err


def test_directory_as_config_file(tmp_path, capsys):
    err = _one_error_line(capsys, ["sweep", "blocks", "--configfile", str(tmp_path)])
    assert "is a directory" in err


def test_missing_and_malformed_stores_name_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "phase", "--configfile", str(TEST_CONFIG), "--out", "p.zarr"]
    err = _one_error_line(capsys, [*args, "--store", "none.zarr"])
    assert "--store: none.zarr does not exist" in err
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{")
    assert main(["sweep", "init", "--configfile", str(TEST_CONFIG)]) == 0
    capsys.readouterr()
    err = _one_error_line(capsys, [*args, "--theory", "broken.zarr"])
    assert "--theory: broken.zarr is not a readable zarr store" in err
    err = _one_error_line(capsys, [*args, "--theory", "missing.zarr"])
    assert "--theory: missing.zarr does not exist" in err
    err = _one_error_line(capsys, ["status", "broken.zarr"])
    assert "broken.zarr" in err


def test_status_of_a_results_directory_hints_at_its_store(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "init", "--configfile", str(TEST_CONFIG)]) == 0
    capsys.readouterr()
    err = _one_error_line(capsys, ["status", "results/test"])
    assert err.endswith("did you mean results/test/sweep.zarr?")
    err = _one_error_line(capsys, ["status", "results/nothing"])
    assert "results/nothing does not exist" in err
