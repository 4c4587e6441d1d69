"""An end-to-end neural amp model: the amp task's learned baseline, trained on the same pairs.

The paper compared DeepAFx with its authors' earlier end-to-end network (CAFx, Martínez
Ramírez, Benetos and Reiss, Applied Sciences 2020). This module gives fxlib a baseline of that
kind: a network that maps input samples to output samples directly, with no effect in the loop.

**Model** (:class:`AmpNet`): the recurrent amp model of Wright, Damskägg, Juvela and Välimäki,
"Real-time guitar amplifier emulation with deep learning" (Applied Sciences 2020), which
Neural Amp Modeler also offers (one LSTM layer over the samples, a linear read-out, a skip from
the input), with the skip and the LSTM's input taken through short causal convolutions over the
last ``taps`` input samples, as in the convolutional-recurrent models of the CAFx line. Why: the
offline amp data's targets lag their inputs by about 16 samples (guitarix's JCM800 preamp), and
an LSTM fed one sample at a time cannot hold such a delay in its state; trained so, it stays at
an error-to-signal ratio near 1. The model is causal and adds no latency: output sample ``n``
depends on input samples ``0..n`` only. Each channel of a file is processed on its own.

**Training** (:func:`train`): Adam on random excerpts of the training split, drawn from a seeded
generator. Each batch holds ``batch_size`` excerpts of ``warmup + chunks * chunk`` samples; the
LSTM state warms up over the first ``warmup`` samples without gradient, then truncated
back-propagation through time takes one optimiser step per ``chunk`` samples, carrying the
(detached) state from chunk to chunk. The loss is Wright and Välimäki's error-to-signal ratio
plus their DC term (:func:`esr_dc_loss`). Their first-order pre-emphasis of the error is a
setting, off by default: it weighs the low notes of bass files so little that the model leaves
them several LU too quiet. The learning rate falls from ``lr`` to ``lr * final_lr_factor`` along
a cosine; gradients are clipped to norm 1. Everything runs on the CPU; the same seed, data and
thread count give the same weights.

**Why not Neural Amp Modeler itself**: ``neural-amp-modeler`` 0.13.0 installs beside torch
2.13 without a CUDA torch, but pulls in 29 further packages (PyTorch Lightning, torchmetrics,
transformers, tokenizers, huggingface_hub, kernels, sounddevice, aiohttp, ...), and even
``import nam.models`` runs ``nam.train`` (Lightning, matplotlib, tkinter). Its training expects
48 kHz files in its own format. The LSTM it offers is the model here, in a few lines of torch.
Its WaveNet is not used: on this project's 2-core CPU, a WaveNet of ten dilated convolutions with
16 channels trained on about a third as many samples per CPU second as the 32-unit LSTM.

**Cache** (:func:`fitted`): a trained model is saved into a folder the caller owns (a run
folder), never into the shared data folder: ``neural-amp.pt`` (the weights, loaded with
``torch.load(weights_only=True)``) and ``neural-amp.json`` (what they are: settings, seed,
sample rate, channels, a digest of the training audio, training time). A cache whose record
differs from the request is trained again and replaced.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_output, write_json
from ..data.audio import DataError
from ..data.paired import PairedDataset
from ..errors import AudioFormatError, FxError, SpecError

log = logging.getLogger(__name__)

NAME = "neural-amp"  # the system's name in the evaluation tables and the cache files' stem
KIND = "fxlib-neural-amp"
FORMAT = 1  # the cache format this module reads and writes
BLOCK = 65536  # samples per LSTM call at inference (the state carries over, so the result is exact)


class CacheError(FxError):
    """A cached neural amp model that cannot be read (corrupt, or not what its record says);
    the message names the file."""


@dataclass(frozen=True)
class NeuralAmpSettings:
    """Hyper-parameters of the neural amp model and its training; every unit is stated.

    Model:
        taps: input samples the convolutional front end and the linear path see (the current
            one and ``taps - 1`` before it); they must span the target's delay behind the input.
        features: channels of the convolutional front end, the LSTM's input.
        hidden: LSTM units (Wright et al. 2020 use 32 to 96).
    Training:
        steps: optimiser steps in all (a multiple of ``chunks``).
        batch_size: excerpts per batch.
        warmup: samples per excerpt that only warm up the LSTM state (no gradient, no loss).
        chunk: samples per optimiser step (truncated back-propagation through time).
        chunks: optimiser steps per batch of excerpts; an excerpt is ``warmup + chunks * chunk`` samples.
        lr: Adam's first learning rate; final_lr_factor: the last one is ``lr * final_lr_factor``.
        pre_emphasis: coefficient ``a`` of the loss's high-pass ``1 - a z^-1`` (0: none; Wright
            and Välimäki use 0.85 for guitar amps).

    The defaults are the amp task's quick profile: 480 s of training audio at 22.05 kHz, a few
    minutes of two CPU cores.
    """

    taps: int = 32
    features: int = 8
    hidden: int = 32
    steps: int = 300
    batch_size: int = 32
    warmup: int = 1024
    chunk: int = 1024
    chunks: int = 6
    lr: float = 5e-3
    final_lr_factor: float = 0.02
    pre_emphasis: float = 0.0

    def __post_init__(self) -> None:
        positive = ("taps", "features", "hidden", "steps", "batch_size", "chunk", "chunks")
        bad = [n for n in positive if not (isinstance(getattr(self, n), int) and getattr(self, n) > 0)]
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            bad.append("warmup")
        if not self.lr > 0:
            bad.append("lr")
        if not 0 < self.final_lr_factor <= 1:
            bad.append("final_lr_factor")
        if not 0 <= self.pre_emphasis < 1:
            bad.append("pre_emphasis")
        if bad:
            raise SpecError(f"NeuralAmpSettings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} out of range "
                            "(taps, features, hidden, steps, batch_size, chunk, chunks: whole numbers > 0; "
                            "warmup: whole number >= 0; lr > 0; final_lr_factor in (0, 1]; pre_emphasis in [0, 1))")
        if self.steps % self.chunks:
            raise SpecError(f"NeuralAmpSettings: steps={self.steps} is not a multiple of chunks={self.chunks} "
                            "(each batch of excerpts gives `chunks` optimiser steps)")

    @property
    def excerpt(self) -> int:
        """Samples per training excerpt: ``warmup + chunks * chunk``."""
        return self.warmup + self.chunks * self.chunk


class AmpNet(torch.nn.Module):
    """A causal convolutional front end, one LSTM layer, a linear read-out and a linear path:
    ``y = fir(x) + W lstm(conv(x)) + b``.

    ``conv`` (``features`` channels) and ``fir`` (one) are convolutions over the last ``taps``
    input samples, so a delay of the target behind the input, which an LSTM can hardly hold in
    its state, is a matter of their taps.

    Args:
        settings: the model's sizes (``taps``, ``features``, ``hidden``).

    Shape:
        - x: ``(B, taps - 1 + T)`` float32 audio, one channel per batch row: the ``taps - 1``
          samples before the ``T`` to process (zeros at the start of a file), then those.
        - state: None (zeros) or the ``(h, c)`` returned by the call on the samples just before,
          each ``(1, B, hidden)``.
        - returns: ``(y (B, T), (h, c))``.
    """

    def __init__(self, settings: NeuralAmpSettings) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, settings.features, settings.taps)
        self.lstm = torch.nn.LSTM(settings.features, settings.hidden, batch_first=True)
        self.out = torch.nn.Linear(settings.hidden, 1)
        self.fir = torch.nn.Conv1d(1, 1, settings.taps)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, state = self.lstm(self.conv(x[:, None]).transpose(1, 2), state)
        return self.fir(x[:, None])[:, 0] + self.out(h)[..., 0], state


def esr_dc_loss(output: torch.Tensor, target: torch.Tensor, pre_emphasis: float) -> torch.Tensor:
    """Wright and Välimäki's training loss: the (pre-emphasised) error-to-signal ratio plus the DC term.

    ``ESR = sum (p(y) - p(t))^2 / sum p(t)^2`` with ``p`` the high-pass ``1 - a z^-1``, and
    ``DC = mean(y - t)^2 / mean(t^2)``, both over the whole batch (a silent excerpt adds nothing
    and divides nothing). The same ratio as :func:`fxlib.metrics.esr`, differentiable.

    Shape:
        output, target: ``(B, T)`` with ``T >= 2``; returns a scalar.
    """
    def emphasised(x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:] - pre_emphasis * x[:, :-1]

    energy = target.square().mean() + 1e-10
    esr = (emphasised(output) - emphasised(target)).square().mean() / (emphasised(target).square().mean() + 1e-10)
    return esr + (output - target).mean().square() / energy


class NeuralAmp:
    """A trained :class:`AmpNet` as an evaluation system: ``amp(x (C, T)) -> y (C, T)``.

    Args:
        net: the trained network (put in eval mode, on the CPU).
        sample_rate: Hz of the audio it was trained on; channels: the channel count it expects.
        settings: how it was trained; record: the cache record (:func:`fitted`), or ``{}``.
    """

    def __init__(self, net: AmpNet, sample_rate: int, channels: int, settings: NeuralAmpSettings,
                 record: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.sample_rate = sample_rate
        self.channels = channels
        self.settings = settings
        self.record = record or {}

    @property
    def parameters(self) -> int:
        """The number of trained weights."""
        return sum(p.numel() for p in self.net.parameters())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Process a whole file, each channel on its own, from a silent state.

        Shape:
            x: ``(C, T)`` float audio at :attr:`sample_rate` with ``C == channels``, ``T >= 1``;
            returns float32 ``(C, T)``, aligned with ``x`` (no latency).

        Raises:
            AudioFormatError: not a float ``(channels, T)`` array, empty, or not finite.
        """
        x = _check_audio(x, self.channels)
        history = torch.nn.functional.pad(torch.from_numpy(x), (self.settings.taps - 1, 0))
        out = np.empty_like(x)
        state = None
        with torch.no_grad():
            for start in range(0, x.shape[1], BLOCK):
                stop = min(start + BLOCK, x.shape[1])
                y, state = self.net(history[:, start:stop + self.settings.taps - 1], state)
                out[:, start:stop] = y.numpy()
        return out


