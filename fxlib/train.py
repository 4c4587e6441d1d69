"""Training: stage 1 regresses the default parameters, stage 2 trains through the effects.

Phases, in order, each with its own Adam optimiser, ReduceLROnPlateau and early stopping:

* ``stage1``: the encoder regresses the chain's default parameter vector (MSE, no effects),
  each default kept ``stage1_margin`` from the bounds (:attr:`Trainer.start_unit`);
* ``stage2-1`` .. ``stage2-N``: through the first 1..N effects of the chain (progressive
  training, one effect added at a time), the effects rendered by
  :class:`~fxlib.layer.BlackBoxFx` with SPSA gradients, the loss against the target audio,
  plus :func:`anchor_loss` holding the effects not trained yet at their defaults.

After the phases, a profile with ``level_trim`` measures the trained model's level trim on the
training split (:meth:`Trainer.trim_level`, :func:`level_trim`); the best fixed baseline gets its
own (:meth:`Trainer.fit_fixed`).

Everything a run needs to go on is in ``<out>/checkpoint.pt``, written atomically every
``checkpoint_every`` steps and at each epoch's end: model, optimiser, scheduler, phase,
epoch, step, early-stopping counters, every random generator. Started again on the same
folder, a run resumes where the checkpoint left it (streaming effect state is not saved:
the streams restart from a reset). ``<out>/best.pt`` holds the best validation model,
``<out>/log.csv`` and ``<out>/tb/`` (TensorBoard) the curves.

Distributed: under ``torchrun`` each rank trains on its own share of the files with its own
worker pool; gradients of the encoder are averaged (gloo on CPU, nccl on CUDA). Rank 0
writes checkpoints and logs. The encoder runs on CUDA when available; effects stay on CPU.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .atomic import atomic_output, write_json
from .chain import FxChain
from .data.audio import DataError
from .data.paired import PairedDataset, read_manifest
from .data.windows import RandomClips, StreamingWindows, context_lead
from .errors import FxError, SpecError
from .evaluate import FixedSetting
from .layer import BlackBoxFx
from .losses import get_loss
from .metrics import loudness_lufs
from .model import DeepAFx, curve_ranges, render_curve
from .presets import chain_spec
from .tasks import Profile, Task, get_task

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """What identifies a run; a resumed run must match it."""

    task: str
    profile: dict
    chain: str
    data_root: str
    seed: int


def select_chain(task: Task, requested: str | None = None) -> tuple[str, dict]:
    """The first of the task's preset chains that builds here (or ``requested``)."""
    reasons = []
    for name in [requested] if requested else task.chains:
        spec = chain_spec(name)
        try:
            FxChain.from_spec(spec).close()
        except FxError as e:
            reasons.append(f"{name}: {e}")
            continue
        return name, spec
    raise FxError(f"no chain of task {task.name!r} can be built here:\n  " + "\n  ".join(reasons))


def ensure_data(task: Task, root: Path, profile: Profile, seed: int) -> Path:
    """The dataset folder; built with the task's offline builder when it has no manifest.

    Raises:
        FileNotFoundError: no dataset and the profile builds none (it expects downloaded data).
        DataError: the folder holds an offline build of another size than the profile's
            ``data_seconds`` (for example a smoke-sized build where quick is asked for).
    """
    if not (root / "manifest.json").exists():
        if profile.data_seconds <= 0:
            raise FileNotFoundError(f"{root} holds no dataset (no manifest.json); download it with "
                                    f"`fxlib data {task.name} download --root {root}`")
        log.info("building the offline %s dataset in %s", task.name, root)
        task.build_data(root, profile.data_seconds, seed)
        return root
    manifest = read_manifest(root)
    seconds = sum(p.duration for p in manifest.pairs)
    if manifest.source.get("kind") == "offline" and profile.data_seconds > 0 \
            and abs(seconds - profile.data_seconds) > 0.1 * profile.data_seconds:
        raise DataError(f"{root} holds an offline {task.name} build of {seconds:.0f} s, but this profile asks for "
                        f"{profile.data_seconds:.0f} s; pass another data folder (--data) or delete {root} "
                        "to build it again")
    return root


