"""Batches of context windows and output frames for training, from paired audio in memory.

The paper streams each file through its effect in consecutive output frames so that the
effect's state carries from one training step to the next: a batch slot's frame ``k+1``
continues where frame ``k`` stopped. The encoder sees a longer context window around each
frame; the frame is its centre::

    context (40960 samples)  |------------------[== frame (1024) ==]------------------|
                              <- (context - frame) // 2 ->

:class:`StreamingWindows` does that (one epoch covers every sample of every file once);
:class:`RandomClips` draws independent frames at random positions (every item is a fresh start).

Both are plain iterables of dicts of torch tensors; they hold no worker processes and can be
wrapped by anything that takes an iterable. A dataset is anything with ``len(dataset)`` and
``dataset[i] -> (input, target)``, both float32 ``(C, T_i)`` of the same length, such as
:class:`~fxlib.data.paired.PairedDataset`.

Batch keys (B = batch size, C = channels):

=============  ====================  ===============================================================
``context``    float32 (B, C, ctx)   input audio around the frame, zero-padded beyond the file's ends
``input``      float32 (B, C, frame) the input under the frame (the centre of ``context``)
``target``     float32 (B, C, frame) the target under the frame
``reset``      bool (B,)             the effect's state must be cleared before this frame
``valid``      bool (B,)             False for an empty slot at the end of an epoch (all zeros)
``file``       int64 (B,)            index of the file in the dataset (-1 when not valid)
``position``   int64 (B,)            sample offset of the frame's first sample in its file
=============  ====================  ===============================================================

A frame that runs past the end of its file is zero-padded there (input and target alike).
"""
from __future__ import annotations

import abc
import math
from typing import Any, Iterator

import numpy as np
import torch

from ..framing import context_lead, window
from .audio import DataError


