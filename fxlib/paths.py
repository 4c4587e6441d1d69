"""Default locations: where data sets, run folders and generated results go.

One module owns them, so the command line, the task notebooks (whose ``parameters`` cells leave
a path empty to take its default here), the batch reproduction and the docs agree. Relative
paths are relative to the project root (:func:`project_root`), wherever the caller runs from.

==============================  =========================================================
what                            default
==============================  =========================================================
a task's data set               ``data/<task>`` (``data/<task>-smoke`` on the smoke profile,
                                so a smoke build never sits where a full one is expected)
a training run folder           ``runs/<task>-<profile>`` (:mod:`fxlib.rundir`)
a run's results, figures, audio ``<run>/results``, ``<run>/figures``, ``<run>/audio``
the reproduction's output       ``paper/`` (``runs/reproduce-smoke/`` on the smoke profile):
                                ``results/``, ``figures/``, ``audio/<task>/``,
                                ``notebooks/``, ``REPORT.md``, ``reproduce.json``
the listening kit               ``runs/listening/``: ``demo-stimuli/``, ``ratings/``,
                                ``simulated-ratings/``
==============================  =========================================================

Only the reproduction (``fxlib reproduce``) writes into ``paper/``: training, evaluation and a
notebook run by hand write into their run folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA = Path("data")
RUNS = Path("runs")
PAPER = Path("paper")
NOTEBOOKS = Path("notebooks")
SMOKE_REPRODUCTION = RUNS / "reproduce-smoke"
#: The listening kit's folders: a stimuli set (the demo set when made without trained runs),
#: listeners' ratings, and simulated ratings for trying the analysis without listeners.
LISTENING_STIMULI = RUNS / "listening" / "demo-stimuli"
LISTENING_RATINGS = RUNS / "listening" / "ratings"
LISTENING_SIMULATED = RUNS / "listening" / "simulated-ratings"
#: The paper's listening-test stimuli (``fxlib data paper-examples download``), laid out as its page.
PAPER_EXAMPLES = DATA / "paper-examples"
#: The development copy of the paper's stimuli beside the checkout, used as a local source when present.
SHARED_PAPER_EXAMPLES = Path("..") / "shared" / "paper-listening-test"
REPORT = "REPORT.md"
REPRODUCE_LOG = "reproduce.json"
#: The task notebooks in ``notebooks/``, in the order the reproduction runs them.
TASK_NOTEBOOKS = {"amp": "01_amp_emulation.ipynb", "breath": "02_breath_removal.ipynb",
                  "mastering": "03_mastering.ipynb"}


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project folder: the nearest folder holding ``pyproject.toml`` at or above ``start``
    (default: the working directory), else the checkout this fxlib is imported from (an
    editable install, as ``make setup`` makes), else the working directory itself.

    A notebook gives the same paths whether it runs from ``notebooks/`` (JupyterLab), the root
    (papermill) or a copy elsewhere (nbmake on a parameterised copy).
    """
    here = Path(start or Path.cwd()).resolve()
    installed = Path(__file__).resolve().parents[1]
    for folder in (here, *here.parents, installed):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def resolve(path: str | os.PathLike, root: Path | None = None) -> Path:
    """``path`` as given when absolute, else relative to :func:`project_root` (or ``root``)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (root or project_root()) / path


def portable(path: str | os.PathLike) -> str:
    """``path`` as a run record stores it: relative to the project root when inside it, else absolute."""
    path, root = Path(path).resolve(), project_root()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def data_dir(task: str, profile: str) -> Path:
    """A task's data set folder, relative to the root: ``data/<task>``, or ``data/<task>-smoke``."""
    return DATA / (f"{task}-smoke" if profile == "smoke" else task)


def run_dir(task: str, profile: str) -> Path:
    """A task's run folder, relative to the root: ``runs/<task>-<profile>``."""
    return RUNS / f"{task}-{profile}"


def reproduction_dir(profile: str) -> Path:
    """Where ``fxlib reproduce`` writes, relative to the root: ``paper``, or ``runs/reproduce-smoke``."""
    return SMOKE_REPRODUCTION if profile == "smoke" else PAPER


@dataclass(frozen=True)
class Outputs:
    """Where one task's generated files go.

    Attributes:
        results: folder of ``<task>.json`` and ``<task>.md``; figures: PNG files; audio: WAV examples.
    """

    results: Path
    figures: Path
    audio: Path


def run_outputs(run: str | os.PathLike) -> Outputs:
    """A run folder's own outputs: ``<run>/results``, ``<run>/figures``, ``<run>/audio``."""
    run = Path(run)
    return Outputs(run / "results", run / "figures", run / "audio")


def reproduction_outputs(base: str | os.PathLike, task: str) -> Outputs:
    """The reproduction's outputs for ``task`` under ``base``: ``results/``, ``figures/``, ``audio/<task>/``."""
    base = Path(base)
    return Outputs(base / "results", base / "figures", base / "audio" / task)