# -- distributed helpers --------------------------------------------------------------------
def _dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world


def _init_distributed(device: torch.device) -> None:
    if dist.is_available() and _dist_info()[1] > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


class Shard:
    """Files ``rank, rank + world, ...`` of a dataset: each rank's share under torchrun."""

    def __init__(self, dataset: PairedDataset, rank: int, world: int) -> None:
        self.indices = list(range(rank, len(dataset), world))
        if not self.indices:
            raise SpecError(f"{dataset!r} has {len(dataset)} files, too few for {world} ranks")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset[self.indices[i]]


def endless(windows: StreamingWindows, skip: int = 0) -> Iterator[dict]:
    """The batches of data epochs 0, 1, 2, ... of ``windows``, the first ``skip`` left out.

    Batch ``n`` of the stream is the same however it is reached, so a resumed run skips to
    exactly where it stopped (every slot restarts from a reset there: the effect state is
    not saved).
    """
    per_epoch = len(windows)
    epoch, offset = divmod(skip, per_epoch)
    first = True
    while True:
        for i, batch in enumerate(windows.iter_epoch(epoch)):
            if first and i < offset:
                continue
            if first:
                batch["reset"] = batch["valid"].clone()
                first = False
            yield batch
        epoch += 1


def _mean_across_ranks(value: float) -> float:
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / dist.get_world_size()
    return value


# -- checkpoints and logs -------------------------------------------------------------------
def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _fx_state(fx: BlackBoxFx | None) -> dict | None:
    """What a BlackBoxFx needs to continue its perturbation sequence: generator and step."""
    return None if fx is None else {"generator": fx.generator.get_state(), "step": fx.step}


def _set_fx_state(fx: BlackBoxFx, state: dict) -> None:
    fx.generator.set_state(state["generator"])
    fx.step = state["step"]


class StreamTargets:
    """Delays target frames by the chain's latency, so they line up with a stream's output.

    A stream cannot look ahead, so its output lags the input by ``latency`` samples; the
    target of output frame n is the end of target frame n - 1 and the start of frame n.

    Args:
        latency: samples (at most ``frame``); frame: samples per frame.
    """

    def __init__(self, latency: int, frame: int) -> None:
        if latency > frame:
            raise SpecError(f"stream mode needs a chain latency ({latency}) of at most one frame ({frame}); "
                            "use mode='clip'")
        self.latency, self.previous = latency, None

    def __call__(self, target: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        """``(B, C, F)`` target frames and ``(B,)`` reset flags -> the delayed ``(B, C, F)`` targets."""
        if self.latency == 0:
            return target
        previous = torch.zeros_like(target) if self.previous is None else self.previous.clone()
        previous[reset] = 0
        self.previous = target
        return torch.cat([previous[..., target.shape[-1] - self.latency:], target[..., :-self.latency]], dim=-1)


def render_loss(fx: BlackBoxFx, batch: dict, params: torch.Tensor, targets: StreamTargets | None,
                loss_fn: nn.Module) -> torch.Tensor:
    """Render a batch's input frames through ``fx`` at ``params`` and return the loss to the targets.

    Streams whose ``reset`` flag is set start from a reset; items whose ``valid`` flag is
    False (exhausted streams) are left out of the loss.
    """
    reset = batch.get("reset")
    if reset is not None and bool(reset.any()):
        fx.reset(torch.nonzero(reset).flatten().tolist())
    out = fx(batch["input"], params.cpu()).to(params.device)
    target = batch["target"] if targets is None else targets(batch["target"], reset)
    target = target.to(params.device)
    valid = batch.get("valid")
    if valid is not None and not bool(valid.all()):
        keep = valid.to(params.device)
        return loss_fn(out[keep], target[keep])
    return loss_fn(out, target)


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


def anchor_loss(params: torch.Tensor, default: torch.Tensor, n_trained: int, weight: float) -> torch.Tensor:
    """``weight`` times the MSE of the untrained parameters ``params[:, n_trained:]`` to their defaults.

    In progressive stage 2 the encoder's outputs for the effects not in the chain yet get no
    gradient from the loss, yet the shared layers move them; this term holds them at the
    defaults they were regressed to in stage 1, so the next phase starts from there.

    Shape:
        params, default: ``(B, P)`` in [0, 1]; returns a scalar (0 when all P are trained).
    """
    if n_trained >= params.shape[1] or weight <= 0:
        return params.new_zeros(())
    return weight * nn.functional.mse_loss(params[:, n_trained:], default[:, n_trained:])


class CsvLog:
    """Append-only CSV of training rows; on resume, rows after the checkpoint are dropped."""

    FIELDS = ("phase", "epoch", "step", "global_step", "train_loss", "valid_loss", "lr", "seconds")
    """``seconds``: wall time since this (possibly resumed) process started training."""

    def __init__(self, path: Path, keep_until: int | None) -> None:
        self.path = path
        rows = []
        if keep_until is not None and path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["global_step"]) <= keep_until]
        with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, **row: Any) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow(row)


