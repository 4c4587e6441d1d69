"""Paired audio data sets: files on disk, in-memory loading, training windows, and their makers.

=====================  ==========================================================================
module                 holds
=====================  ==========================================================================
:mod:`.audio`          audio files (soundfile: WAV, FLAC, OGG, MP3 in; WAV, FLAC out) as float32
                       ``(C, T)``, atomic writes, in-memory WAV for players, the data errors
:mod:`.download`       resumable, checksummed downloads; safe, atomic zip/tar extraction
:mod:`.paired`         the manifest layout every task uses; :class:`PairedDataset`
:mod:`.windows`        :class:`StreamingWindows` (the paper's stateful frames) and :class:`RandomClips`
:mod:`.midi`           seeded MIDI riffs and grooves, a MIDI file writer, FluidSynth rendering
:mod:`.amp`            the tube-amp task's data: the paper's download or the offline build
:mod:`.breath`         breath and pop removal: DAPS download, or offline speech with labelled events
:mod:`.mastering`      mastering: a song-manifest download, or offline songs mastered by ZAM plugins
:mod:`.scripts`        what the three data commands share (options, the recorded command)
=====================  ==========================================================================

:mod:`.windows` imports torch, so its names load on first use: building or reading a data set
does not import torch.
"""
from .audio import (AudioFileError, ChecksumError, DataError, DataNotFoundError, DownloadError, load_audio,
                    save_audio, wav_bytes)
from .download import download, extract, file_digest
from .paired import Manifest, Pair, PairedDataset, PairWriter, read_manifest, split_names, write_manifest

_LAZY = {"RandomClips", "StreamingWindows"}


def __getattr__(name: str):
    """``RandomClips`` and ``StreamingWindows`` (:mod:`.windows`), imported on first use."""
    if name in _LAZY:
        from . import windows

        return getattr(windows, name)
    raise AttributeError(f"module 'fxlib.data' has no attribute {name!r}")


__all__ = ["AudioFileError", "ChecksumError", "DataError", "DataNotFoundError", "DownloadError", "Manifest", "Pair",
           "PairWriter", "PairedDataset", "RandomClips", "StreamingWindows", "download", "extract", "file_digest",
           "load_audio", "read_manifest", "save_audio", "split_names", "wav_bytes", "write_manifest"]
