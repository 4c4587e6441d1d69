"""Data for automatic mastering: the paper's pre-master/master pairs, or an offline stand-in built here.

**Download.** The paper trained on songs of the Mixing Secrets multitrack library, each a
pre-master mix paired with its mastered version. Those files are not fetched from a fixed
place here: :func:`download_paper_data` reads a *song manifest* (JSON, or TOML when the file
name ends in ``.toml``) that the user writes from wherever they hold the songs::

    {"format": 1,
     "source": "free text: where these files come from and under which terms",
     "songs": [
       {"id": "artist-title",
        "premaster": {"url": "https://.../mix.wav", "sha256": "<hex>"},
        "master": {"url": "https://.../album.zip", "md5": "<hex>", "member": "Album/03 Title.wav"}},
       ...]}

Every file entry needs a ``url`` (http or https) and its ``sha256`` and/or ``md5``
(hex); ``member`` names a WAV file inside a zip or tar archive at ``url`` (several entries may
share an archive: it is downloaded and unpacked once). No manifest ships with fxlib: the
library's URLs could not be checked from here, so ``--manifest`` is required.
Downloads go to ``<root>/raw/files/`` (resumed when cut, verified by checksum), archives are
unpacked under ``<root>/raw/extracted/``. Each song is resampled to the task's rate (kept
stereo; mono files are copied to both channels), then **aligned**: a master often starts
later or earlier than its pre-master (added silence, trimmed fades), so the lag that
maximises the cross-correlation of the two mono mixes (FFT, searched within
``max_offset`` seconds) is removed and both are trimmed to their common span. Songs are split
into train, valid and test *by song* with :func:`~fxlib.data.paired.split_names` over the
ids in sorted order.

**Offline build.** :func:`build` makes stereo songs (default 12 s each), each from seeded
MIDI parts: a bass and a guitar riff and a keyboard part (:func:`~fxlib.data.midi.random_riff`)
rendered dry by FluidSynth with FluidR3_GM, plus a drum groove
(:func:`~fxlib.data.midi.drum_groove`) played with real drum samples from a Hydrogen kit
(package ``hydrogen-drumkits``, :data:`DRUMKITS_DIR`). The pre-master (input) varies per song:

* each part's level (within ±6 dB) and pan position;
* the tonal balance: a low shelf at 200 Hz and a high shelf at 4 kHz, each within ±6 dB
  (pedalboard's shelving filters);
* the integrated loudness, drawn in :data:`MIX_LUFS` (-28 to -20 LUFS), then lowered if
  needed so that the sample peak stays at or below :data:`MIX_PEAK_DBFS` (-3 dBFS).

**How the targets are made.** The master is the mix through a reference chain of ZAM VST3
plugins (:data:`REFERENCE_CHAIN`), stereo throughout:

1. ``ZamEQ2`` (dual mono): low shelf at 200 Hz, high shelf at 4 kHz, and its master gain
   used as an input trim that brings the mix to about :data:`COMPRESSOR_INPUT_LUFS` so the
   compressor works the same way on loud and quiet mixes;
2. ``ZaMultiCompX2``: a gentle three-band compressor at fixed settings (crossovers 160 Hz and
   2.5 kHz, ratio 2.5, soft knee);
3. ``ZaMaximX2``: a look-ahead maximiser; its output ceiling (sample peak; the true peak may
   read a little higher) and its threshold, which sets the loudness, are chosen per song.

What each master aims at (:func:`master_targets`) is calibrated on the statistics of the
paper's own mastering examples (the listening test's pairs: mixes at -28 to -20 LUFS with peaks
of -10 to -3.5 dBFS, masters 9.7 to 13.7 LU louder at -16.2 to -10.6 LUFS with peaks near
0 dBFS, band balances moved by under about 2 dB; :mod:`fxlib.data.stats`), never on their audio:

* loudness: the mix's own plus a gain drawn in :data:`MASTER_GAIN_LU`, kept within
  :data:`MASTER_LUFS`, so louder mixes give louder masters, as in the paper's pairs;
* peak ceiling: drawn in :data:`CEILING_DBFS`;
* balance (:func:`band_balance`: the low band's and the high band's power relative to the mid
  band, in dB): the mix's own moved :data:`BALANCE_PULL` of the way towards
  :data:`REFERENCE_BALANCE_DB`, by at most :data:`BALANCE_CHANGE_DB` per band: a correction an
  engineer would make, which the mix itself tells.

The per-song settings (the two shelf gains, the trim, the maximiser's threshold) are chosen by
measuring the mix, then :data:`MASTER_ITERATIONS` rounds render the chain, measure the output
and correct the threshold and the shelves by the remaining loudness and balance errors, so every
master lands near its targets. The targets, the settings and the measured results are in each
pair's ``info``. ZaMaximX2 is also the last effect of the ``mastering-vst3`` stand-in chain,
whose learned threshold can reach these masters' limiting; the paper's chain (``mastering-lv2``)
ends in LSP's limiter instead.

Both write the layout of :mod:`fxlib.data.paired` under ``root``, with stereo files
(``channels`` 2 in the manifest); the mastering task reads them mixed to mono. Every built
file depends only on the seed and the song's index (same seed, same bytes), and an
interrupted build or download resumes.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import pedalboard
import scipy.signal
from pedalboard.io import AudioFile

from ..chain import FxChain
from ..errors import BackendUnavailableError
from ..metrics import loudness_lufs, true_peak_dbtp
from .audio import DataError, DataNotFoundError, convert_channels, load_audio, resample, save_audio
from .download import download, extract
from .midi import (BASSES, CLOSED_HAT, CRASH, DEFAULT_SOUNDFONT, GUITARS, KICK, OPEN_HAT, SNARE, drum_groove,
                   random_riff, synthesize)
from . import stats
from .scripts import command_line, task_parser
from .paired import Manifest, PairWriter, split_names

TASK = "mastering"
#: The offline builder's version, recorded in the manifest: training refuses a set built by another
#: (:meth:`fxlib.tasks.Task.ensure_data` says to delete it and build it again).
GENERATOR = "fxlib.data.mastering.build/2"
SAMPLE_RATE = 22050
CHANNELS = 2  # the files on disk are stereo

# -- the pre-master mixes
DRUMKITS_DIR = Path("/usr/share/hydrogen/data/drumkits")
DRUMKITS = ("Millo-Drums_v.1", "ColomboAcousticDrumkit", "BJA_Pacific", "ForzeeStereo", "The Black Pearl 1.0",
            "Audiophob", "HardElectro1", "Millo_MultiLayered2")
DRUM_HINT = "install the Hydrogen drum kits with `apt-get install hydrogen-drumkits`"
KEYS = {0: "Acoustic Grand Piano", 4: "Electric Piano 1", 16: "Drawbar Organ", 48: "String Ensemble 1",
        89: "Pad 2 (warm)"}
TEMPO_BPM = (80.0, 150.0)
PART_LEVEL_DB = 6.0  # each part's level is drawn within +-this around its nominal level
SHELF_DB = 6.0  # the mix's low and high shelf gains are drawn within +-this
SHELF_HZ = (200.0, 4000.0)  # low shelf and high shelf corner frequencies
MIX_LUFS = (-28.0, -20.0)
MIX_PEAK_DBFS = -3.0

# -- the reference master (see master_targets)
MASTER_GAIN_LU = (9.5, 12.5)  # the master's loudness: the mix's plus a gain drawn in this range, LU
MASTER_LUFS = (-16.5, -10.5)  # ... kept within this range
CEILING_DBFS = (-1.0, -0.1)  # the maximiser's output ceiling (sample peak) is drawn in this range, dBFS
REFERENCE_BALANCE_DB = (4.0, -10.0)  # (low, high) band power relative to the mid band, see band_balance
BALANCE_PULL = 0.25  # the master's balance moves this share of the way from the mix's to the reference
BALANCE_CHANGE_DB = 2.0  # ... by at most this much per band
BANDS_HZ = (30.0, 250.0, 4000.0, 10000.0)  # low: 30-250 Hz, mid: 250 Hz-4 kHz, high: 4-10 kHz
COMPRESSOR_INPUT_LUFS = -20.0
MASTER_ITERATIONS = 4
SHELF_LIMIT_DB = 12.0  # the reference EQ's shelves stay within +-this
REFERENCE_CHAIN: list[dict[str, Any]] = [
    {"name": "eq", "kind": "vst3", "id": "ZamEQ2", "learn": ["boost_cut_l_db", "boost_cut_h_db", "master_gain_db"],
     "fixed": {"frequency_l_hz": SHELF_HZ[0], "frequency_h_hz": SHELF_HZ[1], "boost_cut_1_db": 0.0,
               "boost_cut_2_db": 0.0}},
    {"name": "mbc", "kind": "vst3", "id": "ZaMultiCompX2",
     "fixed": {"zamcomp_1_on": 1.0, "zamcomp_2_on": 1.0, "zamcomp_3_on": 1.0,
               "crossover_freq_1_hz": 160.0, "crossover_freq_2_hz": 2500.0,
               "threshold_1_db": -24.0, "threshold_2_db": -24.0, "threshold_3_db": -26.0,
               "ratio1": 2.5, "ratio2": 2.5, "ratio3": 2.5, "knee1_db": 6.0, "knee2_db": 6.0, "knee3_db": 6.0,
               "attack1_ms": 20.0, "attack2_ms": 10.0, "attack3_ms": 5.0,
               "release1_ms": 200.0, "release2_ms": 120.0, "release3_ms": 80.0,
               "makeup_1_db": 0.0, "makeup_2_db": 0.0, "makeup_3_db": 0.0, "master_trim_db": 0.0}},
    {"name": "limiter", "kind": "vst3", "id": "ZaMaximX2", "learn": ["threshold_db", "output_ceiling_db"],
     "fixed": {"release_ms": 25.0}},
]

# -- the download
MANIFEST_FORMAT = 1
MAX_OFFSET_SECONDS = 5.0

#: The paper's own mastering examples (the listening test's pairs, input ``_x`` and target ``_y``, at
#: 22050 Hz) measured by :func:`fxlib.data.paper_examples.statistics`, rounded, with the command
#: ``.venv/bin/python -c "from fxlib.data import paper_examples as pe, stats; print(stats.rounded(pe.statistics('../shared/paper-listening-test', 'mastering', 22050)))"``.
#: A constant: the builder never reads the paper's audio, and none of it is training data. Each
#: build writes its own statistics beside it into the manifest (``source["statistics"]``).
PAPER_STATISTICS: dict[str, Any] = {
    "pairs": 7,
    "loudness_lufs": {"input": {"min": -27.776, "median": -24.996, "max": -20.308, "n": 7},
                      "target": {"min": -16.227, "median": -14.122, "max": -10.572, "n": 7},
                      "change": {"min": 9.736, "median": 10.72, "max": 13.758, "n": 7}},
    "true_peak_dbtp": {"input": {"min": -9.675, "median": -5.925, "max": -3.458, "n": 7},
                       "target": {"min": -1.589, "median": -0.353, "max": 0.564, "n": 7},
                       "change": {"min": 3.074, "median": 5.448, "max": 8.356, "n": 7}},
    "crest_factor_db": {"change": {"min": -6.868, "median": -5.206, "max": -1.593, "n": 7}},
    "level_range_db": {"change": {"min": -2.185, "median": -0.523, "max": 0.545, "n": 7}},
    "broad_bands_db": {"change": {"below_150_hz": {"min": -0.714, "median": -0.135, "max": 2.169, "n": 7},
                                  "150_hz_2_khz": {"min": -0.048, "median": 0.076, "max": 0.241, "n": 7},
                                  "2_6_khz": {"min": -1.617, "median": 0.388, "max": 1.017, "n": 7},
                                  "above_6_khz": {"min": 0.06, "median": 1.037, "max": 1.861, "n": 7}}},
    "nonlinear_share_db": {"min": -17.782, "median": -13.684, "max": -12.818, "n": 7}
}

Log = Callable[[str], None]


# ---------------------------------------------------------------------------- measuring

def band_balance(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """The tonal balance of a mix: ``(low, high)`` band power relative to the mid band, in dB.

    Long-term power spectrum (Welch, 4096-sample Hann segments) of the channels' mean; bands
    from :data:`BANDS_HZ`: low 30-250 Hz, mid 250 Hz-4 kHz, high 4-10 kHz (the high band stops
    at 0.95 of the Nyquist frequency when that is lower).

    Shape:
        audio: ``(C, T)`` float, at least one 4096-sample segment is advisable.
    """
    freqs, psd = scipy.signal.welch(np.asarray(audio, np.float64).mean(axis=0), fs=sample_rate,
                                    nperseg=min(4096, audio.shape[1]))
    edges = list(BANDS_HZ[:3]) + [min(BANDS_HZ[3], 0.95 * sample_rate / 2)]
    power = [psd[(freqs >= a) & (freqs < b)].sum() + 1e-20 for a, b in zip(edges[:-1], edges[1:])]
    return 10 * math.log10(power[0] / power[1]), 10 * math.log10(power[2] / power[1])


def _lufs(audio: np.ndarray, sample_rate: int, what: str) -> float:
    level = loudness_lufs(audio, sample_rate)
    if not math.isfinite(level):
        raise DataError(f"{what} is silent (below the -70 LUFS gate)")
    return level


# ---------------------------------------------------------------------------- the reference master

def reference_chain(sample_rate: int = SAMPLE_RATE) -> FxChain:
    """The reference mastering chain (:data:`REFERENCE_CHAIN`), stereo; close it after use.

    Raises:
        PluginNotFoundError, BackendUnavailableError: the ZAM VST3 plugins or pedalboard's VST3
            host are missing (``apt-get install zam-plugins``).
    """
    return FxChain(REFERENCE_CHAIN, sample_rate, channels=CHANNELS, name="mastering-reference")


def master_targets(mix: np.ndarray, sample_rate: int, index: int, seed: int) -> dict[str, Any]:
    """What the master of song ``index`` aims at (see the module docstring), from its mix.

    Returns:
        ``{"lufs": integrated loudness, LUFS; "ceiling_db": sample-peak ceiling, dBFS;
        "balance_db": [low, high] band balance, dB}``.
    """
    rng = np.random.default_rng([seed, index, 1])  # apart from the mix's generator
    level = _lufs(mix, sample_rate, f"mastering song {index}")
    lufs = float(np.clip(level + rng.uniform(*MASTER_GAIN_LU), *MASTER_LUFS))
    ceiling = float(rng.uniform(*CEILING_DBFS))
    have = np.array(band_balance(mix, sample_rate))
    change = np.clip(BALANCE_PULL * (np.array(REFERENCE_BALANCE_DB) - have), -BALANCE_CHANGE_DB, BALANCE_CHANGE_DB)
    return {"lufs": round(lufs, 3), "ceiling_db": round(ceiling, 3),
            "balance_db": [round(float(v), 3) for v in have + change]}


def master(mix: np.ndarray, chain: FxChain, sample_rate: int, target_lufs: float, ceiling_db: float,
           balance: tuple[float, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """Master ``mix`` with the reference chain at settings chosen for it (see the module docstring).

    Args:
        mix: float32 ``(2, T)``, the pre-master.
        chain: from :func:`reference_chain` at ``sample_rate``.
        sample_rate: in Hz.
        target_lufs: the master's integrated loudness.
        ceiling_db: the maximiser's output ceiling (sample peak), dBFS.
        balance: the master's ``(low, high)`` band balance in dB (:func:`band_balance`).

    Returns:
        ``(master (2, T) float32, info)``; ``info`` holds the settings (dB) and the master's
        measured loudness (LUFS), true peak (dBTP) and balance (dB).
    """
    level = _lufs(mix, sample_rate, "the mix")
    low, high = band_balance(mix, sample_rate)
    trim = float(np.clip(COMPRESSOR_INPUT_LUFS - level, -12.0, 12.0))
    shelves = np.clip(np.subtract(balance, (low, high)), -SHELF_LIMIT_DB, SHELF_LIMIT_DB)
    threshold = -float(np.clip(target_lufs - COMPRESSOR_INPUT_LUFS - ceiling_db, 0.0, 30.0))  # ~ -(gain + ceiling)

    def settings() -> dict[str, float]:
        return {"eq.boost_cut_l_db": float(shelves[0]), "eq.boost_cut_h_db": float(shelves[1]),
                "eq.master_gain_db": trim, "limiter.threshold_db": threshold, "limiter.output_ceiling_db": ceiling_db}

    for _ in range(MASTER_ITERATIONS):
        out = chain.process(mix, chain.to_unit(settings()))
        got = _lufs(out, sample_rate, "the master")
        shelves = np.clip(shelves + np.subtract(balance, band_balance(out, sample_rate)),
                          -SHELF_LIMIT_DB, SHELF_LIMIT_DB)
        threshold = float(np.clip(threshold - (target_lufs - got), -30.0, 0.0))
    final = settings()
    out = chain.process(mix, chain.to_unit(final))
    info = {"settings": {k: round(v, 3) for k, v in final.items()},
            "master_lufs": round(_lufs(out, sample_rate, "the master"), 3),
            "master_true_peak_dbtp": round(true_peak_dbtp(out, sample_rate), 3),
            "master_balance_db": [round(v, 3) for v in band_balance(out, sample_rate)]}
    return out.astype(np.float32), info


# ---------------------------------------------------------------------------- the pre-master mixes

_ROLES = {"kick": r"kick|bass ?drum|\bbd\b", "snare": r"snare(?!.*(rim|roll))",
          "hat": r"(hi-?hat|hh|hat).*(clos|\bcl\b)|clos.*(hh|hat)",
          "open_hat": r"(hi-?hat|hh|hat).*open|open.*(hh|hat)",
          "crash": r"crash"}
_KEY_ROLES = {KICK: "kick", SNARE: "snare", CLOSED_HAT: "hat", OPEN_HAT: "open_hat", CRASH: "crash"}


def load_drumkit(name: str, sample_rate: int, folder: Path = DRUMKITS_DIR) -> dict[str, np.ndarray]:
    """The kick, snare, hi-hat (and, when the kit has them, open hi-hat and crash) of a Hydrogen kit.

    Instruments are recognised by their names in the kit's ``drumkit.xml``; each gets its
    first sample (layer), resampled to ``sample_rate`` and made stereo.

    Returns:
        ``{role: float32 (2, T)}`` with roles ``kick``, ``snare``, ``hat`` and possibly
        ``open_hat`` and ``crash``.

    Raises:
        BackendUnavailableError: the kit is not installed (says what to install).
        DataError: the kit lacks a kick, snare or closed hi-hat, or a sample cannot be read.
    """
    xml = folder / name / "drumkit.xml"
    if not xml.is_file():
        raise BackendUnavailableError(f"Hydrogen drum kit {name!r} not found ({xml} does not exist); {DRUM_HINT}")
    try:
        tree = ET.parse(xml)
    except ET.ParseError as e:
        raise DataError(f"{xml}: not readable XML ({e})") from e
    found: dict[str, Path] = {}
    for instrument in (el for el in tree.iter() if el.tag.rsplit("}", 1)[-1] == "instrument"):
        names = [el.text or "" for el in instrument if el.tag.rsplit("}", 1)[-1] == "name"]
        files = [el.text for el in instrument.iter() if el.tag.rsplit("}", 1)[-1] == "filename" and el.text]
        if not names or not files:
            continue
        for role, pattern in _ROLES.items():
            if role not in found and re.search(pattern, names[0].lower()):
                found[role] = xml.parent / files[0]
                break
    missing = [r for r in ("kick", "snare", "hat") if r not in found]
    if missing:
        raise DataError(f"drum kit {name!r} ({xml}) has no instrument recognised as {', '.join(missing)}")
    samples = {}
    for role, path in found.items():
        try:
            with AudioFile(str(path)) as f:
                audio, rate = f.read(f.frames), int(f.samplerate)
        except (OSError, ValueError, RuntimeError) as e:
            raise DataError(f"drum sample {path} cannot be read ({e})") from e
        audio = audio.astype(np.float32)
        audio = convert_channels(audio, 1, str(path)) if audio.shape[0] > 2 else audio
        samples[role] = convert_channels(resample(audio, rate, sample_rate) if rate != sample_rate else audio, 2)
    return samples


def play_drums(notes: list, kit: dict[str, np.ndarray], n: int, sample_rate: int) -> np.ndarray:
    """Place the kit's samples at the notes' times with a gain of ``(velocity / 127)^2``: float32 ``(2, n)``."""
    out = np.zeros((2, n), np.float32)
    for note in notes:
        role = _KEY_ROLES.get(note.pitch)
        role = role if role in kit else ("hat" if role == "open_hat" else None)
        if role is None:
            continue
        start = int(round(note.start * sample_rate))
        sample = kit[role][:, :max(0, n - start)]
        out[:, start:start + sample.shape[1]] += sample * (note.velocity / 127) ** 2
    return out


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of ``(1, T)`` to ``(2, T)``; ``position`` from -1 (left) to 1 (right)."""
    angle = (position + 1) * math.pi / 4
    return np.concatenate([mono * math.cos(angle), mono * math.sin(angle)]).astype(np.float32)


