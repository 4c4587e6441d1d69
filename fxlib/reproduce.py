"""Batch reproduction: build the data, run every task notebook with papermill, write a report.

``python -m fxlib.reproduce --profile quick`` (what ``make reproduce`` runs), from anywhere in
the checkout (paths are relative to :func:`fxlib.notebook.project_root`):

1. builds each task's dataset (``data/<task>``; ``data/<task>-smoke`` for the smoke profile, so
   a smoke run never leaves a small dataset where quick expects a full one) with the task's
   offline builder, unless the folder already holds one (a downloaded paper dataset is used as
   it is);
2. runs ``notebooks/01_amp_emulation.ipynb``, ``02_breath_removal.ipynb`` and ``03_mastering.ipynb``
   in order with papermill, injecting the profile, seed and output paths, into
   ``paper/notebooks/<name>.ipynb``; the notebooks write ``paper/results/<task>.json`` and ``.md``,
   figures to ``paper/figures/`` and short audio examples to ``paper/audio/<task>/``;
3. writes ``paper/reproduce.json`` (what ran, when, how long, the outcome) after each notebook,
   and ``paper/REPORT.md`` from the results files at the end.

``--tasks`` reruns some of the tasks: the log and the report keep the other tasks' outcomes
from the earlier run on the same profile, each with the command that ran it (a run on another
profile starts a new log).

With ``--profile smoke`` the outputs go to ``runs/reproduce-smoke/`` instead of ``paper/``, so a
check never overwrites the committed results.

A notebook that fails stops the run: the error names the notebook, the failing cell and the
exception; the partly executed notebook is kept for inspection, and so is everything the
notebooks before it wrote. The report is written in either case. Run it again to go on:
finished training runs are not trained again.

The paper's own figures come from each task's :attr:`fxlib.tasks.Task.paper_results`, laid out
as ``{"source": "where in the paper", "systems": {system: {metric: value}}}`` with the system and
metric names of our results; the report puts them beside ours and says so when a task has none.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import write_json, write_text
from .errors import FxError
from .evaluate import markdown_table
from .notebook import project_root
from .tasks import get_task

log = logging.getLogger(__name__)

#: The task notebooks in the order they run: ``{task: notebook file in notebooks/}``.
NOTEBOOKS = {"amp": "01_amp_emulation.ipynb", "breath": "02_breath_removal.ipynb", "mastering": "03_mastering.ipynb"}
PROFILES = ("smoke", "quick", "paper")
#: The longest one cell may run, in seconds, per profile, so that a kernel that stops answering
#: fails the run (naming the notebook and cell) instead of hanging it; None: no limit.
CELL_TIMEOUT_S = {"smoke": 900, "quick": 3600, "paper": None}
RUN_LOG = "reproduce.json"


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


@dataclass
class Outcome:
    """What happened to one :class:`Job`: status "done", "failed" or "not run"."""

    name: str
    notebook: str
    output: str
    status: str = "not run"
    wall_seconds: float | None = None
    error: str | None = None
    command: str = ""


def data_folder(task: str, profile: str) -> str:
    """A task's dataset folder, relative to the root: ``data/<task>``, or ``data/<task>-smoke``."""
    return f"data/{task}-smoke" if profile == "smoke" else f"data/{task}"


def default_output(profile: str) -> str:
    """Where a profile's outputs go by default: ``paper``, or ``runs/reproduce-smoke`` for smoke."""
    return "runs/reproduce-smoke" if profile == "smoke" else "paper"


def task_parameters(task: str, profile: str, seed: int, paper: str = "paper") -> dict[str, Any]:
    """The parameters ``make reproduce`` injects into task ``task``'s notebook (paths relative to the root)."""
    return {"profile": profile, "data": data_folder(task, profile), "chain": "", "seed": seed, "out": f"runs/{task}-{profile}",
            "results": f"{paper}/results", "figures": f"{paper}/figures", "audio": f"{paper}/audio/{task}"}


