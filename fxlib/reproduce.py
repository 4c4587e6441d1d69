"""Batch reproduction: build the data, run every task notebook with papermill, write a report.

``fxlib reproduce --profile quick`` (what ``make reproduce`` runs), from anywhere in the
checkout (paths are relative to :func:`fxlib.paths.project_root`):

1. builds each task's dataset (:func:`fxlib.paths.data_dir`: ``data/<task>``, or
   ``data/<task>-smoke`` for the smoke profile) with the task's offline builder, unless the
   folder already holds one (a downloaded paper dataset is used as it is);
2. runs ``notebooks/01_amp_emulation.ipynb``, ``02_breath_removal.ipynb`` and ``03_mastering.ipynb``
   in order with papermill, injecting the profile, seed and output paths
   (:func:`task_parameters`), into ``paper/notebooks/<name>.ipynb``; the notebooks write
   ``paper/results/<task>.json`` and ``.md``, figures to ``paper/figures/`` and short audio
   examples to ``paper/audio/<task>/``;
3. writes ``paper/reproduce.json`` (what ran, when, how long, the outcome) after each notebook,
   and ``paper/REPORT.md`` from the results files at the end (:mod:`fxlib.report`).

``--tasks`` reruns some of the tasks: the log and the report keep the other tasks' outcomes
from the earlier run on the same profile, each with the command that ran it (a run on another
profile starts a new log).

With ``--profile smoke`` the outputs go to ``runs/reproduce-smoke/`` instead of ``paper/``
(:func:`fxlib.paths.reproduction_dir`), so a check never overwrites the committed results.

A notebook that fails stops the run: the error names the notebook, the failing cell and the
exception; the partly executed notebook is kept for inspection, and so is everything the
notebooks before it wrote. The report is written in either case. Run it again to go on:
finished training runs are not trained again.
"""
from __future__ import annotations

import json
import logging
import functools
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import write_json
from .errors import FxError
from .paths import (NOTEBOOKS, REPRODUCE_LOG, TASK_NOTEBOOKS, data_dir, portable, project_root, reproduction_outputs,
                    resolve, run_dir)
from .report import Outcome, write_report
from .tasks import get_task

log = logging.getLogger(__name__)

#: The Jupyter kernel ``make setup`` registers for the project's virtual environment (in the
#: environment itself: ``python -m ipykernel install --sys-prefix``); papermill runs the notebooks
#: in it, and the notebooks name it in their metadata.
KERNEL = "fxlib"
KERNEL_DISPLAY_NAME = "Python (fxlib)"


def notebook_kernel() -> str:
    """:data:`KERNEL`, once Jupyter finds it.

    Raises:
        FxError: the kernel is not registered, with the command that registers it.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel as e:
        raise FxError(f"the Jupyter kernel {KERNEL!r} is not registered; run `make setup`, or "
                      f"`{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL} "
                      f"--display-name '{KERNEL_DISPLAY_NAME}'`") from e
    return KERNEL

PROFILES = ("smoke", "quick", "paper")
#: The longest one cell may run, in seconds, per profile, so that a kernel that stops answering
#: fails the run (naming the notebook and cell) instead of hanging it; None: no limit. The longest
#: quick cell, the mastering training, takes about an hour on 2 idle cores (57 min on 2026-12-05)
#: and failed a 1-hour limit with other work on the cores, hence 4 hours.
CELL_TIMEOUT_S = {"smoke": 900, "quick": 4 * 3600, "paper": None}
#: The longest a kernel may take to start and answer its first request, in seconds.
START_TIMEOUT_S = 120
#: The longest papermill waits for a reply that belongs to no cell, in seconds: its closing
#: ``kernel_info`` request after the last cell. Left to papermill, that wait is as long as a cell
#: may run (:data:`CELL_TIMEOUT_S`), so a kernel that stops answering after the last cell holds
#: the run that long while idle (papermill issue 711).
HANDSHAKE_TIMEOUT_S = 120


class NotebookError(FxError, RuntimeError):
    """A notebook failed; the message names it, the failing cell and the exception."""


@dataclass
class Job:
    """One notebook to execute.

    Args:
        name: a label (the task name); source: the notebook; output: where the executed copy goes.
        parameters: values papermill injects after the ``parameters`` cell.
        cell_timeout: seconds one cell may run before the run fails; None: no limit.
    """

    name: str
    source: Path
    output: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    cell_timeout: float | None = None


def task_parameters(task: str, profile: str, seed: int, paper: str | os.PathLike) -> dict[str, Any]:
    """The parameters the reproduction injects into ``task``'s notebook: training on (the notebooks
    play the shipped models by default), the profile, the seed, and paths (relative to the project
    root when inside it) from :mod:`fxlib.paths`."""
    outputs = reproduction_outputs(resolve(paper), task)
    return {"train": True, "profile": profile, "data": str(data_dir(task, profile)), "chain": "", "seed": seed,
            "out": str(run_dir(task, profile)), "results": portable(outputs.results),
            "figures": portable(outputs.figures), "audio": portable(outputs.audio)}


def build_data(tasks: Sequence[str], profile: str, seed: int) -> None:
    """Build each task's offline dataset (:func:`fxlib.paths.data_dir`) unless one is there."""
    for name in tasks:
        task = get_task(name)
        folder = resolve(data_dir(name, profile))
        started = time.monotonic()
        try:
            task.ensure_data(folder, task.profile(profile), seed)
        except Exception as e:
            raise FxError(f"building the {name} dataset in {folder} failed: {type(e).__name__}: {e}") from e
        log.info("%s ready (%.0f s)", folder, time.monotonic() - started)


