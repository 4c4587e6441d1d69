"""Every notebook in notebooks/ runs end to end on the smoke profile, writing only into tmp_path.

``profile`` becomes "smoke", and every path parameter whose default lies in the checkout's
``paper/``, ``data/`` or ``runs/`` is moved under tmp_path, so no test writes into the repository.
The task notebooks run under nbmake (``pytest --nbmake``) as the issues ask: nbmake cannot
inject parameters, so papermill first writes a copy with the smoke parameters injected
(``prepare_only``) and nbmake executes that copy. They train a smoke model (tens of seconds
each) and run in ``make test``. The tour and the listening-test notebooks are executed with
papermill and run in seconds; the tour with a trained model is marked slow.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

papermill = pytest.importorskip("papermill")

from fxlib.reproduce import CELL_TIMEOUT_S, KERNEL, execute_notebook, notebook_kernel, task_parameters  # noqa: E402 (after the skip when papermill is missing)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TOUR = "00_tour.ipynb"
TASKS = {"01_amp_emulation.ipynb": "amp", "02_breath_removal.ipynb": "breath", "03_mastering.ipynb": "mastering"}
#: Path parameters of the other notebooks; empty, each means a default folder in the checkout.
PATH_PARAMETERS = ("run", "stimuli", "ratings", "simulated_ratings")
BASELINES = {"amp": "neural-amp", "breath": "energy-gate", "mastering": "matchering"}
FAST = {TOUR: {"clip_seconds": 2.0, "error_trials": 2}}  # extra settings that keep a notebook quick


def smoke_parameters(notebook: Path, tmp: Path) -> dict:
    """The smoke profile and every path parameter moved under ``tmp``: a task notebook gets what the
    smoke reproduction injects, with ``tmp/paper`` as the output folder."""
    names = set(papermill.inspect_notebook(str(notebook)))
    if notebook.name in TASKS:
        task = TASKS[notebook.name]
        params = {**task_parameters(task, "smoke", 0, tmp / "paper"), "data": str(tmp / "data" / task),
                  "out": str(tmp / "runs" / notebook.stem), "compare": False}  # the comparison: test_comparisons
    else:
        params = {name: str(tmp / name) for name in names & set(PATH_PARAMETERS)}
    assert set(params) <= names, f"{notebook.name} lacks parameters {set(params) - names}"
    return {**params, **FAST.get(notebook.name, {})}


def execute(notebook: Path, tmp: Path, **overrides) -> nbformat.NotebookNode:
    """Run ``notebook`` with smoke parameters (and ``overrides``) into ``tmp``; the executed notebook."""
    output = tmp / f"executed-{notebook.name}"
    execute_notebook(notebook, output, {**smoke_parameters(notebook, tmp), **overrides},
                     cell_timeout=CELL_TIMEOUT_S["smoke"])
    return nbformat.read(output, as_version=4)


def execute_with_nbmake(notebook: Path, tmp: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` with smoke parameters under nbmake; the executed notebook.

    papermill injects the parameters into a copy without running it; ``pytest --nbmake
    --overwrite`` (no configuration file, root in ``tmp``) executes the copy in place.
    """
    copy = tmp / f"nbmake-{notebook.name}"
    papermill.execute_notebook(str(notebook), str(copy), parameters=smoke_parameters(notebook, tmp),
                               prepare_only=True, kernel_name=notebook_kernel())
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "--overwrite",
                           f"--nbmake-timeout={CELL_TIMEOUT_S['smoke']}", "-p", "no:cacheprovider",
                           "-c", os.devnull, "--rootdir", str(tmp), "-q", str(copy)],
                          capture_output=True, text=True, cwd=tmp)
    assert done.returncode == 0, f"nbmake failed on {notebook.name}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    return nbformat.read(copy, as_version=4)


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def stderr_text(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(nb) if o.get("name") == "stderr")


def repository_outputs() -> dict[str, float]:
    """Files under the checkout's paper/ folder and smoke run folders, with their modification times."""
    files = [p for p in (ROOT / "paper").rglob("*") if p.is_file()] if (ROOT / "paper").is_dir() else []
    files += [p for p in (ROOT / "runs").glob("*-smoke/*")] if (ROOT / "runs").is_dir() else []
    return {str(p): p.stat().st_mtime for p in files}


