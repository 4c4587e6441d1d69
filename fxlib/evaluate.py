"""Evaluation: a trained model against the baselines on the test split, written as a table.

Systems (each processes every whole test file):

* ``input``: the unprocessed input;
* ``chain-default``: the chain at its default parameters;
* ``chain-best-fixed``: the chain at the single parameter vector that fits the training set
  best (no encoder, :func:`fxlib.calibrate.fit_fixed`), then its level trim, if any;
* ``deepafx``: the model, with time-varying parameters (one vector per hop) or, for a model
  that sets the chain once per file (``inference="song"``, :data:`fxlib.framing.INFERENCE`),
  the mean of those vectors; such a model also gets the row ``deepafx-hop``, hop by hop; both
  rows with the model's level trim, if any (:mod:`fxlib.calibrate`);
* the task's own baselines (:attr:`fxlib.tasks.Task.baselines`), such as a classic gate.

The run folder builds them (:meth:`fxlib.rundir.RunDir.systems`). Metrics: the training loss,
those of :mod:`fxlib.metrics` and the task's own (:attr:`fxlib.tasks.Task.metrics`), averaged
over the test files. Which way each metric is better is decided in one place
(:func:`badness`). The results go to ``<task>.json`` (with the command, the profile and the
chain) and a markdown table ``<task>.md``, both written atomically; a before/after record already
in ``<task>.json`` is kept (:func:`kept_transfer`).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import numpy as np
import torch

from .atomic import write_json, write_text
from .data.paired import PairedDataset
from .errors import FxError
from .losses import get_loss
from .metrics import compute_all
from .paths import portable, resolve, run_outputs
from .rundir import RunDir
from .tasks import System

#: Metrics whose best value is 0 whatever the sign (signed differences).
CLOSER_TO_ZERO = ("loudness_difference_lufs", "speech_gain_db")


def badness(metric: str, value: float, higher: Collection[str] = ()) -> float:
    """A number that is smaller for better values of ``metric``: the one rule of which way is better.

    Lower is better, except for the metrics in ``higher`` (a task's
    :attr:`~fxlib.tasks.Task.higher_is_better`) and those in :data:`CLOSER_TO_ZERO`.
    """
    return -value if metric in higher else abs(value) if metric in CLOSER_TO_ZERO else value


def direction_note(higher: Collection[str] = ()) -> str:
    """One sentence saying which way each metric is better (as :func:`badness` decides)."""
    up = f"; higher is better for {', '.join(higher)}" if higher else ""
    return f"lower is better (loudness difference and speech gain: closer to 0){up}"


def evaluate_systems(systems: Mapping[str, System], dataset: PairedDataset, loss_name: str = "spectral",
                     metrics: Callable[..., dict[str, float]] | None = None,
                     loss_options: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Average metrics of each system over the files of ``dataset``.

    Args:
        systems: ``{name: f(input (C, T)) -> output (C, T)}``.
        dataset: the test split.
        loss_name: the training loss, reported as ``loss``; loss_options: its options.
        metrics: the task's own metrics, ``f(output, target, input, pair, sample_rate) -> {name: value}``.

    Returns:
        ``{system: {metric: mean value}}``, including ``loss`` (the training loss).
    """
    loss_fn = get_loss(loss_name, dataset.sample_rate, **(loss_options or {}))
    results: dict[str, dict[str, float]] = {}
    for name, system in systems.items():
        rows = []
        for (x, target), pair in zip(dataset, dataset.pairs):
            y = system(x)
            if y.shape != target.shape:
                raise ValueError(f"system {name!r} returned shape {y.shape} for pair {pair.id!r}; "
                                 f"expected the target's {target.shape}")
            try:
                row = compute_all(y, target, dataset.sample_rate)
                if metrics is not None:
                    row.update(metrics(y, target, x, pair, dataset.sample_rate))
            except FxError as e:
                raise type(e)(f"system {name!r} on test pair {pair.id!r}: {e}") from e
            with torch.no_grad():
                row["loss"] = float(loss_fn(torch.from_numpy(y)[None], torch.from_numpy(target)[None]))
            rows.append(row)
        results[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return results


def markdown_table(results: Mapping[str, Mapping[str, float]], title: str, notes: str = "",
                   higher: Collection[str] = ()) -> str:
    """A markdown table: one row per system, one column per metric, the best of each in bold.

    Which way is better: :func:`badness`.
    """
    metrics = list(next(iter(results.values())))
    best = {m: min(badness(m, r[m], higher) for r in results.values()) for m in metrics}
    lines = [f"# {title}", "", notes, "", "| system | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for system, row in results.items():
        cells = []
        for m in metrics:
            v = row[m]
            cells.append(f"**{v:.4g}**" if np.isclose(badness(m, v, higher), best[m]) else f"{v:.4g}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: Mapping[str, Any], json_path: Path, md: str) -> None:
    """Write the JSON and the markdown table atomically, side by side."""
    write_json(json_path, results)
    write_text(json_path.with_suffix(".md"), md)


def provenance(extra: Mapping[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """The command, time and machine of this run, for results files.

    ``command`` replaces the one read from ``sys.argv`` (inside a notebook kernel that would
    name the kernel launcher, not what the user ran).
    """
    if command is None:
        program = Path(sys.argv[0]).name
        program = "fxlib" if program in ("fxlib", "cli.py") else program  # `python -m fxlib.cli` is fxlib too
        command = " ".join([program] + sys.argv[1:])
    return {"command": command,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "avx512": _has_avx512(), "torch": torch.__version__,
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            **(extra or {})}


def _has_avx512() -> bool:
    """Whether numpy uses AVX-512 code here (its SIMD functions round differently with it)."""
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("AVX512F"))


def evaluate_run(run: RunDir | str | os.PathLike, results_dir: str | os.PathLike | None = None,
                 extra: Mapping[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """Evaluate a trained and calibrated run on its test split (:meth:`~fxlib.rundir.RunDir.systems`).

    Writes ``<results_dir>/<task>.json`` and ``.md`` (default: the run's own ``results/``,
    :func:`fxlib.paths.run_outputs`) and returns the results; ``extra`` facts (such as the wall
    time of the whole command) go into the JSON; ``command`` is the command recorded (default:
    this process's, see :func:`provenance`).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    record, task = run.record, run.task
    test = run.dataset("test")
    profile = run.profile
    results = evaluate_systems(run.systems(), test, profile.loss, task.metrics, profile.loss_options)
    note = direction_note(task.higher_is_better)
    out = provenance({"task": record.task, "profile": record.profile, "chain": record.chain,
                      "seed": record.seed, "run": {"folder": portable(run.path), "commit": record.commit},
                      "data": {"root": record.data_root, "test_files": len(test),
                               "test_seconds": round(test.seconds, 2), "source": test.manifest.source},
                      "profile_settings": record.settings, "note": note, **(extra or {}),
                      "systems": results}, command)
    title = f"{record.task}: test split, profile {record.profile}, chain {record.chain}"
    notes = (f"{len(test)} test files ({test.seconds:.0f} s). Generated by `{out['command']}` on "
             f"{out['created']}. Every metric: {note}. `loss` is the "
             f"training loss ({profile.loss}); `mfcc_cosine` pairs per-frame MFCC vectors (the "
             f"paper's text), `mfcc_cosine_trajectory` pairs coefficient trajectories (the authors' code).")
    table = markdown_table(results, title, notes, task.higher_is_better)
    folder = resolve(results_dir) if results_dir else run_outputs(run.path).results
    path = folder / f"{record.task}.json"
    transfer = kept_transfer(path)
    if transfer is not None:
        out["paper_comparison"] = {"transfer": transfer}
    write_results(out, path, table)
    return out


def kept_transfer(path: Path) -> dict[str, Any] | None:
    """The before/after record (:func:`fxlib.comparisons.transfer`) of the results file at ``path``.

    That record scores two named runs, each with its commit, on the paper's inputs. It is measured
    apart from the run that makes the table, so rewriting the table keeps it. None when
    ``path`` does not exist or holds none.

    Raises:
        FxError: ``path`` exists but is not a JSON object (the record it may hold would be lost).
    """
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FxError(f"{path} is not valid JSON ({e}); move it aside to write new results there") from e
    if not isinstance(results, dict):
        raise FxError(f"{path} does not hold a JSON object; move it aside to write new results there")
    return (results.get("paper_comparison") or {}).get("transfer")
