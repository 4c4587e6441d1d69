"""Data for tube-amplifier emulation: the paper's recordings, or an offline stand-in built here.

``download`` fetches the paper's data set, ``AudioMDPI.zip`` from Zenodo record 3562442
(Martínez Ramírez, Benetos, Reiss, "Deep learning for black-box modeling of audio effects",
Applied Sciences 2020). The layout used, as read from the download script and configuration of
the paper's code (adobe-research/DeepAFx, ``download_dataset_distortion.py`` and
``config_distortion.py``)::

    AudioMDPI/6176ChannelStrip/dry/**.wav      dry instrument recordings (the inputs)
    AudioMDPI/6176ChannelStrip/preamp/**.wav   the same through the Universal Audio 6176's tube preamp

Pairing rule (``pairing="sorted"``, the paper code's rule): the WAV files found recursively
under each folder are sorted by path and paired by position; the two folders must hold the
same number of files. ``pairing="name"`` pairs files with the same relative path instead.
Folder names are arguments (:data:`LAYOUT`) in case the archive differs. Each pair is resampled
to 22050 Hz, mixed to mono, trimmed to the shorter length (within 50 ms) and split into train,
valid and test with :func:`~fxlib.data.paired.split_names` (seed 0: the paper's split).
No published checksum of the archive could be confirmed offline, so by default its MD5 is
computed and recorded in the manifest (with a warning); pass ``md5`` to verify it.

``build`` makes an offline stand-in in about 20 s for the default 4 minutes of audio: guitar
and bass riffs (:func:`~fxlib.data.midi.random_riff`) rendered dry by FluidSynth with the
FluidR3_GM SoundFont play the DI inputs; the targets are those inputs through a tube preamp
that is not part of any learned chain, at fixed settings (:data:`PREAMPS`): guitarix's
JCM800 preamp (LV2) where installed, else ZamTube (VST3), else a pedalboard
distortion-and-filters chain, each followed by a limiter; the manifest records which. Every file depends only on the seed
and its index, so the same seed gives the same WAV bytes, and an interrupted build resumes.

The target chain and the levels are calibrated on the statistics of the paper's own amp
examples (:data:`PAPER_STATISTICS`, never their audio). The paper's targets went through a
Universal Audio 6176 channel strip, a tube preamp followed by an 1176 limiting amplifier: they
are 7 to 9 LU louder than the DI, peak near 0 dBFS, and their crest factor is 7 to 8 dB lower.
So every preamp here is followed by a limiter (:data:`LIMITER`, pedalboard's, 6 dB of gain
into a 0 dBFS ceiling), the JCM800 runs at -10 dB gain, and the DI peaks are drawn in
:data:`DI_PEAK_DBFS`. FluidSynth's renders are peakier than the paper's DI recordings, so the same
peaks give quieter inputs; each build writes its measured statistics beside the paper's into
its manifest.

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

from ..chain import FxChain
from ..errors import FxError
from .audio import DataError, DataNotFoundError, load_audio, save_audio
from .download import download, extract, file_digest, progress_logger
from .midi import BASSES, DEFAULT_SOUNDFONT, GUITARS, random_riff, synthesize
from . import stats
from .scripts import command_line, task_parser
from .paired import Manifest, PairWriter, match_lengths, split_names

TASK = "amp"
#: The offline builder's version, recorded in the manifest: training refuses a set built by another
#: (:meth:`fxlib.tasks.Task.ensure_data` says to delete it and build it again).
GENERATOR = "fxlib.data.amp.build/3"
URL = "https://zenodo.org/records/3562442/files/AudioMDPI.zip?download=1"
ARCHIVE = "AudioMDPI.zip"
LAYOUT = {"folder": "AudioMDPI/6176ChannelStrip", "input": "dry", "target": "preamp"}
SAMPLE_RATE = 22050
GX_JCM800PRE = "http://guitarix.sourceforge.net/plugins/gx_jcm800pre_#_jcm800pre_"
#: The 6176 channel strip's limiting amplifier (an 1176) after the preamp, the same for each backend.
LIMITER: dict[str, Any] = {"name": "limiter", "kind": "builtin", "id": "Limiter",
                           "fixed": {"threshold_db": -6.0, "release_ms": 50.0}}
PREAMPS: dict[str, list[dict[str, Any]]] = {
    "lv2": [{"name": "jcm800pre", "kind": "lv2", "id": GX_JCM800PRE,
             "fixed": {"GAIN": -10.0, "WET_DRY": 100.0, "Bass": 0.5, "Middle": 0.5, "Treble": 0.5, "P6v": 0.5}},
            LIMITER],
    "vst3": [{"name": "zamtube", "kind": "vst3", "id": "ZamTube",
              "fixed": {"tube_drive": 5.0, "bass": 5.0, "mids": 5.0, "treble": 5.0, "input_level": 0.0,
                        "tone_stack_model": "1959/81 JCM-800 Lead 100", "insane_boost": 0.0}}, LIMITER],
    "builtin": [{"name": "hpf", "kind": "builtin", "id": "HighpassFilter", "fixed": {"cutoff_frequency_hz": 80.0}},
                {"name": "drive", "kind": "builtin", "id": "Distortion", "fixed": {"drive_db": 18.0}},
                {"name": "lpf", "kind": "builtin", "id": "LowpassFilter", "fixed": {"cutoff_frequency_hz": 5000.0}},
                {"name": "trim", "kind": "builtin", "id": "Gain", "fixed": {"gain_db": -12.0}}, LIMITER],
}
PREAMP_NAMES = {"lv2": "guitarix JCM800 preamp (LV2) and a limiter", "vst3": "ZamTube (VST3) and a limiter",
                "builtin": "pedalboard high-pass, tanh distortion, low-pass and a limiter (built-in)"}
DI_PEAK_DBFS = (-4.0, -0.3)  # range of the DI inputs' peak levels, drawn per file (see the module docstring)
TEMPO_BPM = (80.0, 160.0)
BASS_SHARE = 1 / 3  # of the files

#: The paper's own amp examples (the listening test's pairs, input ``_x`` and target ``_y``, at
#: 22050 Hz) measured by :func:`fxlib.data.paper_examples.statistics`, rounded, with the command
#: ``.venv/bin/python -c "from fxlib.data import paper_examples as pe, stats; print(stats.rounded(pe.statistics('../shared/paper-listening-test', 'amp', 22050)))"``.
#: A constant: the builder never reads the paper's audio, and none of it is training data. Each
#: build writes its own statistics beside it into the manifest (``source["statistics"]``).
PAPER_STATISTICS: dict[str, Any] = {
    "pairs": 5,
    "loudness_lufs": {"input": {"min": -13.989, "median": -13.024, "max": -12.326, "n": 5},
                      "target": {"min": -5.847, "median": -5.177, "max": -4.295, "n": 5},
                      "change": {"min": 7.113, "median": 7.949, "max": 8.812, "n": 5}},
    "true_peak_dbtp": {"input": {"min": -0.44, "median": -0.433, "max": -0.173, "n": 5},
                       "target": {"min": -0.222, "median": 0.006, "max": 0.36, "n": 5},
                       "change": {"min": 0.218, "median": 0.442, "max": 0.644, "n": 5}},
    "crest_factor_db": {"change": {"min": -8.379, "median": -7.324, "max": -6.547, "n": 5}},
    "level_range_db": {"change": {"min": -9.459, "median": -7.105, "max": -4.611, "n": 5}},
    "broad_bands_db": {"change": {"below_150_hz": {"min": -0.717, "median": 8.127, "max": 13.487, "n": 5},
                                  "150_hz_2_khz": {"min": -0.367, "median": -0.17, "max": 0.034, "n": 5},
                                  "2_6_khz": {"min": 4.286, "median": 17.429, "max": 20.539, "n": 5},
                                  "above_6_khz": {"min": 13.427, "median": 20.021, "max": 34.767, "n": 5}}},
    "nonlinear_share_db": {"min": -7.396, "median": -5.981, "max": -5.891, "n": 5}
}

Log = Callable[[str], None]


def preamp_chain(preamp: str = "auto", sample_rate: int = SAMPLE_RATE) -> tuple[str, FxChain]:
    """The target preamp as a chain at fixed settings: ``(backend name, chain)``; close the chain after use.

    Args:
        preamp: ``"lv2"``, ``"vst3"``, ``"builtin"``, or ``"auto"`` for the first of these that
            loads here (with a warning for each one skipped).
        sample_rate: in Hz.
    """
    if preamp != "auto" and preamp not in PREAMPS:
        raise DataError(f"unknown preamp {preamp!r}; choose auto, {', '.join(PREAMPS)}")
    for name in PREAMPS if preamp == "auto" else [preamp]:
        try:
            return name, FxChain(PREAMPS[name], sample_rate, channels=1, name=f"amp-target-{name}")
        except FxError as e:
            if preamp != "auto":
                raise
            warnings.warn(f"amp target preamp {name} unavailable ({e}); trying the next one", stacklevel=2)
    raise DataError(f"none of the target preamps ({', '.join(PREAMPS)}) could be loaded")


def build(root: str | Path, seconds: float = 240.0, file_seconds: float = 10.0, seed: int = 0,
          preamp: str = "auto", sample_rate: int = SAMPLE_RATE, command: str = "", log: Log = print) -> Path:
    """Build the offline amp data set (see the module docstring); return the manifest path.

    Args:
        root: the data set folder.
        seconds: total audio, split into files of ``file_seconds`` (at least 3 files).
        file_seconds: length of each pair, in seconds.
        seed: determines every riff, level and split.
        preamp: the target's backend, as for :func:`preamp_chain`.
        sample_rate: in Hz.
        command: the command line recorded in the manifest.
        log: receives one line per file and a summary.

    Raises:
        DataError: ``root`` holds a data set built with other settings.
        BackendUnavailableError: fluidsynth or the SoundFont is missing.
    """
    if not (seconds > 0 and file_seconds > 0):
        raise DataError(f"seconds ({seconds}) and file_seconds ({file_seconds}) must be positive")
    start = time.perf_counter()
    n = max(3, math.ceil(seconds / file_seconds - 1e-9))
    name, chain = preamp_chain(preamp, sample_rate)
    with chain:
        source = {"kind": "offline", "inputs": f"FluidSynth renders of MIDI riffs with {DEFAULT_SOUNDFONT.name} "
                  f"(GM guitars {min(GUITARS) + 1}-{max(GUITARS) + 1}, basses {min(BASSES) + 1}-{max(BASSES) + 1})",
                  "targets": f"the inputs through the {PREAMP_NAMES[name]} at fixed settings", "preamp": name,
                  "preamp_chain": chain.to_spec()}
        params = {"generator": GENERATOR, "files": n, "file_seconds": file_seconds,
                  "sample_rate": sample_rate, "seed": seed, "preamp": name}
        writer = PairWriter(root, Manifest(TASK, source, sample_rate, 1, seed, command, params))
        for i, split in enumerate(split_names(n, seed)):
            pair_id = f"{i:04d}"
            if writer.reuse(pair_id):
                continue
            di, info = _di(i, seed, file_seconds, sample_rate)
            inp, tgt = writer.paths(pair_id, split)
            save_audio(inp, di, sample_rate)
            save_audio(tgt, chain.process(di), sample_rate)
            writer.add(writer.pair(pair_id, split, di.shape[1] / sample_rate, info))
            log(f"{split:5} {pair_id}: {info['riff']}, GM program {info['midi_program'] + 1}, "
                f"{info['tempo_bpm']:.0f} bpm, peak {info['peak_dbfs']:.1f} dBFS")
    measured = stats.rounded(stats.set_statistics(((x, y) for x, y, _ in writer.audio(sample_rate)), sample_rate))
    writer.header.source = {**source, "statistics": {"this_set": measured, "paper_examples": PAPER_STATISTICS}}
    path = writer.finish()
    log(f"{root}: {n} pairs, {n * file_seconds:g} s of audio, target preamp {name}, "
        f"in {time.perf_counter() - start:.1f} s")
    return path


def _di(index: int, seed: int, seconds: float, sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The DI input of file ``index``: a rendered riff at a drawn peak level, float32 ``(1, T)``."""
    rng = np.random.default_rng([seed, index])
    instrument = "bass" if rng.random() < BASS_SHARE else "guitar"
    tempo = float(rng.uniform(*TEMPO_BPM))
    part = random_riff(rng, instrument, seconds, tempo)
    audio = synthesize([part], seconds, sample_rate, channels=1, tempo_bpm=tempo)
    peak = float(np.abs(audio).max())
    if peak == 0:
        raise DataError(f"amp file {index}: the rendered riff is silent ({part.name})")
    peak_dbfs = float(rng.uniform(*DI_PEAK_DBFS))
    audio = (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)
    info = {"instrument": instrument, "midi_program": part.program, "riff": part.name, "tempo_bpm": round(tempo, 3),
            "notes": len(part.notes), "peak_dbfs": round(peak_dbfs, 3)}
    return audio, info


