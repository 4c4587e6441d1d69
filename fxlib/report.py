"""The reproduction report: ``<paper>/REPORT.md`` from the results files and the notebooks' outcomes.

Per task: the profile, chain, seed and data; the equivalent command; the executed notebook,
figures and audio; the results table (:func:`fxlib.evaluate.markdown_table`); and the task set
beside the paper (:func:`paper_comparison`): the paper's conditions and protocol
(:attr:`fxlib.tasks.Task.paper_results`), the objective listeners validated on its stimuli, its
systems re-measured, ours on its inputs, and its order of conditions beside our virtual listening
test's (the results' ``paper_comparison``, :func:`fxlib.comparisons.compare_with_paper`).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import write_text
from .evaluate import markdown_table
from .listeners import KNOWN_ORDERS, LISTENER_MEDIANS, LISTENER_MEDIANS_SOURCE, kendall_tau
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


#: How closely a seeded run repeats its results tables (relative difference of every value): in
#: another process, with another number of render workers, under load (tests/test_reproducible.py),
#: and on a fresh machine of the same kind (benchmarks/cross_machine.py).
REPEAT_REL = 1e-6
#: What benchmarks/cross_machine.py last measured (a fresh machine's run against paper/results).
CROSS_MACHINE = Path("benchmarks") / "results" / "cross_machine.json"
#: Where ``benchmarks/numpy_isa.py`` writes the data sets' dependence on numpy's instruction set.
NUMPY_ISA = Path("benchmarks") / "results" / "numpy_isa.json"


def table_differences(first: Mapping[str, Mapping[str, float]], second: Mapping[str, Mapping[str, float]],
                      rel: float = REPEAT_REL) -> list[str]:
    """The entries of two results tables (``{system: {metric: value}}``) that differ by more than
    ``rel`` (relative, with 1e-12 absolute for zeros) or that one table lacks, as ``"system metric: a != b"``."""
    found = []
    for system in sorted(set(first) | set(second)):
        a, b = first.get(system, {}), second.get(system, {})
        for metric in sorted(set(a) | set(b)):
            x, y = a.get(metric), b.get(metric)
            if x is None or y is None or not math.isclose(x, y, rel_tol=rel, abs_tol=1e-12):
                found.append(f"{system} {metric}: {x} != {y}")
    return found


def _reproducibility(root: Path, results: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """The report's section on what a seeded run repeats, and what was last measured across machines
    (``root/CROSS_MACHINE``, when it measured these ``results``: the same ``created`` stamps)."""
    lines = ["## Reproducibility", "",
             f"A seeded run repeats every value of its results tables to a relative {REPEAT_REL:g} in another "
             "process, with another number of render workers and under CPU load (`tests/test_reproducible.py`, on "
             "the built-in and the LV2 amp chains). What a run depends on, and how each is held: the seed fixes "
             "every draw; each batch item's render does not depend on which worker renders it, nor, for LV2, on "
             "the settings of the render before it; `constraints.txt` pins the Python packages to those of the "
             "committed run; importing fxlib pins torch's CPU instruction set to AVX2 on x86-64 (AVX-512 kernels "
             "round differently, and training grows the difference: `benchmarks/results/isa.json`); the plugins are "
             "Debian bookworm's packages; parameter values are mapped with the C library's `pow`, not numpy's "
             "SIMD code. Not held: numpy's SIMD code for float64 `exp`, `log1p` and `power` rounds differently on "
             f"processors with AVX-512, and the offline data builders use it{_numpy_isa(root)}. The same "
             "tolerance is therefore expected on a fresh x86-64 machine "
             "with the same AVX-512 support running Debian bookworm: `python benchmarks/cross_machine.py "
             "<folder>` compares the results of a fresh clone's `make reproduce` with these.", ""]
    path = root / CROSS_MACHINE
    measured = json.loads(path.read_text()) if path.exists() else {}
    made = {task: r.get("created") for task, r in results.items() if r}
    if not made or measured.get("committed_created") != made:
        return lines + ["Across machines: not measured since these tables were made.", ""]
    verdict = "within" if measured["within_tolerance"] else "NOT within"
    other = _machine(next(iter(measured["other_machine"].values())))
    lines.append(f"Across machines, last measured {measured['created']}: a run on {other} against these tables, "
                 f"{verdict} the tolerance:")
    spread = measured.get("spread", {})
    lines += [f"- {task}: " + ("every value within" if not diffs else f"{len(diffs)} values differ, e.g. {diffs[0]}")
              + (f" ({spread[task]['values']} values, largest relative difference "
                 f"{spread[task]['largest_rel_diff']:.2g})" if task in spread else "")
              for task, diffs in measured["differences"].items()]
    return lines + [""]


def _numpy_isa(root: Path) -> str:
    """What ``root/NUMPY_ISA`` measured of the smoke data sets built without numpy's AVX-512 code, as a
    parenthesis ("" when it was not measured)."""
    path = root / NUMPY_ISA
    if not path.exists():
        return ""
    tasks = json.loads(path.read_text())["tasks"]
    said = [f"{task} {row['files_differing']} of {row['files']} files differ"
            + (f", by up to {row['max_abs_diff']:.2g}" if row["files_differing"] else "") for task, row in tasks.items()]
    return f" (each task's smoke-sized set built from the same seed without that code: {'; '.join(said)}; `{NUMPY_ISA}`)"


# -- the report ---------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def paper_order(task: str) -> tuple[list[str], dict[str, float]]:
    """The paper's known order of ``task``'s conditions, best first, and the listeners' medians
    (empty when unknown), in our systems' names (:class:`fxlib.tasks.PaperResults`)."""
    ours = {paper: mine for mine, paper in get_task(task).paper_results.conditions.items()}
    order = [ours[c] for c in KNOWN_ORDERS[task] if c in ours]
    return order, {ours[c]: v for c, v in LISTENER_MEDIANS.get(task, {}).items() if c in ours}


