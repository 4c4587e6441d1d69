"""A classic energy-threshold noise gate: the non-learned baseline of breath and pop removal.

Per channel, the signal's RMS in frames of ``frame_ms`` is compared with ``threshold_db``
(dBFS). A frame above it opens the gate, and the gate stays open for ``hold_ms`` after the
last such frame; a closed gate applies ``floor_db`` of gain. The per-frame gain (in dB)
is smoothed by a one-pole filter with time constant ``attack_ms`` while opening and
``release_ms`` while closing, then interpolated linearly between frame centres to every
sample. The gate looks one frame ahead: it opens in the frame before a loud one, so the
gain has risen by the time an onset arrives.

:func:`fit_threshold` picks the threshold on the training split by one documented rule that
needs no labels, only the pairs: the value of :data:`THRESHOLD_GRID_DB` that minimises the
share of ``input - target`` (what the target removed) that the gate lets through plus the
share of the target that the gate takes away.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from ..errors import AudioFormatError, ParameterError

THRESHOLD_GRID_DB = tuple(np.arange(-60.0, -9.0, 2.0))  # -60, -58, ..., -10 dBFS


@dataclass(frozen=True)
class EnergyGate:
    """An energy-threshold gate; every setting in physical units.

    Attributes:
        threshold_db: frame RMS level that opens the gate, dBFS, in [-100, 0].
        floor_db: gain of the closed gate, dB, in [-120, 0] (-120: practically silent).
        attack_ms: time constant of opening, ms, > 0.
        hold_ms: how long the gate stays open after the last loud frame, ms, >= 0.
        release_ms: time constant of closing, ms, > 0.
        frame_ms: RMS frame (and hop) length, ms, in (0, 100].
    """

    threshold_db: float = -40.0
    floor_db: float = -40.0
    attack_ms: float = 2.0
    hold_ms: float = 50.0
    release_ms: float = 60.0
    frame_ms: float = 10.0

    def __post_init__(self) -> None:
        checks = {"threshold_db": -100 <= self.threshold_db <= 0, "floor_db": -120 <= self.floor_db <= 0,
                  "attack_ms": self.attack_ms > 0, "hold_ms": self.hold_ms >= 0, "release_ms": self.release_ms > 0,
                  "frame_ms": 0 < self.frame_ms <= 100}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ParameterError(f"EnergyGate: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} out of range "
                                 "(threshold_db in [-100, 0] dBFS, floor_db in [-120, 0] dB, attack_ms and "
                                 "release_ms > 0, hold_ms >= 0, frame_ms in (0, 100])")

    def gain_db(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        """The gate's gain per sample, in dB (0 open, ``floor_db`` closed).

        Shape:
            x: ``(C, T)`` float audio (1.0 = 0 dBFS); returns float64 ``(C, T)``.
        """
        x = _check(x, sample_rate)
        frame = max(1, round(self.frame_ms * sample_rate / 1000))
        n = -(-x.shape[1] // frame)
        padded = np.pad(x.astype(np.float64), ((0, 0), (0, n * frame - x.shape[1])))
        level = 10 * np.log10(np.mean(padded.reshape(x.shape[0], n, frame) ** 2, axis=-1) + 1e-20)
        hold = round(self.hold_ms / self.frame_ms)
        loud = level > self.threshold_db
        is_open = loud.copy()
        is_open[:, :-1] |= loud[:, 1:]  # one frame of look-ahead
        for k in range(1, hold + 1):  # stays open for `hold` frames after a loud one
            is_open[:, k:] |= loud[:, :-k]
        wanted = np.where(is_open, 0.0, self.floor_db)
        opening, closing = (np.exp(-self.frame_ms / t) for t in (self.attack_ms, self.release_ms))
        smooth = np.empty_like(wanted)
        state = wanted[:, 0].copy()
        for k in range(n):
            a = np.where(wanted[:, k] > state, opening, closing)
            state = a * state + (1 - a) * wanted[:, k]
            smooth[:, k] = state
        centres = (np.arange(n) + 0.5) * frame
        samples = np.arange(x.shape[1])
        return np.stack([np.interp(samples, centres, row) for row in smooth])

    def __call__(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        """Gate ``x``.

        Shape:
            x: ``(C, T)`` float audio; returns float32 ``(C, T)``.
        """
        return (x * 10 ** (self.gain_db(x, sample_rate) / 20)).astype(np.float32)


def _check(x: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.floating):
        raise AudioFormatError(f"EnergyGate: audio must be float (C, T) with T > 0, got {x.dtype} {x.shape}")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise AudioFormatError(f"EnergyGate: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return x


def fit_threshold(pairs: Iterable[tuple[np.ndarray, np.ndarray]], sample_rate: int, gate: EnergyGate = EnergyGate(),
                  grid: Iterable[float] = THRESHOLD_GRID_DB) -> EnergyGate:
    """``gate`` with the threshold of ``grid`` that fits the training pairs best (see the module docstring).

    The score of a threshold, summed over the pairs ``(x, y)`` with the gate's gain ``g``::

        sum((g (x - y))^2) / sum((x - y)^2)  +  sum(((1 - g) y)^2) / sum(y^2)

    the share of the removed part (the events) that the gate lets through plus the share of
    the target (the speech) that it takes away; the lowest score wins (ties: the lowest threshold).

    Args:
        pairs: training ``(input, target)`` pairs, each float ``(C, T)``; never the test split.
        sample_rate: in Hz.
        gate: the other settings.
        grid: candidate thresholds, dBFS.

    Returns:
        a copy of ``gate`` with the chosen ``threshold_db``.

    Raises:
        ParameterError: no pairs, or a pair whose input equals its target or whose target is silent.
    """
    pairs = [(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in pairs]
    if not pairs:
        raise ParameterError("fit_threshold: no training pairs given")
    for i, (x, y) in enumerate(pairs):
        if x.shape != y.shape or not np.any(x - y) or not np.any(y):
            raise ParameterError(f"fit_threshold: training pair #{i} has input shape {x.shape} and target shape "
                                 f"{y.shape}; they must match, differ, and the target must not be silent")
    scores = {}
    for threshold in grid:
        candidate = replace(gate, threshold_db=float(threshold))
        score = 0.0
        for x, y in pairs:
            g = 10 ** (candidate.gain_db(x, sample_rate) / 20)
            score += np.sum((g * (x - y)) ** 2) / np.sum((x - y) ** 2) + np.sum(((1 - g) * y) ** 2) / np.sum(y ** 2)
        scores[float(threshold)] = score
    return replace(gate, threshold_db=min(scores, key=scores.get))