def download_paper_data(root: str | Path, url: str = URL, md5: str | None = None, seed: int = 0,
                        sample_rate: int = SAMPLE_RATE, layout: dict[str, str] | None = None,
                        pairing: str = "sorted", length_tolerance: float = 0.05, command: str = "",
                        log: Log = print) -> Path:
    """Download, extract and pair the paper's recordings (see the module docstring).

    The archive goes to ``<root>/raw/AudioMDPI.zip`` (resumed if cut) and is extracted to
    ``<root>/raw/extracted/``; both are kept, so a second run only re-checks the pairs.

    Args:
        root: the data set folder.
        url: where the archive is (a mirror, or a local server in tests).
        md5: the archive's expected MD5; ``None`` computes and records it (with a warning).
        seed: for :func:`~fxlib.data.paired.split_names` (0 gives the paper's split).
        sample_rate: in Hz, of the written files.
        layout: ``{"folder", "input", "target"}`` inside the archive; default :data:`LAYOUT`.
        pairing: ``"sorted"`` (by position in sorted order) or ``"name"`` (same relative path).
        length_tolerance: seconds; input and target lengths may differ by this much (trimmed).
        command: the command line recorded in the manifest.
        log: receives progress lines.

    Returns:
        the manifest's path.
    """
    root = Path(root)
    layout = {**LAYOUT, **(layout or {})}
    if md5 is None:
        warnings.warn(f"no checksum given for {url}: its MD5 is computed and recorded in the manifest "
                      "(source.md5) but not verified", stacklevel=2)
    archive = download(url, root / "raw" / ARCHIVE, md5=md5, progress=progress_logger(log, url))
    extracted = extract(archive, root / "raw" / "extracted")
    base = extracted / layout["folder"]
    pairs = pair_files(base / layout["input"], base / layout["target"], pairing)
    source = {"kind": "download", "url": url, "archive": ARCHIVE, "md5": file_digest(archive, "md5"),
              "md5_verified": md5 is not None, "layout": layout, "pairing": pairing,
              "resampling": "scipy.signal.resample_poly, then mixed to mono"}
    params = {"preparer": "fxlib.data.amp.download_paper_data/1", "md5": source["md5"], "layout": layout,
              "pairing": pairing, "sample_rate": sample_rate, "seed": seed, "length_tolerance": length_tolerance}
    writer = PairWriter(root, Manifest(TASK, source, sample_rate, 1, seed, command, params))
    for (inp_path, tgt_path), split in zip(pairs, split_names(len(pairs), seed)):
        pair_id = _pair_id(inp_path.relative_to(base / layout["input"]))
        if writer.reuse(pair_id):
            continue
        inp, _ = load_audio(inp_path, sample_rate, channels=1)
        tgt, _ = load_audio(tgt_path, sample_rate, channels=1)
        inp, tgt, cut = match_lengths(inp, tgt, sample_rate, length_tolerance, f"{inp_path} / {tgt_path}")
        inp_out, tgt_out = writer.paths(pair_id, split)
        save_audio(inp_out, inp, sample_rate)
        save_audio(tgt_out, tgt, sample_rate)
        info = {"input_file": inp_path.relative_to(extracted).as_posix(),
                "target_file": tgt_path.relative_to(extracted).as_posix(), "trimmed_samples": cut}
        writer.add(writer.pair(pair_id, split, inp.shape[1] / sample_rate, info))
        log(f"{split:5} {pair_id}")
    path = writer.finish()
    log(f"{root}: {len(pairs)} pairs from {url}")
    return path