def paper_comparison(task: str, comparison: Mapping[str, Any] | None) -> str:
    """Markdown setting a task beside the paper: its conditions and protocol, which measures stand in
    for listeners, the paper's systems re-measured, ours on the paper's inputs, and the paper's
    order of conditions beside our virtual listening test's, with whether they agree."""
    spec = get_task(task).paper_results
    order, medians = paper_order(task)
    lines = [f"**The paper's test** ({spec.protocol_source}): {spec.protocol}. Conditions, as ours: "
             + ", ".join(f"`{mine}` (the paper's {paper})" for mine, paper in spec.conditions.items())
             + (f"; {spec.stand_in}" if spec.stand_in else "") + ".",
             "", "The paper's order of conditions, best first: " + " > ".join(f"`{c}`" for c in order)
             + (f", medians {', '.join(f'{c} {v:.2f}' for c, v in medians.items())} ({LISTENER_MEDIANS_SOURCE})"
                if medians else " (the anchors' design; no scores of this task are known)") + "."]
    if spec.metrics:
        lines += ["", "The paper's objective figures: " + json.dumps(spec.metrics)]
    if not comparison:
        return "\n".join(lines + ["", "No comparison with the paper's stimuli was run for this task."])
    if "validation" not in comparison:
        return "\n".join(lines + ["", comparison.get("note", "")])
    validation = comparison["validation"]
    lines += ["", f"**Objective listeners validated on the paper's {len(validation['examples'])} published examples** "
              f"(rule: {validation['rule']}):", "",
              "| measure | better | anchors right | Kendall tau (mean / of medians) | passes |", "|---|---|---|---|---|"]
    for name, r in validation["measures"].items():
        lines.append(f"| {name} | {'higher' if r['higher_is_better'] else 'lower'} | {r['anchors_right']}/{r['examples']} "
                     f"| {r['tau_mean']:+.2f} / {r['tau_of_medians']:+.2f} | {'yes' if r['passes'] else 'no: ' + r['why']} |")
    passing = comparison.get("passing", [])
    if not passing:
        lines += ["", f"**No measure passes for {task}**: {comparison.get('note', '')}"]
    inputs = comparison.get("on_paper_inputs")
    if inputs:
        shown = passing or list(inputs["medians"])
        conditions = inputs["conditions"]
        lines += ["", f"**The paper's systems re-measured, and fxlib's on the paper's inputs** (medians over the "
                  f"{len(inputs['examples'])} examples at {inputs['sample_rate']} Hz; `deepafx` is fxlib's model, "
                  "trained on the offline stand-ins only; `chain-dev-fixed` the chain at one vector fitted to these "
                  "examples" + ("" if passing else "; no measure is validated for this task, so none of these "
                                "stands in for listeners") + "):", "",
                  "| measure | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
        for m in shown:
            lines.append(f"| {m} | " + " | ".join(_fmt(inputs["medians"][m].get(c)) for c in conditions) + " |")
        if inputs["gap"]:
            lines += ["", "**The gap between fxlib's model and the paper's on the paper's own inputs** (median, fxlib "
                      "minus paper): " + ", ".join(f"{m} {v:+.3g}" for m, v in inputs["gap"].items()) + "."]
    virtual = comparison.get("virtual_listening")
    if virtual:
        lines += ["", f"**Virtual listening test** on the offline test split ({virtual['protocol']['excerpts']} excerpts "
                  f"of {virtual['protocol']['seconds']:g} s, mid anchor `{virtual['protocol']['mid_anchor']}`; paired "
                  "t-tests of `deepafx` against each condition, Bonferroni-corrected):", "",
                  "| measure | our order, best first | agrees with the paper's | deepafx is |",
                  "|---|---|---|---|"]
        for m, r in virtual["measures"].items():
            ours = [c for c in r["order"] if c in order]
            known = [c for c in order if c in ours]
            tau = kendall_tau([-ours.index(c) for c in known], [-known.index(c) for c in known]) if len(known) > 1 else None
            agree = "-" if tau is None else ("yes" if tau == 1 else f"no (Kendall tau {tau:+.2f})")
            tests = "; ".join(f"{'worse' if t['better'] else 'better'} than {t['condition']} "
                              f"(p {_fmt(t['p_bonferroni'])})" for t in r["tests"])
            lines.append(f"| {m} | " + " > ".join(f"{c} {_fmt(r['medians'][c])}" for c in r["order"])
                         + f" | {agree} | {tests} |")
    transfer = comparison.get("transfer")
    if transfer:
        runs = transfer["runs"]
        said = {name: f"run `{r['run']}`" + (f" (commit `{r['commit'][:7]}`)" if r.get("commit") else "")
                      + f" on data built by {r['generator'] or 'a download'}" for name, r in runs.items()}
        made_by = transfer.get("command", "fxlib transfer")  # records before 2026-12-07 lack their command
        lines += ["", "**Before and after recalibrating the offline stand-in**, on the paper's inputs (medians over its "
                  f"examples; `{made_by}`, measured apart from the table above): `before` is {said['before']}, "
                  f"`after` {said['after']}:", "",
                  "| measure | better | input | paper-deepafx | before | after |", "|---|---|---|---|---|---|"]
        for m, medians in transfer["medians"].items():
            better = "higher" if transfer["measures"][m]["higher_is_better"] else "lower"
            lines.append(f"| {m} | {better} | " + " | ".join(_fmt(medians.get(c)) for c in
                                                              ("input", "paper-deepafx", "before", "after")) + " |")
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
        "", table, "", paper_comparison(task, results.get("paper_comparison")), ""]
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
    lines += _reproducibility(paper.resolve().parent, results)
    path = paper / REPORT
    write_text(path, "\n".join(lines).replace("\n\n\n", "\n\n"))
    return path


