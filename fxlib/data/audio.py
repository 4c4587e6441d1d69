"""Audio files as float32 ``(channels, samples)`` arrays, and the data errors.

All audio file I/O goes through :mod:`soundfile` (libsndfile):

- :func:`load_audio` reads WAV, FLAC, OGG (Vorbis, Opus) and MP3 (libsndfile 1.1 or later),
  and the other formats libsndfile knows (AIFF, ...). Integer PCM (8, 16, 24, 32 bit) is
  scaled by ``2 ** (bits - 1)`` to [-1, 1) (8-bit WAV is unsigned: ``(x - 128) / 128``);
  float files keep their values.
- :func:`save_audio` writes by the file's suffix: ``.wav`` as 32-bit float (the exact sample
  values come back) or ``.flac`` as 24-bit PCM (lossless at 24 bits, about half the size).
- :func:`wav_bytes` gives the contents of a 16-bit PCM WAV file in memory, which every
  browser and audio widget plays.

Every file this package writes goes through :func:`fxlib.atomic.atomic_output`, so an
interrupted run never leaves a half-written file under the final name. Written files hold
no time stamp (the WAV writer leaves out libsndfile's PEAK chunk), so the same audio gives
the same bytes and a data set's recorded checksums reproduce.
"""
from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from ..atomic import atomic_output
from ..errors import AudioFormatError, FxError

SAVE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
"""File suffix -> (libsndfile format, subtype) that :func:`save_audio` writes."""

_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # sndfile.h; soundfile does not name it
_WAV_UNKNOWN_SIZE = 0xFFFFFFFF  # a data chunk size streaming writers leave when they cannot seek back


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
    """Read an audio file (WAV, FLAC, OGG, MP3, ...) as float32 ``(channels, samples)``.

    Args:
        path: the audio file; its format is found from its contents, not its suffix.
        sample_rate: in Hz; when given and different from the file's rate, the audio is
            resampled (polyphase, :func:`scipy.signal.resample_poly`). ``None`` keeps the file's rate.
        channels: when given, mono files are copied to every channel and multichannel files are
            averaged to mono (``channels=1``); other conversions are refused. ``None`` keeps them.

    Returns:
        ``(audio, rate)``: float32 ``(C, T)`` and its sample rate in Hz.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        AudioFileError: not a readable audio file, a WAV file whose data chunk runs past the
            end of the file (truncated), a FLAC stream that breaks off, no samples, NaN/Inf, or
            an impossible channel conversion; the message names the file. (A cut-off OGG or MP3
            stream reads as the shorter audio it holds.)
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"audio file {path} does not exist")
    try:
        _check_wav_data_chunk(path)
        with soundfile.SoundFile(path) as f:
            rate = int(f.samplerate)
            frames = f.read(dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError, ValueError, EOFError, struct.error) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from e
    audio = np.ascontiguousarray(frames.T)
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
    return audio, rate


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write ``audio`` atomically, in the format its suffix names (:data:`SAVE_FORMATS`).

    - ``.wav``: 32-bit float WAV; :func:`load_audio` gives back exactly the same float32 values,
      also outside [-1, 1].
    - ``.flac``: 24-bit PCM FLAC; samples are clipped to [-1, 1 - 2**-23] and rounded to the
      nearest multiple of ``2**-23`` (values already on that grid come back exactly).

    Args:
        path: the file to write, ending ``.wav`` or ``.flac`` (any case); parent folders are created.
        audio: float ``(C, T)``, finite.
        sample_rate: in Hz.

    Shape:
        audio: ``(C, T)``; the file stores T frames of C interleaved channels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        AudioFormatError: another suffix (the message names the supported ones), audio not
            ``(C, T)``, NaN/Inf, a rate that is not positive, or a rate or channel count the
            format cannot store (FLAC: at most 8 channels).
    """
    path = Path(path)
    kind = SAVE_FORMATS.get(path.suffix.lower())
    if kind is None:
        what = f"ending {path.suffix!r}" if path.suffix else "without a suffix"
        raise AudioFormatError(f"{path}: cannot write audio files {what}; save_audio writes "
                               f"{' or '.join(SAVE_FORMATS)} (32-bit float WAV or 24-bit FLAC)")
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioFormatError(f"{path}: audio to save must be shaped (channels, samples), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioFormatError(f"{path}: audio to save holds NaN or Inf")
    if int(sample_rate) <= 0:
        raise AudioFormatError(f"{path}: sample rate must be positive, got {sample_rate!r}")
    file_format, subtype = kind
    if subtype == "PCM_24":  # quantise here, so the stored integers do not depend on libsndfile's scaling
        scaled = np.round(np.clip(audio.astype(np.float64) * 2.0 ** 23, -2.0 ** 23, 2.0 ** 23 - 1))
        frames = np.ascontiguousarray((scaled.astype(np.int32) << 8).T)  # 24 bits, left-aligned in int32
    else:
        frames = np.ascontiguousarray(audio.astype(np.float32).T)
    try:
        with atomic_output(path) as tmp:
            _write(tmp, frames, int(sample_rate), file_format, subtype)
    except (soundfile.SoundFileError, RuntimeError, ValueError) as e:
        raise AudioFormatError(f"{path}: cannot write {audio.shape[0]} channel(s) at {int(sample_rate)} Hz "
                               f"as {file_format} ({e})") from e
    return path


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """The contents of a 16-bit PCM WAV file holding ``audio``, for players and widgets.

    Samples are clipped to [-1, 1] and rounded to the nearest step: ``np.round(x * 32767)``
    (so full scale is +-32767, and 0 stays 0).

    Args:
        audio: float ``(C, T)``, finite.
        sample_rate: in Hz.

    Returns:
        The bytes of a WAV file (RIFF header, ``fmt`` and ``data`` chunks).

    Raises:
        AudioFormatError: audio not ``(C, T)``, NaN/Inf, or a rate that is not positive.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioFormatError(f"wav_bytes: audio must be shaped (channels, samples), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioFormatError("wav_bytes: audio holds NaN or Inf")
    if int(sample_rate) <= 0:
        raise AudioFormatError(f"wav_bytes: sample rate must be positive, got {sample_rate!r}")
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767.0).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.ascontiguousarray(pcm.T), int(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


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


def _write(target: Path, frames: np.ndarray, sample_rate: int, file_format: str, subtype: str) -> None:
    """Write ``(T, C)`` frames with soundfile; float WAV without the PEAK chunk (it holds a time stamp).

    The format is named explicitly: ``target`` is a temporary file whose name ends in ``.tmp``.
    """
    with soundfile.SoundFile(target, "w", samplerate=sample_rate, channels=frames.shape[1],
                             format=file_format, subtype=subtype) as f:
        if subtype == "FLOAT":  # must come before the first write; soundfile has no public switch
            soundfile._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, soundfile._ffi.NULL, 0)
        f.write(frames)


def _check_wav_data_chunk(path: Path) -> None:
    """Refuse a RIFF WAV file whose ``data`` chunk claims more bytes than the file holds.

    libsndfile reads such a truncated file up to its end without an error; other formats
    are left to libsndfile.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return
        order = "<" if head[:4] == b"RIFF" else ">"
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk, length = struct.unpack(f"{order}4sI", f.read(8))
            if chunk == b"data":
                if length != _WAV_UNKNOWN_SIZE and position + 8 + length > size:
                    raise AudioFileError(f"{path}: truncated: the data chunk declares {length} bytes but "
                                         f"the file holds {size - position - 8}")
                return
            position += 8 + length + (length & 1)
