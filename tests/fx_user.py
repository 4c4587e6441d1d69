"""User-style Python effects for the python backend tests (imported as ``fx_user:<name>``)."""
import math

import numpy as np

NOT_CALLABLE = 42


def gain(audio, sample_rate, gain_db=0.0):
    """Stateless gain in decibels."""
    return audio * np.float32(10 ** (gain_db / 20))


def drop_last_sample(audio, sample_rate):
    """A buggy effect: returns one sample too few."""
    return audio[:, :-1]


def swap(audio, sample_rate):
    """A stereo-only effect: swaps the channels and halves the right one (so outputs differ)."""
    return np.stack([audio[1], 0.5 * audio[0]])


class OnePole:
    """Stateful one-pole low-pass, one memory per channel; ``reset`` clears it."""

    def __init__(self):
        self.z = None

    def __call__(self, audio, sample_rate, cutoff_hz=1000.0):
        a = math.exp(-2 * math.pi * cutoff_hz / sample_rate)
        z = np.zeros(audio.shape[0]) if self.z is None else self.z
        out = np.empty_like(audio)
        for n in range(audio.shape[1]):
            z = (1 - a) * audio[:, n] + a * z
            out[:, n] = z
        self.z = z
        return out

    def reset(self):
        self.z = None


class DelayLine:
    """Stateful integer delay of ``samples`` samples (a plugin with latency, in pure Python)."""

    def __init__(self):
        self.buf = None

    def __call__(self, audio, sample_rate, samples=0):
        d = int(samples)
        if self.buf is None or self.buf.shape != (audio.shape[0], d):
            self.buf = np.zeros((audio.shape[0], d), np.float32)
        joined = np.concatenate([self.buf, audio], axis=1)
        self.buf = joined[:, joined.shape[1] - d:]
        return joined[:, :audio.shape[1]]

    def reset(self):
        self.buf = None
