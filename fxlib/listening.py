"""A MUSHRA-style listening test (ITU-R BS.1534-3) in JupyterLab: stimuli, sessions, widget, analysis.

Four parts, each usable alone:

* **Stimuli** (:func:`export_stimuli`, :func:`demo_stimuli`): per trial an excerpt of a test
  file as the open reference (the target), the same excerpt as the *hidden reference*, a *low
  anchor* (the reference low-passed at 3.5 kHz) and the systems under test, as WAV files and a
  manifest ``stimuli.json``.
* **Session** (:class:`ListeningSession`): one listener's ratings, trials and stimuli in a
  seeded random order, saved after each trial to ``<ratings_dir>/<listener>.json`` and resumed
  at the first unrated trial.
* **Widget** (:class:`MushraWidget`): ipywidgets players and 0-100 sliders over a session.
* **Analysis** (:func:`load_ratings`, :func:`post_screen`, :func:`wilcoxon_tests`,
  :func:`box_plot`, :func:`simulate_ratings`).

Stimuli folder::

    <stimuli_dir>/stimuli.json                the manifest, written last (see below)
    <stimuli_dir>/<trial>/open-reference.wav  the reference the listener may always play
    <stimuli_dir>/<trial>/<system>.wav        one file per stimulus; ``reference.wav`` is the
                                              hidden reference, ``anchor.wav`` the low anchor
    <stimuli_dir>/<trial>/trial.json          the trial's record (lets an interrupted export resume)

``stimuli.json``::

    {"format": 1, "kind": "fxlib-mushra-stimuli", "sample_rate": 22050, "channels": 1,
     "hidden_reference": "reference", "anchor": "anchor", "loudness": "<the rule below>",
     "source": {...what the audio came from...}, "params": {...the export's settings...},
     "fingerprint": "<sha256 of the trials' systems and file digests>",
     "trials": [{"id": "trial00", "reference": "trial00/open-reference.wav", "info": {...},
                 "stimuli": [{"system": "reference", "file": "trial00/reference.wav",
                              "gain_db": 0.0, "sha256": "..."}, ...]}, ...]}

Within a trial a stimulus is identified by its system name. Paths are relative to the
stimuli folder; ``info`` says where the excerpt comes from (pair id, start and length in s).

Loudness rule (every trial): each stimulus is scaled so that its integrated loudness
(ITU-R BS.1770-4, :func:`fxlib.metrics.loudness_lufs`) equals the reference's; a silent
stimulus (below the -70 LUFS gate) keeps its level. Then, if any stimulus would peak above
:data:`PEAK_CEILING_DBTP` (true peak, :func:`fxlib.metrics.true_peak_dbtp`), the whole trial
(the references included) is attenuated by the same amount, so levels stay equal and nothing
clips. Each stimulus's total gain is recorded as ``gain_db``. Every stimulus also gets
:data:`FADE_SECONDS` raised-cosine fades at both ends, so cuts do not click.

Low anchor: BS.1534-3 asks for the reference low-passed at 3.5 kHz (and optionally a mid
anchor at 7 kHz). At the paper's 22.05 kHz the reference holds content up to 11.025 kHz, so
the 3.5 kHz cut-off is kept as it is (it removes the band from 3.5 to 11 kHz rather than to
20 kHz, a milder but still clearly audible degradation); the filter is an 8th-order
Butterworth low-pass applied forward and backward (zero phase, so the anchor stays aligned
with the reference; 16th-order magnitude, -6 dB at 3.5 kHz). Sample rates of 7 kHz or less
are refused. No mid anchor is made.

Ratings file ``<ratings_dir>/<listener>.json``::

    {"format": 1, "kind": "fxlib-mushra-ratings", "listener": "ann", "seed": 0, "simulated": false,
     "fingerprint": "<the stimuli set's>", "stimuli_dir": "...",
     "order": [{"trial": "trial02", "stimuli": ["anchor", "deepafx", ...]}, ...],
     "ratings": {"trial02": {"ratings": {"anchor": 12.0, ...}, "labels": {"A": "anchor", ...},
                             "rated_at": "2025-...Z"}, ...},
     "created": "...", "updated": "..."}

Ratings are scores from 0 to 100 on the MUSHRA scale (0-20 bad, 20-40 poor, 40-60 fair,
60-80 good, 80-100 excellent).
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.signal
from scipy.io import wavfile

from .atomic import write_json
from .data.audio import DataError, DataNotFoundError, load_audio, save_audio
from .data.download import file_digest
from .errors import FxError, SpecError
from .metrics import loudness_lufs, true_peak_dbtp

if TYPE_CHECKING:  # heavy or optional imports, loaded where used
    import pandas
    from matplotlib.figure import Figure

FORMAT = 1
STIMULI_KIND = "fxlib-mushra-stimuli"
RATINGS_KIND = "fxlib-mushra-ratings"
MANIFEST = "stimuli.json"
TRIAL_RECORD = "trial.json"
OPEN_REFERENCE = "open-reference.wav"
HIDDEN_REFERENCE = "reference"
"""System name of the hidden reference (the reference itself, rated blind)."""
ANCHOR = "anchor"
"""System name of the low anchor (the reference low-passed at :data:`LOW_ANCHOR_HZ`)."""
LOW_ANCHOR_HZ = 3500.0
ANCHOR_ORDER = 8  # Butterworth order, applied twice (forward and backward)
PEAK_CEILING_DBTP = -1.0
FADE_SECONDS = 0.02
MIN_REFERENCE_LUFS = -50.0  # excerpts quieter than this are drawn again
MAX_DRAWS = 50  # excerpt draws per trial before giving up on finding a non-silent one
SCALE = (("excellent", 80, 100), ("good", 60, 80), ("fair", 40, 60), ("poor", 20, 40), ("bad", 0, 20))
"""The MUSHRA continuous quality scale: ``(category, low, high)`` scores."""
LABEL_PX, PLAYER_PX, SLIDER_PX = 90, 300, 560  # widths of the widget's columns, in CSS pixels
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SIMULATED_PREFIX = "sim-"
CARELESS = "sim-careless"


class RatingError(FxError, ValueError):
    """A rating that is missing, duplicated, not a number or outside 0-100 (names the stimulus and trial)."""


class StimuliMismatchError(DataError):
    """A ratings file made on another stimuli set than the one given."""


# ---------------------------------------------------------------------------------- stimuli

def low_anchor(reference: np.ndarray, sample_rate: int, cutoff_hz: float = LOW_ANCHOR_HZ) -> np.ndarray:
    """The BS.1534 low anchor: ``reference`` low-passed at ``cutoff_hz`` (zero-phase Butterworth).

    Args:
        reference: float ``(C, T)``.
        sample_rate: in Hz; must exceed twice ``cutoff_hz``.
        cutoff_hz: the -6 dB frequency of the forward-backward filter, in Hz.

    Returns:
        float32 ``(C, T)``, time-aligned with ``reference``.

    Raises:
        SpecError: the cut-off is not below the Nyquist frequency.
    """
    if not 0 < cutoff_hz < sample_rate / 2:
        raise SpecError(f"low anchor: cut-off {cutoff_hz:g} Hz must lie below the Nyquist frequency "
                        f"{sample_rate / 2:g} Hz of {sample_rate} Hz audio")
    # sosfiltfilt squares the magnitude: -3 dB of one pass at the cut-off is -6 dB in all.
    sos = scipy.signal.butter(ANCHOR_ORDER, cutoff_hz, "lowpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, np.asarray(reference, np.float64), axis=-1).astype(np.float32)


def _fade(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(C, T)`` with raised-cosine fades of :data:`FADE_SECONDS` at both ends."""
    n = min(int(FADE_SECONDS * sample_rate), audio.shape[1] // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    out = np.array(audio, np.float32)
    out[:, :n] *= ramp
    out[:, out.shape[1] - n:] *= ramp[::-1]
    return out


def loudness_gains(stimuli: Mapping[str, np.ndarray], reference: str, sample_rate: int) -> dict[str, float]:
    """Gains in dB that apply the module's loudness rule to one trial (see the module docstring).

    Args:
        stimuli: ``{system: (C, T)}``, every one at least 0.4 s long.
        reference: the key whose loudness the others are matched to.
        sample_rate: in Hz.

    Returns:
        ``{system: gain in dB}``.
    """
    target = loudness_lufs(stimuli[reference], sample_rate)
    if not math.isfinite(target):
        raise DataError(f"the reference {reference!r} is silent; cannot match loudness to it")
    gains = {}
    for name, audio in stimuli.items():
        level = loudness_lufs(audio, sample_rate)
        gains[name] = target - level if math.isfinite(level) else 0.0
    peak = max(true_peak_dbtp(audio * 10 ** (gains[name] / 20), sample_rate) for name, audio in stimuli.items())
    headroom = min(0.0, PEAK_CEILING_DBTP - peak)
    return {name: gain + headroom for name, gain in gains.items()}


def read_stimuli(stimuli_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``<stimuli_dir>/stimuli.json`` (see the module docstring).

    Raises:
        DataNotFoundError: no manifest (make the set with :func:`export_stimuli` or :func:`demo_stimuli`).
        DataError: not a stimuli manifest, or a listed file is missing.
    """
    root = Path(stimuli_dir)
    path = root / MANIFEST
    if not path.is_file():
        raise DataNotFoundError(f"{root} holds no {MANIFEST}: make a stimuli set there with "
                                "fxlib.listening.export_stimuli (trained runs) or demo_stimuli")
    manifest = _read_kit_file(path, STIMULI_KIND, "stimuli")
    for trial in manifest["trials"]:
        for rel in [trial["reference"]] + [s["file"] for s in trial["stimuli"]]:
            if not (root / rel).is_file():
                raise DataNotFoundError(f"{path}: trial {trial['id']!r} lists {rel}, which does not exist")
    return manifest


def _fingerprint(trials: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the trials' ids, systems and file digests: the identity of a stimuli set."""
    key = [[t["id"], [[s["system"], s["sha256"]] for s in t["stimuli"]]] for t in trials]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _write_set(out_dir: Path, params: Mapping[str, Any], source: Mapping[str, Any], sample_rate: int,
               channels: int, trials: Sequence[Mapping[str, Any]],
               render: Callable[[Mapping[str, Any]], tuple[np.ndarray, dict[str, np.ndarray]]]) -> dict[str, Any]:
    """Write a stimuli set trial by trial, resumably; ``stimuli.json`` comes last.

    Args:
        out_dir: the stimuli folder.
        params: the settings that determine the files; a folder made with others is refused.
        source: what the audio came from (recorded in the manifest).
        sample_rate: in Hz; channels: per file.
        trials: ``[{"id": str, "info": dict}, ...]``.
        render: ``trial -> (reference (C, T), {system: (C, T)})`` for trials not yet written.

    Returns:
        the manifest.
    """
    params = json.loads(json.dumps(dict(params)))
    previous = out_dir / MANIFEST
    if previous.is_file():
        done = read_stimuli(out_dir)
        if done["params"] != params:
            raise DataError(f"{previous} was made with other settings ({done['params']}) than these ({params}); "
                            f"use another folder or delete {out_dir}")
        return done
    records = []
    for trial in trials:
        folder = out_dir / trial["id"]
        record_path = folder / TRIAL_RECORD
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            if record["params"] == params and all(
                    (out_dir / s["file"]).is_file() and file_digest(out_dir / s["file"]) == s["sha256"]
                    for s in record["stimuli"]):
                records.append(record["trial"])
                continue
        reference, systems = render(trial)
        clash = {HIDDEN_REFERENCE, ANCHOR, Path(OPEN_REFERENCE).stem} & set(systems)
        if clash:
            raise SpecError(f"system names {sorted(clash)} are reserved for the references and the anchor")
        for name in systems:
            if not SAFE_NAME.match(name):
                raise SpecError(f"system name {name!r} is not usable as a file name (letters, digits, '.', '_', '-')")
        stimuli = {HIDDEN_REFERENCE: reference, **systems, ANCHOR: low_anchor(reference, sample_rate)}
        for name, audio in stimuli.items():
            if audio.shape != reference.shape:
                raise DataError(f"trial {trial['id']!r}: system {name!r} gave shape {audio.shape}, "
                                f"the reference is {reference.shape}")
        stimuli = {name: _fade(audio, sample_rate) for name, audio in stimuli.items()}
        gains = loudness_gains(stimuli, HIDDEN_REFERENCE, sample_rate)
        entries = []
        for name, audio in stimuli.items():
            path = save_audio(folder / f"{name}.wav", audio * np.float32(10 ** (gains[name] / 20)), sample_rate)
            entries.append({"system": name, "file": path.relative_to(out_dir).as_posix(),
                            "gain_db": round(gains[name], 3), "sha256": file_digest(path)})
        opened = save_audio(folder / OPEN_REFERENCE, stimuli[HIDDEN_REFERENCE] *
                            np.float32(10 ** (gains[HIDDEN_REFERENCE] / 20)), sample_rate)
        entry = {"id": trial["id"], "reference": opened.relative_to(out_dir).as_posix(),
                 "info": trial["info"], "stimuli": entries}
        write_json(record_path, {"params": params, "trial": entry,
                                 "stimuli": entries + [{"file": entry["reference"], "sha256": file_digest(opened)}]})
        records.append(entry)
    manifest = {"format": FORMAT, "kind": STIMULI_KIND, "sample_rate": int(sample_rate), "channels": int(channels),
                "hidden_reference": HIDDEN_REFERENCE, "anchor": ANCHOR,
                "loudness": (f"every stimulus matched to the reference's BS.1770 integrated loudness, then the "
                             f"trial attenuated together so no true peak exceeds {PEAK_CEILING_DBTP:g} dBTP"),
                "source": dict(source), "params": params, "fingerprint": _fingerprint(records), "trials": records}
    write_json(previous, manifest)
    return manifest


def _draw_excerpts(targets: Sequence[np.ndarray], ids: Sequence[str], n_trials: int, length: int,
                   sample_rate: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n_trials`` seeded ``(file index, start sample)`` excerpts of ``length`` samples, not silent.

    Files are visited in a seeded random order (cycling when there are fewer files than trials);
    a start whose reference is quieter than :data:`MIN_REFERENCE_LUFS` is drawn again.
    """
    eligible = [i for i, t in enumerate(targets) if t.shape[1] >= length]
    if not eligible:
        longest = max(t.shape[1] for t in targets) / sample_rate
        raise DataError(f"no test file is {length / sample_rate:g} s long (the longest is {longest:.2f} s); "
                        "ask for shorter excerpts")
    order = [eligible[i] for i in rng.permutation(len(eligible))]
    picks = []
    for k in range(n_trials):
        i = order[k % len(order)]
        for _ in range(MAX_DRAWS):
            start = int(rng.integers(0, targets[i].shape[1] - length + 1))
            if loudness_lufs(targets[i][:, start:start + length], sample_rate) >= MIN_REFERENCE_LUFS:
                picks.append((i, start))
                break
        else:
            raise DataError(f"test file {ids[i]!r}: no excerpt louder than {MIN_REFERENCE_LUFS:g} LUFS "
                            f"found in {MAX_DRAWS} draws")
    return picks


def export_stimuli(out_dir: str | os.PathLike, runs: Sequence[str | os.PathLike] = (),
                   data_root: str | os.PathLike | None = None, trials: int = 8, seconds: float = 4.0,
                   seed: int = 0, split: str = "test", preroll: float = 1.0) -> dict[str, Any]:
    """Export listening-test stimuli from trained runs and/or a data set.

    Systems per trial: ``input`` (the unprocessed excerpt); per run (see
    :func:`fxlib.evaluate.standard_systems`) ``chain-default``, ``chain-best-fixed`` (when the run
    has ``fixed.json``) and ``deepafx``, named ``<system>-<run folder name>`` when several runs are
    given; the task's own baselines (:attr:`fxlib.tasks.Task.baselines`); plus the hidden
    reference and the low anchor. The excerpts are seeded draws from ``split``; each system
    processes the excerpt with up to ``preroll`` seconds of the file before it (to settle the
    effects' state and the encoder's context), which is then cut off. Finished trials are kept
    when the export runs again with the same settings.

    Args:
        out_dir: the stimuli folder (created).
        runs: training run folders, each holding ``best.pt`` (and optionally ``fixed.json``).
        data_root: the paired data set; default: the runs' own (``state["run"]["data_root"]``,
            which must agree), needed when no run is given.
        trials: number of trials (excerpts).
        seconds: excerpt length in seconds (at least 0.4 s, the loudness meter's block).
        seed: seeds the choice of files and start times.
        split: the data set split the excerpts come from.
        preroll: seconds of history given to the systems before each excerpt.

    Returns:
        the manifest (also written as ``<out_dir>/stimuli.json``).

    Raises:
        DataNotFoundError: a run without ``best.pt`` or a missing data set.
        DataError: runs on different data sets or sample rates, no file long enough, a folder
            made with other settings.
        SpecError: no run and no data set, or bad counts and lengths.
    """
    import torch

    from .data.paired import PairedDataset
    from .evaluate import FixedSetting, standard_systems
    from .model import DeepAFx
    from .tasks import TASKS, get_task

    if not runs and data_root is None:
        raise SpecError("export_stimuli needs trained runs, a data set root, or both")
    if trials < 1 or seconds < 0.4 or preroll < 0:
        raise SpecError(f"need trials >= 1, seconds >= 0.4 and preroll >= 0; got {trials}, {seconds}, {preroll}")
    systems_of_runs: list[tuple[str, dict]] = []
    roots, formats, tasks, digests = set(), set(), set(), []
    for run in map(Path, runs):
        best = run / "best.pt"
        if not best.is_file():
            raise DataNotFoundError(f"{run} holds no trained model (best.pt); train first with `fxlib train`")
        state = torch.load(best, map_location="cpu", weights_only=False)
        model = DeepAFx.from_checkpoint(best)
        fixed = FixedSetting.load(run)
        roots.add(str(Path(state["run"]["data_root"]).resolve()))
        formats.add((int(model.sample_rate), int(model.channels)))
        tasks.add(state["run"]["task"])
        digests.append(file_digest(best))
        systems_of_runs.append((run.name, {k: v for k, v in standard_systems(model, fixed).items() if k != "input"}))
    if len(formats) > 1:
        raise DataError(f"the runs work at different sample rates or channel counts {sorted(formats)}")
    if data_root is None and len(roots) > 1:
        raise DataError(f"the runs were trained on different data sets {sorted(roots)}; pass data_root")
    root = Path(data_root) if data_root is not None else Path(roots.pop())
    if data_root is None and not root.is_dir():
        raise DataNotFoundError(f"the runs were trained on {root}, which does not exist here (a relative data "
                                "root is relative to the folder training ran in); pass data_root")
    rate, channels = formats.pop() if formats else (None, None)
    dataset = PairedDataset(root, split, rate, channels)
    rate, channels = dataset.sample_rate, dataset.inputs[0].shape[0]
    task = tasks.pop() if len(tasks) == 1 else dataset.manifest.task
    systems: dict[str, Callable[[np.ndarray], np.ndarray]] = {"input": lambda x: x}
    for run_name, run_systems in systems_of_runs:
        for name, system in run_systems.items():
            systems[name if len(systems_of_runs) == 1 else f"{name}-{run_name}"] = system
    if task in TASKS and get_task(task).baselines is not None:
        systems.update(get_task(task).baselines(root, rate, channels))

    length, history = round(seconds * rate), round(preroll * rate)
    picks = _draw_excerpts(dataset.targets, dataset.ids, trials, length, rate, np.random.default_rng(seed))
    where = {f"trial{k:02d}": pick for k, pick in enumerate(picks)}
    specs = [{"id": trial_id, "info": {"pair": dataset.ids[i], "start_s": start / rate,
                                       "seconds": length / rate}} for trial_id, (i, start) in where.items()]

    def render(trial: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        i, start = where[trial["id"]]
        lead = min(history, start)
        x = dataset.inputs[i][:, start - lead:start + length]
        return (dataset.targets[i][:, start:start + length],
                {name: np.asarray(system(x))[:, lead:] for name, system in systems.items()})

    params = {"runs": [str(Path(r).resolve()) for r in runs], "checkpoints": digests, "data_root": str(root.resolve()),
              "split": split, "trials": trials, "seconds": seconds, "seed": seed, "preroll": preroll}
    source = {"task": task, "data": dataset.manifest.source, "systems": list(systems)}
    return _write_set(Path(out_dir), params, source, rate, channels, specs, render)


def _demo_phrase(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """A seeded plucked-string-like phrase: decaying harmonic notes on a pentatonic scale, ``(1, T)``."""
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
    return (out / (np.max(np.abs(out)) + 1e-12) * 0.5)[None].astype(np.float32)


def demo_stimuli(out_dir: str | os.PathLike, seed: int = 0, trials: int = 4, seconds: float = 3.0) -> dict[str, Any]:
    """A small self-contained stimuli set that needs no trained model, for demos and tests.

    Each trial is a seeded synthetic phrase (:func:`_demo_phrase`, 22.05 kHz mono). The
    reference is that phrase through the ``amp-builtin`` chain (pedalboard built-ins) at a
    seeded random setting ``u_ref``; the systems are ``input`` (the dry phrase),
    ``chain-default`` (the chain at its defaults) and ``chain-halfway`` (at the midpoint of the
    defaults and ``u_ref``); plus the hidden reference and the low anchor. Written like
    :func:`export_stimuli` (same layout, loudness rule and resumption).

    Args:
        out_dir: the stimuli folder (created).
        seed: seeds the phrases and the reference setting.
        trials: number of trials; seconds: length of each, in seconds (at least 0.4).

    Returns:
        the manifest.
    """
    from .presets import chain_spec, load_chain

    if trials < 1 or seconds < 0.4:
        raise SpecError(f"need trials >= 1 and seconds >= 0.4; got {trials}, {seconds}")
    chain_name = "amp-builtin"
    rate = int(chain_spec(chain_name)["sample_rate"])
    rng = np.random.default_rng(seed)
    with load_chain(chain_name) as chain:
        default = chain.default_unit()
        settings = [rng.uniform(0.15, 0.85, chain.num_params) for _ in range(trials)]
    specs = [{"id": f"trial{k:02d}", "info": {"phrase_seed": [seed, k], "seconds": seconds,
                                              "reference_unit": np.round(u, 4).tolist()}}
             for k, u in enumerate(settings)]

    def render(trial: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        dry = _demo_phrase(np.random.default_rng(trial["info"]["phrase_seed"]), seconds, rate)
        u_ref = np.array(trial["info"]["reference_unit"])
        with load_chain(chain_name) as fx:
            return fx.process(dry, u_ref), {"input": dry, "chain-default": fx.process(dry, default),
                                            "chain-halfway": fx.process(dry, (default + u_ref) / 2)}

    params = {"demo": chain_name, "seed": seed, "trials": trials, "seconds": seconds}
    source = {"demo": f"synthetic phrases through {chain_name}; reference = chain at a seeded setting"}
    return _write_set(Path(out_dir), params, source, rate, 1, specs, render)


# ---------------------------------------------------------------------------------- sessions

@dataclass(frozen=True)
class Stimulus:
    """One stimulus as presented: blind ``label`` ("A", "B", ...), its WAV ``path``, and its
    ``system`` (for analysis and simulation; never shown to the listener)."""

    label: str
    path: Path
    system: str


@dataclass(frozen=True)
class Trial:
    """The trial a session is at: ``number`` (1-based) of ``total``, the open ``reference`` WAV
    and the ``stimuli`` in presentation order."""

    id: str
    number: int
    total: int
    reference: Path
    stimuli: tuple[Stimulus, ...]

    @property
    def labels(self) -> list[str]:
        """The blind labels in presentation order."""
        return [s.label for s in self.stimuli]


def _labels(n: int) -> list[str]:
    """Blind labels "A", "B", ... (then "AA", "AB", ... beyond 26)."""
    letters = [chr(ord("A") + i) for i in range(26)]
    return [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(n)]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_rating(value: Any, label: str, trial: str) -> float:
    """``value`` as a float score, or :class:`RatingError` naming stimulus ``label`` of ``trial``."""
    if value is None:
        raise RatingError(f"trial {trial!r}: stimulus {label} has no rating; rate every stimulus from 0 to 100")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise RatingError(f"trial {trial!r}: the rating of stimulus {label} must be a number from 0 to 100, "
                          f"got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise RatingError(f"trial {trial!r}: the rating of stimulus {label} is {value!r}, outside 0 to 100")
    return float(value)


class ListeningSession:
    """One listener's MUSHRA session over a stimuli set, saved after every trial and resumable.

    The trial order and each trial's stimulus order (the hidden reference and the anchor among
    the systems, under blind labels "A", "B", ... in presentation order) are drawn from
    ``numpy.random.default_rng([seed, crc32(listener)])``, so they are reproducible and differ
    between listeners. Both are stored in ``<ratings_dir>/<listener>.json`` (see the module
    docstring) when the session starts, and the file is rewritten atomically after each rated
    trial. A later session for the same listener reads the file and continues at the first
    unrated trial in the stored order; the stored seed and order win over ``seed``.

    Args:
        stimuli_dir: a stimuli folder (:func:`export_stimuli`, :func:`demo_stimuli`).
        listener: the listener id, also the file name: letters, digits, ``.``, ``_``, ``-``.
        ratings_dir: where ratings files go (created).
        seed: seeds a new listener's orders.
        simulated: marks the ratings as simulated (:func:`simulate_ratings`).

    Raises:
        SpecError: a listener id unusable as a file name.
        StimuliMismatchError: the listener's ratings file was made on another stimuli set.
        DataError: the ratings file is not a ratings file or belongs to another listener.
    """

    def __init__(self, stimuli_dir: str | os.PathLike, listener: str, ratings_dir: str | os.PathLike,
                 seed: int = 0, simulated: bool = False) -> None:
        if not isinstance(listener, str) or not SAFE_NAME.match(listener):
            raise SpecError(f"listener id {listener!r} must be 1-64 letters, digits, '.', '_' or '-' "
                            "(it names the ratings file)")
        self.stimuli_dir = Path(stimuli_dir)
        self.manifest = read_stimuli(self.stimuli_dir)
        self.listener = listener
        self.path = Path(ratings_dir) / f"{listener}.json"
        self._trials = {t["id"]: t for t in self.manifest["trials"]}
        if self.path.is_file():
            self.state = _read_ratings_file(self.path)
            if self.state["listener"] != listener:
                raise DataError(f"{self.path} holds the ratings of {self.state['listener']!r}, not {listener!r}")
            if self.state["fingerprint"] != self.manifest["fingerprint"]:
                raise StimuliMismatchError(
                    f"{self.path} was rated on another stimuli set (fingerprint {self.state['fingerprint'][:12]}...) "
                    f"than {self.stimuli_dir} ({self.manifest['fingerprint'][:12]}...); use another ratings folder")
        else:
            rng = np.random.default_rng([int(seed), zlib.crc32(listener.encode())])
            trials = self.manifest["trials"]
            order = [{"trial": trials[i]["id"],
                      "stimuli": [trials[i]["stimuli"][j]["system"] for j in rng.permutation(len(trials[i]["stimuli"]))]}
                     for i in rng.permutation(len(trials))]
            self.state = {"format": FORMAT, "kind": RATINGS_KIND, "listener": listener, "seed": int(seed),
                          "simulated": bool(simulated), "fingerprint": self.manifest["fingerprint"],
                          "stimuli_dir": str(self.stimuli_dir), "order": order, "ratings": {},
                          "created": _now(), "updated": _now()}
            write_json(self.path, self.state)

    @property
    def total(self) -> int:
        """Number of trials."""
        return len(self.state["order"])

    @property
    def rated(self) -> int:
        """Number of trials rated so far."""
        return len(self.state["ratings"])

    @property
    def done(self) -> bool:
        """Whether every trial is rated."""
        return self.rated == self.total

    @property
    def current(self) -> Trial | None:
        """The first unrated trial in this listener's order, or ``None`` when all are rated."""
        for number, item in enumerate(self.state["order"], 1):
            if item["trial"] not in self.state["ratings"]:
                trial = self._trials[item["trial"]]
                files = {s["system"]: self.stimuli_dir / s["file"] for s in trial["stimuli"]}
                stimuli = tuple(Stimulus(label, files[system], system)
                                for label, system in zip(_labels(len(item["stimuli"])), item["stimuli"]))
                return Trial(trial["id"], number, self.total, self.stimuli_dir / trial["reference"], stimuli)
        return None

    def rate(self, ratings: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Rate every stimulus of the current trial, save atomically and move to the next trial.

        Args:
            ratings: ``{label: score}`` or ``[(label, score), ...]``, one score from 0 to 100
                per stimulus label of :attr:`current`.

        Raises:
            RatingError: the session is finished, or a rating is missing, given twice, for an
                unknown label, not a number, or outside 0-100 (nothing is saved).
        """
        trial = self.current
        if trial is None:
            raise RatingError(f"{self.listener}: every trial is rated already; nothing to rate")
        pairs = list(ratings.items()) if isinstance(ratings, Mapping) else list(ratings)
        seen: dict[str, float] = {}
        for label, value in pairs:
            if label in seen:
                raise RatingError(f"trial {trial.id!r}: stimulus {label} is rated twice")
            if label not in trial.labels:
                raise RatingError(f"trial {trial.id!r}: there is no stimulus {label!r}; stimuli are "
                                  f"{', '.join(trial.labels)}")
            seen[label] = check_rating(value, label, trial.id)
        for label in trial.labels:
            if label not in seen:
                check_rating(None, label, trial.id)
        self.state["ratings"][trial.id] = {"ratings": {s.system: seen[s.label] for s in trial.stimuli},
                                           "labels": {s.label: s.system for s in trial.stimuli},
                                           "rated_at": _now()}
        self.state["updated"] = _now()
        write_json(self.path, self.state)


def _read_ratings_file(path: Path) -> dict[str, Any]:
    """A ratings file's content, checked for its kind and format."""
    return _read_kit_file(path, RATINGS_KIND, "ratings")


def _read_kit_file(path: Path, kind: str, what: str) -> dict[str, Any]:
    """A JSON file of the kit (``what``: "stimuli" or "ratings"), checked for its ``kind`` and format."""
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(content, dict) or content.get("kind") != kind:
        raise DataError(f"{path}: not a listening-test {what} file (kind {kind!r})")
    if content.get("format") != FORMAT:
        raise DataError(f"{path}: {what} format {content.get('format')!r}, this fxlib reads format {FORMAT}")
    return content


# ---------------------------------------------------------------------------------- widget

def wav_bytes(path: str | os.PathLike) -> bytes:
    """A WAV file as 16-bit PCM WAV bytes, which every browser plays (stimuli are stored as float)."""
    audio, rate = load_audio(path)
    pcm = np.clip(np.round(audio.T * 32767.0), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, pcm[:, 0] if pcm.shape[1] == 1 else pcm)
    return buffer.getvalue()


class MushraWidget:
    """A MUSHRA page for a :class:`ListeningSession`, built from ipywidgets.

    One row per stimulus (blind label, a play control, a 0-100 slider under the MUSHRA scale
    bad/poor/fair/good/excellent), the open reference's player on top, and a *Next* button
    that validates, saves the trial and shows the next. A slider the listener has not moved
    counts as unrated (to rate 0, move it and back). Display it as the last expression of a
    cell; :meth:`set_rating` and :meth:`submit` drive it without a browser.

    Attributes:
        box: the top-level ``ipywidgets.VBox``; sliders: ``{label: IntSlider}`` of the current
        trial; status: an ``HTML`` line showing errors and progress.
    """

    def __init__(self, session: ListeningSession) -> None:
        import ipywidgets

        self.session = session
        self._w = ipywidgets
        self.title = ipywidgets.HTML()
        self.status = ipywidgets.HTML()
        self.rows = ipywidgets.VBox()
        self.next_button = ipywidgets.Button(description="Next", button_style="primary",
                                             tooltip="save these ratings and go to the next trial")
        self.next_button.on_click(lambda _: self.submit())
        self.box = ipywidgets.VBox([self.title, self.rows, self.next_button, self.status])
        self.sliders: dict[str, Any] = {}
        self._touched: set[str] = set()
        self._show()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)

    def _scale_header(self) -> Any:
        w = self._w
        cells = [w.HTML(f"<center>{name}</center>", layout=w.Layout(width="20%")) for name, _, _ in reversed(SCALE)]
        return w.HBox([w.HTML("", layout=w.Layout(width=f"{LABEL_PX + PLAYER_PX}px")),
                       w.HBox(cells, layout=w.Layout(width=f"{SLIDER_PX}px"))])

    def _player(self, path: Path) -> Any:
        return self._w.Audio(value=wav_bytes(path), format="wav", autoplay=False, loop=False,
                             layout=self._w.Layout(width=f"{PLAYER_PX}px"))

    def _show(self) -> None:
        """Lay out the session's current trial (or the end page)."""
        w = self._w
        trial = self.session.current
        self.sliders, self._touched = {}, set()
        if trial is None:
            self.title.value = (f"<h3>All {self.session.total} trials are rated: thank you.</h3>"
                                f"Saved in <code>{self.session.path}</code>.")
            self.rows.children = ()
            self.next_button.disabled = True
            return
        self.title.value = (f"<h3>Trial {trial.number} of {trial.total}</h3>Play the reference and every "
                            "stimulus, then rate how each compares with the reference (one of them is the "
                            "reference itself).")
        label = w.Layout(width=f"{LABEL_PX}px")
        rows = [self._scale_header(), w.HBox([w.HTML("<b>Reference</b>", layout=label), self._player(trial.reference)])]
        for stimulus in trial.stimuli:
            slider = w.IntSlider(value=0, min=0, max=100, step=1, layout=w.Layout(width=f"{SLIDER_PX}px"),
                                 tooltip=f"score of stimulus {stimulus.label}, 0-100")
            slider.observe(lambda change, label=stimulus.label: self._touched.add(label), names="value")
            self.sliders[stimulus.label] = slider
            rows.append(w.HBox([w.HTML(f"<b>{stimulus.label}</b>", layout=label),
                                self._player(stimulus.path), slider]))
        self.rows.children = tuple(rows)
        self.next_button.disabled = False

    def set_rating(self, label: str, value: float) -> None:
        """Set stimulus ``label``'s slider to ``value`` (0-100, rounded), as if the listener moved it.

        Raises:
            RatingError: no such stimulus in this trial, or a value that is not a score.
        """
        trial = self.session.current
        if trial is None or label not in self.sliders:
            raise RatingError(f"no stimulus {label!r} in the current trial"
                              + (f" (stimuli: {', '.join(self.sliders)})" if self.sliders else ""))
        self.sliders[label].value = round(check_rating(value, label, trial.id))
        self._touched.add(label)

    def submit(self) -> bool:
        """What *Next* does: rate the session's trial from the sliders and show the next one.

        Returns:
            ``True`` when saved; ``False`` with the error in :attr:`status` when a rating is
            missing (a slider not moved) or the session is already finished.
        """
        ratings = {label: (s.value if label in self._touched else None) for label, s in self.sliders.items()}
        try:
            self.session.rate(ratings)
        except RatingError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return False
        self.status.value = f"Saved trial {self.session.rated} of {self.session.total}."
        self._show()
        return True


# ---------------------------------------------------------------------------------- analysis

def load_ratings(ratings_dir: str | os.PathLike, stimuli_dir: str | os.PathLike | None = None) -> "pandas.DataFrame":
    """Every rated trial of every ratings file in ``ratings_dir`` as a tidy table.

    Args:
        ratings_dir: the folder of ``<listener>.json`` files (other JSON files are refused).
        stimuli_dir: when given, every file must be rated on this stimuli set.

    Returns:
        a ``pandas.DataFrame`` with one row per rating and the columns ``listener``,
        ``trial``, ``system``, ``rating`` (0-100) and ``simulated`` (bool), sorted.

    Raises:
        DataNotFoundError: the folder does not exist or holds no ratings files.
        StimuliMismatchError: files from different stimuli sets (or not from ``stimuli_dir``'s).
    """
    import pandas

    folder = Path(ratings_dir)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no ratings files (<listener>.json) in {folder}")
    expected = read_stimuli(stimuli_dir)["fingerprint"] if stimuli_dir is not None else None
    rows, fingerprints = [], {}
    for path in files:
        state = _read_ratings_file(path)
        fingerprints[path.name] = state["fingerprint"]
        if expected is not None and state["fingerprint"] != expected:
            raise StimuliMismatchError(f"{path} was rated on another stimuli set than {stimuli_dir}")
        for trial, record in state["ratings"].items():
            rows += [{"listener": state["listener"], "trial": trial, "system": system, "rating": float(score),
                      "simulated": bool(state["simulated"])} for system, score in record["ratings"].items()]
    if len(set(fingerprints.values())) > 1:
        raise StimuliMismatchError(f"{folder} mixes ratings of different stimuli sets: {fingerprints}")
    columns = ["listener", "trial", "system", "rating", "simulated"]
    return pandas.DataFrame(rows, columns=columns).sort_values(columns[:3], ignore_index=True)


@dataclass
class Screening:
    """The result of :func:`post_screen`: listeners ``kept`` and ``excluded`` (``{listener: reason}``)."""

    kept: list[str]
    excluded: dict[str, str] = field(default_factory=dict)

    def apply(self, table: "pandas.DataFrame") -> "pandas.DataFrame":
        """The rows of ``table`` whose listener is kept."""
        return table[table["listener"].isin(self.kept)].reset_index(drop=True)


def post_screen(table: "pandas.DataFrame", reference: str = HIDDEN_REFERENCE, anchor: str | None = None,
                threshold: float = 90.0, max_fraction: float = 0.15) -> Screening:
    """Post-screening of assessors as in ITU-R BS.1534-3 (section 4.1.2).

    An assessor is excluded who rates the hidden reference below ``threshold`` (90) for more
    than ``max_fraction`` (15 %) of the test items (trials) they rated. With ``anchor`` given,
    an assessor is also excluded who rates that anchor above ``threshold`` for more than
    ``max_fraction`` of the items (the standard states this rule for the mid-range anchor; here
    it can be applied to the low anchor).

    Args:
        table: ratings as from :func:`load_ratings`.
        reference: the hidden reference's system name.
        anchor: an anchor's system name, or ``None`` to skip the anchor rule.
        threshold: score, 0-100; max_fraction: in [0, 1].

    Returns:
        a :class:`Screening`, reasons naming the rule and the fraction.

    Raises:
        DataError: the table has no ratings of ``reference`` (or of ``anchor``).
    """
    rules = [(reference, "below", lambda r: r < threshold)]
    if anchor is not None:
        rules.append((anchor, "above", lambda r: r > threshold))
    for system, _, _ in rules:
        if not (table["system"] == system).any():
            raise DataError(f"post-screening: no ratings of system {system!r}; systems are "
                            f"{sorted(table['system'].unique())}")
    screening = Screening(kept=[])
    for listener, rows in table.groupby("listener", sort=True):
        reasons = []
        for system, side, bad in rules:
            scores = rows.loc[rows["system"] == system, "rating"]
            fraction = float(np.mean([bad(r) for r in scores])) if len(scores) else 0.0
            if fraction > max_fraction:
                reasons.append(f"rated {system!r} {side} {threshold:g} in {fraction:.0%} of {len(scores)} trials "
                               f"(more than {max_fraction:.0%})")
        if reasons:
            screening.excluded[listener] = "; ".join(reasons)
        else:
            screening.kept.append(listener)
    return screening


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    The i-th smallest of m p-values (i from 1) is multiplied by m - i + 1, capped at 1, and
    made non-decreasing along the sorted order; rejecting where the adjusted value is below
    alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def wilcoxon_tests(table: "pandas.DataFrame", against: str, systems: Sequence[str] | None = None,
                   alpha: float = 0.05) -> "pandas.DataFrame":
    """Wilcoxon signed-rank tests of each system against ``against``, Holm-corrected.

    Ratings are paired by (listener, trial): for every pair where both systems were rated,
    the difference ``system - against`` enters a two-sided :func:`scipy.stats.wilcoxon` test
    (zero differences dropped, scipy's default ``zero_method="wilcox"``; when every difference
    is zero the systems were rated identically and ``p = 1``). The p-values of all the tests
    are adjusted together with Holm's method (:func:`holm`).

    Args:
        table: ratings as from :func:`load_ratings` (post-screened, usually).
        against: the system every other one is compared with (e.g. ``"deepafx"``).
        systems: the systems to test; default every other system in the table.
        alpha: family-wise significance level for the ``significant`` column.

    Returns:
        a ``pandas.DataFrame``, one row per system: ``system``, ``against``, ``pairs`` (n),
        ``median_difference`` (score points, system minus ``against``), ``statistic``
        (scipy's: the smaller rank sum), ``p_value``, ``p_holm``, ``significant``.

    Raises:
        DataError: ``against`` or a system has no ratings, or no paired ratings.
    """
    import pandas
    from scipy.stats import wilcoxon

    present = sorted(table["system"].unique())
    systems = [s for s in present if s != against] if systems is None else list(systems)
    for system in [against, *systems]:
        if system not in present:
            raise DataError(f"wilcoxon_tests: no ratings of system {system!r}; systems are {present}")
    wide = table.pivot_table(index=["listener", "trial"], columns="system", values="rating", aggfunc="first")
    rows = []
    for system in systems:
        pairs = wide[[system, against]].dropna()
        if pairs.empty:
            raise DataError(f"wilcoxon_tests: {system!r} and {against!r} are never rated in the same trial")
        diff = (pairs[system] - pairs[against]).to_numpy()
        if np.all(diff == 0):
            statistic, p = 0.0, 1.0
        else:
            result = wilcoxon(pairs[system], pairs[against])
            statistic, p = float(result.statistic), float(result.pvalue)
        rows.append({"system": system, "against": against, "pairs": len(pairs),
                     "median_difference": float(np.median(diff)), "statistic": statistic, "p_value": p})
    out = pandas.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].tolist())
    out["significant"] = out["p_holm"] < alpha
    return out