def pair_files(input_dir: Path, target_dir: Path, pairing: str = "sorted") -> list[tuple[Path, Path]]:
    """Pair the WAV files under two folders (searched recursively).

    Args:
        input_dir, target_dir: the folders of inputs and of targets.
        pairing: ``"sorted"``: sort each list by relative path and pair by position (the two
            folders must hold as many files); ``"name"``: pair equal relative paths (every file
            must have its partner).

    Returns:
        ``[(input, target), ...]`` in the sorted order of the inputs.
    """
    found = []
    for folder in (input_dir, target_dir):
        if not folder.is_dir():
            parent = folder.parent
            while not parent.is_dir():
                parent = parent.parent
            raise DataNotFoundError(f"expected folder {folder} in the extracted archive; {parent} holds "
                                    f"{sorted(p.name for p in parent.iterdir())} (pass another layout if the "
                                    "archive is laid out differently)")
        files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
        if not files:
            raise DataError(f"{folder} holds no WAV files")
        found.append(files)
    inputs, targets = found
    if pairing == "sorted":
        if len(inputs) != len(targets):
            raise DataError(f"{input_dir} holds {len(inputs)} WAV files but {target_dir} holds {len(targets)}: "
                            "cannot pair them by sorted position")
        return [(input_dir / a, target_dir / b) for a, b in zip(inputs, targets)]
    if pairing == "name":
        missing = sorted(set(inputs) ^ set(targets))
        if missing:
            raise DataError(f"pairing by name: {len(missing)} file(s) have no partner, e.g. {missing[0]}")
        return [(input_dir / a, target_dir / a) for a in inputs]
    raise DataError(f"unknown pairing {pairing!r}; choose sorted or name")


