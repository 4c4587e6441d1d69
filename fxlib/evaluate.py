"""Evaluation: a trained model against the baselines on the test split, written as a table.

Systems (each processes every whole test file):

* ``input``: the unprocessed input;
* ``chain-default``: the chain at its default parameters;
* ``chain-best-fixed``: the chain at the single parameter vector that fits the training set
  best (no encoder), fitted by :meth:`fxlib.train.Trainer.fit_fixed`;
* ``deepafx``: the model, with time-varying parameters (one vector per hop).

Metrics: the training loss and those of :mod:`fxlib.metrics`, averaged over the test files.
The results go to ``<name>.json`` (with the command, the profile and the chain) and a
markdown table ``<name>.md``, both written atomically.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .atomic import write_json, write_text
from .data.paired import PairedDataset
from .losses import get_loss
from .metrics import compute_all
from .model import DeepAFx, render_curve

LOWER_IS_BETTER = "every metric: lower is better"


def evaluate_systems(systems: Mapping[str, Callable[[np.ndarray], np.ndarray]], dataset: PairedDataset,
                     loss_name: str = "spectral") -> dict[str, dict[str, float]]:
    """Average metrics of each system over the files of ``dataset``.

    Args:
        systems: ``{name: f(input (C, T)) -> output (C, T)}``.
        dataset: the test split.

    Returns:
        ``{system: {metric: mean value}}``, including ``loss`` (the training loss).
    """
    loss_fn = get_loss(loss_name)
    results: dict[str, dict[str, float]] = {}
    for name, system in systems.items():
        rows = []
        for x, target in dataset:
            y = system(x)
            row = compute_all(y, target, dataset.sample_rate)
            with torch.no_grad():
                row["loss"] = float(loss_fn(torch.from_numpy(y)[None], torch.from_numpy(target)[None]))
            rows.append(row)
        results[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return results


def standard_systems(model: DeepAFx, fixed_unit: np.ndarray | None) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The task-independent systems: input, chain at defaults, chain at best fixed, the model."""
    spec, frame = model.chain_spec, model.frame
    default = model.default_unit.double().numpy()
    systems: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "input": lambda x: x,
        "chain-default": lambda x: render_curve(spec, x, default, frame),
    }
    if fixed_unit is not None:
        systems["chain-best-fixed"] = lambda x: render_curve(spec, x, fixed_unit, frame)
    systems["deepafx"] = lambda x: model.process(x)[0]
    return systems


def markdown_table(results: Mapping[str, Mapping[str, float]], title: str, notes: str = "") -> str:
    """A markdown table: one row per system, one column per metric, the best of each in bold."""
    metrics = list(next(iter(results.values())))
    best = {m: min(r[m] if m != "loudness_difference_lufs" else abs(r[m]) for r in results.values())
            for m in metrics}
    lines = [f"# {title}", "", notes, "", "| system | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for system, row in results.items():
        cells = []
        for m in metrics:
            v = row[m]
            key = abs(v) if m == "loudness_difference_lufs" else v
            cells.append(f"**{v:.4g}**" if np.isclose(key, best[m]) else f"{v:.4g}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: Mapping[str, Any], json_path: Path, md: str) -> None:
    """Write the JSON and the markdown table atomically, side by side."""
    write_json(json_path, results)
    write_text(json_path.with_suffix(".md"), md)


def provenance(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The command, time and machine of this run, for results files."""
    program = Path(sys.argv[0]).name
    program = "fxlib" if program in ("fxlib", "cli.py") else program  # `python -m fxlib.cli` is fxlib too
    return {"command": " ".join([program] + sys.argv[1:]),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "torch": torch.__version__,
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            **(extra or {})}


def evaluate_run(run_dir: str | os.PathLike, results_dir: str | os.PathLike = "paper/results",
                 name: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a finished training run (``best.pt``, ``fixed.json``) on its test split.

    Writes ``<results_dir>/<task>.json`` and ``.md`` (or ``<name>.json``) and returns the
    results; ``extra`` facts (such as the wall time of the whole command) go into the JSON.
    """
    run_dir = Path(run_dir)
    best = run_dir / "best.pt"
    if not best.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (best.pt); train first with `fxlib train`")
    state = torch.load(best, map_location="cpu", weights_only=False)
    run = state["run"]
    model = DeepAFx.from_checkpoint(best)
    fixed_path = run_dir / "fixed.json"
    fixed = np.array(json.loads(fixed_path.read_text())["unit"]) if fixed_path.exists() else None
    test = PairedDataset(run["data_root"], "test", int(model.sample_rate), model.channels)
    results = evaluate_systems(standard_systems(model, fixed), test, run["profile"]["loss"])
    out = provenance({"task": run["task"], "profile": state.get("profile"), "chain": run["chain"],
                      "seed": run["seed"], "data": {"root": run["data_root"], "test_files": len(test),
                                                    "test_seconds": round(test.seconds, 2),
                                                    "source": test.manifest.source},
                      "profile_settings": run["profile"], "note": LOWER_IS_BETTER, **(extra or {}),
                      "systems": results})
    title = f"{run['task']}: test split, profile {state.get('profile')}, chain {run['chain']}"
    notes = (f"{len(test)} test files ({test.seconds:.0f} s). Generated by `{out['command']}` on "
             f"{out['created']}. {LOWER_IS_BETTER} (loudness difference: closer to 0). `loss` is the "
             f"training loss ({run['profile']['loss']}); `mfcc_cosine` pairs per-frame MFCC vectors (the "
             f"paper's text), `mfcc_cosine_trajectory` pairs coefficient trajectories (the authors' code).")
    write_results(out, Path(results_dir) / f"{name or run['task']}.json", markdown_table(results, title, notes))
    return out
