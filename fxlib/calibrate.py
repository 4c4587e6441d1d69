"""Calibration: what is measured on a trained run before it is evaluated, each in its own file.

* **The best fixed vector** (:func:`fit_fixed`, ``fixed.json``): the single parameter vector
  ``(P,)`` that fits the training set best, the ``chain-best-fixed`` baseline. Adam on the unit
  vector itself (no encoder), starting from the defaults, through the whole chain with the same
  windows, loss and SPSA settings as stage 2 of training, for ``fixed_steps`` steps. Every
  ``steps_per_epoch`` steps the vector is scored on the validation clips, and the best scored
  (the defaults included) is kept, as early stopping keeps the model's best epoch.
* **Level trims** (:func:`level_trim`, ``trim.json``), only for a profile with ``level_trim``:
  the gain after the chain, in dB, that makes a system's outputs as loud as the targets on
  average over the training split, measured for the model and for the fixed vector alike.

Each is computed once: :func:`calibrate` skips what the run folder already holds, so a rerun of
``fxlib train`` on a finished run goes straight to evaluation. Training never rewrites its own
files afterwards; :class:`~fxlib.rundir.RunDir` applies these when it builds the systems.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .chain import FxChain
from .data.audio import DataError
from .data.paired import PairedDataset
from .layer import BlackBoxFx
from .losses import get_loss
from .metrics import loudness_lufs
from .model import render_curve
from .rundir import RunDir
from .tasks import Profile
from .train import StreamTargets, progress_bar, render_loss, render_workers, stream_batches, validation_loss

log = logging.getLogger(__name__)


def level_trim(system: Callable[[np.ndarray], np.ndarray], dataset: PairedDataset) -> float:
    """The gain, in dB, that brings a system's mean loudness difference from the targets to 0.

    ``-mean_i (L(system(x_i)) - L(y_i))`` over the files of ``dataset``, ``L`` the integrated
    loudness (BS.1770) of the whole file in LUFS. A gain of ``g`` dB after the system moves each
    ``L`` by ``g`` LU (blocks that cross the -70 LUFS gate aside), so the trimmed system is neither
    louder nor quieter than the targets on average over these files.

    Args:
        system: ``f(x (C, T)) -> y (C, T)`` at the dataset's sample rate.

    Raises:
        DataError: when a file's output or target is silent (below the -70 LUFS gate): it has
            no level to match.
    """
    differences = []
    for (x, target), pair in zip(dataset, dataset.pairs):
        out_lufs, target_lufs = loudness_lufs(system(x), dataset.sample_rate), loudness_lufs(target, dataset.sample_rate)
        if not np.isfinite(out_lufs - target_lufs):
            raise DataError(f"level trim: pair {pair.id!r} has a silent {'output' if np.isfinite(target_lufs) else 'target'}"
                            f" (below the -70 LUFS gate), so no level to match")
        differences.append(out_lufs - target_lufs)
    if not differences:
        raise DataError(f"level trim: {dataset!r} holds no files")
    return -float(np.mean(differences))


def fit_fixed(run: RunDir, progress: bool = False) -> tuple[np.ndarray, dict]:
    """The single parameter vector that fits the run's training set best (see the module docstring).

    Returns:
        ``(unit (P,) in [0, 1], facts)``: the facts (native values, steps, validation losses)
        are stored beside the vector in ``fixed.json``.
    """
    return fit_fixed_vector(run.record.model["chain_spec"], run.profile, run.dataset("train"), run.dataset("valid"),
                            run.record.seed, progress=progress)


def fit_fixed_vector(chain_spec: dict, profile: Profile, train_set: Any, valid_set: Any, seed: int,
                     steps: int | None = None, progress: bool = False) -> tuple[np.ndarray, dict]:
    """The single parameter vector of ``chain_spec`` that fits ``train_set`` best, scored on ``valid_set``.

    Args:
        chain_spec: the chain; profile: the windows, loss, SPSA and Adam settings (stage 2's,
            with ``fixed_lr``), and ``fixed_steps`` unless ``steps`` is given.
        train_set, valid_set: paired data sets, or anything with ``len`` and ``[i] -> (input
            (C, T), target (C, T))`` (such as a list of pairs).
        seed: seeds the windows and the perturbations.

    Returns:
        ``(unit (P,) in [0, 1], facts)``: native values, steps, validation losses.
    """
    p = profile
    steps = p.fixed_steps if steps is None else steps
    loss_fn = get_loss(p.loss, int(chain_spec["sample_rate"]), **p.loss_options)
    with FxChain.from_spec(chain_spec) as chain:
        u = nn.Parameter(torch.tensor(chain.default_unit(), dtype=torch.float32))
    k = len(chain_spec["effects"])

    def score(unit: torch.Tensor) -> float:
        return validation_loss(chain_spec, k, valid_set, p, seed + 12345, loss_fn,
                               lambda ctx: unit.expand(len(ctx), -1))

    opt = torch.optim.Adam([u], lr=p.fixed_lr)
    best_unit, best = u.detach().clone(), score(u.detach())
    scores = [best]
    with BlackBoxFx(chain_spec, workers=render_workers(p), mode=p.mode, epsilon=p.epsilon, draws=p.draws,
                    seed=seed + 999) as fx:
        targets = StreamTargets(fx.latency, p.frame) if p.mode == "stream" else None
        batches = stream_batches(train_set, p, seed + 999)
        bar = progress_bar(progress, "best fixed parameters", steps)
        for step in range(steps):
            loss = render_loss(fx, next(batches), u.clamp(0, 1).expand(p.batch_size, -1), targets, loss_fn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                u.clamp_(0, 1)
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                bar.update()
            if (step + 1) % p.steps_per_epoch == 0 or step + 1 == steps:
                scores.append(score(u.detach()))
                if scores[-1] < best:
                    best, best_unit = scores[-1], u.detach().clone()
        if bar is not None:
            bar.close()
        unit = best_unit.double().numpy()
        native = {name: (v if isinstance(v, str) else float(v)) for name, v in fx.chain.to_native(unit).items()}
    return unit, {"native": native, "steps": steps, "valid_loss": best, "valid_losses": scores}


def calibrate(run: RunDir, progress: bool = False) -> None:
    """Fit the run's best fixed vector and, for a profile with ``level_trim``, measure the output
    gains of the model and of the fixed vector; each only when the run folder lacks it.

    A refitted fixed vector (its ``fixed.json`` deleted) gets its gain measured again.
    """
    refit = run.fixed_unit() is None
    if refit:
        unit, facts = fit_fixed(run, progress)
        run.save_fixed(unit, **facts)
    if not run.profile.level_trim:
        return
    trims = run.trims()
    missing = [name for name in ("deepafx", "chain-best-fixed") if name not in trims or (refit and name != "deepafx")]
    if not missing:
        return
    train_set = run.dataset("train")
    model, unit = run.model(calibrated=False), run.fixed_unit()
    systems = {"deepafx": lambda x: model.process(x)[0],
               "chain-best-fixed": lambda x: render_curve(model.chain_spec, x, unit, model.frame)}
    for name in missing:
        trims[name] = level_trim(systems[name], train_set)
        log.info("level trim of %s: %+.2f dB (training split)", name, trims[name])
    run.save_trims(trims, split="train", files=len(train_set))
