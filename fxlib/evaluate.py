"""Evaluation: a trained model against the baselines on the test split, written as a table.

Systems (each processes every whole test file):

* ``input``: the unprocessed input;
* ``chain-default``: the chain at its default parameters;
* ``chain-best-fixed``: the chain at the single parameter vector that fits the training set
  best (no encoder), fitted by :meth:`fxlib.train.Trainer.fit_fixed`, then its level trim;
* ``deepafx``: the model, with time-varying parameters (one vector per hop) or, for a model
  that sets the chain once per file (``inference="song"``, :data:`fxlib.model.INFERENCE`),
  the mean of those vectors; such a model also gets the row ``deepafx-hop``, hop by hop; both
  rows with the model's level trim (:attr:`fxlib.model.DeepAFx.trim_db`);
* the task's own baselines (:attr:`fxlib.tasks.Task.baselines`), such as a classic gate.

Metrics: the training loss, those of :mod:`fxlib.metrics` and the task's own
(:attr:`fxlib.tasks.Task.metrics`), averaged over the test files.
The results go to ``<name>.json`` (with the command, the profile and the chain) and a
markdown table ``<name>.md``, both written atomically.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import numpy as np
import torch

from .atomic import write_json, write_text
from .data.paired import PairedDataset
from .errors import FxError, SpecError
from .losses import get_loss
from .metrics import compute_all
from .model import DeepAFx, render_curve
from .tasks import System, get_task

CLOSER_TO_ZERO = ("loudness_difference_lufs", "speech_gain_db")


def direction_note(higher: Collection[str] = ()) -> str:
    """One sentence saying which way each metric is better."""
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


@dataclass(frozen=True)
class FixedSetting:
    """The best fixed baseline of a run (``<run>/fixed.json``, :meth:`fxlib.train.Trainer.fit_fixed`).

    Attributes:
        unit: ``(P,)`` the parameter vector in [0, 1].
        trim_db: its level trim, a gain after the chain in dB (0 when the profile measures none).
    """

    unit: np.ndarray
    trim_db: float = 0.0

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "FixedSetting | None":
        """The run's fixed setting, or None when it has no ``fixed.json`` (one written without a
        trim is untrimmed)."""
        path = Path(run_dir) / "fixed.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SpecError(f"{path} is not valid JSON ({e}); delete it to fit the baseline again") from e
        if not isinstance(data, dict) or "unit" not in data:
            raise SpecError(f"{path} holds no parameter vector (key 'unit'); delete it to fit the baseline again")
        return cls(np.array(data["unit"], dtype=np.float64), float(data.get("trim_db", 0.0)))

    def render(self, model: DeepAFx, audio: np.ndarray) -> np.ndarray:
        """``audio (C, T)`` through ``model``'s chain at this setting, then the trim: ``(C, T)``."""
        return render_curve(model.chain_spec, audio, self.unit, model.frame, self.trim_db)


def standard_systems(model: DeepAFx, fixed: FixedSetting | None) -> dict[str, System]:
    """The task-independent systems: input, chain at defaults, chain at best fixed, the model (and
    ``deepafx-hop``, the model hop by hop, when it sets the chain once per file)."""
    default = model.default_unit.double().numpy()
    systems: dict[str, System] = {
        "input": lambda x: x,
        "chain-default": lambda x: render_curve(model.chain_spec, x, default, model.frame),
    }
    if fixed is not None:
        systems["chain-best-fixed"] = lambda x: fixed.render(model, x)
    systems["deepafx"] = lambda x: model.process(x)[0]
    if model.inference == "song":
        systems["deepafx-hop"] = lambda x: model.render(x, model.predict(x))
    return systems


def markdown_table(results: Mapping[str, Mapping[str, float]], title: str, notes: str = "",
                   higher: Collection[str] = ()) -> str:
    """A markdown table: one row per system, one column per metric, the best of each in bold.

    Lower is better except for the metrics in ``higher`` and :data:`CLOSER_TO_ZERO`.
    """
    metrics = list(next(iter(results.values())))

    def badness(metric: str, value: float) -> float:
        return -value if metric in higher else abs(value) if metric in CLOSER_TO_ZERO else value

    best = {m: min(badness(m, r[m]) for r in results.values()) for m in metrics}
    lines = [f"# {title}", "", notes, "", "| system | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for system, row in results.items():
        cells = []
        for m in metrics:
            v = row[m]
            cells.append(f"**{v:.4g}**" if np.isclose(badness(m, v), best[m]) else f"{v:.4g}")
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
                        "cpus": os.cpu_count(), "torch": torch.__version__,
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            **(extra or {})}


def evaluate_run(run_dir: str | os.PathLike, results_dir: str | os.PathLike = "paper/results",
                 name: str | None = None, extra: Mapping[str, Any] | None = None,
                 command: str | None = None) -> dict[str, Any]:
    """Evaluate a finished training run (``best.pt``, ``fixed.json``) on its test split.

    Writes ``<results_dir>/<task>.json`` and ``.md`` (or ``<name>.json``) and returns the
    results; ``extra`` facts (such as the wall time of the whole command) go into the JSON;
    ``command`` is the command recorded (default: this process's, see :func:`provenance`).
    """
    run_dir = Path(run_dir)
    best = run_dir / "best.pt"
    if not best.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (best.pt); train first with `fxlib train`")
    state = torch.load(best, map_location="cpu", weights_only=False)
    run = state["run"]
    model = DeepAFx.from_checkpoint(best)
    fixed = FixedSetting.load(run_dir)
    task = get_task(run["task"])
    rate = int(model.sample_rate)
    test = PairedDataset(run["data_root"], "test", rate, model.channels)
    systems = standard_systems(model, fixed)
    if task.baselines is not None:
        systems.update(task.baselines(Path(run["data_root"]), rate, model.channels))
    results = evaluate_systems(systems, test, run["profile"]["loss"], task.metrics,
                               run["profile"].get("loss_options"))
    note = direction_note(task.higher_is_better)
    out = provenance({"task": run["task"], "profile": state.get("profile"), "chain": run["chain"],
                      "seed": run["seed"], "data": {"root": run["data_root"], "test_files": len(test),
                                                    "test_seconds": round(test.seconds, 2),
                                                    "source": test.manifest.source},
                      "profile_settings": run["profile"], "note": note, **(extra or {}),
                      "systems": results}, command)
    title = f"{run['task']}: test split, profile {state.get('profile')}, chain {run['chain']}"
    notes = (f"{len(test)} test files ({test.seconds:.0f} s). Generated by `{out['command']}` on "
             f"{out['created']}. Every metric: {note}. `loss` is the "
             f"training loss ({run['profile']['loss']}); `mfcc_cosine` pairs per-frame MFCC vectors (the "
             f"paper's text), `mfcc_cosine_trajectory` pairs coefficient trajectories (the authors' code).")
    table = markdown_table(results, title, notes, task.higher_is_better)
    write_results(out, Path(results_dir) / f"{name or run['task']}.json", table)
    return out