def _check_audio(x: np.ndarray, channels: int) -> np.ndarray:
    """``x`` as float32 ``(channels, T)``, or :class:`AudioFormatError` naming what is wrong."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise AudioFormatError(f"{NAME}: input must be a float numpy array (C, T) in full-scale units, "
                               f"got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.ndim != 2 or x.shape[0] != channels:
        raise AudioFormatError(f"{NAME}: input must have shape ({channels}, T) (the model was trained on "
                               f"{channels}-channel audio), got {x.shape}")
    if x.shape[1] == 0:
        raise AudioFormatError(f"{NAME}: input is empty (shape {x.shape})")
    if not np.isfinite(x).all():
        raise AudioFormatError(f"{NAME}: input contains NaN or Inf")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_format(sample_rate: int, channels: int) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise SpecError(f"{NAME}: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    if channels not in (1, 2):
        raise SpecError(f"{NAME}: channels must be 1 or 2, got {channels!r}")


def _training_audio(data_root: str | Path, sample_rate: int, channels: int
                    ) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """The training split as ``(inputs, targets, digest)``: one float32 ``(T_i,)`` array per file
    and channel, and the SHA-256 of all of them (what the cache record pins)."""
    train = PairedDataset(data_root, "train", sample_rate, channels)
    digest = hashlib.sha256()
    inputs, targets = [], []
    for x, t in zip(train.inputs, train.targets):
        for c in range(x.shape[0]):
            inputs.append(np.ascontiguousarray(x[c]))
            targets.append(np.ascontiguousarray(t[c]))
            digest.update(inputs[-1].tobytes())
            digest.update(targets[-1].tobytes())
    return inputs, targets, digest.hexdigest()


def train(data_root: str | Path, sample_rate: int, channels: int,
          settings: NeuralAmpSettings = NeuralAmpSettings(), seed: int = 0) -> NeuralAmp:
    """Train the neural amp model on the training split of ``data_root`` (see the module docstring).

    Args:
        data_root: a paired data set (:mod:`fxlib.data.paired`); its ``train`` split is read at
            ``sample_rate`` Hz and ``channels`` channels.
        settings: hyper-parameters; seed: seeds the weights and the excerpts drawn.

    Returns:
        the trained system; its ``record`` holds the settings, the digest of the training audio,
        the training time (``wall_s``, ``cpu_s``, seconds) and the mean loss of the last batch.

    Raises:
        SpecError: a bad sample rate or channel count.
        DataNotFoundError, DataError: no data set, no training pair, or no training file as long as
            one excerpt (``settings.excerpt`` samples).
    """
    _check_format(sample_rate, channels)
    return _fit(*_training_audio(data_root, sample_rate, channels), data_root, sample_rate, channels, settings, seed)


def _fit(inputs: list[np.ndarray], targets: list[np.ndarray], digest: str, data_root: str | Path,
         sample_rate: int, channels: int, settings: NeuralAmpSettings, seed: int) -> NeuralAmp:
    """:func:`train` on the training audio already read (:func:`_training_audio`)."""
    lengths = np.array([len(x) for x in inputs])
    usable = lengths >= settings.excerpt
    if not usable.any():
        raise DataError(f"{data_root}: no training file is as long as one excerpt of the neural amp model "
                        f"({settings.excerpt} samples, {settings.excerpt / sample_rate:.2f} s at {sample_rate} Hz); "
                        f"the longest has {lengths.max()} samples")
    starts = np.where(usable, lengths - settings.excerpt + 1, 0)  # excerpt starts per file
    rng = np.random.default_rng(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AmpNet(settings)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.steps,
                                                          eta_min=settings.lr * settings.final_lr_factor)
    for _ in range(settings.steps // settings.chunks):
        files = rng.choice(len(inputs), size=settings.batch_size, p=starts / starts.sum())
        offsets = [int(rng.integers(starts[f])) for f in files]
        x = torch.from_numpy(np.stack([inputs[f][o:o + settings.excerpt] for f, o in zip(files, offsets)]))
        t = torch.from_numpy(np.stack([targets[f][o:o + settings.excerpt] for f, o in zip(files, offsets)]))
        history = torch.nn.functional.pad(x, (settings.taps - 1, 0))  # samples s..e of x: history[:, s:e + taps - 1]
        state = None
        if settings.warmup:
            with torch.no_grad():
                _, state = net(history[:, :settings.warmup + settings.taps - 1])
        losses = []
        for k in range(settings.chunks):
            start = settings.warmup + k * settings.chunk
            y, state = net(history[:, start:start + settings.chunk + settings.taps - 1], state)
            loss = esr_dc_loss(y, t[:, start:start + settings.chunk], settings.pre_emphasis)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            state = (state[0].detach(), state[1].detach())
            losses.append(loss.item())
    record = {"kind": KIND, "format": FORMAT, "settings": asdict(settings), "seed": seed,
              "sample_rate": sample_rate, "channels": channels, "train_digest": digest,
              "train_seconds": float(lengths.sum() / sample_rate),
              "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
              "final_loss": float(np.mean(losses))}
    if not math.isfinite(record["final_loss"]):
        raise FxError(f"{NAME}: training on {data_root} diverged (loss {record['final_loss']}); "
                      "lower NeuralAmpSettings.lr")
    return NeuralAmp(net, sample_rate, channels, settings, record)


def cache_paths(cache_dir: str | Path) -> tuple[Path, Path]:
    """``(weights, record)``: the files a cached model occupies in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{NAME}.pt", cache_dir / f"{NAME}.json"


