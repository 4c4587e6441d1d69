"""The package's shape, checked from its source: layers, one owner per concept, short task docstrings.

* the import-linter contracts in ``pyproject.toml`` (layers, no cycles) hold;
* the run folder's files are named only by :mod:`fxlib.rundir`, the default locations only by
  :mod:`fxlib.paths` (string constants in code; docstrings and comments may mention them);
* library code never changes the working directory, and loads checkpoints weights-only;
* a task module's docstring says what the task is in at most 25 lines (experiment logs go to
  ``docs/experiments/``).
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fxlib"
MODULES = sorted(PACKAGE.rglob("*.py"))
RUN_FILES = ("best.pt", "checkpoint.pt", "fixed.json", "trim.json", "run.json")


def code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module's code, without docstrings: ``(line, value)``."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (make setup installs it)")
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "2 kept, 0 broken" in done.stdout


def test_only_the_run_folder_module_names_its_files():
    found = [f"{path.relative_to(ROOT)}:{line} {value!r}" for path in MODULES if path.name != "rundir.py"
             for line, value in code_strings(path) if any(name in value for name in RUN_FILES)]
    assert not found, "run folder files named outside fxlib/rundir.py:\n" + "\n".join(found)


def test_only_the_paths_module_holds_default_locations():
    def is_location(value: str) -> bool:  # "paper" alone is also a profile's name, "data" a key
        return value.startswith(("paper/", "runs/", "data/"))

    found = [f"{path.relative_to(ROOT)}:{line} {value!r}" for path in MODULES if path.name != "paths.py"
             for line, value in code_strings(path) if is_location(value)]
    assert not found, "default locations outside fxlib/paths.py:\n" + "\n".join(found)


def test_library_code_never_changes_directory_and_loads_checkpoints_weights_only():
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "chdir":
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} changes the working directory")
            if isinstance(node, ast.keyword) and node.arg == "weights_only":
                assert isinstance(node.value, ast.Constant) and node.value.value is True, \
                    f"{path.relative_to(ROOT)}:{node.value.lineno} loads a checkpoint that may run code"


def test_task_docstrings_say_what_not_how_it_went():
    for path in sorted((PACKAGE / "tasks").glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
        assert docstring, f"{path.name} has no module docstring"
        assert len(docstring.splitlines()) <= 25, f"{path.name}: a {len(docstring.splitlines())}-line docstring"