def premaster(index: int, seed: int, seconds: float, sample_rate: int,
              kits: dict[str, dict[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, Any]]:
    """The pre-master mix of song ``index``: float32 ``(2, T)`` and a description of it.

    ``kits`` maps kit names to :func:`load_drumkit` results (a cache shared across songs;
    kits are loaded into it on first use).
    """
    rng = np.random.default_rng([seed, index])
    tempo = float(rng.uniform(*TEMPO_BPM))
    key = int(rng.integers(12))
    scale = str(rng.choice(["major", "minor", "dorian", "mixolydian"]))
    bass = random_riff(rng, "bass", seconds, tempo, key=key, scale=scale)
    guitar = replace(random_riff(rng, "guitar", seconds, tempo, key=key, scale=scale), channel=1)
    keys = replace(random_riff(rng, "guitar", seconds, tempo, program=int(rng.choice(sorted(KEYS))), key=key,
                               scale=scale), channel=2, name=f"keys {scale}")
    kit_name = str(rng.choice(DRUMKITS))
    if kit_name not in kits:
        kits[kit_name] = load_drumkit(kit_name, sample_rate)
    groove = drum_groove(rng, seconds, tempo)
    levels = {name: float(rng.uniform(-PART_LEVEL_DB, PART_LEVEL_DB)) for name in ("bass", "guitar", "keys", "drums")}
    pans = {"bass": 0.0, "guitar": float(rng.uniform(0.3, 0.7)) * rng.choice([-1, 1])}
    pans["keys"] = -0.8 * pans["guitar"]
    n = round(seconds * sample_rate)
    mix = np.zeros((2, n), np.float32)
    for name, part in (("bass", bass), ("guitar", guitar), ("keys", keys)):
        audio = synthesize([part], seconds, sample_rate, channels=1, tempo_bpm=tempo)
        rms = float(np.sqrt(np.mean(audio ** 2)))
        if rms == 0:
            raise DataError(f"mastering song {index}: the {name} part rendered silent ({part.name})")
        mix += _pan(audio * (0.1 * 10 ** (levels[name] / 20) / rms), pans[name])
    drums = play_drums(groove.notes, kits[kit_name], n, sample_rate)
    mix += drums * (0.15 * 10 ** (levels["drums"] / 20) / max(float(np.sqrt(np.mean(drums ** 2))), 1e-9))
    shelves = (float(rng.uniform(-SHELF_DB, SHELF_DB)), float(rng.uniform(-SHELF_DB, SHELF_DB)))
    board = pedalboard.Pedalboard([pedalboard.LowShelfFilter(cutoff_frequency_hz=SHELF_HZ[0], gain_db=shelves[0]),
                                   pedalboard.HighShelfFilter(cutoff_frequency_hz=SHELF_HZ[1], gain_db=shelves[1])])
    mix = board(mix, sample_rate)
    want = float(rng.uniform(*MIX_LUFS))
    mix = mix * 10 ** ((want - _lufs(mix, sample_rate, f"mastering song {index}")) / 20)
    peak = float(np.abs(mix).max())
    if peak > 10 ** (MIX_PEAK_DBFS / 20):
        mix = mix * (10 ** (MIX_PEAK_DBFS / 20) / peak)
    info = {"tempo_bpm": round(tempo, 3), "key": key, "scale": scale, "drumkit": kit_name,
            "programs": {"bass": bass.program, "guitar": guitar.program, "keys": keys.program},
            "part_levels_db": {k: round(v, 3) for k, v in levels.items()},
            "mix_shelves_db": [round(v, 3) for v in shelves],
            "mix_lufs": round(_lufs(mix, sample_rate, f"mastering song {index}"), 3),
            "mix_balance_db": [round(v, 3) for v in band_balance(mix, sample_rate)]}
    return mix.astype(np.float32), info


def build(root: str | Path, seconds: float = 360.0, song_seconds: float = 12.0, seed: int = 0,
          sample_rate: int = SAMPLE_RATE, command: str = "", log: Log = print) -> Path:
    """Build the offline mastering data set (see the module docstring); return the manifest path.

    Args:
        root: the data set folder.
        seconds: total audio, split into songs of ``song_seconds`` (at least 3 songs).
        song_seconds: length of each song, in seconds (at least 2).
        seed: determines every song, level, balance and split.
        sample_rate: in Hz.
        command: the command line recorded in the manifest.
        log: receives one line per song and a summary.

    Raises:
        DataError: bad lengths, or ``root`` holds a data set built with other settings.
        BackendUnavailableError: fluidsynth, the SoundFont, the drum kits or the ZAM plugins are missing.
    """
    if not (seconds > 0 and song_seconds >= 2):
        raise DataError(f"seconds ({seconds}) must be positive and song_seconds ({song_seconds}) at least 2")
    start = time.perf_counter()
    n = max(3, math.ceil(seconds / song_seconds - 1e-9))
    kits: dict[str, dict[str, np.ndarray]] = {}
    with reference_chain(sample_rate) as chain:
        source = {"kind": "offline",
                  "inputs": f"stereo mixes of FluidSynth renders ({DEFAULT_SOUNDFONT.name}: GM basses "
                            f"{min(BASSES) + 1}-{max(BASSES) + 1}, guitars {min(GUITARS) + 1}-{max(GUITARS) + 1}, "
                            f"keys {', '.join(str(k + 1) for k in KEYS)}) and Hydrogen drum kit samples, at varied "
                            f"part levels, shelving balance (+-{SHELF_DB:g} dB) and loudness ({MIX_LUFS} LUFS)",
                  "targets": f"the mixes through ZamEQ2, ZaMultiCompX2 and ZaMaximX2 (VST3) at per-song settings "
                             f"reaching the mix's loudness + {MASTER_GAIN_LU} LU within {MASTER_LUFS} LUFS, a ceiling "
                             f"in {CEILING_DBFS} dBFS and the mix's balance moved {BALANCE_PULL:g} of the way to "
                             f"{REFERENCE_BALANCE_DB} dB (fxlib.data.mastering docstring)",
                  "reference_chain": chain.to_spec()}
        params = {"generator": GENERATOR, "songs": n, "song_seconds": song_seconds,
                  "sample_rate": sample_rate, "seed": seed, "mix_lufs": list(MIX_LUFS), "mix_peak_dbfs": MIX_PEAK_DBFS,
                  "master_gain_lu": list(MASTER_GAIN_LU), "master_lufs": list(MASTER_LUFS),
                  "ceiling_dbfs": list(CEILING_DBFS), "reference_balance_db": list(REFERENCE_BALANCE_DB),
                  "balance_pull": BALANCE_PULL, "balance_change_db": BALANCE_CHANGE_DB}
        writer = PairWriter(root, Manifest(TASK, source, sample_rate, CHANNELS, seed, command, params))
        for i, split in enumerate(split_names(n, seed)):
            pair_id = f"{i:04d}"
            if writer.reuse(pair_id):
                continue
            mix, info = premaster(i, seed, song_seconds, sample_rate, kits)
            aims = master_targets(mix, sample_rate, i, seed)
            target, mastered = master(mix, chain, sample_rate, aims["lufs"], aims["ceiling_db"], aims["balance_db"])
            inp, tgt = writer.paths(pair_id, split)
            save_audio(inp, mix, sample_rate)
            save_audio(tgt, target, sample_rate)
            writer.add(writer.pair(pair_id, split, mix.shape[1] / sample_rate,
                                   {**info, "master_targets": aims, **mastered}))
            log(f"{split:5} {pair_id}: {info['drumkit']}, mix {info['mix_lufs']:.1f} LUFS -> master "
                f"{mastered['master_lufs']:.1f} LUFS, {mastered['master_true_peak_dbtp']:.1f} dBTP")
    measured = stats.rounded(stats.set_statistics(((x, y) for x, y, _ in writer.audio(sample_rate)), sample_rate))
    writer.header.source = {**source, "statistics": {"this_set": measured, "paper_examples": PAPER_STATISTICS}}
    path = writer.finish()
    log(f"{root}: {n} songs, {n * song_seconds:g} s of audio, in {time.perf_counter() - start:.1f} s")
    return path


# ---------------------------------------------------------------------------- the download

def read_song_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a song manifest (format in the module docstring); return its songs.

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: unreadable JSON/TOML, a wrong format number, or a song or file entry that
            lacks a field (the song and the field are named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"song manifest {path} does not exist")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable song manifest ({e})") from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: a song manifest is an object with \"format\": {MANIFEST_FORMAT}")
    songs = data.get("songs")
    if not isinstance(songs, list) or not songs:
        raise DataError(f"{path}: \"songs\" must be a non-empty list")
    ids = set()
    for i, song in enumerate(songs):
        where = f"{path}: song #{i}"
        if not isinstance(song, dict) or not isinstance(song.get("id"), str) or not song["id"]:
            raise DataError(f"{where} needs a non-empty string \"id\"")
        where = f"{path}: song {song['id']!r}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", song["id"]) or song["id"] in ids:
            raise DataError(f"{where}: ids must be unique and use only letters, digits, '_', '.' and '-'")
        ids.add(song["id"])
        for kind in ("premaster", "master"):
            entry = song.get(kind)
            if not isinstance(entry, dict):
                raise DataError(f"{where} has no \"{kind}\" entry (an object with url and sha256 or md5)")
            unknown = set(entry) - {"url", "sha256", "md5", "member"}
            if unknown:
                raise DataError(f"{where}: {kind} has unknown field(s) {sorted(unknown)}")
            if not isinstance(entry.get("url"), str) or not entry["url"]:
                raise DataError(f"{where}: {kind} has no \"url\"")
            if not (entry.get("sha256") or entry.get("md5")):
                raise DataError(f"{where}: {kind} needs a \"sha256\" or \"md5\" checksum")
    return songs