def _pair_id(relative: Path) -> str:
    """A file-name-safe pair id from an input file's relative path."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", relative.with_suffix("").as_posix().replace("/", "__"))


def main(argv: list[str] | None, root: str, seconds: float) -> int:
    """``fxlib data amp {download,build} ...``: ``root`` and ``seconds`` are the defaults of
    ``--root`` and ``--seconds``; returns the exit status (errors are raised)."""
    parser, download_p, build_p = task_parser(
        TASK, __doc__, "download and pair the paper's recordings (Zenodo 3562442)",
        "build the offline stand-in: FluidSynth riffs through a tube preamp", root, seconds)
    download_p.add_argument("--url", default=URL, help="archive URL (default: Zenodo)")
    download_p.add_argument("--md5", default=None, help="expected MD5 of the archive (default: computed and recorded)")
    download_p.add_argument("--pairing", choices=["sorted", "name"], default="sorted")
    build_p.add_argument("--file-seconds", type=float, default=10.0, help="seconds per pair (default 10)")
    build_p.add_argument("--preamp", choices=["auto", *PREAMPS], default="auto", help="target preamp backend")
    args = parser.parse_args(argv)
    command = command_line(TASK, argv)
    if args.action == "download":
        download_paper_data(args.root, args.url, args.md5, args.seed, pairing=args.pairing, command=command)
    else:
        build(args.root, args.seconds, args.file_seconds, args.seed, args.preamp, command=command)
    return 0
