"""WAV files as float32 ``(channels, samples)`` arrays, and the data errors.

Every file this package writes goes through :func:`fxlib.atomic.atomic_output`, so an
interrupted run never leaves a half-written file under the final name.

WAV is read and written with :mod:`scipy.io.wavfile` (no extra dependency). Integer PCM
(8, 16, 24, 32 bit) is scaled to [-1, 1); files are written as 32-bit float, which keeps the
exact sample values.
"""
from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from ..atomic import atomic_output
from ..errors import AudioFormatError, FxError


class DataError(FxError):
    """A data set that is malformed, incomplete or inconsistent."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data folder, manifest, archive or audio file that does not exist."""


class AudioFileError(DataError, AudioFormatError):
    """An audio file that cannot be read, is empty, holds NaN/Inf, or has the wrong rate or channels."""


class DownloadError(DataError, OSError):
    """A download that failed: HTTP error, unreachable host, timeout or cut connection."""


class ChecksumError(DownloadError):
    """A downloaded file whose checksum differs from the expected one (the file is deleted)."""


def load_audio(path: str | Path, sample_rate: int | None = None,
               channels: int | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 ``(channels, samples)``.

    Args:
        path: the WAV file.
        sample_rate: in Hz; when given and different from the file's rate, the audio is
            resampled (polyphase, :func:`scipy.signal.resample_poly`). ``None`` keeps the file's rate.
        channels: when given, mono files are copied to every channel and multichannel files are
            averaged to mono (``channels=1``); other conversions are refused. ``None`` keeps them.

    Returns:
        ``(audio, rate)``: float32 ``(C, T)`` and its sample rate in Hz.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        AudioFileError: not a readable WAV file, no samples, NaN/Inf, or an impossible channel
            conversion; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"audio file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # chunks scipy skips (FluidSynth's LIST)
            warnings.filterwarnings("error", "Reached EOF", wavfile.WavFileWarning)  # truncated data
            rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError, IndexError, struct.error, wavfile.WavFileWarning) as e:
        raise AudioFileError(f"{path}: not a readable WAV file ({e})") from e
    audio = _to_float32(data, path)
    if audio.shape[1] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    if not np.isfinite(audio).all():
        bad = np.argwhere(~np.isfinite(audio))[0]
        raise AudioFileError(f"{path}: holds NaN or Inf (first at channel {bad[0]}, sample {bad[1]})")
    if channels is not None:
        audio = convert_channels(audio, channels, str(path))
    if sample_rate is not None and int(sample_rate) != rate:
        audio = resample(audio, rate, int(sample_rate))
        rate = int(sample_rate)
    return audio, int(rate)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write ``audio`` as a 32-bit float WAV file, atomically.

    Args:
        path: the WAV file to write (parent folders are created).
        audio: float ``(C, T)``, finite.
        sample_rate: in Hz.

    Shape:
        audio: ``(C, T)``; the file stores T frames of C interleaved channels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioFormatError(f"{path}: audio to save must be shaped (channels, samples), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioFormatError(f"{path}: audio to save holds NaN or Inf")
    if int(sample_rate) <= 0:
        raise AudioFormatError(f"{path}: sample rate must be positive, got {sample_rate!r}")
    frames = np.ascontiguousarray(audio.astype(np.float32).T)
    with atomic_output(path) as tmp:
        wavfile.write(tmp, int(sample_rate), frames[:, 0] if frames.shape[1] == 1 else frames)
    return path


def convert_channels(audio: np.ndarray, channels: int, name: str = "audio") -> np.ndarray:
    """Mono to ``channels`` by copying, or any count to mono by averaging.

    Shape:
        audio: ``(C, T)``; returns ``(channels, T)``.
    """
    have = audio.shape[0]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    raise AudioFileError(f"{name}: cannot convert {have} channels to {channels} (only mono <-> any)")


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Resample float32 ``(C, T)`` from ``rate`` to ``new_rate`` Hz (polyphase, Kaiser window).

    Returns float32 ``(C, ceil(T * new_rate / rate))``.
    """
    g = math.gcd(int(rate), int(new_rate))
    out = resample_poly(audio.astype(np.float64), int(new_rate) // g, int(rate) // g, axis=1)
    return out.astype(np.float32)


def _to_float32(data: np.ndarray, path: Path) -> np.ndarray:
    """Scale scipy's WAV data to float32 in [-1, 1) and lay it out ``(C, T)``."""
    if data.dtype == np.uint8:
        audio = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        audio = data.astype(np.float32) / 2.0 ** 15
    elif data.dtype == np.int32:  # 24-bit PCM arrives left-aligned in int32
        audio = (data.astype(np.float64) / 2.0 ** 31).astype(np.float32)
    elif data.dtype in (np.float32, np.float64):
        audio = data.astype(np.float32)
    else:
        raise AudioFileError(f"{path}: unsupported WAV sample format {data.dtype}")
    return audio[None] if audio.ndim == 1 else np.ascontiguousarray(audio.T)