def box_plot(table: "pandas.DataFrame", order: Sequence[str] | None = None, title: str | None = None) -> "Figure":
    """Box plots of the ratings per system on the MUSHRA scale.

    Args:
        table: ratings as from :func:`load_ratings`.
        order: the systems left to right; default by median rating, best first.
        title: default names the listener and trial counts (and says when ratings are simulated).

    Returns:
        a ``matplotlib.figure.Figure`` (not registered with pyplot; display or save it).
    """
    from matplotlib.figure import Figure

    if table.empty:
        raise DataError("box_plot: the ratings table is empty")
    if order is None:
        order = table.groupby("system")["rating"].median().sort_values(ascending=False).index.tolist()
    fig = Figure(figsize=(1.2 * len(order) + 2.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot([table.loc[table["system"] == s, "rating"].to_numpy() for s in order], showmeans=True)
    ax.set_xticks(range(1, len(order) + 1), order, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (MUSHRA, 0-100)")
    for name, low, high in SCALE:
        ax.axhline(low, color="0.85", lw=0.8, zorder=0)
        ax.text(1.01, (low + high) / 2, name, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    if title is None:
        simulated = " (SIMULATED ratings)" if table["simulated"].any() else ""
        title = f"{table['listener'].nunique()} listeners, {table['trial'].nunique()} trials{simulated}"
    ax.set_title(title)
    return fig


def simulate_ratings(stimuli_dir: str | os.PathLike, ratings_dir: str | os.PathLike, listeners: int = 8,
                     seed: int = 0, qualities: Mapping[str, float] | None = None) -> list[str]:
    """Make clearly labelled simulated ratings, for demos and tests (never for results).

    ``listeners`` simulated listeners ``sim-01``, ``sim-02``, ... rate every trial through a
    :class:`ListeningSession` (files marked ``"simulated": true``): the score of a system is its
    mean quality plus a listener bias (normal, sd 5 points) plus noise (normal, sd 8 points),
    rounded and clipped to 0-100; the hidden reference, unless ``qualities`` names it, is
    recognised: 100 minus a half-normal deviate (sd 3 points). One more listener,
    ``sim-careless``, rates uniformly at random and so fails the post-screening.

    Args:
        stimuli_dir: a stimuli folder.
        ratings_dir: where the ratings files go.
        listeners: the number of attentive simulated listeners (at least 1).
        seed: seeds the sessions and the scores.
        qualities: ``{system: mean score}``, overriding the defaults: the anchor 15 and the
            other systems in manifest order spread evenly from 35 to 80 (a convention for demos,
            later systems better).

    Returns:
        the simulated listener ids, the careless one last.
    """
    if listeners < 1:
        raise SpecError(f"simulate_ratings needs at least one listener, got {listeners}")
    manifest = read_stimuli(stimuli_dir)
    others = [s["system"] for s in manifest["trials"][0]["stimuli"] if s["system"] not in (HIDDEN_REFERENCE, ANCHOR)]
    means = {ANCHOR: 15.0, **dict(zip(others, np.linspace(35, 80, len(others)).tolist())), **(qualities or {})}
    rng = np.random.default_rng(seed)
    ids = [f"{SIMULATED_PREFIX}{k:02d}" for k in range(1, listeners + 1)] + [CARELESS]
    for listener in ids:
        session = ListeningSession(stimuli_dir, listener, ratings_dir, seed, simulated=True)
        bias = rng.normal(0, 5)
        while (trial := session.current) is not None:
            if listener == CARELESS:
                scores = rng.uniform(0, 100, len(trial.stimuli))
            else:
                scores = [means[s.system] + bias + rng.normal(0, 8) if s.system in means
                          else 100 - abs(rng.normal(0, 3)) for s in trial.stimuli]
            session.rate({s.label: float(np.clip(round(v), 0, 100)) for s, v in zip(trial.stimuli, scores)})
    return ids
