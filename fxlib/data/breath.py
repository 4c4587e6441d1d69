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

``build`` makes an offline stand-in from real speech in Debian packages:

* ``asterisk-core-sounds-en-wav``: the prompts in :data:`ASTERISK_DIR` (one female
  speaker, Allison; 8 kHz telephone recordings). The 8 kHz rate means this speech has
  nothing above 4 kHz: resampled to 22050 Hz, its top 4-11 kHz is empty, so any energy there
  belongs to the inserted events. That makes breaths easier to find by band than in
  full-band speech (real breaths overlap the fricatives' 4-10 kHz), and the trained gate
  may lean on it; results on this data overstate what full-band speech would give.
* ``alsa-utils``: the full-band voice clips in :data:`ALSA_DIR` (48 kHz; ``Noise.wav`` is
  skipped), a second voice.

The clips are assigned to the splits once (:func:`~fxlib.data.paired.split_names` over the
sorted clip list), so no clip is heard in two splits. Each pair of ``file_seconds`` is a
sequence of phrases (1-2 clips of at most 6 s with 50-150 ms pauses, silences trimmed, at
an active-speech RMS level drawn from :data:`SPEECH_RMS_DBFS`) separated by gaps. A gap
holds, each with its probability, a breath (:data:`BREATH_PROBABILITY`) and then a pop just
before the next phrase (:data:`POP_PROBABILITY`), with short margins of silence around them;
the first gap, at the start of the pair, always holds both (so that every pair has both
kinds), and the last phrase is cut at the end of the pair:

* breath: white noise shaped by a first-order 300 Hz high-pass, two resonances (drawn
  from 600-1500 Hz and 1700-3200 Hz) and a gentle roll-off above 4-7 kHz (an open-vocal-
  tract, unvoiced spectrum), a raised-sine envelope rising over 30-50 % of its length,
  0.2-0.8 s long, RMS over the event drawn from :data:`BREATH_RMS_DBFS` (-35 to -20 dBFS);
* pop: a plosive burst, a decaying 40-150 Hz sine plus low-passed (200 Hz) noise under a
  fast-attack envelope, 10-40 ms long, RMS drawn from :data:`POP_RMS_DBFS`.

Between the phrases and events the audio is digital silence (the clips keep their own quiet
background between words): the paper's training loss compares log magnitudes with an offset
of 1e-5, so a noise floor above about -120 dBFS in the target would make any gating of the
gaps costly and teach the gate to stay open.
The target is the input without the events: the same speech samples, sample-aligned, so
``input - target`` is exactly the sum of the events. Each event is labelled in the pair's
``info["events"]`` as ``{"kind": "breath" | "pop", "start": s, "end": s,
"level_dbfs": RMS over [start, end)}``, times from the start of the pair at the data set's
rate. Every file depends only on the seed and its index, so the same seed gives the same
WAV bytes, and an interrupted build resumes.

Both write the layout of :mod:`fxlib.data.paired` under ``root``.
"""
from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.signal

from .audio import DataError, DataNotFoundError, load_audio, save_audio
from .download import download, extract, file_digest, progress_logger
from .scripts import command_line, task_parser
from .paired import Manifest, PairWriter, match_lengths, split_names

TASK = "breath"
URL = "https://zenodo.org/records/4660670/files/daps.tar.gz?download=1"
ARCHIVE = "daps.tar.gz"
LAYOUT = {"folder": "daps", "input": "clean_raw", "target": "clean",
          "input_suffix": "_clean_raw", "target_suffix": "_clean"}
SAMPLE_RATE = 22050
SEGMENT_SECONDS = 30.0
MIN_SEGMENT_SECONDS = 5.0

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_SKIP = ("Noise.wav",)

SPEECH_RMS_DBFS = (-26.0, -16.0)  # active-speech RMS of a phrase
BREATH_RMS_DBFS = (-35.0, -20.0)
BREATH_SECONDS = (0.2, 0.8)
POP_RMS_DBFS = (-30.0, -16.0)
POP_SECONDS = (0.010, 0.040)
POP_HZ = (40.0, 150.0)
BREATH_PROBABILITY = 0.85  # per gap
POP_PROBABILITY = 0.5  # per gap
CLIPS_PER_PHRASE = (1, 2)
MAX_CLIP_SECONDS = 6.0  # longer prompts are not used
PAUSE_SECONDS = (0.05, 0.15)  # between the clips of a phrase (no events there)
MARGIN_SECONDS = (0.05, 0.25)  # silence around the events of a gap
POP_LEAD_SECONDS = (0.02, 0.06)  # from the end of a pop to the next phrase
TRIM_BELOW_PEAK_DB = 40.0  # clip-edge frames this far below the loudest frame are trimmed
TRIM_FRAME_SECONDS = 0.01

Log = Callable[[str], None]


# ---------------------------------------------------------------------------- offline build

def speech_clips(sample_rate: int = SAMPLE_RATE, asterisk_dir: Path = ASTERISK_DIR,
                 alsa_dir: Path = ALSA_DIR) -> list[tuple[str, np.ndarray]]:
    """The speech clips of the offline build, sorted by name, each trimmed of its silent edges.

    Clips longer than :data:`MAX_CLIP_SECONDS` after trimming are left out.

    Returns:
        ``[(name, audio), ...]``: names like ``asterisk/digits/1.wav`` or ``alsa/Front_Left.wav``,
        audio float32 ``(T,)`` at ``sample_rate`` Hz, mono.

    Raises:
        DataNotFoundError: a folder is missing or holds no WAV files (names the Debian package).
    """
    found = []
    for label, folder, package, skip in (("asterisk", asterisk_dir, "asterisk-core-sounds-en-wav", ()),
                                         ("alsa", alsa_dir, "alsa-utils", ALSA_SKIP)):
        files = sorted(p for p in folder.rglob("*.wav") if p.name not in skip) if folder.is_dir() else []
        if not files:
            raise DataNotFoundError(f"no speech WAV files in {folder}; install them with "
                                    f"`sudo apt-get install {package}`")
        found += [(f"{label}/{p.relative_to(folder).as_posix()}", p) for p in files]
    clips = []
    for name, path in found:
        audio, _ = load_audio(path, sample_rate, channels=1)
        trimmed = _trim(audio[0], sample_rate)
        if 0 < trimmed.size <= MAX_CLIP_SECONDS * sample_rate:
            clips.append((name, trimmed))
    return clips


def _frame_power(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Mean power of ``x (T,)`` in frames of :data:`TRIM_FRAME_SECONDS` (the last zero-padded), and the frame length."""
    frame = max(1, round(TRIM_FRAME_SECONDS * sample_rate))
    n = -(-len(x) // frame)
    padded = np.pad(x.astype(np.float64), (0, n * frame - len(x)))
    return np.mean(padded.reshape(n, frame) ** 2, axis=1), frame


def _trim(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``x (T,)`` without leading and trailing frames quieter than its loudest by :data:`TRIM_BELOW_PEAK_DB`."""
    power, frame = _frame_power(x, sample_rate)
    loud = np.flatnonzero(power > power.max() * 10 ** (-TRIM_BELOW_PEAK_DB / 10)) if np.any(x) else []
    return x[loud[0] * frame:(loud[-1] + 1) * frame] if len(loud) else x[:0]


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS of the frames of ``x (T,)`` within :data:`TRIM_BELOW_PEAK_DB` of its loudest frame."""
    power, _ = _frame_power(x, sample_rate)
    return float(np.sqrt(np.mean(power[power > power.max() * 10 ** (-TRIM_BELOW_PEAK_DB / 10)])))


def _scale_to_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def breath(rng: np.random.Generator, seconds: float, rms_dbfs: float, sample_rate: int) -> np.ndarray:
    """A synthetic breath (see the module docstring): float64 ``(round(seconds * sample_rate),)``, RMS ``rms_dbfs``."""
    n = round(seconds * sample_rate)
    x = scipy.signal.sosfilt(scipy.signal.butter(1, 300, "highpass", fs=sample_rate, output="sos"),
                             rng.standard_normal(n + 2048))
    shaped = 0.3 * x
    for low, high in ((600.0, 1500.0), (1700.0, 3200.0)):
        centre = rng.uniform(low, high)
        band = scipy.signal.butter(2, [centre / 1.25, centre * 1.25], "bandpass", fs=sample_rate, output="sos")
        shaped = shaped + scipy.signal.sosfilt(band, x)
    rolloff = min(rng.uniform(4000.0, 7000.0), 0.45 * sample_rate)
    shaped = scipy.signal.sosfilt(scipy.signal.butter(1, rolloff, fs=sample_rate, output="sos"), shaped)[2048:]
    rise = max(1, round(rng.uniform(0.3, 0.5) * n))
    envelope = np.concatenate([np.sin(0.5 * np.pi * np.arange(rise) / rise) ** 2,
                               np.cos(0.5 * np.pi * np.arange(n - rise) / (n - rise)) ** 2])
    return _scale_to_rms(shaped * envelope, rms_dbfs)


def pop(rng: np.random.Generator, seconds: float, rms_dbfs: float, sample_rate: int) -> np.ndarray:
    """A synthetic plosive pop (see the module docstring): float64 ``(round(seconds * sample_rate),)``."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tone = np.sin(2 * np.pi * rng.uniform(*POP_HZ) * t + rng.uniform(0, 2 * np.pi))
    rumble = scipy.signal.sosfilt(scipy.signal.butter(2, 200, fs=sample_rate, output="sos"),
                                  rng.standard_normal(n + 1024))[1024:]
    rumble = rumble / (np.std(rumble) + 1e-12)
    attack = max(1, round(0.002 * sample_rate))
    envelope = np.minimum(1.0, np.arange(n) / attack) * np.exp(-t / (seconds / 3))
    return _scale_to_rms((tone + 0.5 * rumble) * envelope, rms_dbfs)


def compose(rng: np.random.Generator, clips: list[np.ndarray], seconds: float,
            sample_rate: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """One pair: speech phrases with breaths and pops in the gaps (see the module docstring).

    Args:
        rng: draws everything.
        clips: the speech clips to draw from, each float ``(T_i,)``.
        seconds: the pair's length.
        sample_rate: in Hz.

    Returns:
        ``(input, target, events)``: float32 ``(1, T)`` each with ``T = round(seconds * sample_rate)``,
        ``input - target`` the events; ``events`` the labels, in time order.
    """
    total = round(seconds * sample_rate)
    clean = np.zeros(total)
    events_audio = np.zeros(total)
    events: list[dict[str, Any]] = []

    def at(s: float) -> int:
        return round(s * sample_rate)

    pos = at(rng.uniform(*MARGIN_SECONDS))
    first = True  # the first gap holds both kinds
    while True:
        for kind, probability, durations, levels, make in (
                ("breath", BREATH_PROBABILITY, BREATH_SECONDS, BREATH_RMS_DBFS, breath),
                ("pop", POP_PROBABILITY, POP_SECONDS, POP_RMS_DBFS, pop)):
            if first or rng.random() < probability:
                event = make(rng, rng.uniform(*durations), rng.uniform(*levels), sample_rate)
                if pos + len(event) > total:
                    break
                events_audio[pos:pos + len(event)] = event
                events.append({"kind": kind, "start": round(pos / sample_rate, 6),
                               "end": round((pos + len(event)) / sample_rate, 6),
                               "level_dbfs": round(20 * math.log10(np.sqrt(np.mean(event ** 2))), 3)})
                pos += len(event) + at(rng.uniform(*(MARGIN_SECONDS if kind == "breath" else POP_LEAD_SECONDS)))
        phrase = []
        for k in range(rng.integers(CLIPS_PER_PHRASE[0], CLIPS_PER_PHRASE[1] + 1)):
            if k:
                phrase.append(np.zeros(at(rng.uniform(*PAUSE_SECONDS))))
            phrase.append(clips[rng.integers(len(clips))])
        phrase = np.concatenate(phrase).astype(np.float64)
        gain = 10 ** (rng.uniform(*SPEECH_RMS_DBFS) / 20) / _active_rms(phrase, sample_rate)
        phrase = gain * phrase[:max(0, total - pos)]
        clean[pos:pos + len(phrase)] += phrase
        pos += len(phrase) + at(rng.uniform(*MARGIN_SECONDS))
        first = False
        if pos >= total:
            break
    target = clean.astype(np.float32)[None]
    return (target + events_audio.astype(np.float32)[None]), target, events


def build(root: str | Path, seconds: float = 600.0, file_seconds: float = 10.0, seed: int = 0,
          sample_rate: int = SAMPLE_RATE, command: str = "", log: Log = print) -> Path:
    """Build the offline breath data set (see the module docstring); return the manifest path.

    Args:
        root: the data set folder.
        seconds: total audio, split into files of ``file_seconds`` (at least 3 files).
        file_seconds: length of each pair, in seconds (at least 2).
        seed: determines the clip split, every phrase, event and level.
        sample_rate: in Hz.
        command: the command line recorded in the manifest.
        log: receives one line per file and a summary.

    Raises:
        DataError: ``root`` holds a data set built with other settings, or bad sizes.
        DataNotFoundError: the Debian speech packages are missing.
    """
    if not (seconds > 0 and file_seconds >= 2):
        raise DataError(f"seconds ({seconds}) must be positive and file_seconds ({file_seconds}) at least 2")
    start = time.perf_counter()
    n = max(3, math.ceil(seconds / file_seconds - 1e-9))
    source = {"kind": "offline",
              "speech": f"{ASTERISK_DIR} (asterisk-core-sounds-en-wav, 8 kHz, one female speaker) and "
                        f"{ALSA_DIR} (alsa-utils, 48 kHz, without {', '.join(ALSA_SKIP)})",
              "events": "synthetic breaths and plosive pops between phrases, labelled in info.events",
              "target": "the input without the events (same speech samples)"}
    params = {"generator": "fxlib.data.breath.build/2", "files": n, "file_seconds": file_seconds,
              "sample_rate": sample_rate, "seed": seed}
    writer = PairWriter(root, Manifest(TASK, source, sample_rate, 1, seed, command, params))
    clips: dict[str, list[np.ndarray]] | None = None
    for i, split in enumerate(split_names(n, seed)):
        pair_id = f"{i:04d}"
        if writer.reuse(pair_id):
            continue
        if clips is None:
            named = speech_clips(sample_rate)
            clips = {s: [] for s in ("train", "valid", "test")}
            for (_, clip), clip_split in zip(named, split_names(len(named), seed)):
                clips[clip_split].append(clip)
        inp, tgt, events = compose(np.random.default_rng([seed, i]), clips[split], file_seconds, sample_rate)
        inp_path, tgt_path = writer.paths(pair_id, split)
        save_audio(inp_path, inp, sample_rate)
        save_audio(tgt_path, tgt, sample_rate)
        writer.add(writer.pair(pair_id, split, inp.shape[1] / sample_rate, {"events": events}))
        kinds = [e["kind"] for e in events]
        log(f"{split:5} {pair_id}: {kinds.count('breath')} breaths, {kinds.count('pop')} pops")
    path = writer.finish()
    log(f"{root}: {n} pairs, {n * file_seconds:g} s of audio, in {time.perf_counter() - start:.1f} s")
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
        "build the offline stand-in: Debian speech with labelled breaths and pops", root, seconds)
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