# -- the trainer ----------------------------------------------------------------------------
class Trainer:
    """Runs the phases of one task and profile into ``out_dir``.

    Args:
        task: a task name ("amp", ...); profile: a profile name or a :class:`Profile`.
        out_dir: run folder (checkpoints, logs); data_root: dataset folder (built if absent).
        chain: a preset name to use instead of the task's first buildable one.
        seed: seeds every generator (data order, perturbations, initialisation).
        device: "cpu", "cuda" or None (CUDA when available).
        checkpoint_every: steps between mid-epoch checkpoints.
    """

    def __init__(self, task: str, profile: str | Profile, out_dir: str | os.PathLike,
                 data_root: str | os.PathLike | None = None, chain: str | None = None, seed: int = 0,
                 device: str | None = None, checkpoint_every: int = 25, progress: bool = True) -> None:
        self.task = get_task(task)
        self.profile_name = profile if isinstance(profile, str) else "custom"
        self.profile = self.task.profile(profile) if isinstance(profile, str) else profile
        self.out = Path(out_dir)
        self.data_root = Path(data_root) if data_root else Path("data") / self.task.name
        self.seed = seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.rank, self.world = _dist_info()
        _init_distributed(self.device)
        self.chain_name, self.spec = select_chain(self.task, chain)
        self.run = RunConfig(self.task.name, asdict(self.profile), self.chain_name, str(self.data_root), seed)
        if self.rank == 0:
            ensure_data(self.task, self.data_root, self.profile, seed)
        self._barrier()
        self.train_set = PairedDataset(self.data_root, "train", self.task.sample_rate, self.task.channels)
        self.valid_set = PairedDataset(self.data_root, "valid", self.task.sample_rate, self.task.channels)
        torch.manual_seed(seed)
        with FxChain.from_spec(self.spec) as chain:
            curves = curve_ranges(chain.names, self.profile.curves)
        encoder_config = {"backbone": self.profile.backbone, "pooling": self.profile.pooling, "curves": curves,
                          "sample_rate": self.task.sample_rate}
        self.model = DeepAFx(self.spec, encoder_config, self.profile.context, self.profile.frame,
                             self.profile.inference).to(self.device)
        margin = self.profile.stage1_margin
        #: ``(P,)``: what stage 1 regresses and the anchor holds: the defaults, at least ``stage1_margin``
        #: from 0 and 1, so that no sigmoid output starts saturated (see :class:`~fxlib.tasks.Profile`).
        self.start_unit = self.model.default_unit.clamp(margin, 1 - margin)
        self.loss_fn = get_loss(self.profile.loss, self.task.sample_rate, **self.profile.loss_options)
        self.phases = ["stage1"] + [f"stage2-{k}" for k in range(1, len(self.model.effect_sizes) + 1)]

    # -- helpers ---------------------------------------------------------------------------
    def _barrier(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()

    def _wrapped(self) -> nn.Module:
        if self.world > 1:
            return nn.parallel.DistributedDataParallel(self.model)
        return self.model

    def _sub_spec(self, k: int) -> dict:
        return {**self.spec, "effects": self.spec["effects"][:k]}

    def _shard(self, dataset: PairedDataset) -> PairedDataset | Shard:
        return Shard(dataset, self.rank, self.world) if self.world > 1 else dataset

    def _stream(self, seed: int, skip: int = 0) -> Iterator[dict]:
        """This rank's endless training batches for generator ``seed``, from batch ``skip``."""
        p = self.profile
        windows = StreamingWindows(self._shard(self.train_set), p.batch_size, p.context, p.frame,
                                   seed=seed + 7919 * self.rank)
        return endless(windows, skip)

    def _state(self, phase: int, epoch: int, step: int, global_step: int, opt: torch.optim.Optimizer | None,
               sched: Any, best: float, bad: int, fx: BlackBoxFx | None, done: bool = False) -> dict:
        """A checkpoint; ``opt`` and ``sched`` None at a phase boundary (the next phase starts its own)."""
        return {"run": asdict(self.run), "model_config": self.model.config(), "encoder": self.model.encoder.state_dict(),
                "phase": phase, "epoch": epoch, "step": step, "global_step": global_step, "done": done,
                "optimizer": opt and opt.state_dict(), "scheduler": sched and sched.state_dict(),
                "best": best, "bad_epochs": bad,
                "rng": _rng_state(), "fx": _fx_state(fx),
                "chain": self.chain_name, "task": self.task.name, "profile": self.profile_name}

    def _save(self, state: dict, name: str = "checkpoint.pt") -> None:
        if self.rank == 0:
            save_atomic(state, self.out / name)

    def _load(self) -> dict | None:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("run") != asdict(self.run):
            raise SpecError(f"{path} belongs to another run ({state.get('run')}); "
                            f"use another output folder or delete it to start over")
        return state

    # -- the run ---------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train every phase (resuming from ``out_dir/checkpoint.pt`` if present); return best.pt."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        state = self._load()
        if state is not None and state["done"]:
            return self.out / "best.pt"
        if state is not None:
            self.model.encoder.load_state_dict(state["encoder"])
            _set_rng_state(state["rng"])
        csv_log = CsvLog(self.out / "log.csv", state["global_step"] if state else None) if self.rank == 0 else None
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(self.out / "tb", purge_step=state["global_step"] if state else None) if self.rank == 0 else None
        global_step = state["global_step"] if state else 0
        try:
            for index in range(state["phase"] if state else 0, len(self.phases)):
                global_step = self._phase(index, state if state and state["phase"] == index else None,
                                          global_step, csv_log, tb)
                state = None
            final = torch.load(self.out / "checkpoint.pt", map_location="cpu", weights_only=False)
            final["done"] = True
            self._save(final)
        finally:
            if tb is not None:
                tb.close()
        self._barrier()
        return self.out / "best.pt"

    def _phase(self, index: int, state: dict | None, global_step: int, csv_log: CsvLog | None, tb: Any) -> int:
        phase, p = self.phases[index], self.profile
        stage1 = phase == "stage1"
        k = 0 if stage1 else int(phase.split("-")[1])
        n_params = sum(self.model.effect_sizes[:k])
        steps, epochs = (p.stage1_steps, p.stage1_epochs) if stage1 else (p.steps_per_epoch, p.epochs)
        lr, patience = (p.stage1_lr, p.stage1_patience) if stage1 else (p.lr * p.phase_lr_factor ** (k - 1), p.patience)
        model = self._wrapped()
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=p.lr_factor, patience=p.lr_patience,
                                                           min_lr=p.min_lr)
        best, bad, epoch0, step0 = float("inf"), 0, 0, 0
        fx = None if stage1 else BlackBoxFx(self._sub_spec(k), workers=self._workers(), mode=p.mode,
                                            epsilon=p.epsilon, draws=p.draws, seed=self.seed + index)
        try:
            if state is not None and state["optimizer"] is not None:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                best, bad, epoch0, step0 = state["best"], state["bad_epochs"], state["epoch"], state["step"]
                if fx is not None and state["fx"] is not None:
                    _set_fx_state(fx, state["fx"])
            batches = self._stream(self.seed + 1000 * index, epoch0 * steps + step0)
            targets = StreamTargets(fx.latency, p.frame) if fx is not None and p.mode == "stream" else None
            for epoch in range(epoch0, epochs):
                if bad >= patience:
                    break
                bar = self._bar(f"{phase} epoch {epoch + 1}/{epochs}", steps, step0)
                losses = []
                for step in range(step0, steps):
                    batch = next(batches)
                    loss = self._step(model, batch, fx, n_params, targets)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                    global_step += 1
                    if bar is not None:
                        bar.set_postfix(loss=f"{losses[-1]:.4g}")
                        bar.update()
                    if tb is not None:
                        tb.add_scalar(f"{phase}/train_loss", losses[-1], global_step)
                    if (step + 1) % self.checkpoint_every == 0 and step + 1 < steps:
                        self._save(self._state(index, epoch, step + 1, global_step, opt, sched, best, bad, fx))
                if bar is not None:
                    bar.close()
                step0 = 0
                valid = self.validate(k)
                sched.step(valid)
                improved = valid < best
                best, bad = (valid, 0) if improved else (best, bad + 1)
                train_loss = _mean_across_ranks(float(np.mean(losses))) if losses else float("nan")
                if csv_log is not None:
                    csv_log.write(phase=phase, epoch=epoch + 1, step=steps, global_step=global_step,
                                  train_loss=f"{train_loss:.6g}", valid_loss=f"{valid:.6g}",
                                  lr=opt.param_groups[0]["lr"], seconds=f"{time.monotonic() - self.started:.1f}")
                if tb is not None:
                    tb.add_scalar(f"{phase}/valid_loss", valid, global_step)
                state_now = self._state(index, epoch + 1, 0, global_step, opt, sched, best, bad, fx)
                if improved:
                    self._save(state_now, "best.pt")
                self._save(state_now)
                log.info("%s epoch %d: train %.5g valid %.5g%s", phase, epoch + 1, train_loss, valid,
                         " (best)" if improved else "")
            self._reload_best()
            self._save(self._state(index + 1, 0, 0, global_step, None, None, float("inf"), 0, None))
        finally:
            if fx is not None:
                fx.close()
        return global_step

    def _reload_best(self) -> None:
        """Continue the next phase from this phase's best model (as early stopping restores it)."""
        self._barrier()
        best = torch.load(self.out / "best.pt", map_location="cpu", weights_only=False)
        self.model.encoder.load_state_dict(best["encoder"])

    def _workers(self) -> int | None:
        if self.profile.workers is not None:
            return self.profile.workers
        return max(1, (os.cpu_count() or 1) // self.world)

    def _bar(self, desc: str, total: int, initial: int):
        if not self.progress or self.rank != 0:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, leave=False, file=sys.stderr)

    def _step(self, model: nn.Module, batch: dict, fx: BlackBoxFx | None, n_params: int,
              targets: StreamTargets | None) -> torch.Tensor:
        params = model(batch["context"].to(self.device))
        start = self.start_unit.to(self.device).expand_as(params)
        if fx is None:
            return nn.functional.mse_loss(params, start)
        loss = render_loss(fx, batch, params[:, :n_params], targets, self.loss_fn)
        return loss + anchor_loss(params, start, n_params, self.profile.anchor)

    def trim_level(self) -> float:
        """Measure the trained model's level trim on the training split and store it in best.pt.

        With the profile's ``level_trim`` only: :func:`level_trim` of the model as it processes
        whole files (:meth:`DeepAFx.process`), written atomically into best.pt's model config
        (``trim_db``, :attr:`DeepAFx.trim_db`) and its record (``level_trim``). A best.pt that
        holds a record keeps its trim, so a finished run measures it once.

        Returns:
            the trim in dB (0 without ``level_trim``).
        """
        if not self.profile.level_trim:
            return 0.0
        best = self.out / "best.pt"
        state = torch.load(best, map_location="cpu", weights_only=False)
        if "level_trim" in state:
            return float(state["level_trim"]["trim_db"])
        model = DeepAFx.from_checkpoint(best)
        trim = level_trim(lambda x: model.process(x)[0], self.train_set)
        state["model_config"]["trim_db"] = trim
        state["level_trim"] = {"trim_db": trim, "split": "train", "files": len(self.train_set)}
        self._save(state, "best.pt")
        log.info("level trim of the model: %+.2f dB (training split)", trim)
        return trim

    def fit_fixed(self) -> np.ndarray:
        """The single parameter vector ``(P,)`` that fits the training set best (the baseline).

        Adam on the unit vector itself (no encoder), starting from the defaults, through the
        whole chain with the same windows, loss and SPSA settings as stage 2, for
        ``fixed_steps`` steps. Every ``steps_per_epoch`` steps the vector is scored on the
        validation clips, and the best scored (the defaults included) is kept, as early
        stopping keeps the model's best epoch. With the profile's ``level_trim``, the vector's
        own trim follows (:func:`level_trim`, key ``trim_db``). Cached in ``<out>/fixed.json``;
        a cached vector without the trim that the profile asks for gets it added.
        """
        path = self.out / "fixed.json"
        if path.exists():
            fixed = FixedSetting.load(self.out)  # names a broken file
            if self.profile.level_trim and "trim_db" not in (cached := json.loads(path.read_text())):
                self._write_fixed(path, {**cached, "trim_db": self._fixed_trim(fixed.unit)})
            return fixed.unit
        p, k = self.profile, len(self.model.effect_sizes)
        u = nn.Parameter(self.model.default_unit.clone())
        opt = torch.optim.Adam([u], lr=p.fixed_lr)
        best_unit, best = u.detach().clone(), self.validate(k, u.detach())
        scores = [best]
        with BlackBoxFx(self.spec, workers=self._workers(), mode=p.mode, epsilon=p.epsilon, draws=p.draws,
                        seed=self.seed + 999) as fx:
            targets = StreamTargets(fx.latency, p.frame) if p.mode == "stream" else None
            batches = self._stream(self.seed + 999)
            bar = self._bar("best fixed parameters", p.fixed_steps, 0)
            for step in range(p.fixed_steps):
                loss = render_loss(fx, next(batches), u.clamp(0, 1).expand(p.batch_size, -1), targets, self.loss_fn)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    u.clamp_(0, 1)
                if bar is not None:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                    bar.update()
                if (step + 1) % p.steps_per_epoch == 0 or step + 1 == p.fixed_steps:
                    scores.append(self.validate(k, u.detach()))
                    if scores[-1] < best:
                        best, best_unit = scores[-1], u.detach().clone()
            if bar is not None:
                bar.close()
            unit = best_unit.double().numpy()
            native = {name: (v if isinstance(v, str) else float(v)) for name, v in fx.chain.to_native(unit).items()}
        fixed = {"unit": unit.tolist(), "native": native, "steps": p.fixed_steps, "valid_loss": best,
                 "valid_losses": scores}
        if p.level_trim:
            fixed["trim_db"] = self._fixed_trim(unit)
        self._write_fixed(path, fixed)
        return unit

    def _fixed_trim(self, unit: np.ndarray) -> float:
        trim = level_trim(lambda x: render_curve(self.spec, x, unit, self.profile.frame), self.train_set)
        log.info("level trim of the best fixed vector: %+.2f dB (training split)", trim)
        return trim

    def _write_fixed(self, path: Path, fixed: dict) -> None:
        if self.rank == 0:
            write_json(path, fixed)

    @torch.no_grad()
    def validate(self, k: int, fixed: torch.Tensor | None = None) -> float:
        """Mean loss over ``valid_batches`` seeded random clips of the validation split.

        Every rank validates on the whole split, so all ranks agree on early stopping.

        ``k = 0`` is stage 1 (MSE to the default parameters); ``k > 0`` renders each clip
        through the first ``k`` effects from a reset, warmed by the part of the context that
        precedes the frame (clip mode with pre-roll), at the model's parameters or, when
        given, at the ``fixed`` unit vector ``(P,)``.
        """
        n_params = sum(self.model.effect_sizes[:k])
        self.model.eval()
        clips = RandomClips(self.valid_set, self.profile.batch_size, self.profile.context,
                            self.profile.frame, seed=self.seed + 12345)
        losses = []
        with FxChain.from_spec(self._sub_spec(max(k, 1))) as chain:
            for _, batch in zip(range(self.profile.valid_batches), clips):
                if fixed is not None:
                    params = fixed.expand(len(batch["context"]), -1)
                else:
                    params = self.model(batch["context"].to(self.device)).cpu()
                if k == 0:
                    losses.append(float(nn.functional.mse_loss(params, self.start_unit.expand_as(params))))
                    continue
                u = params[:, :n_params].double().numpy()
                out = torch.stack([torch.from_numpy(_render_clip(chain, c.numpy(), row, self.profile.frame))
                                   for c, row in zip(batch["context"], u)])
                losses.append(float(self.loss_fn(out, batch["target"])))
        self.model.train()
        return float(np.mean(losses))