def save(amp: NeuralAmp, cache_dir: str | Path) -> None:
    """Write ``amp`` into ``cache_dir`` atomically: the weights first, then the record that names them."""
    weights, record = cache_paths(cache_dir)
    with atomic_output(weights) as tmp:
        torch.save(amp.net.state_dict(), tmp)
    write_json(record, {**amp.record, "parameters": amp.parameters})


def load(cache_dir: str | Path) -> NeuralAmp:
    """The model cached in ``cache_dir`` by :func:`save`.

    Raises:
        FileNotFoundError: no cached model there.
        CacheError: a record or weights file that is not what it should be (the file is named).
    """
    weights, record_path = cache_paths(cache_dir)
    if not record_path.exists() or not weights.exists():
        raise FileNotFoundError(f"{cache_dir} holds no cached {NAME} model ({record_path.name} and {weights.name})")
    try:
        record = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CacheError(f"{record_path} is not valid JSON ({e}); delete it to train again") from e
    if not isinstance(record, dict) or record.get("kind") != KIND or record.get("format") != FORMAT:
        raise CacheError(f"{record_path} is not a {NAME} record of format {FORMAT}; delete it to train again")
    try:
        settings = NeuralAmpSettings(**record["settings"])
        net = AmpNet(settings)
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        amp = NeuralAmp(net, int(record["sample_rate"]), int(record["channels"]), settings, record)
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CacheError(f"{weights} (with {record_path.name}) does not hold a {NAME} model "
                         f"({type(e).__name__}: {first}); delete both to train again") from e
    return amp