def at_a_glance(tasks: Sequence[str], results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """A markdown table: per task, the model's training loss against the best other system's, and the paper's.

    The other systems are the baselines: ``deepafx-hop``, the same model run hop by hop, is not one.
    """
    lines = ["| task | chain | deepafx loss | best other system (loss) | measures validated on the paper's stimuli "
             "| gap to the paper's DeepAFx on its inputs |", "|---|---|---|---|---|---|"]
    for task in tasks:
        r = results.get(task)
        if r is None:
            lines.append(f"| {task} | - | no results | - | - | - |")
            continue
        systems = r["systems"]
        others = {name: row["loss"] for name, row in systems.items() if not name.startswith("deepafx")}
        best = min(others, key=others.get)
        mine = systems["deepafx"]["loss"] if "deepafx" in systems else float("nan")
        comparison = r.get("paper_comparison") or {}
        passing = ", ".join(comparison.get("passing", [])) or ("none" if "validation" in comparison else "not run")
        gap = ", ".join(f"{m} {v:+.3g}" for m, v in (comparison.get("on_paper_inputs") or {}).get("gap", {}).items())
        lines.append(f"| {task} | `{r.get('chain')}` | {mine:.4g} | {best} ({others[best]:.4g}) | {passing} | {gap or '-'} |")
    return "\n".join(lines)


def _machine(machine: Mapping[str, Any] | None) -> str:
    """One line about the machine from a results file's ``machine`` (or this one when none)."""
    if machine is None:
        return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    gpu = f", GPU {machine['cuda']}" if machine.get("cuda") else ", no GPU"
    avx = {True: " with AVX-512", False: " without AVX-512"}.get(machine.get("avx512"), "")
    return (f"{machine.get('platform')}, {machine.get('cpus')} CPUs{avx}{gpu}, Python {machine.get('python')}, "
            f"torch {machine.get('torch')}")