def build_data(tasks: Sequence[str], profile: str, seed: int) -> None:
    """Build each task's offline dataset (:func:`data_folder`) unless one is there (run at the root)."""
    from .train import ensure_data

    for name in tasks:
        task = get_task(name)
        folder = data_folder(name, profile)
        started = time.monotonic()
        try:
            ensure_data(task, Path(folder), task.profile(profile), seed)
        except Exception as e:
            raise FxError(f"building the {name} dataset in {folder} failed: {type(e).__name__}: {e}") from e
        log.info("%s ready (%.0f s)", folder, time.monotonic() - started)


def run_notebook(job: Job) -> float:
    """Execute ``job.source`` into ``job.output`` with papermill, in the notebook's own folder.

    The executed notebook is written beside ``job.output`` and renamed onto it when execution
    ends, also when it fails (the partly executed notebook shows where and why).

    Returns:
        The wall time in seconds.

    Raises:
        NotebookError: naming the notebook, the failing cell (its index in the executed notebook,
            which counts the injected parameters cell, and its execution count) and the exception.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if not job.source.is_file():
        raise NotebookError(f"notebook {job.source} does not exist")
    job.output.parent.mkdir(parents=True, exist_ok=True)
    partial = job.output.with_name(f".{job.output.stem}.{os.getpid()}.partial.ipynb")
    started = time.monotonic()
    try:
        papermill.execute_notebook(str(job.source), str(partial), parameters=job.parameters, cwd=str(job.source.parent),
                                   progress_bar=False, kernel_name="python3", execution_timeout=job.cell_timeout)
    except PapermillExecutionError as e:
        first_line = next((line for line in e.source.splitlines() if line.strip()), "")
        raise NotebookError(f"notebook {job.source.name} failed in cell {e.cell_index} (In [{e.exec_count}]: "
                            f"{first_line!r} ...): {e.ename}: {e.evalue}; the partly executed notebook is "
                            f"{job.output}") from e
    except (CellTimeoutError, DeadKernelError) as e:
        raise NotebookError(f"notebook {job.source.name} stopped in cell {_running_cell(partial)} "
                            f"({type(e).__name__}: the kernel did not finish the cell within {job.cell_timeout} s "
                            f"or died); the partly executed notebook is {job.output}") from e
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
    """``earlier`` with the tasks of ``now`` replaced by ``now``'s outcomes, in :data:`NOTEBOOKS` order
    (names that are not tasks last, as they came)."""
    merged = {o.name: o for o in earlier} | {o.name: o for o in now}
    order = list(NOTEBOOKS)
    return sorted(merged.values(), key=lambda o: order.index(o.name) if o.name in order else len(order))


# -- the report ---------------------------------------------------------------------------------
def paper_comparison(task: str, ours: Mapping[str, Mapping[str, float]], paper: Mapping[str, Any]) -> str:
    """Markdown comparing the paper's reported figures with ours, or saying that none are recorded."""
    systems = paper.get("systems", {})
    if not systems:
        return (f"**The paper's figures:** none are recorded for this task (`fxlib/tasks/{task}.py` "
                f"`paper_results` is empty: the project's notes on the paper give no numbers), so this "
                f"report makes no numeric comparison with the paper.")
    lines = [f"**The paper's figures** ({paper.get('source', 'source not given')}) beside ours:", "",
             "| system | metric | paper | ours | ours - paper |", "|---|---|---|---|---|"]
    for system, metrics in systems.items():
        for metric, value in metrics.items():
            mine = ours.get(system, {}).get(metric)
            cells = ("not measured", "") if mine is None else (f"{mine:.4g}", f"{mine - value:+.4g}")
            lines.append(f"| {system} | {metric} | {value:.4g} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _task_section(task: str, results: Mapping[str, Any] | None, outcome: Outcome | None, paper: str) -> str:
    spec = get_task(task)
    head = [f"## {task}: {spec.description}", ""]
    notebook = NOTEBOOKS[task]
    if results is None:
        status = outcome.status if outcome else "not run"
        why = f"\n\n```\n{outcome.error}\n```" if outcome and outcome.error else ""
        return "\n".join(head) + (f"No results: the notebook `{notebook}` {status.replace('done', 'ran')} and "
                                  f"`{paper}/results/{task}.json` does not exist.{why}\n")
    data = results.get("data", {})
    source = data.get("source", {}).get("kind", "unknown")
    table = markdown_table(results["systems"], f"{task} test split", "", spec.higher_is_better)
    table = "\n".join(table.splitlines()[3:])  # drop the title and the empty notes line
    lines = head + [
        f"- profile `{results.get('profile')}`, chain `{results.get('chain')}`, seed {results.get('seed')}; "
        f"data: {source} ({data.get('test_files')} test files, {data.get('test_seconds')} s)",
        f"- equivalent command: `{results.get('command')}`",
        f"- executed notebook: [`{paper}/notebooks/{notebook}`](notebooks/{notebook}); figures in "
        f"[`{paper}/figures/`](figures/), audio examples in [`{paper}/audio/{task}/`](audio/{task}/)",
        f"- training wall time {results.get('wall_seconds', 'unknown')} s"
        + (f"; the whole notebook {outcome.wall_seconds} s" if outcome and outcome.wall_seconds else ""),
        "", table, "", paper_comparison(task, results["systems"], spec.paper_results), ""]
    if source == "offline":
        lines += ["The data are fxlib's offline stand-in for the paper's (see the data source in "
                  f"`{paper}/results/{task}.json`), so the numbers measure the method, not the paper's exact "
                  "setting.", ""]
    return "\n".join(lines)


def write_report(paper: Path, tasks: Sequence[str], outcomes: Sequence[Outcome] = (),
                 command: str = "", profile: str = "") -> Path:
    """Write ``<paper>/REPORT.md`` from ``<paper>/results/<task>.json`` and the run's outcomes.

    Args:
        paper: the output folder (``paper``); tasks: the tasks to report, in order.
        outcomes: the notebooks' outcomes (wall times, failures), if any: this run's and those an
            earlier run logged for the other tasks.
        command: the command of this run (an outcome run by another command names its own);
            profile: its profile.
    """
    by_task = {o.name: o for o in outcomes}
    results = {}
    for task in tasks:
        path = paper / "results" / f"{task}.json"
        results[task] = json.loads(path.read_text()) if path.exists() else None
    machine = next((r["machine"] for r in results.values() if r), None)
    total = sum(o.wall_seconds or 0 for o in outcomes)
    lines = [
        "# Reproduction report",
        "",
        "What `make reproduce` reproduced of *Differentiable signal processing with black-box audio effects* "
        "(Martínez Ramírez, Wang, Smaragdis and Bryan, ICASSP 2021, arXiv 2105.04752), and how far from the "
        "paper it is. Generated by `fxlib.reproduce` from the results files; do not edit by hand.",
        "",
        f"- command: `{command or 'unknown'}` (profile `{profile or 'unknown'}`); "
        f"written {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {_machine(machine)}",
        "- notebooks: " + (", ".join(f"`{o.notebook}` {o.status}" + (f" in {o.wall_seconds:.0f} s" if o.wall_seconds
                                                                          else "")
                                     + (f" (by `{o.command}`)" if o.command and o.command != command else "")
                                     for o in outcomes)
                            if outcomes else "none run by this command (report regenerated from results)"),
        f"- total notebook wall time: {total / 60:.1f} min" if outcomes else "",
        "",
        "Each task trains the encoder to drive a real effect chain through SPSA gradients, then compares on the "
        "test split: the unprocessed `input`, the chain at its defaults (`chain-default`), the chain at the "
        "single best fixed parameter vector (`chain-best-fixed`), the model (`deepafx`, parameters varying "
        "over time, or their mean over each song where the task's profile sets `inference=\"song\"`; then "
        "`deepafx-hop` is the same model hop by hop) and the task's own baselines. Where the task's profile sets "
        "`level_trim`, the fixed vector and the model each get a gain after the chain, measured on the training "
        "split, that makes them as loud as the training targets on average. The best value of each column is in bold; "
        "lower is better except where a task says otherwise (loudness difference: closest to 0).",
        "",
    ]
    if profile != "paper":
        lines += [f"The `{profile or 'quick'}` profile trains far less than the paper did (`PROFILE=paper make "
                  "reproduce` runs the paper's settings), so expect the gaps between systems, not the absolute "
                  "values, to carry over.", ""]
    lines += ["## At a glance", "", at_a_glance(tasks, results), ""]
    for task in tasks:
        lines.append(_task_section(task, results[task], by_task.get(task), paper.name))
    path = paper / "REPORT.md"
    write_text(path, "\n".join(lines).replace("\n\n\n", "\n\n"))
    return path


def at_a_glance(tasks: Sequence[str], results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """A markdown table: per task, the model's training loss against the best other system's, and the paper's.

    The other systems are the baselines: ``deepafx-hop``, the same model run hop by hop, is not one.
    """
    lines = ["| task | chain | deepafx loss | best other system (loss) | paper's figures |", "|---|---|---|---|---|"]
    for task in tasks:
        r = results.get(task)
        recorded = "recorded" if get_task(task).paper_results.get("systems") else "none recorded"
        if r is None:
            lines.append(f"| {task} | - | no results | - | {recorded} |")
            continue
        systems = r["systems"]
        others = {name: row["loss"] for name, row in systems.items() if not name.startswith("deepafx")}
        best = min(others, key=others.get)
        mine = systems["deepafx"]["loss"] if "deepafx" in systems else float("nan")
        lines.append(f"| {task} | `{r.get('chain')}` | {mine:.4g} | {best} ({others[best]:.4g}) | {recorded} |")
    return "\n".join(lines)


def _machine(machine: Mapping[str, Any] | None) -> str:
    """One line about the machine from a results file's ``machine`` (or this one when none)."""
    if machine is None:
        return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    gpu = f", GPU {machine['cuda']}" if machine.get("cuda") else ", no GPU"
    return (f"{machine.get('platform')}, {machine.get('cpus')} CPUs{gpu}, Python {machine.get('python')}, "
            f"torch {machine.get('torch')}")


# -- command line -----------------------------------------------------------------------------
def reproduce(profile: str, tasks: Sequence[str], seed: int = 0, paper: str = "paper",
              command: str = "") -> list[Outcome]:
    """Build the data, run the task notebooks, write the report (at the project root).

    Raises:
        NotebookError: naming the notebook that failed and its cell, after the report is written.
    """
    root = project_root()
    os.chdir(root)
    build_data(tasks, profile, seed)
    jobs = [Job(t, root / "notebooks" / NOTEBOOKS[t], Path(paper) / "notebooks" / NOTEBOOKS[t],
                task_parameters(t, profile, seed, paper), CELL_TIMEOUT_S[profile]) for t in tasks]
    earlier = earlier_outcomes(Path(paper) / RUN_LOG, profile)
    outcomes = run_jobs(jobs, Path(paper) / RUN_LOG, {"command": command, "profile": profile}, earlier)
    logged = merge_outcomes(earlier, outcomes)
    write_report(Path(paper), [o.name for o in logged], logged, command, profile)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise NotebookError(failed[0].error)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fxlib.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=PROFILES, help="training profile (default quick)")
    parser.add_argument("--tasks", nargs="+", default=list(NOTEBOOKS), choices=list(NOTEBOOKS),
                        help="tasks to run, in order (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and SPSA (default 0)")
    parser.add_argument("--paper", help="output folder, relative to the project root (default paper; "
                        "runs/reproduce-smoke for the smoke profile)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite REPORT.md from the results files")
    args = parser.parse_args(argv)
    args.paper = args.paper or default_output(args.profile)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    command = shlex.join(["python", "-m", "fxlib.reproduce"] + list(sys.argv[1:] if argv is None else argv))
    if args.report_only:
        paper = project_root() / args.paper
        header, outcomes = read_run_log(paper / RUN_LOG)
        path = write_report(paper, args.tasks, outcomes, header.get("command", ""), header.get("profile", ""))
        print(f"wrote {path}")
        return 0
    started = time.monotonic()
    try:
        reproduce(args.profile, args.tasks, args.seed, args.paper, command)
    except FxError as e:
        print(f"reproduce: {e}", file=sys.stderr)
        print(f"reproduce: what finished is kept under {args.paper}/; the report is {args.paper}/REPORT.md",
              file=sys.stderr)
        return 1
    print(f"reproduced {', '.join(args.tasks)} on profile {args.profile} in {(time.monotonic() - started) / 60:.1f} "
          f"min; see {args.paper}/REPORT.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
