"""Small differentiable reference effects and a reference phrase, for tests, demos and the tour.

Each effect exists twice with the same maths:

* a numpy callable for the ``python`` backend (``f(audio, sample_rate, **params) -> audio``,
  float32 ``(C, T)`` in and out), so it runs inside :class:`~fxlib.chain.FxChain` and the
  engine's worker processes like any black-box plugin;
* a torch twin taking ``(B, C, T)`` tensors and native parameter tensors ``(B,)``, so torch
  autograd gives the exact gradients that SPSA estimates are checked against.

The twins import torch when called, so that worker processes, which load only the numpy
callables, start without importing torch.

=============  ==========================  ==========================================
name           parameter                   maths
=============  ==========================  ==========================================
``gain``       ``gain_db``, -24..24 dB     ``y = 10 ** (gain_db / 20) * x``
``lowpass``    ``cutoff_hz``, 50..10k Hz   one-pole ``y[n] = y[n-1] + a (x[n] - y[n-1])``,
               (log scale)                 ``a = 1 - exp(-2 pi cutoff_hz / sample_rate)``
``soft_clip``  ``drive_db``, 0..24 dB      ``y = tanh(10 ** (drive_db / 20) * x)``
=============  ==========================  ==========================================

:func:`chain_spec` returns a chain spec of some of them; :func:`render_torch` is the torch
twin of that whole chain, taking the same unit parameter vector as the chain.

:func:`demo_phrase` is the one seeded test signal of the demos (``fxlib demo``, the tour, the
listening kit's demo set): plucked harmonic notes, synthesised here so it needs nothing installed.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .params import Param

if TYPE_CHECKING:
    import torch

GAIN_DB = Param("gain_db", -24.0, 24.0, 0.0, unit="dB")
CUTOFF_HZ = Param("cutoff_hz", 50.0, 10000.0, 1000.0, unit="Hz", scale="log")
DRIVE_DB = Param("drive_db", 0.0, 24.0, 6.0, unit="dB")


def demo_phrase(seconds: float = 4.0, sample_rate: int = 22050, seed: Any = 0, peak_dbfs: float = -6.0) -> np.ndarray:
    """A seeded plucked-string phrase: decaying harmonic notes on a pentatonic scale from 110 Hz.

    Notes of 0.25 to 0.5 s follow each other, each ringing for twice its length, with up to 11
    harmonics below the Nyquist frequency, each decaying faster the higher it is.

    Args:
        seconds: length in s; sample_rate: in Hz.
        seed: anything :func:`numpy.random.default_rng` takes (an int, or a list such as ``[seed, k]``).
        peak_dbfs: the phrase's sample peak, in dBFS.

    Shape:
        returns float32 ``(1, round(seconds * sample_rate))``.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    out = np.zeros(n)
    t0 = 0.0
    while t0 < seconds:
        length = float(rng.choice([0.25, 0.375, 0.5]))
        f0 = 110.0 * 2 ** ((int(rng.choice([0, 3, 5, 7, 10])) + 12 * int(rng.integers(0, 3))) / 12)
        start, stop = round(t0 * sample_rate), min(n, round((t0 + 2 * length) * sample_rate))
        t = np.arange(stop - start) / sample_rate
        note = sum(np.sin(2 * np.pi * k * f0 * t) / k * np.exp(-t * (3 + 2 * k)) for k in range(1, 12)
                   if k * f0 < sample_rate / 2)
        out[start:stop] += rng.uniform(0.2, 0.5) * note * np.minimum(1.0, t / 0.003)
        t0 += length
    return (out / (np.max(np.abs(out)) + 1e-12) * 10 ** (peak_dbfs / 20))[None].astype(np.float32)


# -- numpy callables for the python backend ------------------------------------------------
def gain(audio: np.ndarray, sample_rate: float, gain_db: float) -> np.ndarray:
    """Scale by ``gain_db`` decibels.

    Args:
        audio: float32 ``(C, T)``.
        sample_rate: in Hz (unused).
        gain_db: gain in dB.

    Shape:
        audio ``(C, T)`` -> ``(C, T)``.
    """
    return (audio.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)


