"""The README's Python snippets run as written, so they cannot drift from the API.

Each ```python block runs in its own namespace in a temporary working directory. A block that
needs a plugin this machine lacks is skipped, naming it (``make setup`` installs them all).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fxlib.errors import BackendUnavailableError, PluginNotFoundError

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"snippet{i + 1}")
def test_a_readme_snippet_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(BLOCKS[index], f"README.md snippet {index + 1}", "exec"), {"__name__": "readme"})
    except (BackendUnavailableError, PluginNotFoundError) as e:
        pytest.skip(f"a plugin of README snippet {index + 1} is missing here: {e}")


def test_the_readme_headline_table_is_the_reports_own_from_the_committed_results():
    """The README's first table is :func:`fxlib.report.at_a_glance` of ``paper/results``, as written."""
    import json

    from fxlib.report import at_a_glance

    tasks = ("amp", "breath", "mastering")
    results = {t: json.loads((ROOT / "paper" / "results" / f"{t}.json").read_text()) for t in tasks}
    assert at_a_glance(tasks, results) in (ROOT / "README.md").read_text()
