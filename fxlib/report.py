"""The reproduction report: ``<paper>/REPORT.md`` from the results files and the notebooks' outcomes.

Per task: the profile, chain, seed and data; the equivalent command; the executed notebook,
figures and audio; the results table (:func:`fxlib.evaluate.markdown_table`); and the paper's
own figures beside ours, from the task's :attr:`fxlib.tasks.Task.paper_results`, laid out as
``{"source": "where in the paper", "systems": {system: {metric: value}}}`` with the system and
metric names of our results (the report says so when a task has none).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import write_text
from .evaluate import markdown_table
from .paths import REPORT, TASK_NOTEBOOKS
from .tasks import get_task


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
    notebook = TASK_NOTEBOOKS[task]
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
    path = paper / REPORT
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