class OnePoleLowpass:
    """A one-pole low-pass filter that keeps its state between calls until :meth:`reset`.

    ``y[n] = y[n-1] + a (x[n] - y[n-1])`` with ``a = 1 - exp(-2 pi cutoff_hz / sample_rate)``;
    the state is the last output sample of each channel, so a cutoff change between calls
    continues smoothly.
    """

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state (as if the input had always been silent)."""
        self._last = None

    def __call__(self, audio: np.ndarray, sample_rate: float, cutoff_hz: float) -> np.ndarray:
        """Filter the next block.

        Args:
            audio: float32 ``(C, T)``.
            sample_rate: in Hz.
            cutoff_hz: the -3 dB frequency (approximately, for cutoffs well below Nyquist) in Hz.

        Shape:
            audio ``(C, T)`` -> ``(C, T)``.
        """
        from scipy.signal import lfilter  # here, not at the top: it takes a second to import

        a = 1.0 - math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        if self._last is None or self._last.shape[0] != audio.shape[0]:
            self._last = np.zeros(audio.shape[0])
        zi = ((1.0 - a) * self._last)[:, None]
        out, _ = lfilter([a], [1.0, a - 1.0], audio.astype(np.float64), axis=-1, zi=zi)
        self._last = out[:, -1].copy()
        return out.astype(np.float32)


def soft_clip(audio: np.ndarray, sample_rate: float, drive_db: float) -> np.ndarray:
    """tanh saturation after an input drive of ``drive_db`` decibels.

    Args:
        audio: float32 ``(C, T)``.
        sample_rate: in Hz (unused).
        drive_db: input gain before the tanh, in dB.

    Shape:
        audio ``(C, T)`` -> ``(C, T)``.
    """
    return np.tanh(audio.astype(np.float64) * 10.0 ** (drive_db / 20.0)).astype(np.float32)


# -- torch twins ------------------------------------------------------------------------------
def gain_torch(audio: torch.Tensor, sample_rate: float, gain_db: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`gain` (``sample_rate`` unused).

    Shape:
        audio ``(B, C, T)``, gain_db ``(B,)`` in dB -> ``(B, C, T)``.
    """
    return audio * 10.0 ** (gain_db[:, None, None] / 20.0)


def lowpass_torch(audio: torch.Tensor, sample_rate: float, cutoff_hz: torch.Tensor) -> torch.Tensor:
    """Torch twin of :class:`OnePoleLowpass` from a reset, as an exact causal convolution.

    The impulse response ``a (1 - a) ** n`` is applied over the whole clip with an FFT of
    twice its length, so nothing is truncated.

    Shape:
        audio ``(B, C, T)``, cutoff_hz ``(B,)`` in Hz -> ``(B, C, T)``.
    """
    import torch

    t = audio.shape[-1]
    a = 1.0 - torch.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
    n = torch.arange(t, dtype=audio.dtype, device=audio.device)
    h = a[:, None] * torch.exp(n * torch.log1p(-a)[:, None])
    spectrum = torch.fft.rfft(audio, 2 * t) * torch.fft.rfft(h, 2 * t)[:, None, :]
    return torch.fft.irfft(spectrum, 2 * t)[..., :t]


def soft_clip_torch(audio: torch.Tensor, sample_rate: float, drive_db: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`soft_clip` (``sample_rate`` unused).

    Shape:
        audio ``(B, C, T)``, drive_db ``(B,)`` in dB -> ``(B, C, T)``.
    """
    import torch

    return torch.tanh(audio * 10.0 ** (drive_db[:, None, None] / 20.0))


# -- chain specs and the twin of a whole chain ---------------------------------------------
EFFECTS = {
    "gain": ("fxlib.reference_fx:gain", GAIN_DB, gain_torch),
    "lowpass": ("fxlib.reference_fx:OnePoleLowpass", CUTOFF_HZ, lowpass_torch),
    "soft_clip": ("fxlib.reference_fx:soft_clip", DRIVE_DB, soft_clip_torch),
}
"""``{name: (python effect id, its one parameter, its torch twin)}``."""


def effect_spec(name: str) -> dict:
    """The chain-spec entry of reference effect ``name`` (one of :data:`EFFECTS`), its parameter learned."""
    plugin_id, param, _ = EFFECTS[name]
    return {"name": name, "kind": "python", "id": plugin_id, "params": [param.to_dict()], "learn": [param.name]}


def chain_spec(effects: Sequence[str] = ("gain", "lowpass", "soft_clip"), sample_rate: float = 22050,
               channels: int = 1) -> dict:
    """A chain spec of reference effects in the given order; P = ``len(effects)``."""
    return {"name": "reference", "sample_rate": sample_rate, "channels": channels,
            "effects": [effect_spec(n) for n in effects]}


def _to_native(param: Param, u: torch.Tensor) -> torch.Tensor:
    """Torch version of ``Param.to_native`` for the ``linear`` and ``log`` scales used here."""
    if param.scale == "log":
        return param.low * (param.high / param.low) ** u
    return param.low + u * (param.high - param.low)


def render_torch(audio: torch.Tensor, params: torch.Tensor, effects: Sequence[str] = ("gain", "lowpass", "soft_clip"),
                 sample_rate: float = 22050) -> torch.Tensor:
    """Torch twin of ``FxChain.from_spec(chain_spec(effects, sample_rate)).process(x, u)``, batched.

    Args:
        audio: ``(B, C, T)``, float64 recommended for gradient checks.
        params: unit parameter vectors ``(B, P)`` in [0, 1], one column per effect in order.
        effects: names from :data:`EFFECTS`.
        sample_rate: in Hz.

    Shape:
        audio ``(B, C, T)``, params ``(B, len(effects))`` -> ``(B, C, T)``.
    """
    for i, name in enumerate(effects):
        _, param, twin = EFFECTS[name]
        audio = twin(audio, sample_rate, _to_native(param, params[:, i].clamp(0.0, 1.0)))
    return audio
