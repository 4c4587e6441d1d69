"""Data for breath and pop removal: the paper's DAPS recordings, or an offline stand-in built here.

``download`` fetches the paper's data set, DAPS (Mysore, "Can we automatically transform
speech recorded on common consumer devices in real-world environments into
professional production quality speech?", IEEE SPL 2015), ``daps.tar.gz`` from Zenodo
record 4660670. The layout used (:data:`LAYOUT`; every name is an argument in case the
archive differs)::

    daps/clean_raw/<speaker>_<script>_clean_raw.wav   studio recordings as captured (the inputs)
    daps/clean/<speaker>_<script>_clean.wav           the same, edited by a sound engineer who
                                                      removed breaths, pops and mouth noises (targets)

with speakers ``f1``-``f10`` and ``m1``-``m10`` and scripts ``script1``-``script5``, at 44.1 kHz.
Files are paired by ``<speaker>_<script>``; every input must have its target. Each pair is
resampled to 22050 Hz, mixed to mono, trimmed to the shorter length (within 50 ms) and cut
into segments of ``segment_seconds`` (30 s; a last piece shorter than ``min_segment_seconds``
(5 s) is dropped), ids ``<speaker>_<script>_<k:03d>``.
Split rule, by speaker so that no voice is in two splits: the speakers, sorted (``f1, f2, ...,
f10, m1, ...``, by letter then number), are assigned with
:func:`~fxlib.data.paired.split_names` (seed 0: 20 speakers give 16 train, 2 valid, 2 test),
and every segment of a speaker goes to that speaker's split.
DAPS has no event labels: its pairs carry no ``info["events"]``, and the event metrics of
:mod:`fxlib.tasks.breath` read NaN for them (the speech metrics then cover the whole file).
No published checksum of the archive could be confirmed offline, so by default its MD5 is
computed and recorded in the manifest (with a warning); pass ``md5`` to verify it.

``build`` makes an offline stand-in shaped on what the paper's own breath examples show (the
listening test's DAPS excerpts, measured with :mod:`fxlib.data.stats`: :data:`PAPER_STATISTICS`).
The old stand-in (8 kHz speech, broadband breaths alone in digital silence) let a gate find
every breath above 4 kHz and in the silence; this one offers neither cue.

**Speech.** Real recordings from Debian packages (:data:`VOICES`), one speaker per take: the
Asterisk prompts in G.722 (16 kHz, a band of 50 Hz-7 kHz; decoded with ffmpeg),
``asterisk-core-sounds-{en,es,it,ru,fr}-g722``, voices Allison Smith (US English and Mexican
Spanish), Carlo (Italian, male), the Russian voice of ivrvoice.ru and June Wallack (Canadian
French). The split is **by voice** (:attr:`Voice.split`), fixed, so that valid and test hold
voices never trained on: train Allison (both languages) and Carlo, valid the Russian voice, test
June. Each file's split comes from :func:`~fxlib.data.paired.split_names`; the files of a
split go to its voices in turn. Prompts longer than
:data:`MAX_CLIP_SECONDS` and Asterisk's ``silence/`` files are not used; the rest are resampled
to the data set's rate and trimmed of their silent edges.

**A take** (one pair, ``file_seconds`` long) is a sequence of phrases, each one or more prompts
joined by 40-150 ms word pauses until it lasts :data:`PHRASE_SECONDS` (at most 3 prompts and
4 s, unless one prompt is longer), each within :data:`PHRASE_SPREAD_DB` of the take's active
speech level (ITU-T P.56), which is drawn in :data:`SPEECH_LEVEL_DBFS`. Before each phrase comes
a gap: with :data:`BREATH_PROBABILITY` (always before the first) it holds a breath, else a
pause of :data:`PAUSE_SECONDS`.

**Breaths** are shaped like real inhalations (:func:`breath`): noise through an open vocal
tract (three formants in 500-900, 1000-1800 and 2200-3200 Hz, moving a little during the breath)
blended with a nasal colour (a 200-450 Hz murmur, a 700-1300 Hz anti-resonance), plus some
low rumble of the airflow at the microphone, so that most of the energy lies between 500 Hz and
4 kHz (in octave bands, close to the paper's breaths); :data:`BREATH_SECONDS` long (0.2-0.7 s),
with quick edges, a drifting level and flutter; a level (power over the breath) drawn in
:data:`BREATH_LEVEL_DB` relative to the take's active speech level. A breath starts
:data:`BREATH_AFTER_PHRASE_SECONDS` after the previous phrase and ends
:data:`BREATH_BEFORE_ONSET_SECONDS` before the next onset; with :data:`OVERLAP_PROBABILITY` it
overlaps instead the onset or the previous phrase's tail by up to 50 ms
(:data:`OVERLAP_SECONDS`). **Pops** (:func:`pop`: a decaying 40-150 Hz tone and low-passed
noise, 15-60 ms, level in :data:`POP_LEVEL_DB`) sit on word onsets *inside* speech: at each
onset of speech activity (:func:`fxlib.data.stats.speech_activity`; after 30 ms without, for
100 ms or more) with :data:`POP_PROBABILITY`, at least one per take, starting up to 20 ms before
it. The events are low-passed to the speech's 7 kHz band (:data:`G722_BAND_HZ`), as if recorded
through the same channel, so that no band above the speech gives them away.

**Microphone and room.** The whole take, speech and events, goes through one microphone colour
(:func:`microphone`: a low cut and a presence shelf, which bring the speech's bandwidth near the
paper's) and one short room response (:func:`room_response`: the direct sound, a few early
reflections and an exponential tail of RT60 in :data:`ROOM_RT60_SECONDS` at a
direct-to-reverberant ratio in :data:`ROOM_DRR_DB`) per take; a take louder than
:data:`PEAK_DBFS` is turned down; then a continuous noise floor is added (:func:`room_noise`:
a spectral slope in :data:`NOISE_SLOPE_DB_PER_OCTAVE`, level drawn per take in
:data:`NOISE_FLOOR_DBFS`, around the paper's -80 dBFS). No take holds digital silence.

**The target** is the same take without the events, through the same microphone and room, with
the same noise: ``input - target`` is the events after the room (the target keeps the noise
floor). Each event is labelled in the pair's ``info["events"]`` (:func:`label_events`) as
``{"kind": "breath" | "pop", "start": s, "end": s, "level_dbfs", "level_db",
"touches_speech"}``: the event's span before the room (its reverberation runs on past ``end``,
8 dB or more down), the power of ``input - target`` over it, the same relative to the target's
active speech level, and whether the target's speech is active within 50 ms of it. ``info``
also holds the voice and the drawn speech level, noise, microphone and room.

**Measured properties.** After the last pair, :func:`dataset_statistics` measures the set from
its audio (speech bandwidth, noise floor, active speech level, the labelled events' levels and
contact with speech, and the events :func:`fxlib.data.stats.locate_events` finds) and writes them
into the manifest's ``source["statistics"]["this_set"]``, beside ``["paper_examples"]``
(:data:`PAPER_STATISTICS`, the same measures of the paper's examples). Every file depends only on
the seed and its index, so the same seed gives the same WAV bytes, and an interrupted build
resumes.

Both write the layout of :mod:`fxlib.data.paired` under ``root``.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

from . import stats
from .audio import AudioFileError, DataError, DataNotFoundError, load_audio, resample, save_audio
from .download import download, extract, file_digest, progress_logger
from .paired import Manifest, PairWriter, match_lengths, split_names
from .scripts import command_line, task_parser

TASK = "breath"
#: The offline builder's version, recorded in the manifest: training refuses a set built by another
#: (:meth:`fxlib.tasks.Task.ensure_data` says to delete it and build it again).
GENERATOR = "fxlib.data.breath.build/3"
URL = "https://zenodo.org/records/4660670/files/daps.tar.gz?download=1"
ARCHIVE = "daps.tar.gz"
LAYOUT = {"folder": "daps", "input": "clean_raw", "target": "clean",
          "input_suffix": "_clean_raw", "target_suffix": "_clean"}
SAMPLE_RATE = 22050
SEGMENT_SECONDS = 30.0
MIN_SEGMENT_SECONDS = 5.0

Log = Callable[[str], None]


# ---------------------------------------------------------------------------- offline build: the voices

ASTERISK_DIR = Path("/usr/share/asterisk/sounds")
G722_RATE = 16000
G722_BYTES_PER_SECOND = 8000  # 64 kbit/s
G722_BAND_HZ = 7000.0
G722_SKIP = ("silence",)  # Asterisk's folder of silent files
FFMPEG = "ffmpeg"
MAX_CLIP_SECONDS = 4.5  # longer recordings are not used
TRIM_BELOW_PEAK_DB = 40.0  # clip-edge frames this far below the loudest frame are trimmed
TRIM_FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class Voice:
    """One speaker's recordings in a Debian package, and the split all its takes go to.

    Attributes:
        name: Asterisk's folder name (language, sex, speaker), e.g. ``"fr_CA_f_June"``.
        package: the Debian package that installs the recordings, raw G.722 bit streams at
            16 kHz (a band of 50 Hz to 7 kHz) under ``ASTERISK_DIR / name``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        speaker: who recorded it, as the package's copyright file says.
    """

    name: str
    package: str
    split: str
    speaker: str

    @property
    def folder(self) -> Path:
        """Where the package installs the recordings."""
        return ASTERISK_DIR / self.name


#: The offline build's voices: train, valid and test never share one.
VOICES: tuple[Voice, ...] = (
    Voice("en_US_f_Allison", "asterisk-core-sounds-en-g722", "train", "Allison Smith, US English, female"),
    Voice("es_MX_f_Allison", "asterisk-core-sounds-es-g722", "train", "Allison Smith, Mexican Spanish, female"),
    Voice("it_IT_m_Carlo", "asterisk-core-sounds-it-g722", "train", "Carlo, Italian, male"),
    Voice("ru_RU_f_IvrvoiceRU", "asterisk-core-sounds-ru-g722", "valid", "the voice of ivrvoice.ru, Russian, female"),
    Voice("fr_CA_f_June", "asterisk-core-sounds-fr-g722", "test", "June Wallack, Canadian French, female"),
)


def voice_files(voice: Voice) -> list[Path]:
    """The recordings of ``voice`` that the build may use, sorted by path.

    Files longer than :data:`MAX_CLIP_SECONDS` (from their size: 8000 bytes a second) or under
    ``silence/`` are left out.

    Raises:
        DataNotFoundError: the folder is missing or holds no usable file (names the package).
    """
    found = sorted(voice.folder.rglob("*.g722")) if voice.folder.is_dir() else []
    files = [p for p in found if p.relative_to(voice.folder).parts[0] not in G722_SKIP
             and 0 < p.stat().st_size / G722_BYTES_PER_SECOND <= MAX_CLIP_SECONDS]
    if not files:
        raise DataNotFoundError(f"no G.722 speech of voice {voice.name} in {voice.folder}; install it with "
                                f"`sudo apt-get install {voice.package}`")
    return files


def decode_g722(paths: Sequence[Path], batch: int = 64) -> list[np.ndarray]:
    """Decode raw G.722 files with ffmpeg (one process for up to ``batch`` files).

    Returns:
        float32 ``(T_i,)`` at :data:`G722_RATE` (16 kHz), one per path, in order.

    Raises:
        DataNotFoundError: ffmpeg is not installed.
        AudioFileError: ffmpeg failed (its message names the file).
    """
    if not paths:
        return []
    ffmpeg = shutil.which(FFMPEG)
    if ffmpeg is None:
        raise DataNotFoundError("ffmpeg decodes the G.722 speech of the offline breath build; install it with "
                                "`sudo apt-get install ffmpeg`")
    decoded = []
    with tempfile.TemporaryDirectory(prefix="fxlib-g722-") as tmp:
        for first in range(0, len(paths), batch):
            chunk = list(paths[first:first + batch])
            command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y"]
            for path in chunk:
                command += ["-f", "g722", "-i", str(path)]
            for i in range(len(chunk)):
                command += ["-map", f"{i}:a", "-f", "f32le", "-ac", "1", "-ar", str(G722_RATE), f"{tmp}/{i}.raw"]
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            if result.returncode != 0:
                raise AudioFileError(f"ffmpeg could not decode the G.722 files {chunk[0]} ... {chunk[-1]}: "
                                     f"{result.stderr.strip()[-800:]}")
            decoded += [np.fromfile(f"{tmp}/{i}.raw", "<f4") for i in range(len(chunk))]
    return decoded


class VoiceClips:
    """The trimmed recordings of one voice at the data set's rate, decoded when first asked for.

    Args:
        voice: the voice; sample_rate: in Hz.

    ``clips.files`` lists the usable recordings (:func:`voice_files`); ``clips.get(indices)``
    returns them trimmed (float32 ``(T,)`` each, possibly empty when a recording is silent),
    decoding in one ffmpeg run those not seen before (all of a voice's take up to some 70 MB).
    """

    def __init__(self, voice: Voice, sample_rate: int) -> None:
        self.voice = voice
        self.sample_rate = sample_rate
        self.files = voice_files(voice)
        self._cache: dict[int, np.ndarray] = {}

    def get(self, indices: Iterable[int]) -> list[np.ndarray]:
        indices = list(indices)
        missing = sorted(set(indices) - set(self._cache))
        for i, audio in zip(missing, decode_g722([self.files[i] for i in missing])):
            self._cache[i] = _trim(resample(audio[None], G722_RATE, self.sample_rate)[0], self.sample_rate)
        return [self._cache[i] for i in indices]


def _trim(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``x (T,)`` without leading and trailing 10 ms frames quieter than its loudest by :data:`TRIM_BELOW_PEAK_DB`."""
    frame = max(1, round(TRIM_FRAME_SECONDS * sample_rate))
    n = -(-len(x) // frame)
    power = np.mean(np.pad(x.astype(np.float64), (0, n * frame - len(x))).reshape(n, frame) ** 2, axis=1)
    loud = np.flatnonzero(power > power.max() * 10 ** (-TRIM_BELOW_PEAK_DB / 10)) if np.any(x) else []
    return x[loud[0] * frame:(loud[-1] + 1) * frame] if len(loud) else x[:0]


# ---------------------------------------------------------------------------- offline build: events and room

SPEECH_LEVEL_DBFS = (-24.0, -15.0)  # a take's active speech level (P.56); the paper's examples: -21.6 to -15.4
PHRASE_SPREAD_DB = 2.0  # each phrase's level within this of the take's
PHRASE_SECONDS = (1.0, 4.0)  # a phrase takes recordings until it is this long (one recording may be longer)
CLIPS_PER_PHRASE = 3
WORD_PAUSE_SECONDS = (0.04, 0.15)  # between the prompts of a phrase (no breath there)
LEAD_IN_SECONDS = (0.05, 0.3)  # room tone before the first breath
PAUSE_SECONDS = (0.25, 0.8)  # a phrase gap without a breath
BREATH_PROBABILITY = 0.8  # per phrase gap; the first gap always holds one
BREATH_SECONDS = (0.2, 0.7)
BREATH_EDGE_SECONDS = (0.03, 0.15)  # each of the breath's rise and fall
BREATH_DRIFT_DB = 8.0  # the breath's level drifts by up to this from its start to its end
BREATH_RUMBLE_HZ = (200.0, 400.0)  # low-pass of the airflow's rumble at the microphone
BREATH_RUMBLE_MAX = 0.8  # its amplitude, at most, relative to the tract's sound
BREATH_LEVEL_DB = (-48.0, -18.0)  # power over the breath, dB re the take's active speech level (see PAPER_STATISTICS)
BREATH_AFTER_PHRASE_SECONDS = (0.0, 0.2)  # from the previous phrase's end to the breath's start
BREATH_BEFORE_ONSET_SECONDS = (0.0, 0.06)  # from the breath's end to the phrase onset
OVERLAP_PROBABILITY = 0.3  # a breath overlaps the onset or the previous phrase's tail instead
OVERLAP_SECONDS = (0.0, 0.05)
POP_PROBABILITY = 0.12  # per word onset; at least one pop per take
POP_SECONDS = (0.015, 0.06)
POP_LEVEL_DB = (-35.0, -12.0)  # power over the pop, dB re the take's active speech level
POP_LEAD_SECONDS = (0.0, 0.02)  # the pop starts this long before the onset of speech activity
POP_HZ = (40.0, 150.0)
WORD_GAP_SECONDS = 0.03  # a word onset: speech activity after at least this long without ...
WORD_MIN_SECONDS = 0.1  # ... that lasts at least this long
NOISE_FLOOR_DBFS = (-86.0, -74.0)  # RMS of the room noise; the paper's targets: -81.5 to -78.6 (5th percentile)
NOISE_SLOPE_DB_PER_OCTAVE = (-4.5, -2.5)  # of the noise's power spectral density (pink: -3)
NOISE_LOW_HZ = 30.0  # the noise's spectrum is flat below this
ROOM_RT60_SECONDS = (0.1, 0.35)
ROOM_DRR_DB = (8.0, 18.0)  # direct-to-reverberant energy ratio
ROOM_REFLECTIONS = (3, 6)
ROOM_REFLECTION_SECONDS = (0.0015, 0.015)
ROOM_TAIL_START_SECONDS = 0.005
ROOM_TAIL_LOWPASS_HZ = (3000.0, 8000.0)
MIC_LOW_CUT_HZ = (50.0, 120.0)  # the microphone's and preamp's colour: a 2nd-order low cut ...
MIC_SHELF_HZ, MIC_SHELF_DB = 3000.0, (2.0, 8.0)  # ... and a presence shelf (bandwidths like the paper's)
PEAK_DBFS = -1.0
EVENT_LOWPASS_ORDER = 8  # of the zero-phase Butterworth low-pass of the events to the speech's band


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to an RMS of 1."""
    return x / np.sqrt(np.mean(x ** 2))


def _resonance(x: np.ndarray, hz: float, bandwidth_hz: float, sample_rate: int, notch: bool = False) -> np.ndarray:
    """``x`` through a second-order resonance (or anti-resonance) at ``hz`` of ``bandwidth_hz``."""
    design = scipy.signal.iirnotch if notch else scipy.signal.iirpeak
    b, a = design(hz, hz / bandwidth_hz, fs=sample_rate)
    return scipy.signal.lfilter(b, a, x)


def breath(rng: np.random.Generator, seconds: float, colour: float, sample_rate: int) -> np.ndarray:
    """A synthetic inhalation: float64 ``(round(seconds * sample_rate),)``, RMS 1.

    Turbulent noise, high-passed at 80-250 Hz, through two states of an oral vocal tract (three
    formants drawn from 500-900, 1000-1800 and 2200-3200 Hz, a 2.5-4.5 kHz roll-off; the second
    state's formants up to 10 % higher, crossfaded over the breath) blended with a nasal tract (a
    200-450 Hz murmur, a 1000-1400 Hz resonance, a 700-1300 Hz anti-resonance, a 2.5-4 kHz
    roll-off) by ``colour`` (0 oral, 1 nasal), plus up to :data:`BREATH_RUMBLE_MAX` of the
    airflow's low rumble at the microphone (the noise low-passed at :data:`BREATH_RUMBLE_HZ`).
    Its envelope, as the paper's examples show inhalations, rises and falls quickly (raised-sine
    edges of :data:`BREATH_EDGE_SECONDS` each) around a body whose level drifts by up to
    :data:`BREATH_DRIFT_DB` from start to end, with a 10-30 % flutter of the airflow below 30 Hz.
    """
    n = round(seconds * sample_rate)
    pad = 4096  # filter run-in, dropped
    noise = rng.standard_normal(n + pad)
    base = scipy.signal.sosfilt(scipy.signal.butter(2, rng.uniform(80.0, 250.0), "highpass", fs=sample_rate,
                                                    output="sos"), noise)

    def oral(shift: float) -> np.ndarray:
        y = 0.35 * base
        for (low, high), (bw_low, bw_high), gain in (((500.0, 900.0), (150.0, 300.0), 1.0),
                                                     ((1000.0, 1800.0), (200.0, 400.0), 0.8),
                                                     ((2200.0, 3200.0), (300.0, 600.0), 0.3)):
            y = y + gain * _resonance(base, rng.uniform(low, high) * shift, rng.uniform(bw_low, bw_high), sample_rate)
        rolloff = scipy.signal.butter(2, rng.uniform(2500.0, 4500.0), fs=sample_rate, output="sos")
        return _unit(scipy.signal.sosfilt(rolloff, y)[pad:])

    def nasal() -> np.ndarray:
        y = (0.3 * base + _resonance(base, rng.uniform(200.0, 450.0), rng.uniform(100.0, 200.0), sample_rate)
             + 0.6 * _resonance(base, rng.uniform(1000.0, 1400.0), rng.uniform(200.0, 400.0), sample_rate))
        y = _resonance(y, rng.uniform(700.0, 1300.0), rng.uniform(150.0, 300.0), sample_rate, notch=True)
        rolloff = scipy.signal.butter(2, rng.uniform(2500.0, 4000.0), fs=sample_rate, output="sos")
        return _unit(scipy.signal.sosfilt(rolloff, y)[pad:])

    t = np.linspace(0.0, 1.0, n)
    mouth = _unit(oral(1.0) * (1 - t) + oral(rng.uniform(1.0, 1.1)) * t)
    rumble = scipy.signal.sosfilt(scipy.signal.butter(2, rng.uniform(*BREATH_RUMBLE_HZ), fs=sample_rate,
                                                      output="sos"), base)
    shaped = (1 - colour) * mouth + colour * nasal() + rng.uniform(0.0, BREATH_RUMBLE_MAX) * _unit(rumble[pad:])
    attack = min(n // 3, round(rng.uniform(*BREATH_EDGE_SECONDS) * sample_rate))
    release = min(n // 3, round(rng.uniform(*BREATH_EDGE_SECONDS) * sample_rate))
    envelope = 10 ** (np.linspace(0.0, rng.uniform(-BREATH_DRIFT_DB, BREATH_DRIFT_DB), n) / 20)
    envelope[:attack] *= np.sin(0.5 * np.pi * np.arange(attack) / attack) ** 2
    envelope[n - release:] *= np.cos(0.5 * np.pi * np.arange(release) / release) ** 2
    flutter = scipy.signal.sosfilt(scipy.signal.butter(2, 30.0, fs=sample_rate, output="sos"),
                                   rng.standard_normal(n + pad))[pad:]
    envelope = envelope * (1 + rng.uniform(0.1, 0.3) * flutter / (np.std(flutter) + 1e-12))
    return _unit(shaped * np.maximum(envelope, 0.0))


def pop(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """A synthetic plosive pop: float64 ``(round(seconds * sample_rate),)``, RMS 1.

    A 40-150 Hz tone (:data:`POP_HZ`) and 200 Hz low-passed noise under a 2 ms attack and an
    exponential decay: the burst of air of a plosive hitting the microphone.
    """
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tone = np.sin(2 * np.pi * rng.uniform(*POP_HZ) * t + rng.uniform(0, 2 * np.pi))
    rumble = scipy.signal.sosfilt(scipy.signal.butter(2, 200, fs=sample_rate, output="sos"),
                                  rng.standard_normal(n + 1024))[1024:]
    attack = max(1, round(0.002 * sample_rate))
    envelope = np.minimum(1.0, np.arange(n) / attack) * np.exp(-t / (seconds / 3))
    return _unit((tone + 0.5 * _unit(rumble)) * envelope)


def room_response(rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, dict[str, float]]:
    """A short room impulse response: float64 ``(L,)`` with the direct sound 1 at sample 0.

    A few early reflections (:data:`ROOM_REFLECTIONS` taps of either sign within 1.5-15 ms)
    and an exponentially decaying noise tail from 5 ms on (RT60 in :data:`ROOM_RT60_SECONDS`,
    low-passed at 3-8 kHz: air and walls absorb the highs), together scaled to a
    direct-to-reverberant ratio in :data:`ROOM_DRR_DB`. The direct sound at sample 0 keeps the
    take aligned with its labels.

    Returns:
        ``(h, {"rt60_s", "drr_db"})``, ``L = round(1.2 * RT60 * sample_rate)``.
    """
    rt60 = rng.uniform(*ROOM_RT60_SECONDS)
    drr = rng.uniform(*ROOM_DRR_DB)
    length = round(1.2 * rt60 * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.91 * t / rt60) * (t >= ROOM_TAIL_START_SECONDS)
    tail = scipy.signal.sosfilt(scipy.signal.butter(1, rng.uniform(*ROOM_TAIL_LOWPASS_HZ), fs=sample_rate,
                                                    output="sos"), tail)
    for _ in range(rng.integers(ROOM_REFLECTIONS[0], ROOM_REFLECTIONS[1] + 1)):
        tail[round(rng.uniform(*ROOM_REFLECTION_SECONDS) * sample_rate)] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.4)
    h = tail * 10 ** (-drr / 20) / np.sqrt(np.sum(tail ** 2))
    h[0] = 1.0
    return h, {"rt60_s": round(rt60, 4), "drr_db": round(drr, 3)}


def room_noise(rng: np.random.Generator, n: int, rms_dbfs: float, slope_db_per_octave: float,
               sample_rate: int) -> np.ndarray:
    """Stationary room noise: float64 ``(n,)`` of RMS ``rms_dbfs``, its power spectral density
    falling by ``slope_db_per_octave`` (negative) above :data:`NOISE_LOW_HZ` and flat below."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum *= (np.maximum(freqs, NOISE_LOW_HZ) / NOISE_LOW_HZ) ** (slope_db_per_octave / (20 * math.log10(2)))
    return _unit(np.fft.irfft(spectrum, n)) * 10 ** (rms_dbfs / 20)


def _high_shelf(gain_db: float, hz: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of a second-order high shelf of ``gain_db`` above ``hz`` (Bristow-Johnson's
    Audio EQ Cookbook, shelf slope 1)."""
    g = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * hz / sample_rate
    cos, root = math.cos(w0), 2 * math.sqrt(g) * math.sin(w0) / math.sqrt(2)  # 2 sqrt(A) alpha
    b = g * np.array([(g + 1) + (g - 1) * cos + root, -2 * ((g - 1) + (g + 1) * cos), (g + 1) + (g - 1) * cos - root])
    a = np.array([(g + 1) - (g - 1) * cos + root, 2 * ((g - 1) - (g + 1) * cos), (g + 1) - (g - 1) * cos - root])
    return b, a


def microphone(rng: np.random.Generator, sample_rate: int) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, float]]:
    """A take's microphone and preamp colour: a second-order low cut drawn in :data:`MIC_LOW_CUT_HZ`
    and a high shelf at :data:`MIC_SHELF_HZ` drawn in :data:`MIC_SHELF_DB`.

    Returns:
        ``(colour, {"low_cut_hz", "shelf_db"})``: ``colour`` filters float ``(T,)`` audio.
    """
    low_cut, shelf_db = rng.uniform(*MIC_LOW_CUT_HZ), rng.uniform(*MIC_SHELF_DB)
    sos = scipy.signal.butter(2, low_cut, "highpass", fs=sample_rate, output="sos")
    b, a = _high_shelf(shelf_db, MIC_SHELF_HZ, sample_rate)

    def colour(x: np.ndarray) -> np.ndarray:
        return scipy.signal.lfilter(b, a, scipy.signal.sosfilt(sos, x))

    return colour, {"low_cut_hz": round(low_cut, 2), "shelf_db": round(shelf_db, 3)}


def _word_onsets(active: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sample indices where speech activity starts after at least :data:`WORD_GAP_SECONDS` without
    and lasts at least :data:`WORD_MIN_SECONDS`."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    gap, shortest = round(WORD_GAP_SECONDS * sample_rate), round(WORD_MIN_SECONDS * sample_rate)
    after_gap = np.concatenate([[True], starts[1:] - ends[:-1] >= gap]) if starts.size else starts.astype(bool)
    return starts[after_gap & (ends - starts >= shortest)]


def compose(rng: np.random.Generator, clips: VoiceClips, seconds: float,
            sample_rate: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """One take of one voice, and the same take without its breaths and pops (see the module docstring).

    Args:
        rng: draws everything.
        clips: the voice's recordings.
        seconds: the take's length.
        sample_rate: in Hz.

    Returns:
        ``(input, target, events, info)``: float32 ``(1, T)`` each with ``T = round(seconds *
        sample_rate)``; ``events`` the labels in time order; ``info`` the drawn settings
        (``speech_level_dbfs``, ``noise_floor_dbfs``, ``noise_slope_db_per_octave``, ``microphone``,
        ``room``).
    """
    total = round(seconds * sample_rate)

    def at(s: float) -> int:
        return round(s * sample_rate)

    drawn: list[np.ndarray] = []

    def next_clip() -> np.ndarray:
        """The next of the take's clips, drawn (with replacement) a batch at a time, so ffmpeg runs seldom."""
        if not drawn:
            drawn.extend(clips.get(rng.integers(len(clips.files), size=max(8, math.ceil(3 * seconds)))))
        return drawn.pop(0)

    speech = np.zeros(total)
    planned: list[tuple[int, int]] = []  # breaths: (start, length) in samples
    pos, previous_end = at(rng.uniform(*LEAD_IN_SECONDS)), None
    while pos < total:
        if previous_end is None or rng.random() < BREATH_PROBABILITY:
            length = at(rng.uniform(*BREATH_SECONDS))
            before, after = rng.uniform(*BREATH_AFTER_PHRASE_SECONDS), rng.uniform(*BREATH_BEFORE_ONSET_SECONDS)
            if rng.random() < OVERLAP_PROBABILITY:
                if previous_end is not None and rng.random() < 0.5:
                    before = -rng.uniform(*OVERLAP_SECONDS)
                else:
                    after = -rng.uniform(*OVERLAP_SECONDS)
            start = pos if previous_end is None else max(0, pos + at(before))
            onset = start + length + at(after)
            if start + length <= total:
                planned.append((start, length))
        else:
            onset = pos + at(rng.uniform(*PAUSE_SECONDS))
        if onset >= total:
            break
        phrase: list[np.ndarray] = []
        wanted, used = at(rng.uniform(*PHRASE_SECONDS)), 0
        while used < CLIPS_PER_PHRASE and sum(p.size for p in phrase) < wanted:
            clip = next_clip()
            used += 1
            if phrase and sum(p.size for p in phrase) + clip.size > at(PHRASE_SECONDS[1]):
                break
            if clip.size:  # a silent recording trims to nothing
                if phrase:
                    phrase.append(np.zeros(at(rng.uniform(*WORD_PAUSE_SECONDS))))
                phrase.append(clip)
        if not phrase:
            pos = onset
            continue
        joined = np.concatenate(phrase)
        gain = 10 ** ((rng.uniform(-PHRASE_SPREAD_DB, PHRASE_SPREAD_DB)
                       - stats.active_speech_level(joined, sample_rate).level_db) / 20)
        piece = gain * joined[:total - onset]
        speech[onset:onset + piece.size] = piece
        pos = previous_end = onset + piece.size

    colour, mic = microphone(rng, sample_rate)
    speech = colour(speech)
    target_level = rng.uniform(*SPEECH_LEVEL_DBFS)
    speech *= 10 ** ((target_level - stats.active_speech_level(speech, sample_rate).level_db) / 20)
    level = stats.active_speech_level(speech, sample_rate)
    events_audio = np.zeros(total)
    spans: list[tuple[str, int, int]] = []
    for start, length in planned:
        shaped = breath(rng, length / sample_rate, rng.uniform(0.0, 1.0), sample_rate)
        events_audio[start:start + length] = shaped * 10 ** ((level.level_db + rng.uniform(*BREATH_LEVEL_DB)) / 20)
        spans.append(("breath", start, start + length))

    def place_pop(onset: int) -> bool:
        """Put a pop on the word onset at sample ``onset`` unless it would overlap another event."""
        length = at(rng.uniform(*POP_SECONDS))
        start = max(0, onset - at(rng.uniform(*POP_LEAD_SECONDS)))
        if start + length > total or any(a < start + length and start < b for _, a, b in spans):
            return False
        events_audio[start:start + length] = pop(rng, length / sample_rate, sample_rate) * 10 ** (
            (level.level_db + rng.uniform(*POP_LEVEL_DB)) / 20)
        spans.append(("pop", start, start + length))
        return True

    onsets = [int(o) for o in _word_onsets(stats.speech_activity(speech, sample_rate, level), sample_rate)]
    placed = [place_pop(onset) for onset in onsets if rng.random() < POP_PROBABILITY]
    if not any(placed):  # at least one pop a take: on the first onset, in a random order, where one fits
        for k in rng.permutation(len(onsets)):
            if place_pop(onsets[k]):
                break
    events_audio = colour(events_audio)
    if G722_BAND_HZ < 0.5 * sample_rate:
        band = scipy.signal.butter(EVENT_LOWPASS_ORDER, G722_BAND_HZ, fs=sample_rate, output="sos")
        events_audio = scipy.signal.sosfiltfilt(band, events_audio)

    h, room = room_response(rng, sample_rate)
    wet_speech = scipy.signal.oaconvolve(speech, h)[:total]
    wet_events = scipy.signal.oaconvolve(events_audio, h)[:total]
    peak = np.max(np.abs(wet_speech + wet_events))
    limit = 10 ** (PEAK_DBFS / 20)
    if peak > limit:
        wet_speech, wet_events = wet_speech * (limit / peak), wet_events * (limit / peak)
    floor, slope = rng.uniform(*NOISE_FLOOR_DBFS), rng.uniform(*NOISE_SLOPE_DB_PER_OCTAVE)
    noise = room_noise(rng, total, floor, slope, sample_rate)
    target = (wet_speech + noise).astype(np.float32)[None]
    inp = (wet_speech + wet_events + noise).astype(np.float32)[None]
    info = {"speech_level_dbfs": round(float(target_level), 3), "noise_floor_dbfs": round(float(floor), 3),
            "noise_slope_db_per_octave": round(float(slope), 3), "microphone": mic, "room": room}
    return inp, target, label_events(inp, target, sorted(spans, key=lambda s: s[1]), sample_rate), info


def label_events(inp: np.ndarray, target: np.ndarray, spans: Sequence[tuple[str, int, int]],
                 sample_rate: int) -> list[dict[str, Any]]:
    """The labels of the events at ``spans`` (``(kind, start, end)`` in samples), measured on the audio.

    Args:
        inp, target: ``(1, T)``, the take with and without the events.
        spans: in time order.
        sample_rate: in Hz.

    Returns:
        ``[{"kind", "start", "end", "level_dbfs", "level_db", "touches_speech"}, ...]``: times in
        seconds; ``level_dbfs`` the power of ``inp - target`` over the span; ``level_db`` that
        relative to the target's active speech level (:func:`fxlib.data.stats.active_speech_level`);
        ``touches_speech`` whether the target's speech (:func:`fxlib.data.stats.speech_activity`)
        is active within :data:`fxlib.data.stats.EVENT_SPEECH_SECONDS` of the span.
    """
    level = stats.active_speech_level(target, sample_rate)
    active = stats.speech_activity(target, sample_rate, level)
    near = round(stats.EVENT_SPEECH_SECONDS * sample_rate)
    difference = (inp.astype(np.float64) - target.astype(np.float64))[0]
    labels = []
    for kind, start, end in spans:
        power_db = 10 * math.log10(np.mean(difference[start:end] ** 2))
        labels.append({"kind": kind, "start": round(start / sample_rate, 6), "end": round(end / sample_rate, 6),
                       "level_dbfs": round(power_db, 3), "level_db": round(power_db - level.level_db, 3),
                       "touches_speech": bool(active[max(0, start - near):end + near].any())})
    return labels


# ---------------------------------------------------------------------------- offline build: measured properties

#: The properties of the paper's own breath examples (the listening test's five DAPS excerpts,
#: input ``_x`` and engineer's edit ``_y``, at 22050 Hz), measured by :func:`measure_paper_examples`
#: with the command (numbers rounded to 3 decimals)
#: ``.venv/bin/python -c "from fxlib.data import breath; print(breath.measure_paper_examples('../shared/paper-listening-test'))"``.
#: Constants: the builder never reads the paper's audio, and nothing of it is training data.
PAPER_STATISTICS: dict[str, Any] = {
    "pairs": 5,
    "speech_bandwidth_hz": {"min": 3703.711, "median": 6739.893, "max": 8677.881, "n": 5},
    "speech_level_db": {"min": -21.637, "median": -17.289, "max": -15.425, "n": 5},
    "noise_floor_dbfs": {
        "input": {"min": -68.165, "median": -59.91, "max": -50.746, "n": 5},
        "target": {"min": -81.527, "median": -80.54, "max": -78.611, "n": 5},
    },
    "longest_silence_s": 0.031,
    "located_events": {
        "count": 12,
        "touching_speech_share": 0.917,
        "level_db": {"min": -48.221, "median": -34.169, "max": -7.36, "n": 12},
        "duration": {"min": 0.019, "median": 0.341, "max": 0.732, "n": 12},
        "centroid_hz": {"min": 372.011, "median": 1420.427, "max": 6174.322, "n": 12},
        "share_500_hz_4_khz": {"min": 0.014, "median": 0.333, "max": 0.853, "n": 12},
        "onset_gap": {"min": 0.002, "median": 0.022, "max": 2.186, "n": 10},
    },
}

SILENCE_AMPLITUDE = 1e-7  # |x| below this (-140 dBFS) counts as digital silence


def longest_silence_seconds(x: np.ndarray, sample_rate: int) -> float:
    """The longest run of digital silence (``|x| <`` :data:`SILENCE_AMPLITUDE` in every channel) in ``x (C, T)``, in s."""
    quiet = np.all(np.abs(np.atleast_2d(x)) < SILENCE_AMPLITUDE, axis=0)
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return float(runs.max() / sample_rate) if runs.size else 0.0


def _spread(values: Iterable[float]) -> dict[str, float] | None:
    """``{"min", "median", "max", "n"}`` of some numbers (:func:`fxlib.data.stats.summarise`); None for none."""
    return stats.summarise({"value": float(v)} for v in values).get("value")


def pair_properties(inp: np.ndarray, target: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """What :func:`dataset_statistics` measures of one pair, from its audio (``(C, T)`` each).

    Returns:
        ``{"bandwidth_hz", "speech_level_db", "noise_floor_dbfs": {"input", "target"},
        "longest_silence_s", "located": [...]}``: the target's 99 %-energy bandwidth and
        active speech level, both noise floors, the longest digital silence of either, and the
        events :func:`fxlib.data.stats.locate_events` finds removed (``louder_in == "input"``).
    """
    return {"bandwidth_hz": stats.bandwidth_hz(target, sample_rate),
            "speech_level_db": stats.active_speech_level(target, sample_rate).level_db,
            "noise_floor_dbfs": {"input": stats.noise_floor_dbfs(inp), "target": stats.noise_floor_dbfs(target)},
            "longest_silence_s": max(longest_silence_seconds(inp, sample_rate),
                                     longest_silence_seconds(target, sample_rate)),
            "located": [e for e in stats.locate_events(inp, target, sample_rate) if e["louder_in"] == "input"]}


def dataset_statistics(pairs: Iterable[tuple[np.ndarray, np.ndarray, list[dict[str, Any]] | None]],
                       sample_rate: int) -> dict[str, Any]:
    """The measured properties issue 20 asks for, over a set of pairs.

    Args:
        pairs: ``(input, target, labels)``: audio ``(C, T)`` and the pair's event labels
            (``info["events"]``), or None for unlabelled pairs.
        sample_rate: in Hz.

    Returns:
        ``{"pairs", "speech_bandwidth_hz", "speech_level_db", "noise_floor_dbfs": {"input",
        "target"}, "longest_silence_s", "located_events", "labelled_events"}``: each number's
        spread (``{"min", "median", "max", "n"}``) over the pairs; ``located_events`` the
        :func:`fxlib.data.stats.event_summary` of the located events of every pair;
        ``labelled_events`` per kind the count, the spread of ``level_db`` (dB re the active
        speech level) and of the duration, and the share touching speech (absent without labels).
    """
    measured, labels = [], []
    for inp, target, events in pairs:
        measured.append(pair_properties(inp, target, sample_rate))
        labels += events or []
    summary: dict[str, Any] = {
        "pairs": len(measured),
        "speech_bandwidth_hz": _spread(m["bandwidth_hz"] for m in measured),
        "speech_level_db": _spread(m["speech_level_db"] for m in measured),
        "noise_floor_dbfs": {side: _spread(m["noise_floor_dbfs"][side] for m in measured)
                             for side in ("input", "target")},
        "longest_silence_s": max((m["longest_silence_s"] for m in measured), default=None),
        "located_events": stats.event_summary(e for m in measured for e in m["located"]),
    }
    if labels:
        summary["labelled_events"] = {}
        for kind in sorted({e["kind"] for e in labels}):
            chosen = [e for e in labels if e["kind"] == kind]
            summary["labelled_events"][kind] = {
                "count": len(chosen), "level_db": _spread(e["level_db"] for e in chosen),
                "duration": _spread(e["end"] - e["start"] for e in chosen),
                "touching_speech_share": float(np.mean([e["touches_speech"] for e in chosen]))}
    return summary


def measure_paper_examples(folder: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """:func:`dataset_statistics` of the paper's breath examples (``_x`` input, ``_y`` target) in ``folder``.

    Used once, to write :data:`PAPER_STATISTICS`; the builder never calls it.

    Args:
        folder: laid out as the paper's page (:func:`fxlib.data.paper_examples.examples`), e.g.
            ``../shared/paper-listening-test``.
        sample_rate: in Hz.

    Raises:
        DataNotFoundError: no breath example in ``folder``.
    """
    from . import paper_examples

    found = [e for e in paper_examples.examples(folder, ["breath"]) if {"input", "target"} <= set(e.files)]
    if not found:
        raise DataNotFoundError(f"{folder}: no breath examples (nonspeech/*_x.mp3 with *_y.mp3)")
    loaded = [paper_examples.load_example(e, sample_rate).audio for e in found]
    return dataset_statistics(((a["input"], a["target"], None) for a in loaded), sample_rate)


# ---------------------------------------------------------------------------- offline build

def build(root: str | Path, seconds: float = 600.0, file_seconds: float = 10.0, seed: int = 0,
          sample_rate: int = SAMPLE_RATE, command: str = "", log: Log = print) -> Path:
    """Build the offline breath data set (see the module docstring); return the manifest path.

    Args:
        root: the data set folder.
        seconds: total audio, split into files of ``file_seconds`` (at least 3 files).
        file_seconds: length of each pair, in seconds (at least 2).
        seed: determines each file's split (:func:`~fxlib.data.paired.split_names`) and so its
            voice, and its phrases, events, microphone, room and noise.
        sample_rate: in Hz.
        command: the command line recorded in the manifest.
        log: receives one line per file and a summary.

    Raises:
        DataError: ``root`` holds a data set built with other settings, or bad sizes.
        DataNotFoundError: a Debian speech package or ffmpeg is missing.
    """
    if not (seconds > 0 and file_seconds >= 2):
        raise DataError(f"seconds ({seconds}) must be positive and file_seconds ({file_seconds}) at least 2")
    start = time.perf_counter()
    n = max(3, math.ceil(seconds / file_seconds - 1e-9))
    source = {"kind": "offline",
              "speech": {v.name: {"speaker": v.speaker, "package": v.package, "folder": str(v.folder),
                                  "split": v.split} for v in VOICES},
              "split": {s: [v.name for v in VOICES if v.split == s] for s in ("train", "valid", "test")},
              "events": "synthetic inhalations before phrase onsets and plosive pops on word onsets, "
                        "labelled in info.events",
              "room": "a microphone colour and a short room response over the whole take, and a continuous "
                      "noise floor",
              "target": "the same take without the events, through the same microphone and room, with the same "
                        "noise"}
    params = {"generator": GENERATOR, "files": n, "file_seconds": file_seconds,
              "sample_rate": sample_rate, "seed": seed}
    writer = PairWriter(root, Manifest(TASK, source, sample_rate, 1, seed, command, params))
    clips: dict[str, VoiceClips] = {}
    splits = split_names(n, seed)
    for i, split in enumerate(splits):
        pair_id = f"{i:04d}"
        if writer.reuse(pair_id):
            continue
        voices = [v for v in VOICES if v.split == split]
        voice = voices[splits[:i].count(split) % len(voices)]  # the split's files go to its voices in turn
        if voice.name not in clips:
            clips[voice.name] = VoiceClips(voice, sample_rate)
        inp, tgt, events, info = compose(np.random.default_rng([seed, i]), clips[voice.name], file_seconds,
                                         sample_rate)
        inp_path, tgt_path = writer.paths(pair_id, split)
        save_audio(inp_path, inp, sample_rate)
        save_audio(tgt_path, tgt, sample_rate)
        writer.add(writer.pair(pair_id, split, inp.shape[1] / sample_rate, {"voice": voice.name, **info,
                                                                            "events": events}))
        kinds = [e["kind"] for e in events]
        log(f"{split:5} {pair_id} {voice.name}: {kinds.count('breath')} breaths, {kinds.count('pop')} pops")
    measured = dataset_statistics(((x, y, pair.info["events"]) for x, y, pair in writer.audio(sample_rate)),
                                  sample_rate)
    writer.header.source = {**source, "statistics": {"this_set": measured, "paper_examples": PAPER_STATISTICS}}
    path = writer.finish()
    log(f"{root}: {n} pairs, {n * file_seconds:g} s of audio, in {time.perf_counter() - start:.1f} s; speech "
        f"bandwidth median {measured['speech_bandwidth_hz']['median']:.0f} Hz, noise floor median "
        f"{measured['noise_floor_dbfs']['target']['median']:.1f} dBFS")
    return path


# ---------------------------------------------------------------------------- the paper's data

def download_paper_data(root: str | Path, url: str = URL, md5: str | None = None, seed: int = 0,
                        sample_rate: int = SAMPLE_RATE, layout: dict[str, str] | None = None,
                        segment_seconds: float = SEGMENT_SECONDS, min_segment_seconds: float = MIN_SEGMENT_SECONDS,
                        length_tolerance: float = 0.05, command: str = "", log: Log = print) -> Path:
    """Download, extract, pair, segment and split DAPS (see the module docstring).

    The archive goes to ``<root>/raw/daps.tar.gz`` (resumed if cut) and is extracted to
    ``<root>/raw/extracted/``; both are kept, so a second run only re-checks the pairs.

    Args:
        root: the data set folder.
        url: where the archive is (a mirror, or a local server in tests).
        md5: the archive's expected MD5; ``None`` computes and records it (with a warning).
        seed: for the speaker split (:func:`~fxlib.data.paired.split_names` over sorted speakers).
        sample_rate: in Hz, of the written files.
        layout: ``{"folder", "input", "target", "input_suffix", "target_suffix"}``; default :data:`LAYOUT`.
        segment_seconds: length of the segments each recording is cut into, in seconds.
        min_segment_seconds: a last segment shorter than this is dropped.
        length_tolerance: seconds; input and target lengths may differ by this much (trimmed).
        command: the command line recorded in the manifest.
        log: receives progress lines.

    Returns:
        the manifest's path.

    Raises:
        DownloadError, ChecksumError: the transfer failed or the archive has another MD5.
        DataNotFoundError: a layout folder is missing from the archive.
        DataError: unpaired files, names not ``<speaker>_<script><suffix>.wav``, fewer than 3 speakers.
    """
    root = Path(root)
    layout = {**LAYOUT, **(layout or {})}
    if not (segment_seconds > 0 and 0 < min_segment_seconds <= segment_seconds):
        raise DataError(f"need 0 < min_segment_seconds ({min_segment_seconds}) <= segment_seconds ({segment_seconds})")
    if md5 is None:
        warnings.warn(f"no checksum given for {url}: its MD5 is computed and recorded in the manifest "
                      "(source.md5) but not verified", stacklevel=2)
    archive = download(url, root / "raw" / ARCHIVE, md5=md5, progress=progress_logger(log, url))
    extracted = extract(archive, root / "raw" / "extracted")
    base = extracted / layout["folder"]
    pairs = pair_recordings(base / layout["input"], base / layout["target"],
                            layout["input_suffix"], layout["target_suffix"])
    speakers = sorted({speaker for speaker, _ in pairs}, key=_speaker_order)
    if len(speakers) < 3:
        raise DataError(f"{base}: recordings of {len(speakers)} speaker(s) ({', '.join(speakers)}); the split by "
                        "speaker needs at least 3")
    split_of = dict(zip(speakers, split_names(len(speakers), seed)))
    source = {"kind": "download", "url": url, "archive": ARCHIVE, "md5": file_digest(archive, "md5"),
              "md5_verified": md5 is not None, "layout": layout,
              "split": {s: [k for k in speakers if split_of[k] == s] for s in ("train", "valid", "test")},
              "resampling": "scipy.signal.resample_poly, then mixed to mono", "events": "none (unlabelled)"}
    params = {"preparer": "fxlib.data.breath.download_paper_data/1", "md5": source["md5"], "layout": layout,
              "sample_rate": sample_rate, "seed": seed, "segment_seconds": segment_seconds,
              "min_segment_seconds": min_segment_seconds, "length_tolerance": length_tolerance}
    writer = PairWriter(root, Manifest(TASK, source, sample_rate, 1, seed, command, params))
    segment, shortest = round(segment_seconds * sample_rate), round(min_segment_seconds * sample_rate)
    for (speaker, script), (inp_path, tgt_path) in pairs.items():
        split = split_of[speaker]
        loaded = None
        k = 0
        while True:
            pair_id = f"{speaker}_{script}_{k:03d}"
            if writer.reuse(pair_id):
                k += 1
                continue
            if loaded is None:
                inp, _ = load_audio(inp_path, sample_rate, channels=1)
                tgt, _ = load_audio(tgt_path, sample_rate, channels=1)
                loaded = match_lengths(inp, tgt, sample_rate, length_tolerance, f"{inp_path} / {tgt_path}")
            inp, tgt, cut = loaded
            begin = k * segment
            if inp.shape[1] - begin < shortest:
                break
            inp_out, tgt_out = writer.paths(pair_id, split)
            save_audio(inp_out, inp[:, begin:begin + segment], sample_rate)
            save_audio(tgt_out, tgt[:, begin:begin + segment], sample_rate)
            info = {"input_file": inp_path.relative_to(extracted).as_posix(),
                    "target_file": tgt_path.relative_to(extracted).as_posix(), "speaker": speaker,
                    "start": round(begin / sample_rate, 6), "trimmed_samples": cut}
            writer.add(writer.pair(pair_id, split, min(segment, inp.shape[1] - begin) / sample_rate, info))
            log(f"{split:5} {pair_id}")
            k += 1
    path = writer.finish()
    log(f"{root}: {len(writer.pairs)} segments of {len(pairs)} recordings by {len(speakers)} speakers from {url}")
    return path


def _speaker_order(speaker: str) -> tuple[str, int]:
    """Sort key: ``f2`` before ``f10``."""
    return speaker[0], int(speaker[1:])


def pair_recordings(input_dir: Path, target_dir: Path, input_suffix: str = "_clean_raw",
                    target_suffix: str = "_clean") -> dict[tuple[str, str], tuple[Path, Path]]:
    """Pair DAPS recordings ``<speaker>_<script><suffix>.wav`` in two folders by speaker and script.

    Returns:
        ``{(speaker, script): (input, target)}`` sorted by speaker (``f1, f2, ..., f10, m1, ...``), then script.

    Raises:
        DataNotFoundError: a folder is missing (names what its parent holds).
        DataError: no WAV files, a file name that does not fit, or a recording without its partner.
    """
    found = []
    for folder, suffix in ((input_dir, input_suffix), (target_dir, target_suffix)):
        if not folder.is_dir():
            parent = folder.parent
            while not parent.is_dir():
                parent = parent.parent
            raise DataNotFoundError(f"expected folder {folder} in the extracted archive; {parent} holds "
                                    f"{sorted(p.name for p in parent.iterdir())} (pass another layout if the "
                                    "archive is laid out differently)")
        pattern = re.compile(rf"([fm]\d+)_(script\d+){re.escape(suffix)}\.wav", re.IGNORECASE)
        files = {}
        for path in sorted(folder.glob("*.wav")):
            match = pattern.fullmatch(path.name)
            if match is None:
                raise DataError(f"{path}: name does not fit <speaker>_<script>{suffix}.wav "
                                "(speaker f1-f10 or m1-m10, script script1-script5)")
            files[(match[1].lower(), match[2].lower())] = path
        if not files:
            raise DataError(f"{folder} holds no WAV files")
        found.append(files)
    inputs, targets = found
    unpaired = sorted(set(inputs) ^ set(targets))
    if unpaired:
        speaker, script = unpaired[0]
        raise DataError(f"{len(unpaired)} recording(s) lack their partner in {input_dir} or {target_dir}, "
                        f"e.g. {speaker}_{script}")
    keys = sorted(inputs, key=lambda k: (_speaker_order(k[0]), int(k[1][6:])))
    return {k: (inputs[k], targets[k]) for k in keys}


def main(argv: list[str] | None, root: str, seconds: float) -> int:
    """``fxlib data breath {download,build} ...``: ``root`` and ``seconds`` are the defaults of
    ``--root`` and ``--seconds``; returns the exit status (errors are raised)."""
    parser, download_p, build_p = task_parser(
        TASK, __doc__, "download, pair and split the paper's DAPS recordings (Zenodo 4660670)",
        "build the offline stand-in: Debian speech in a room with labelled breaths and pops", root, seconds)
    download_p.add_argument("--url", default=URL, help="archive URL (default: Zenodo)")
    download_p.add_argument("--md5", default=None, help="expected MD5 of the archive (default: computed and recorded)")
    download_p.add_argument("--segment-seconds", type=float, default=SEGMENT_SECONDS,
                            help=f"cut recordings into pairs of this length (default {SEGMENT_SECONDS:g})")
    build_p.add_argument("--file-seconds", type=float, default=10.0, help="seconds per pair (default 10)")
    args = parser.parse_args(argv)
    command = command_line(TASK, argv)
    if args.action == "download":
        download_paper_data(args.root, args.url, args.md5, args.seed, segment_seconds=args.segment_seconds,
                            command=command)
    else:
        build(args.root, args.seconds, args.file_seconds, args.seed, command=command)
    return 0