#: The longest the notebook client waits on one poll of a kernel channel, in seconds. A message
#: that arrives during a long poll can go unnoticed until the poll times out (seen once: a cell's
#: reply, sent by the kernel 2 s after the request, was read at the 900 s cell limit;
#: docs/experiments/reliability.md), so waits are made of short polls.
POLL_S = 1.0


@functools.cache
def _polling_kernel_manager() -> type:
    """jupyter_client's AsyncKernelManager whose clients wait on their shell and iopub channels in
    polls of at most :data:`POLL_S`, up to the same overall timeout."""
    from queue import Empty

    from jupyter_client import AsyncKernelManager
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.client import KernelClient
    from traitlets import Type

    class PollingChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None) -> dict:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
                try:
                    return await super().get_msg(step)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

    class PollingClient(AsyncKernelClient):
        shell_channel_class = Type(PollingChannel)
        iopub_channel_class = Type(PollingChannel)

    class PollingManager(AsyncKernelManager):
        client_factory = Type(PollingClient, klass=KernelClient)

    return PollingManager


def execute_notebook(source: str | os.PathLike, output: str | os.PathLike, parameters: dict | None = None,
                     cwd: str | os.PathLike | None = None, cell_timeout: float | None = None,
                     shown_as: str | os.PathLike | None = None) -> None:
    """Execute ``source`` into ``output`` with papermill in the :data:`KERNEL` kernel.

    Each cell may run ``cell_timeout`` seconds (None: no limit); the kernel's start-up and the
    closing handshake after the last cell are bounded by :data:`START_TIMEOUT_S` and
    :data:`HANDSHAKE_TIMEOUT_S` whatever ``cell_timeout`` is.

    Args:
        source: the notebook to run.
        output: where papermill writes the executed notebook (also when a cell fails).
        parameters: values papermill injects after the ``parameters`` cell.
        cwd: the folder the kernel runs in (default: ``source``'s folder).
        cell_timeout: seconds one cell may run; None: no limit.
        shown_as: the path error messages give for the executed notebook (default: ``output``).

    Raises:
        NotebookError: naming the notebook, the failing cell (its index in the executed notebook,
            which counts the injected parameters cell, and its execution count) and the exception,
            or the wait that ran out.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, output = Path(source), Path(output)
    shown = shown_as or output
    if not source.is_file():
        raise NotebookError(f"notebook {source} does not exist")
    try:
        # nbclient gives the cells timeout_func's limit and every other wait its `timeout`, which
        # papermill sets from execution_timeout.
        papermill.execute_notebook(str(source), str(output), parameters=dict(parameters or {}),
                                   cwd=str(cwd or source.parent), progress_bar=False, kernel_name=notebook_kernel(),
                                   start_timeout=START_TIMEOUT_S, execution_timeout=HANDSHAKE_TIMEOUT_S,
                                   timeout_func=lambda cell: cell_timeout,
                                   kernel_manager_class=_polling_kernel_manager())
    except PapermillExecutionError as e:
        first_line = next((line for line in e.source.splitlines() if line.strip()), "")
        raise NotebookError(f"notebook {source.name} failed in cell {e.cell_index} (In [{e.exec_count}]: "
                            f"{first_line!r} ...): {e.ename}: {e.evalue}; the partly executed notebook is "
                            f"{shown}") from e
    except (CellTimeoutError, DeadKernelError) as e:
        raise NotebookError(f"notebook {source.name} stopped in cell {_running_cell(output)} "
                            f"({type(e).__name__}: the kernel did not finish the cell within {cell_timeout} s "
                            f"or died); the partly executed notebook is {shown}") from e
    except AssertionError as e:  # nbclient asserts that a wait that ran out belongs to a cell
        raise NotebookError(f"notebook {source.name}: every cell ran, but the kernel did not answer papermill's "
                            f"closing kernel_info request within {HANDSHAKE_TIMEOUT_S} s; the executed "
                            f"notebook is {shown}") from e


def run_notebook(job: Job) -> float:
    """Execute ``job.source`` into ``job.output`` (:func:`execute_notebook`), in the notebook's own folder.

    The executed notebook is written beside ``job.output`` and renamed onto it when execution
    ends, also when it fails (the partly executed notebook shows where and why).

    Returns:
        The wall time in seconds.

    Raises:
        NotebookError: see :func:`execute_notebook`.
    """
    job.output.parent.mkdir(parents=True, exist_ok=True)
    partial = job.output.with_name(f".{job.output.stem}.{os.getpid()}.partial.ipynb")
    started = time.monotonic()
    try:
        execute_notebook(job.source, partial, job.parameters, job.source.parent, job.cell_timeout, job.output)
    finally:
        if partial.exists():
            os.replace(partial, job.output)
    return time.monotonic() - started


def _running_cell(path: Path) -> int | None:
    """The index of the last cell that papermill started in the partly executed notebook ``path``."""
    import nbformat

    if not path.exists():
        return None
    cells = nbformat.read(path, as_version=4).cells
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def run_jobs(jobs: Sequence[Job], log_path: Path | None = None,
             header: Mapping[str, Any] | None = None, earlier: Sequence[Outcome] = ()) -> list[Outcome]:
    """Run ``jobs`` in order, stopping at the first failure (the rest are "not run").

    Writes ``{**header, "notebooks": [outcome, ...]}`` to ``log_path`` (JSON) after every
    notebook when given (``header``: facts such as the command and the profile; ``earlier``:
    outcomes of an earlier run logged beside these, see :func:`merge_outcomes`).

    Returns:
        One :class:`Outcome` per job: "done", "failed" (with the :class:`NotebookError` message)
        or "not run"; each carries ``header``'s command.
    """
    command = (header or {}).get("command", "")
    outcomes = [Outcome(j.name, j.source.name, str(j.output), command=command) for j in jobs]
    for job, outcome in zip(jobs, outcomes):
        log.info("running %s", job.source.name)
        try:
            outcome.wall_seconds = round(run_notebook(job), 1)
            outcome.status = "done"
            log.info("%s done in %.0f s", job.source.name, outcome.wall_seconds)
        except NotebookError as e:
            outcome.status, outcome.error = "failed", str(e)
        if log_path is not None:
            write_json(log_path, {**(header or {}),
                                  "notebooks": [asdict(o) for o in merge_outcomes(earlier, outcomes)]})
        if outcome.status == "failed":
            break
    return outcomes


def read_run_log(log_path: Path) -> tuple[dict[str, Any], list[Outcome]]:
    """``(header, outcomes)`` as :func:`run_jobs` logged them to ``log_path`` (empty when it does not exist);
    an outcome logged without its command (older logs) gets the header's."""
    if not log_path.exists():
        return {}, []
    logged = json.loads(log_path.read_text())
    header = {k: v for k, v in logged.items() if k != "notebooks"}
    return header, [Outcome(**{"command": header.get("command", ""), **o}) for o in logged["notebooks"]]