def fitted(data_root: str | Path, sample_rate: int, channels: int, cache_dir: str | Path | None,
           settings: NeuralAmpSettings = NeuralAmpSettings(), seed: int = 0) -> NeuralAmp:
    """The neural amp model for this data set: from ``cache_dir`` when cached for the same request,
    else trained (:func:`train`) and, with a ``cache_dir``, saved there.

    A cache matches when its record has the same settings, seed, sample rate, channels and
    training audio (its SHA-256, which costs one read of the training split). ``cache_dir=None``
    trains every call.

    Raises:
        as :func:`train`; CacheError: a cache that exists but cannot be read.
    """
    _check_format(sample_rate, channels)
    audio = _training_audio(data_root, sample_rate, channels)
    if cache_dir is not None and cache_paths(cache_dir)[1].exists():
        cached = load(cache_dir)
        wanted = {"settings": asdict(settings), "seed": seed, "sample_rate": sample_rate, "channels": channels,
                  "train_digest": audio[2]}
        differ = [k for k, v in wanted.items() if cached.record.get(k) != v]
        if not differ:
            return cached
        log.info("%s: the cached model in %s differs in %s; training again", NAME, cache_dir, ", ".join(differ))
    amp = _fit(*audio, data_root, sample_rate, channels, settings, seed)
    if cache_dir is not None:
        save(amp, cache_dir)
    return amp
