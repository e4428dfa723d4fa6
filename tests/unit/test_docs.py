"""docs/theory.md stays true to the code: what it names exists, and nothing cites a document outside the repo.

- every `diffmem.module.function` named in docs/theory.md imports (module, then attributes);
- every `tests/path.py::test_name` named there is defined in that file (module level or in a class);
- every `docs/theory.md#<anchor>` cited anywhere in the repository is an anchor of docs/theory.md;
- no tracked file mentions the external physics note the project once cited (the theory is here).
"""

import ast
import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THEORY_DOC = ROOT / "docs" / "theory.md"
# Spelled in two pieces so that this file does not match its own search.
EXTERNAL_NOTE = "THEORY" + ".md"

FUNCTION_REF = re.compile(r"`(diffmem(?:\.\w+)+)`")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
ANCHOR = re.compile(r'<a id="([\w-]+)"></a>')
ANCHOR_CITATION = re.compile(r"docs/theory\.md#([\w-]+)")


def _doc_text():
    return THEORY_DOC.read_text(encoding="utf-8")


def _resolve(dotted):
    """Import the longest importable module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def _defined_tests(path):
    """Names of test functions in a test file: module level and methods of test classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def _repository_files():
    """Tracked and untracked-but-not-ignored files: what a clone (or the next commit) contains."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an unpacked sdist)
        skip = {".git", ".venv", "results", ".snakemake", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()]


def _text_or_none(path):
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def test_doc_names_functions_and_tests():
    text = _doc_text()
    # Guard against a regex that silently matches nothing after a format change.
    assert len(FUNCTION_REF.findall(text)) > 50 and len(TEST_REF.findall(text)) > 50


@pytest.mark.parametrize("dotted", sorted(set(FUNCTION_REF.findall(_doc_text()))))
def test_named_function_exists(dotted):
    try:
        _resolve(dotted)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"docs/theory.md names `{dotted}`, which does not exist: {err}")


@pytest.mark.parametrize("path, name", sorted(set(TEST_REF.findall(_doc_text()))))
def test_named_test_exists(path, name):
    file = ROOT / path
    assert file.is_file(), f"docs/theory.md names {path}, which does not exist"
    assert name in _defined_tests(file), f"docs/theory.md names {path}::{name}, which is not defined there"


def test_anchors_are_unique():
    anchors = ANCHOR.findall(_doc_text())
    duplicates = sorted({a for a in anchors if anchors.count(a) > 1})
    assert not duplicates, f"anchors defined twice in docs/theory.md: {duplicates}"


def test_every_cited_anchor_exists():
    anchors = set(ANCHOR.findall(_doc_text()))
    missing = []
    for path in _repository_files():
        text = _text_or_none(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            missing += [
                f"{path.relative_to(ROOT)}:{lineno}: #{a}" for a in ANCHOR_CITATION.findall(line) if a not in anchors
            ]
    # Links inside docs/theory.md itself are written (#anchor): check those too.
    missing += [f"docs/theory.md: (#{a})" for a in re.findall(r"\]\(#([\w-]+)\)", _doc_text()) if a not in anchors]
    assert not missing, "citations of anchors that docs/theory.md does not define:\n" + "\n".join(missing)


def test_no_file_cites_the_external_note():
    hits = []
    for path in _repository_files():
        text = _text_or_none(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if EXTERNAL_NOTE in line:  # case matters: docs/theory.md is the repository's own
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not hits, (
        "the physics is documented in docs/theory.md; cite its sections (docs/theory.md#<anchor>) instead:\n"
        + "\n".join(hits)
    )