def _render_clip(chain: FxChain, context: np.ndarray, u: np.ndarray, frame: int) -> np.ndarray:
    """Render the centred ``frame`` of a context window, warmed by the samples before it."""
    start = context_lead(context.shape[1], frame)
    return chain.process(np.ascontiguousarray(context[:, :start + frame]), u, preroll=start)


def train_and_evaluate(task: str, profile: str | Profile, out: str | os.PathLike, data: str | os.PathLike | None = None,
                       chain: str | None = None, seed: int = 0, results: str | os.PathLike = "paper/results",
                       device: str | None = None, checkpoint_every: int = 25, progress: bool = True,
                       command: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The whole of ``fxlib train``: train (or resume), trim the level (a profile's ``level_trim``),
    fit the best fixed vector, evaluate.

    Arguments as for :class:`Trainer`; ``results`` is the folder of ``<task>.json`` and ``.md``,
    ``command`` the command recorded in them (default: this process's), ``extra`` more facts
    for the JSON. The wall time of the whole call is recorded as ``wall_seconds``.

    Returns:
        The results written (see :func:`fxlib.evaluate.evaluate_run`) on rank 0; None on the
        other ranks of a distributed run.
    """
    from .evaluate import evaluate_run

    started = time.monotonic()
    trainer = Trainer(task, profile, out, data_root=data, chain=chain, seed=seed, device=device,
                      checkpoint_every=checkpoint_every, progress=progress)
    trainer.fit()
    if trainer.rank != 0:
        return None
    trainer.trim_level()
    trainer.fit_fixed()
    facts = {"wall_seconds": round(time.monotonic() - started, 1), **(extra or {})}
    return evaluate_run(out, results, extra=facts, command=command)