def test_every_notebook_has_a_parameters_cell_of_plain_literals():
    assert {TOUR, *TASKS} <= {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        tree = ast.parse(cells[0].source)
        for statement in tree.body:
            assert isinstance(statement, ast.Assign), f"{path.name}: the parameters cell holds only assignments"
            ast.literal_eval(statement.value)  # raises unless a plain literal
        assert not any(o for c in nb.cells if c.cell_type == "code" for o in c.outputs), \
            f"{path.name} is committed with outputs; clear them"
        raw = json.loads(path.read_text())  # nbformat.read would fill in missing ids
        assert all("id" in c for c in raw["cells"]), f"{path.name}: every cell needs an id (nbformat 4.5)"
        assert raw["metadata"]["kernelspec"]["name"] == KERNEL, f"{path.name}: its kernel should be {KERNEL!r}"


def test_an_unregistered_kernel_is_named_with_the_command_that_registers_it(monkeypatch):
    import fxlib.reproduce
    from fxlib.errors import FxError

    assert notebook_kernel() == KERNEL  # make setup registered it
    monkeypatch.setattr(fxlib.reproduce, "KERNEL", "fxlib-nowhere")
    with pytest.raises(FxError, match=r"'fxlib-nowhere' is not registered; run `make setup`, or .* -m ipykernel "
                                      r"install --sys-prefix --name fxlib-nowhere"):
        fxlib.reproduce.notebook_kernel()


def test_notebook_defaults_come_from_the_paths_module_and_never_point_into_paper():
    """A notebook run by hand writes into its run folder: its parameters hold no location of their own."""
    for path in NOTEBOOKS:
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        for statement in ast.parse(cell.source).body:
            value = ast.literal_eval(statement.value)
            if isinstance(value, str):
                assert not value.startswith(("paper", "runs/", "data/")), \
                    f"{path.name}: {statement.targets[0].id} = {value!r} (leave it empty: fxlib.paths has the default)"


def test_the_tour_runs_and_plays_the_shipped_model(tmp_path):
    before = repository_outputs()
    nb = execute(ROOT / "notebooks" / TOUR, tmp_path, run="")  # no run: the shipped amp model
    kinds = [o.output_type for o in outputs(nb)]
    widgets = [o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 3, f"the chain explorer, the gradient demo and the A/B players should display; got {kinds}"
    assert sum("image/png" in o.get("data", {}) for o in outputs(nb)) >= 2, "the SPSA error or cosine plot is missing"
    ab = [c for c in nb.cells if c.cell_type == "code" and "model_section" in c.source]
    assert ab and any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in ab[0].outputs), \
        "the A/B section did not display the shipped model's players"
    assert "Traceback" not in stderr_text(nb)
    assert repository_outputs() == before


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_notebook_runs_under_nbmake_and_writes_into_tmp(name, tmp_path):
    task = TASKS[name]
    before = repository_outputs()
    nb = execute_with_nbmake(ROOT / "notebooks" / name, tmp_path)
    results = tmp_path / "paper" / "results"
    assert (results / f"{task}.json").exists() and (results / f"{task}.md").exists()
    assert f"--task {task} --profile smoke" in (results / f"{task}.json").read_text()
    assert list((tmp_path / "paper" / "figures").glob(f"{task}_*.png")), "no figures written"
    wavs = list((tmp_path / "paper" / "audio" / task).glob("*.wav"))
    assert wavs and all(w.stat().st_size > 1000 for w in wavs)
    assert any("audio/wav" in o.get("data", {}).get("text/html", "") for o in outputs(nb)), "no audio player"
    assert repository_outputs() == before


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_notebook_plays_the_shipped_model_by_default(name, tmp_path):
    """Default parameters, run by hand in a project of its own: nothing is trained or built, the
    shipped model's results, curves and players (baselines included) show, and paper/ stays untouched."""
    from fxlib.experiment import shipped_name

    task = TASKS[name]
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")  # the project root that the default paths resolve in
    (project / "paper").mkdir()
    executed = tmp_path / f"executed-{name}"
    before = repository_outputs()
    execute_notebook(ROOT / "notebooks" / name, executed, cwd=project / "notebooks", cell_timeout=CELL_TIMEOUT_S["smoke"])
    nb = nbformat.read(executed, as_version=4)
    folder = project / "runs" / f"{shipped_name(task)}-shipped"
    assert (folder / "model.pt").is_file() and not (folder / "checkpoint.pt").exists(), "it trained"
    assert not (project / "data").exists() and not any((project / "paper").iterdir())
    figures = {p.name for p in (folder / "figures").glob("*.png")}
    assert {f"{task}_results.png", f"{task}_training.png", f"{task}_gradient_quality.png"} <= figures
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))
    for system in ("input", "deepafx", "chain-best-fixed", BASELINES[task], "target"):
        assert f"{system}:" in html, f"no player for {system}"
    assert "not trained here" in "".join(o.get("text", "") for o in outputs(nb))
    assert "Traceback" not in stderr_text(nb)
    assert repository_outputs() == before


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != TOUR and p.name not in TASKS],
                         ids=lambda p: p.name)
def test_other_notebooks_run_on_smoke_settings(path, tmp_path):
    before = repository_outputs()
    nb = execute(path, tmp_path)
    assert outputs(nb), f"{path.name} produced no output"
    assert repository_outputs() == before


@pytest.mark.slow
def test_the_tour_plays_a_trained_model(tmp_path):
    from fxlib.experiment import run_task

    run = run_task("amp", "smoke", data=tmp_path / "data", out=tmp_path / "run", progress=False)
    nb = execute(ROOT / "notebooks" / TOUR, tmp_path, run=run["run_dir"])
    assert not any("No model to play" in o.get("data", {}).get("text/markdown", "") for o in outputs(nb))
    widgets = [o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 3, "the A/B widget is missing"