def _arrays(dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The inputs and targets of ``dataset``, checked: same channels everywhere, same lengths per pair."""
    inputs, targets = [], []
    for i in range(len(dataset)):
        inp, tgt = dataset[i]
        inp, tgt = np.asarray(inp, np.float32), np.asarray(tgt, np.float32)
        if inp.ndim != 2 or inp.shape != tgt.shape or inp.shape[1] == 0:
            raise DataError(f"dataset item {i}: input {inp.shape} and target {tgt.shape} must be (C, T) "
                            "of the same, non-zero shape")
        inputs.append(inp)
        targets.append(tgt)
    if not inputs:
        raise DataError("the dataset is empty")
    if len({x.shape[0] for x in inputs}) > 1:
        raise DataError(f"dataset items have different channel counts: {sorted({x.shape[0] for x in inputs})}")
    return inputs, targets


class _Windows(abc.ABC):
    """What both samplers share: the data, the window geometry, batch assembly, epochs."""

    def __init__(self, dataset: Any, batch_size: int, context: int, frame: int, seed: int) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if not 1 <= frame <= context:
            raise DataError(f"need 1 <= frame <= context, got frame={frame}, context={context}")
        self.inputs, self.targets = _arrays(dataset)
        self.batch_size = int(batch_size)
        self.context = int(context)
        self.frame = int(frame)
        self.left = context_lead(self.context, self.frame)
        self.seed = int(seed)
        self.epoch = 0
        self.frames_per_file = np.array([math.ceil(x.shape[1] / self.frame) for x in self.inputs])

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one epoch."""
        return len(self)

    def __len__(self) -> int:
        return math.ceil(int(self.frames_per_file.sum()) / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """The next epoch (0 first, then 1, ...): each ``iter()`` call advances :attr:`epoch`."""
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    @abc.abstractmethod
    def iter_epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of epoch ``epoch``."""

    def _batch(self, files: np.ndarray, positions: np.ndarray, reset: np.ndarray,
               valid: np.ndarray) -> dict[str, torch.Tensor]:
        """Assemble a batch from per-slot file indices and frame positions."""
        c = self.inputs[0].shape[0]
        context = np.zeros((self.batch_size, c, self.context), np.float32)
        target = np.zeros((self.batch_size, c, self.frame), np.float32)
        for b in np.flatnonzero(valid):
            f, pos = files[b], positions[b]
            context[b] = window(self.inputs[f], pos - self.left, self.context)
            target[b] = window(self.targets[f], pos, self.frame)
        context_t = torch.from_numpy(context)
        return {"context": context_t,
                "input": context_t[:, :, self.left:self.left + self.frame].contiguous(),
                "target": torch.from_numpy(target),
                "reset": torch.from_numpy(reset & valid),
                "valid": torch.from_numpy(valid.copy()),
                "file": torch.from_numpy(np.where(valid, files, -1).astype(np.int64)),
                "position": torch.from_numpy(np.where(valid, positions, 0).astype(np.int64))}


class StreamingWindows(_Windows):
    """Stateful sliding windows: each batch slot walks through audio in consecutive frames.

    One epoch: the files, in an order shuffled per epoch (or in dataset order), are laid end to
    end as one stream of frames (``ceil(T_i / frame)`` frames for file ``i``, hop = ``frame``),
    and the stream is cut into ``batch_size`` consecutive runs of ``steps_per_epoch`` frames,
    one per slot. At step ``s`` slot ``b`` renders frame ``s`` of its run, so consecutive steps
    of a slot are contiguous audio until its file ends; the slot then moves on to the next file
    of its run with ``reset`` True. ``reset`` is also True at step 0 (every slot starts fresh),
    where a slot may start in the middle of a file (its context still holds the real audio
    before the frame). The stream's end can leave the last slot(s) short: their remaining steps
    (fewer than B frames in all) are zeros with ``valid`` False. Every sample of every file lies
    under exactly one valid frame per epoch.

    Args:
        dataset: ``len()`` and ``dataset[i] -> (input, target)``, float32 ``(C, T_i)`` each.
        batch_size: B, slots per batch.
        context: samples of input around each frame (the encoder's view), default 40960.
        frame: samples rendered per slot per step (also the hop), default 1024.
        shuffle_files: shuffle the file order every epoch (seeded from ``seed`` and the epoch).
        seed: makes every epoch's order reproducible.

    Shape:
        see the module docstring; ``len()`` = ``ceil(sum_i ceil(T_i / frame) / B)`` batches.
    """

    def __init__(self, dataset: Any, batch_size: int, context: int = 40960, frame: int = 1024,
                 shuffle_files: bool = True, seed: int = 0) -> None:
        super().__init__(dataset, batch_size, context, frame, seed)
        self.shuffle_files = shuffle_files

    def order(self, epoch: int) -> np.ndarray:
        """The file indices of epoch ``epoch`` in stream order."""
        n = len(self.inputs)
        if not self.shuffle_files:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def iter_epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of epoch ``epoch`` (the same every time for the same seed and epoch)."""
        order = self.order(epoch)
        counts = self.frames_per_file[order]
        stream_file = np.repeat(order, counts)  # file of each frame of the stream
        stream_frame = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # index in file
        total, steps = len(stream_file), len(self)
        slots = np.arange(self.batch_size)
        for s in range(steps):
            g = slots * steps + s
            valid = g < total
            g = np.minimum(g, total - 1)
            k = stream_frame[g]
            yield self._batch(stream_file[g], k * self.frame, (k == 0) | (s == 0), valid)


class RandomClips(_Windows):
    """Independent frames at random positions, for clip-mode training and validation.

    Each item picks a file with probability proportional to its length and a frame start
    uniformly in ``[0, T_i - frame]`` (0 for a file shorter than a frame); ``reset`` is True
    for every item (each frame starts from a cleared state) and ``valid`` is always True.

    Args:
        dataset: as for :class:`StreamingWindows`.
        batch_size: B.
        context, frame: in samples, as for :class:`StreamingWindows`.
        seed: epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e])``; for a fixed
            validation set iterate ``iter_epoch(0)`` every time.
        steps_per_epoch: batches per epoch; default as many frames as the data holds
            (the same count as :class:`StreamingWindows`).
    """

    def __init__(self, dataset: Any, batch_size: int, context: int = 40960, frame: int = 1024, seed: int = 0,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(dataset, batch_size, context, frame, seed)
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise DataError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        self.steps = steps_per_epoch
        lengths = np.array([x.shape[1] for x in self.inputs], np.float64)
        self.weights = lengths / lengths.sum()

    def __len__(self) -> int:
        return self.steps if self.steps is not None else super().__len__()

    def iter_epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of epoch ``epoch`` (the same every time for the same seed and epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        ones = np.ones(self.batch_size, bool)
        for _ in range(len(self)):
            files = rng.choice(len(self.inputs), size=self.batch_size, p=self.weights)
            room = np.array([max(self.inputs[f].shape[1] - self.frame, 0) for f in files])
            positions = rng.integers(0, room + 1)
            yield self._batch(files, positions, ones, ones)
