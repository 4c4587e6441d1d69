"""Reference mastering with matchering (Sergree's library): the mastering task's classic baseline.

matchering matches a track's RMS level, frequency response, peak amplitude and stereo width
to those of a *reference* master, then applies its brick-wall limiter. It reads and writes
files and works at 44.1 kHz stereo, so :func:`master` writes the track and the reference as
44.1 kHz stereo 32-bit float WAV files in a temporary folder (resampled with
:func:`fxlib.data.audio.resample`; mono copied to both channels), runs it, and converts the
result back to the caller's rate and channel count (stereo averaged for a mono caller) and
exact length.

**Which reference.** :func:`pick_reference` takes it from the *training* split, never from the
song being mastered: the training target whose integrated loudness is the median of the
training targets' (ties: the smaller pair id), i.e. a typical master of the data set. The
mastering task uses that one reference for every test song, as a user of a reference-based
service would pick one master they like.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from ..data.audio import DataError, convert_channels, load_audio, resample, save_audio
from ..data.paired import Pair, read_manifest
from ..errors import AudioFormatError, FxError, require
from ..metrics import loudness_lufs

RATE = 44100  # matchering's internal rate
MIN_SECONDS = 0.5  # shorter tracks are refused (matchering needs more than one 4096-sample FFT frame)


def pick_reference(data_root: str | Path, sample_rate: int) -> tuple[Pair, np.ndarray]:
    """The reference master for matchering, chosen from the training split (see the module docstring).

    Args:
        data_root: a paired data set (:mod:`fxlib.data.paired`).
        sample_rate: in Hz, of the returned audio.

    Returns:
        ``(pair, target audio (C, T) float32 at sample_rate)`` with the file's own channels.

    Raises:
        DataNotFoundError, DataError: no data set, or no training pair with a measurable loudness.
    """
    root = Path(data_root)
    train = sorted((p for p in read_manifest(root).pairs if p.split == "train"), key=lambda p: p.id)
    levels = []
    for pair in train:
        audio, _ = load_audio(root / pair.target, sample_rate)
        level = loudness_lufs(audio, sample_rate) if audio.shape[1] >= 0.4 * sample_rate else -math.inf
        if math.isfinite(level):
            levels.append((level, pair, audio))
    if not levels:
        raise DataError(f"{root}: no training target (at least 0.4 s, not silent) to use as matchering's reference")
    order = sorted(range(len(levels)), key=lambda i: (levels[i][0], levels[i][1].id))
    _, pair, audio = levels[order[(len(order) - 1) // 2]]
    return pair, audio


def master(audio: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int) -> np.ndarray:
    """Master ``audio`` with matchering against ``reference``.

    Args:
        audio: float32 ``(C, T)``, C = 1 or 2, at least :data:`MIN_SECONDS`.
        sample_rate: of ``audio``, in Hz.
        reference: float32 ``(C', T')``, C' = 1 or 2, at least :data:`MIN_SECONDS`; must differ
            from ``audio`` (matchering refuses to match a track to itself).
        reference_rate: of ``reference``, in Hz.

    Returns:
        float32 ``(C, T)``: the mastered audio at ``sample_rate``, shaped like ``audio``.

    Raises:
        AudioFormatError: a wrong shape, channel count, length or non-finite samples.
        BackendUnavailableError: matchering is not installed.
        FxError: matchering failed (its explanation is included).
    """
    for name, x, rate in (("audio", audio, sample_rate), ("reference", reference, reference_rate)):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] not in (1, 2):
            raise AudioFormatError(f"matchering: {name} must be (channels, samples) with 1 or 2 channels, "
                                   f"got shape {x.shape}")
        if x.shape[1] < MIN_SECONDS * rate:
            raise AudioFormatError(f"matchering: {name} lasts {x.shape[1] / rate:.3f} s; matchering needs at "
                                   f"least {MIN_SECONDS:g} s")
        if not np.isfinite(x).all():
            raise AudioFormatError(f"matchering: {name} holds NaN or Inf")
    mg = require("matchering", "the matchering baseline", "pip install 'deepafx-fxlib[mastering]'")
    ModuleError = require("matchering.log", "the matchering baseline", "pip install 'deepafx-fxlib[mastering]'").ModuleError
    channels, length = audio.shape
    with tempfile.TemporaryDirectory(prefix="fxlib-matchering-") as tmp:
        target_path, reference_path, result_path = (Path(tmp) / f"{n}.wav" for n in ("target", "reference", "result"))
        save_audio(target_path, _stereo_44k(audio, sample_rate), RATE)
        save_audio(reference_path, _stereo_44k(reference, reference_rate), RATE)
        try:
            mg.process(target=str(target_path), reference=str(reference_path),
                       results=[mg.Result(str(result_path), subtype="FLOAT", use_limiter=True, normalize=True)])
        except ModuleError as e:
            raise FxError(f"matchering failed: {e}") from e
        out, _ = load_audio(result_path, sample_rate, channels)
    return np.pad(out[:, :length], ((0, 0), (0, max(0, length - out.shape[1])))).astype(np.float32)


def _stereo_44k(audio: np.ndarray, rate: int) -> np.ndarray:
    """``(C, T)`` at ``rate`` as float32 ``(2, T')`` at 44.1 kHz."""
    audio = convert_channels(np.asarray(audio, np.float32), 2)
    return audio if rate == RATE else resample(audio, rate, RATE)