def align(premaster_audio: np.ndarray, master_audio: np.ndarray, sample_rate: int,
          max_offset: float = MAX_OFFSET_SECONDS) -> tuple[np.ndarray, np.ndarray, int]:
    """Remove the time offset between a pre-master and its master and trim both to their common span.

    The lag is the one that maximises the cross-correlation of the two mono mixes (FFT),
    searched within ``max_offset`` seconds either way.

    Shape:
        premaster_audio: ``(C, T_a)``; master_audio: ``(C, T_b)``;
        returns ``(premaster (C, T), master (C, T), lag)`` where ``lag`` > 0 means the master
        started ``lag`` samples later than the pre-master.
    """
    a, b = premaster_audio.mean(axis=0), master_audio.mean(axis=0)
    corr = scipy.signal.correlate(b.astype(np.float64), a.astype(np.float64), mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(b), len(a), mode="full")
    window = np.abs(lags) <= max_offset * sample_rate
    lag = int(lags[window][np.argmax(corr[window])])
    pre, mas = (premaster_audio, master_audio[:, lag:]) if lag >= 0 else (premaster_audio[:, -lag:], master_audio)
    n = min(pre.shape[1], mas.shape[1])
    if n < sample_rate:
        raise DataError(f"after aligning (lag {lag} samples) the pre-master and master overlap for less than 1 s")
    return pre[:, :n], mas[:, :n], lag