def earlier_outcomes(log_path: Path, profile: str) -> list[Outcome]:
    """The outcomes logged at ``log_path`` by a run on ``profile`` (none when the log is of another profile)."""
    header, outcomes = read_run_log(log_path)
    return outcomes if header.get("profile") == profile else []


def merge_outcomes(earlier: Sequence[Outcome], now: Sequence[Outcome]) -> list[Outcome]:
    """``earlier`` with the tasks of ``now`` replaced by ``now``'s outcomes, in :data:`fxlib.paths.TASK_NOTEBOOKS` order
    (names that are not tasks last, as they came)."""
    merged = {o.name: o for o in earlier} | {o.name: o for o in now}
    order = list(TASK_NOTEBOOKS)
    return sorted(merged.values(), key=lambda o: order.index(o.name) if o.name in order else len(order))


def reproduce(profile: str, tasks: Sequence[str], seed: int, paper: str | os.PathLike,
              command: str) -> list[Outcome]:
    """Build the data, run the task notebooks, write the report into ``paper`` (relative to the root).

    Raises:
        NotebookError: naming the notebook that failed and its cell, after the report is written.
    """
    root, paper = project_root(), resolve(paper)
    build_data(tasks, profile, seed)
    jobs = [Job(t, root / NOTEBOOKS / TASK_NOTEBOOKS[t], paper / "notebooks" / TASK_NOTEBOOKS[t],
                task_parameters(t, profile, seed, paper), CELL_TIMEOUT_S[profile]) for t in tasks]
    earlier = earlier_outcomes(paper / REPRODUCE_LOG, profile)
    outcomes = run_jobs(jobs, paper / REPRODUCE_LOG, {"command": command, "profile": profile}, earlier)
    logged = merge_outcomes(earlier, outcomes)
    write_report(paper, [o.name for o in logged], logged, command, profile)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise NotebookError(failed[0].error)
    return outcomes


def report_only(tasks: Sequence[str], paper: str | os.PathLike) -> Path:
    """Rewrite ``<paper>/REPORT.md`` from the results files and the logged outcomes; return its path."""
    paper = resolve(paper)
    header, outcomes = read_run_log(paper / REPRODUCE_LOG)
    return write_report(paper, tasks, outcomes, header.get("command", ""), header.get("profile", ""))
