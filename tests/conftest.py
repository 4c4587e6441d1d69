"""Shared test helpers: seeded signals, level measurements, a one-thread torch fixture."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

SR = 22050


def sine(freq: float = 1000.0, dbfs: float = -6.0, seconds: float = 1.0, sr: int = SR,
         channels: int = 1) -> np.ndarray:
    """A steady sine of peak level ``dbfs``, float32 ``(channels, samples)``."""
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[None].astype(np.float32), channels, axis=0)


def noise(seconds: float = 1.0, sr: int = SR, channels: int = 1, dbfs: float = -20.0,
          seed: int = 0) -> np.ndarray:
    """Seeded white noise of RMS level ``dbfs``, float32 ``(channels, samples)``; channels differ."""
    x = np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))
    return (10 ** (dbfs / 20) * x).astype(np.float32)


def impulse(n: int = 4096, at: int = 0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    x = np.zeros((channels, n), np.float32)
    x[:, at] = amp
    return x


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12))


def tone_db(x: np.ndarray, freq: float, sr: int = SR) -> float:
    """Level (dB) of the FFT bin nearest ``freq`` of a mono signal, Hann-windowed."""
    x = np.asarray(x, np.float64).reshape(-1)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(round(freq * len(x) / sr))
    return float(20 * np.log10(spec[k - 1:k + 2].max() + 1e-12))


def band_db(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    """Energy (dB) of a mono signal between ``lo`` and ``hi`` Hz."""
    x = np.asarray(x, np.float64).reshape(-1)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-20))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread is faster, and steadier on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
