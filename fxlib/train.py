"""Training: stage 1 regresses the default parameters, stage 2 trains through the effects.

Phases, in order, each with its own Adam optimiser, ReduceLROnPlateau and early stopping:

* ``stage1``: the encoder regresses the chain's default parameter vector (MSE, no effects),
  each default kept ``stage1_margin`` from the bounds (:attr:`Trainer.start_unit`);
* ``stage2-1`` .. ``stage2-N``: through the first 1..N effects of the chain (progressive
  training, one effect added at a time), the effects rendered by
  :class:`~fxlib.layer.BlackBoxFx` with SPSA gradients, the loss against the target audio,
  plus :func:`anchor_loss` holding the effects not trained yet at their defaults.

Training writes only the training state into its run folder (:class:`~fxlib.rundir.RunDir`):
the record ``run.json`` when it starts, ``checkpoint.pt`` atomically every ``checkpoint_every``
steps and at each epoch's end (model, optimiser, scheduler, phase, epoch, step, early-stopping
counters, every random generator), ``best.pt`` (the best validation weights), ``log.csv`` and
``tb/`` (TensorBoard: the losses and, after every epoch of stage 2, the model's output on the
first seconds of the first validation file beside its input and target). Started again on the same folder, a run resumes where the checkpoint
left it (streaming effect state is not saved: the streams restart from a reset). What is
measured after training (the best fixed vector, output gains) is :mod:`fxlib.calibrate`'s.

A failed render (a plugin that crashed or hung: :class:`~fxlib.engine.EngineError`, after the
engine restarted its worker) skips that step: no optimiser update, every stream restarts from
a reset, and a warning names the render and its parameters. More than
:data:`MAX_FAILED_STEPS` failed steps in a row stop the run (the checkpoint is kept, so it
resumes); so does any failure under ``torchrun``, where one rank skipping a step would leave the
others waiting.

Distributed: under ``torchrun`` each rank trains on its own share of the files with its own
worker pool; gradients of the encoder are averaged (gloo on CPU, nccl on CUDA). Rank 0
writes checkpoints and logs. The encoder runs on CUDA when available; effects stay on CPU.
"""
from __future__ import annotations

import csv
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

from .atomic import atomic_output
from .chain import FxChain
from .data.paired import PairedDataset
from .data.windows import RandomClips, StreamingWindows
from .engine import EngineError
from .errors import SpecError
from .framing import context_lead
from .layer import BlackBoxFx
from .losses import get_loss
from .model import DeepAFx, curve_ranges
from .paths import data_dir, portable, resolve
from .rundir import RunDir, RunRecord, git_commit
from .tasks import Profile, get_task

#: Consecutive training steps a failed render may skip before the run stops.
MAX_FAILED_STEPS = 3

