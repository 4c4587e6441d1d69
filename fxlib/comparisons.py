"""The paper's comparisons: its own stimuli, its systems re-measured, ours on its inputs, a virtual test.

The paper's evidence is a listening test, and the authors published about half of its stimuli
(:mod:`fxlib.data.paper_examples`). :func:`compare_with_paper` adds to a run's results:

1. ``validation``: which objective listeners (:mod:`fxlib.listeners`) order the paper's own
   conditions as designed and as its listeners did (:func:`fxlib.listeners.validate`); with it,
   every condition's scores: the paper's systems, re-measured. Only measures that pass carry
   the rest.
2. ``on_paper_inputs``: the paper's inputs (resampled to the task's rate) through fxlib's trained
   model (trained on the offline stand-ins) and through the chain at the single fixed vector
   fitted to these development examples themselves (:data:`DEV_FIT_STEPS` steps), scored
   beside the paper's DeepAFx output on the same decoded targets; ``gap``: the medians of
   fxlib's model minus the paper's, per validated measure: the headline of the reproduction.
3. ``virtual_listening``: the paper's protocol on the offline test split: :data:`EXCERPTS`
   seeded excerpts of :data:`EXCERPT_SECONDS` s, conditions ``reference`` (the target),
   ``mid-anchor`` (:func:`mid_anchor`), ``input`` (the low anchor), ``deepafx`` and the task's
   baselines, scored by the validated measures only; per measure the medians and paired t-tests
   of ``deepafx`` against every other condition with Bonferroni correction (the paper's tests).

A task with no validated measure says so and has no virtual test.

:func:`transfer` adds ``transfer``: two runs of a task, trained on two versions of its offline
stand-in (before and after a recalibration of the builder), each through the paper's inputs and
scored by the task's whole panel, beside the unprocessed input and the paper's DeepAFx: how
much closer a model trained only on the stand-in comes to the paper's on the paper's own audio.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .atomic import write_json
from .calibrate import fit_fixed_vector
from .data.paper_examples import LoadedExample, examples, load_example
from .errors import FxError
from .evaluate import kept_transfer, provenance
from .experiment import draw_excerpts, render_excerpt
from .listeners import MEASURES, PANELS, validate
from .metrics import loudness_lufs
from .model import render_curve
from .paths import PAPER_EXAMPLES, SHARED_PAPER_EXAMPLES, resolve
from .rundir import RunDir

log = logging.getLogger(__name__)

EXCERPTS = 5
EXCERPT_SECONDS = 4.0
PREROLL_SECONDS = 1.0
DEV_FIT_STEPS = 300  # SPSA steps fitting the chain's fixed vector to the paper's development examples
MID_ANCHOR_SHARE = 0.3  # the mastering mid anchor: the input moved this share of the way to the target's loudness


def mid_anchor(kind: str, input: np.ndarray, target: np.ndarray, sample_rate: int) -> np.ndarray:
    """The mid anchor of the virtual listening test, built as the paper's published ones suggest.

    Least-squares fits of the paper's mid anchors to their input and target (one decode of each,
    ``fxlib.data.paper_examples``) show two kinds:

    * ``"mix"`` (amp, breath): the input and the target mixed, each carrying about half the
      loudness (amp: about 1.0 x + 0.45 y, with the DI 8 LU below the preamp output; breath:
      about 0.5 x + 0.4 y). Here: half the input, scaled to the target's integrated loudness,
      plus half the target.
    * ``"gain"`` (mastering, ``_x_mid_peak``): the input alone with a gain (a fit within the MP3
      coding noise), 1.1 to 4.5 dB, 10 to 45 % of the way to the target's loudness. Here: the
      input moved :data:`MID_ANCHOR_SHARE` of the way to the target's integrated loudness.

    Shape:
        input, target: ``(C, T)``; returns ``(C, T)`` float32.
    """
    gap = loudness_lufs(target, sample_rate) - loudness_lufs(input, sample_rate)
    if not np.isfinite(gap):
        raise FxError("mid anchor: the input or the target excerpt is silent (below the -70 LUFS gate)")
    if kind == "mix":
        return (0.5 * input * 10 ** (gap / 20) + 0.5 * target).astype(np.float32)
    if kind == "gain":
        return (input * 10 ** (MID_ANCHOR_SHARE * gap / 20)).astype(np.float32)
    raise FxError(f"unknown mid anchor kind {kind!r}; choose 'mix' or 'gain'")


def paper_examples_folder(task: str) -> Path | None:
    """The local folder holding the paper's examples of ``task``: the downloaded copy
    (``fxlib data paper-examples download``) or the shared development copy; None when neither does."""
    for folder in (resolve(PAPER_EXAMPLES), resolve(SHARED_PAPER_EXAMPLES)):
        if folder.is_dir() and examples(folder, [task]):
            return folder
    return None


def _score(measure: str, test: np.ndarray, reference: np.ndarray, rate: int, input: np.ndarray) -> float:
    return float(MEASURES[measure](test, reference, rate, input))


def _medians(scores: Mapping[str, Mapping[str, float | None]], conditions: Sequence[str]) -> dict[str, float | None]:
    out = {}
    for c in conditions:
        values = [row[c] for row in scores.values() if row.get(c) is not None]
        out[c] = float(np.median(values)) if values else None
    return out


def on_paper_inputs(run: RunDir, loaded: Sequence[LoadedExample], measures: Sequence[str],
                    validated: Sequence[str], progress: bool = False) -> dict[str, Any]:
    """The paper's inputs through fxlib's systems, scored beside the paper's (see the module docstring).

    Args:
        run: a trained run of the task; loaded: its paper examples at the run's sample rate.
        measures: the panel to score with; validated: those that passed on this task.

    Returns:
        ``{"conditions", "scores": {measure: {example: {condition: value}}}, "medians",
        "gap": {measure: fxlib's deepafx median - the paper's}, "dev_fit": facts, "seconds"}``;
        conditions: the paper's (``paper-deepafx`` and its other system renamed apart from ours),
        ``deepafx`` (fxlib's model) and ``chain-dev-fixed``.
    """
    start = time.perf_counter()
    model = run.model()
    rate = int(model.sample_rate)
    pairs = [(e.audio["input"], e.audio["target"]) for e in loaded]
    unit, facts = fit_fixed_vector(model.chain_spec, run.profile, pairs, pairs, run.record.seed,
                                   steps=DEV_FIT_STEPS, progress=progress)
    renamed = {"deepafx": "paper-deepafx", "cafx": "paper-cafx", "online_service": "paper-online-service",
               "mid_anchor": "mid-anchor", "target": "reference"}
    scores: dict[str, dict[str, dict[str, float | None]]] = {m: {} for m in measures}
    conditions: list[str] = []
    for e in loaded:
        x, reference = e.audio["input"], e.audio["target"]
        outputs = {renamed.get(c, c): a for c, a in e.audio.items()}
        outputs["deepafx"] = model.process(x)[0]
        outputs["chain-dev-fixed"] = render_curve(model.chain_spec, x, unit, model.frame)
        conditions = list(dict.fromkeys(conditions + list(outputs)))
        for m in measures:
            scores[m][str(e.id)] = {c: None if (c == "reference" and MEASURES[m].intrusive)
                                    else _score(m, a, reference, rate, x) for c, a in outputs.items()}
    medians = {m: _medians(table, conditions) for m, table in scores.items()}
    gap = {m: medians[m]["deepafx"] - medians[m]["paper-deepafx"] for m in validated}
    return {"conditions": conditions, "sample_rate": rate, "examples": [str(e.id) for e in loaded],
            "scores": scores, "medians": medians, "gap": gap,
            "dev_fit": {"steps": DEV_FIT_STEPS, "valid_loss": facts["valid_loss"], "native": facts["native"]},
            "seconds": round(time.perf_counter() - start, 1)}


def paired_tests(scores: Mapping[str, Mapping[str, float | None]], against: str,
                 higher_is_better: bool) -> list[dict[str, Any]]:
    """Paired t-tests of ``against`` with every other condition over the excerpts, Bonferroni-corrected.

    Args:
        scores: ``{excerpt: {condition: value}}`` (None: not scored, such as an intrusive measure's
            reference); against: the condition every other is tested against.

    Returns:
        ``[{"condition", "n", "mean_difference" (condition minus against, in the measure's unit),
        "better" (whether the condition scores better than ``against`` on average), "t", "p",
        "p_bonferroni"}, ...]``; a condition with fewer than 2 paired values gets NaN statistics.
    """
    from scipy.stats import ttest_rel

    conditions = sorted({c for row in scores.values() for c, v in row.items() if v is not None} - {against})
    tests = []
    for c in conditions:
        pairs = [(row[c], row[against]) for row in scores.values()
                 if row.get(c) is not None and row.get(against) is not None]
        a, b = (np.array(v, np.float64) for v in zip(*pairs)) if pairs else (np.array([]), np.array([]))
        if len(a) >= 2 and np.ptp(a - b) > 0:
            t, p = (float(v) for v in ttest_rel(a, b))
        else:
            t, p = float("nan"), float("nan")
        difference = float(np.mean(a - b)) if len(a) else float("nan")
        tests.append({"condition": c, "n": len(a), "mean_difference": difference,
                      "better": bool(difference > 0) == higher_is_better if np.isfinite(difference) else None,
                      "t": t, "p": p})
    for test in tests:
        test["p_bonferroni"] = min(1.0, test["p"] * len(tests)) if np.isfinite(test["p"]) else float("nan")
    return tests


def virtual_listening(run: RunDir, measures: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """The paper's listening-test protocol on the run's offline test split, scored by ``measures``.

    Returns:
        ``{"protocol", "excerpts": [{"pair", "start_s"}], "conditions", "measures": {name:
        {"higher_is_better", "scores": {excerpt: {condition: value}}, "medians", "order" (best
        first), "tests" (:func:`paired_tests` against deepafx)}}, "seconds"}``.
    """
    start_time = time.perf_counter()
    task = run.task
    dataset = run.dataset("test")
    rate = dataset.sample_rate
    systems = run.systems()
    standard = {"input", "chain-default", "chain-best-fixed", "deepafx", "deepafx-hop"}
    chosen = {name: s for name, s in systems.items() if name == "deepafx" or name not in standard}
    length, preroll = round(EXCERPT_SECONDS * rate), round(PREROLL_SECONDS * rate)
    picks = draw_excerpts(dataset.targets, dataset.ids, EXCERPTS, length, rate, seed)
    rendered = []
    for i, start in picks:
        x = dataset.inputs[i][:, start:start + length]
        reference = dataset.targets[i][:, start:start + length]
        audio = {"reference": reference, "mid-anchor": mid_anchor(task.mid_anchor, x, reference, rate), "input": x,
                 **render_excerpt(chosen, dataset.inputs[i], start, length, preroll)}
        rendered.append((f"{dataset.ids[i]}@{start / rate:.2f}", x, reference, audio))
    conditions = list(rendered[0][3])
    results = {}
    for m in measures:
        measure = MEASURES[m]
        scores = {key: {c: None if (c == "reference" and measure.intrusive) else _score(m, a, reference, rate, x)
                        for c, a in audio.items()} for key, x, reference, audio in rendered}
        medians = _medians(scores, conditions)
        ranked = sorted((c for c in conditions if medians[c] is not None),
                        key=lambda c: -medians[c] if measure.higher_is_better else medians[c])
        results[m] = {"higher_is_better": measure.higher_is_better, "unit": measure.unit, "scores": scores,
                      "medians": medians, "order": ranked,
                      "tests": paired_tests(scores, "deepafx", measure.higher_is_better)}
    return {"protocol": {"excerpts": EXCERPTS, "seconds": EXCERPT_SECONDS, "preroll_seconds": PREROLL_SECONDS,
                         "seed": seed, "mid_anchor": task.mid_anchor, "split": "test"},
            "excerpts": [{"pair": dataset.ids[i], "start_s": round(start / rate, 3)} for i, start in picks],
            "conditions": conditions, "measures": results, "seconds": round(time.perf_counter() - start_time, 1)}


def transfer(before: RunDir | str, after: RunDir | str, results_dir: str | Path,
             command: str | None = None) -> dict[str, Any]:
    """Score two runs of one task on the paper's inputs and add it to ``<results_dir>/<task>.json``
    under ``paper_comparison["transfer"]`` (written atomically), with the command that made it
    (default: this process's, see :func:`fxlib.evaluate.provenance`), its time and machine.

    Returns:
        ``{"command", "created", "machine",
        "runs": {"before", "after": {"run", "data", "generator", "commit"}}, "measures",
        "medians": {measure: {"input", "paper-deepafx", "before", "after": median}},
        "scores": {measure: {example: {condition: value}}}}``; the reference is the paper's target.

    Raises:
        FileNotFoundError: no results file, or the paper's stimuli are not here.
        FxError: the runs are of different tasks or sample rates.
    """
    runs = {name: r if isinstance(r, RunDir) else RunDir(r) for name, r in (("before", before), ("after", after))}
    task = runs["after"].record.task
    if runs["before"].record.task != task:
        raise FxError(f"transfer: the runs are of tasks {runs['before'].record.task!r} and {task!r}")
    rate = int(runs["after"].model().sample_rate)
    if int(runs["before"].model().sample_rate) != rate:
        raise FxError("transfer: the runs' models run at different sample rates")
    path = resolve(results_dir) / f"{task}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; evaluate the run first (fxlib evaluate --run "
                                f"{runs['after'].path})")
    folder = paper_examples_folder(task)
    if folder is None:
        raise FileNotFoundError("the paper's stimuli are not here: fxlib data paper-examples download")
    loaded = [load_example(e, rate) for e in examples(folder, [task])]
    measures = list(PANELS[task])
    scores: dict[str, dict[str, dict[str, float | None]]] = {m: {} for m in measures}
    for e in loaded:
        x, reference = e.audio["input"], e.audio["target"]
        outputs = {"input": x, "paper-deepafx": e.audio["deepafx"],
                   **{name: r.model().process(x)[0] for name, r in runs.items()}}
        for m in measures:
            scores[m][str(e.id)] = {c: _score(m, a, reference, rate, x) for c, a in outputs.items()}
    conditions = ["input", "paper-deepafx", "before", "after"]
    result = {**provenance(command=command),
              "runs": {name: {"run": str(r.path.name), "data": r.record.data_root, "commit": r.record.commit,
                              "generator": _generator(r)} for name, r in runs.items()},
              "measures": {m: {"higher_is_better": MEASURES[m].higher_is_better} for m in measures},
              "medians": {m: _medians(table, conditions) for m, table in scores.items()}, "scores": scores}
    results = json.loads(path.read_text())
    comparison = {**results.get("paper_comparison", {}), "transfer": result}
    write_json(path, {**results, "paper_comparison": comparison})
    return result


def _generator(run: RunDir) -> str | None:
    """The offline builder version that made a run's data set (None for downloaded data)."""
    manifest = resolve(run.record.data_root) / "manifest.json"
    return json.loads(manifest.read_text()).get("params", {}).get("generator") if manifest.is_file() else None


def compare_with_paper(run: RunDir | str, results_dir: str | Path, progress: bool = False) -> dict[str, Any]:
    """Validate the listeners on the paper's stimuli, score ours on its inputs, run the virtual test,
    and add all of it to ``<results_dir>/<task>.json`` under ``paper_comparison`` (written atomically).

    Without the paper's stimuli here (``fxlib data paper-examples download``), the comparison
    says so, and there is no validated measure, so no virtual test either.

    Raises:
        FileNotFoundError: the results file does not exist (evaluate the run first).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    task = run.record.task
    path = resolve(results_dir) / f"{task}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; evaluate the run first (fxlib evaluate --run {run.path})")
    folder = paper_examples_folder(task)
    comparison: dict[str, Any] = {"paper_examples": str(folder) if folder else None}
    if folder is None:
        comparison["note"] = ("the paper's stimuli are not here (fxlib data paper-examples download): no measure "
                              "could be validated, so there is no virtual listening test")
    else:
        found = examples(folder, [task])
        validation = validate(found, task)
        passing = validation["passing"]
        log.info("%s: measures validated on the paper's stimuli: %s", task, ", ".join(passing) or "none")
        loaded = [load_example(e, int(run.model().sample_rate)) for e in found]
        comparison.update(validation=validation, passing=passing,
                          on_paper_inputs=on_paper_inputs(run, loaded, PANELS[task], passing, progress))
        if passing:
            comparison["virtual_listening"] = virtual_listening(run, passing, run.record.seed)
        else:
            comparison["note"] = (f"no measure of the panel ({', '.join(PANELS[task])}) orders the paper's own "
                                  f"{task} conditions as designed, so no measure stands in for listeners and "
                                  "there is no virtual listening test")
    kept = kept_transfer(path)  # measured apart (:func:`transfer`): kept
    if kept is not None:
        comparison["transfer"] = kept
    write_json(path, {**json.loads(path.read_text()), "paper_comparison": comparison})
    return comparison