def _fetch_entry(entry: dict[str, Any], raw: Path, log: Log) -> Path:
    """Download (and unpack, for a ``member``) one file entry; return the local WAV path."""
    url = entry["url"]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePosixPath(url.split("?")[0]).name) or "file"
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    path = download(url, raw / "files" / f"{tag}-{name}", sha256=entry.get("sha256"), md5=entry.get("md5"))
    log(f"{url}: {path.stat().st_size / 1e6:.1f} MB ok")
    if "member" not in entry:
        return path
    folder = extract(path, raw / "extracted" / path.name)
    member = folder / entry["member"]
    if not member.is_file():
        raise DataNotFoundError(f"{url}: the archive has no member {entry['member']!r}")
    return member


def download_paper_data(root: str | Path, manifest: str | Path, seed: int = 0, sample_rate: int = SAMPLE_RATE,
                        max_offset: float = MAX_OFFSET_SECONDS, command: str = "", log: Log = print) -> Path:
    """Download, align and split the songs of a song manifest (see the module docstring).

    Args:
        root: the data set folder.
        manifest: the song manifest (JSON or TOML).
        seed: for :func:`~fxlib.data.paired.split_names` over the sorted song ids.
        sample_rate: in Hz, of the written files.
        max_offset: seconds; the largest master/pre-master offset searched by :func:`align`.
        command: the command line recorded in the data set's manifest.
        log: receives progress lines.

    Returns:
        the data set's manifest path.

    Raises:
        DataNotFoundError, DataError: a missing or malformed song manifest or archive member.
        DownloadError, ChecksumError: a file cannot be fetched or fails its checksum.
    """
    root = Path(root)
    songs = sorted(read_song_manifest(manifest), key=lambda s: s["id"])
    source = {"kind": "download", "manifest": str(manifest), "songs": len(songs),
              "resampling": "scipy.signal.resample_poly, kept stereo",
              "alignment": f"cross-correlation lag within +-{max_offset:g} s removed, trimmed to the common span"}
    params = {"preparer": "fxlib.data.mastering.download_paper_data/1", "songs": songs, "seed": seed,
              "sample_rate": sample_rate, "max_offset": max_offset}
    writer = PairWriter(root, Manifest(TASK, source, sample_rate, CHANNELS, seed, command, params))
    for song, split in zip(songs, split_names(len(songs), seed)):
        if writer.reuse(song["id"]):
            continue
        audio = {}
        for kind in ("premaster", "master"):
            path = _fetch_entry(song[kind], root / "raw", log)
            audio[kind], _ = load_audio(path, sample_rate, CHANNELS)
        pre, mas, lag = align(audio["premaster"], audio["master"], sample_rate, max_offset)
        inp, tgt = writer.paths(song["id"], split)
        save_audio(inp, pre, sample_rate)
        save_audio(tgt, mas, sample_rate)
        writer.add(writer.pair(song["id"], split, pre.shape[1] / sample_rate,
                               {"lag_samples": lag, "premaster_url": song["premaster"]["url"],
                                "master_url": song["master"]["url"]}))
        log(f"{split:5} {song['id']}: {pre.shape[1] / sample_rate:.1f} s, master lag {lag} samples")
    path = writer.finish()
    log(f"{root}: {len(songs)} songs from {manifest}")
    return path


def main(argv: list[str] | None, root: str, seconds: float) -> int:
    """``fxlib data mastering {download,build} ...``: ``root`` and ``seconds`` are the defaults of
    ``--root`` and ``--seconds``; returns the exit status (errors are raised)."""
    parser, download_p, build_p = task_parser(
        TASK, __doc__, "download, align and split the songs listed in a song manifest",
        "build the offline stand-in: MIDI songs mastered by a ZAM reference chain", root, seconds)
    download_p.add_argument("--manifest", required=True, help="song manifest, JSON or TOML (format: fxlib.data.mastering)")
    download_p.add_argument("--max-offset", type=float, default=MAX_OFFSET_SECONDS,
                            help=f"largest master offset searched, seconds (default {MAX_OFFSET_SECONDS:g})")
    build_p.add_argument("--song-seconds", type=float, default=12.0, help="seconds per song (default 12)")
    args = parser.parse_args(argv)
    command = command_line(TASK, argv)
    if args.action == "download":
        download_paper_data(args.root, args.manifest, args.seed, max_offset=args.max_offset, command=command)
    else:
        build(args.root, args.seconds, args.song_seconds, args.seed, command=command)
    return 0