log = logging.getLogger(__name__)


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
def _rng_state() -> dict:
    """Every global generator's state as tensors and plain data (a checkpoint loads weights-only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))


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


@dataclass(frozen=True)
class EpochReport:
    """A finished epoch, as :class:`Trainer` reports it to its ``on_epoch`` callback.

    Attributes:
        run: the run folder (its ``log.csv`` already holds this epoch).
        phase: ``"stage1"`` or ``"stage2-<k>"``; phases: every phase of the run, in order.
        epoch: this epoch, from 1; epochs: the most the phase runs (early stopping may end it sooner).
        later_epochs: the most epochs the phases after this one run together.
        train_loss, valid_loss: this epoch's mean training loss and its validation loss.
        improved: the validation loss is the phase's best so far.
        seconds: wall time since this (possibly resumed) process started training, s.
    """

    run: RunDir
    phase: str
    phases: tuple[str, ...]
    epoch: int
    epochs: int
    later_epochs: int
    train_loss: float
    valid_loss: float
    improved: bool
    seconds: float


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


# -- batches and validation, shared with calibration (fxlib.calibrate) ------------------------
def stream_batches(dataset: PairedDataset | Shard, profile: Profile, seed: int, skip: int = 0) -> Iterator[dict]:
    """Endless stateful training batches of ``dataset`` (:class:`StreamingWindows`, :func:`endless`)."""
    windows = StreamingWindows(dataset, profile.batch_size, profile.context, profile.frame, seed=seed)
    return endless(windows, skip)


@torch.no_grad()
def validation_loss(chain_spec: dict, k: int, dataset: PairedDataset, profile: Profile, seed: int,
                    loss_fn: nn.Module, predict: Callable[[torch.Tensor], torch.Tensor],
                    start_unit: torch.Tensor | None = None) -> float:
    """Mean loss over ``profile.valid_batches`` seeded random clips of ``dataset``.

    ``k = 0`` is stage 1: the MSE of the predicted parameters to ``start_unit``. ``k > 0`` renders
    each clip through the first ``k`` effects of ``chain_spec`` from a reset, warmed by the part of
    the context that precedes the frame (clip mode with pre-roll), at the parameters ``predict``
    gives, and returns the loss to the targets.

    Args:
        predict: ``context (B, C, context) -> (B, P)`` parameters in [0, 1] on the CPU.
        start_unit: ``(P,)``, what stage 1 regresses (``k = 0`` only).
    """
    clips = RandomClips(dataset, profile.batch_size, profile.context, profile.frame, seed=seed)
    losses = []
    with FxChain.from_spec({**chain_spec, "effects": chain_spec["effects"][:max(k, 1)]}) as chain:
        n_params = chain.num_params
        for _, batch in zip(range(profile.valid_batches), clips):
            params = predict(batch["context"])
            if k == 0:
                losses.append(float(nn.functional.mse_loss(params, start_unit.expand_as(params))))
                continue
            u = params[:, :n_params].double().numpy()
            out = torch.stack([torch.from_numpy(_render_clip(chain, c.numpy(), row, profile.frame))
                               for c, row in zip(batch["context"], u)])
            losses.append(float(loss_fn(out, batch["target"])))
    return float(np.mean(losses))


def _render_clip(chain: FxChain, context: np.ndarray, u: np.ndarray, frame: int) -> np.ndarray:
    """Render the centred ``frame`` of a context window, warmed by the samples before it."""
    start = context_lead(context.shape[1], frame)
    return chain.process(np.ascontiguousarray(context[:, :start + frame]), u, preroll=start)


def render_workers(profile: Profile, world: int = 1) -> int:
    """Render worker processes per rank: the profile's ``workers``, else the cores shared by the ranks."""
    if profile.workers is not None:
        return profile.workers
    return max(1, (os.cpu_count() or 1) // world)


def progress_bar(enabled: bool, desc: str, total: int, initial: int = 0):
    """A tqdm bar on stderr, or None when ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, file=sys.stderr)


#: Seconds of the first validation file written to TensorBoard after every epoch of stage 2.
TENSORBOARD_AUDIO_SECONDS = 4.0


# -- the trainer ----------------------------------------------------------------------------
class Trainer:
    """Runs the phases of one task and profile into a run folder.

    Args:
        task: a task name ("amp", ...); profile: a profile name or a :class:`Profile`.
        out_dir: the run folder (:class:`~fxlib.rundir.RunDir`); data_root: the data set folder
            (built if absent; default :func:`fxlib.paths.data_dir`). Relative paths are relative
            to the project root (:func:`fxlib.paths.resolve`).
        chain: a preset name to use instead of the task's first buildable one.
        seed: seeds every generator (data order, perturbations, initialisation).
        device: "cpu", "cuda" or None (CUDA when available).
        checkpoint_every: steps between mid-epoch checkpoints.
        progress: show progress bars.
        on_epoch: called on rank 0 after every epoch with its :class:`EpochReport`.
    """

    def __init__(self, task: str, profile: str | Profile, out_dir: str | os.PathLike,
                 data_root: str | os.PathLike | None = None, chain: str | None = None, seed: int = 0,
                 device: str | None = None, checkpoint_every: int = 25, progress: bool = True,
                 on_epoch: Callable[[EpochReport], None] | None = None) -> None:
        self.task = get_task(task)
        self.profile = self.task.profile(profile) if isinstance(profile, str) else profile
        self.profile_name = self.task.profile_name(profile)
        self.run = RunDir(out_dir)
        self.data_root = resolve(data_root or data_dir(self.task.name, self.profile_name))
        self.seed = seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.on_epoch = on_epoch
        self._tensorboard_references = False  # the audio examples' input and target are in TensorBoard
        self.rank, self.world = _dist_info()
        _init_distributed(self.device)
        self.chain_name, self.spec = self.task.select_chain(chain)
        if self.rank == 0:
            self.task.ensure_data(self.data_root, self.profile, seed)
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
        self.record = RunRecord(self.task.name, self.profile_name, asdict(self.profile), self.chain_name,
                                self.model.config(), portable(self.data_root), seed, git_commit())

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

    def _state(self, phase: int, epoch: int, step: int, global_step: int, opt: torch.optim.Optimizer | None,
               sched: Any, best: float, bad: int, fx: BlackBoxFx | None, done: bool = False) -> dict:
        """A checkpoint; ``opt`` and ``sched`` None at a phase boundary (the next phase starts its own)."""
        return {"encoder": self.model.encoder.state_dict(),
                "phase": phase, "epoch": epoch, "step": step, "global_step": global_step, "done": done,
                "optimizer": opt and opt.state_dict(), "scheduler": sched and sched.state_dict(),
                "best": best, "bad_epochs": bad, "rng": _rng_state(), "fx": _fx_state(fx)}

    def _save(self, state: dict) -> None:
        if self.rank == 0:
            self.run.save_checkpoint(state)

    # -- the run ---------------------------------------------------------------------------
    def fit(self) -> RunDir:
        """Train every phase (resuming from the run folder's checkpoint if present); return the run folder.

        Raises:
            SpecError: the folder holds another run.
            RunFormatError: the folder holds a run of another format, or a broken checkpoint.
        """
        if self.rank == 0:
            self.run.start(self.record)
        self._barrier()
        self.started = time.monotonic()
        state = self.run.load_checkpoint()
        if state is not None and state["done"]:
            return self.run
        if state is not None:
            self.model.encoder.load_state_dict(state["encoder"])
            _set_rng_state(state["rng"])
        csv_log = CsvLog(self.run.log_path, state["global_step"] if state else None) if self.rank == 0 else None
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(self.run.tensorboard_dir, purge_step=state["global_step"] if state else None) \
            if self.rank == 0 else None
        global_step = state["global_step"] if state else 0
        try:
            for index in range(state["phase"] if state else 0, len(self.phases)):
                global_step = self._phase(index, state if state and state["phase"] == index else None,
                                          global_step, csv_log, tb)
                state = None
            final = self.run.load_checkpoint()
            final["done"] = True
            self._save(final)
        finally:
            if tb is not None:
                tb.close()
        self._barrier()
        return self.run

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
        best, bad, epoch0, step0, failed = float("inf"), 0, 0, 0, 0
        fx = None if stage1 else BlackBoxFx(self._sub_spec(k), workers=render_workers(p, self.world), mode=p.mode,
                                            epsilon=p.epsilon, draws=p.draws, seed=self.seed + index)
        try:
            if state is not None and state["optimizer"] is not None:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                best, bad, epoch0, step0 = state["best"], state["bad_epochs"], state["epoch"], state["step"]
                if fx is not None and state["fx"] is not None:
                    _set_fx_state(fx, state["fx"])
            batches = stream_batches(self._shard(self.train_set), p, self.seed + 1000 * index + 7919 * self.rank,
                                     epoch0 * steps + step0)
            targets = StreamTargets(fx.latency, p.frame) if fx is not None and p.mode == "stream" else None
            for epoch in range(epoch0, epochs):
                if bad >= patience:
                    break
                bar = progress_bar(self.progress and self.rank == 0, f"{phase} epoch {epoch + 1}/{epochs}", steps,
                                   step0)
                losses = []
                for step in range(step0, steps):
                    batch = next(batches)
                    opt.zero_grad(set_to_none=True)
                    try:
                        loss = self._step(model, batch, fx, n_params, targets)
                        loss.backward()
                    except EngineError as e:
                        failed += 1
                        if self.world > 1 or failed > MAX_FAILED_STEPS:
                            raise
                        log.warning("%s epoch %d step %d skipped (%d in a row), every stream restarts: %s",
                                    phase, epoch + 1, step + 1, failed, e)
                        opt.zero_grad(set_to_none=True)
                        fx.reset()
                        if targets is not None:
                            targets.previous = None
                        continue
                    failed = 0
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
                    if not stage1:
                        self._tensorboard_audio(tb, global_step)
                if improved and self.rank == 0:
                    self.run.save_best(self.model.encoder.state_dict(), phase=phase, epoch=epoch + 1,
                                       global_step=global_step, valid_loss=valid)
                self._save(self._state(index, epoch + 1, 0, global_step, opt, sched, best, bad, fx))
                log.info("%s epoch %d: train %.5g valid %.5g%s", phase, epoch + 1, train_loss, valid,
                         " (best)" if improved else "")
                if self.on_epoch is not None and self.rank == 0:
                    later = (len(self.phases) - 1 - index) * p.epochs
                    self.on_epoch(EpochReport(self.run, phase, tuple(self.phases), epoch + 1, epochs, later,
                                              train_loss, valid, improved, time.monotonic() - self.started))
            self._reload_best()
            self._save(self._state(index + 1, 0, 0, global_step, None, None, float("inf"), 0, None))
        finally:
            if fx is not None:
                fx.close()
        return global_step

    def _tensorboard_audio(self, tb: Any, global_step: int) -> None:
        """Write the first :data:`TENSORBOARD_AUDIO_SECONDS` of the first validation file to TensorBoard:
        its input and target (once per process) and the model's output at the current weights."""
        x, target = self.valid_set[0]
        rate = self.task.sample_rate
        n = min(x.shape[1], int(TENSORBOARD_AUDIO_SECONDS * rate))
        x = np.ascontiguousarray(x[:, :n])
        training = self.model.training
        self.model.eval()
        try:
            y, _ = self.model.process(x)
        finally:
            self.model.train(training)
        clips = {"output": y} if self._tensorboard_references else {"input": x, "target": target[:, :n], "output": y}
        for name, audio in clips.items():
            tb.add_audio(f"valid_audio/{name}", torch.from_numpy(np.clip(audio.mean(axis=0), -1.0, 1.0))[None],
                         global_step, sample_rate=rate)
        self._tensorboard_references = True

    def _reload_best(self) -> None:
        """Continue the next phase from this phase's best model (as early stopping restores it)."""
        self._barrier()
        self.model.encoder.load_state_dict(self.run.load_best()["encoder"])

    def _step(self, model: nn.Module, batch: dict, fx: BlackBoxFx | None, n_params: int,
              targets: StreamTargets | None) -> torch.Tensor:
        params = model(batch["context"].to(self.device))
        start = self.start_unit.to(self.device).expand_as(params)
        if fx is None:
            return nn.functional.mse_loss(params, start)
        loss = render_loss(fx, batch, params[:, :n_params], targets, self.loss_fn)
        return loss + anchor_loss(params, start, n_params, self.profile.anchor)

    @torch.no_grad()
    def validate(self, k: int) -> float:
        """The model's :func:`validation_loss` through the first ``k`` effects (``k = 0``: stage 1).

        Every rank validates on the whole split, so all ranks agree on early stopping.
        """
        self.model.eval()
        loss = validation_loss(self.spec, k, self.valid_set, self.profile, self.seed + 12345, self.loss_fn,
                               lambda context: self.model(context.to(self.device)).cpu(), self.start_unit)
        self.model.train()
        return loss
