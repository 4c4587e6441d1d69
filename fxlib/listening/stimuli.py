"""Stimuli: excerpts of test files through every system, loudness-matched, with references and an anchor."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import scipy.signal

from ..atomic import write_json
from ..data.audio import DataError, DataNotFoundError, save_audio
from ..data.download import file_digest
from ..errors import SpecError
from ..metrics import loudness_lufs, true_peak_dbtp

from .formats import (ANCHOR, FORMAT, HIDDEN_REFERENCE, MANIFEST, OPEN_REFERENCE, SAFE_NAME, STIMULI_KIND,
                      TRIAL_RECORD, read_kit_file)

LOW_ANCHOR_HZ = 3500.0
ANCHOR_ORDER = 8  # Butterworth order, applied twice (forward and backward)
PEAK_CEILING_DBTP = -1.0
FADE_SECONDS = 0.02


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


#: The two test designs: which stimulus is the low anchor, and the loudness rule.
PROTOCOLS = {
    "bs1534": {"anchor": ANCHOR,
               "loudness": ("every stimulus matched to the reference's BS.1770 integrated loudness, then the trial "
                            f"attenuated together so no true peak exceeds {PEAK_CEILING_DBTP:g} dBTP")},
    "paper": {"anchor": "input",
              "loudness": ("every stimulus at its own level (level is part of what the paper's test judged), the trial "
                           f"attenuated together so no true peak exceeds {PEAK_CEILING_DBTP:g} dBTP")},
}


def loudness_gains(stimuli: Mapping[str, np.ndarray], reference: str, sample_rate: int,
                   match: bool = True) -> dict[str, float]:
    """Gains in dB that apply the module's loudness rule to one trial (see the module docstring).

    Args:
        stimuli: ``{system: (C, T)}``, every one at least 0.4 s long.
        reference: the key whose loudness the others are matched to.
        sample_rate: in Hz.
        match: False keeps every stimulus's own level (the paper's protocol, where level is part
            of what is judged): only the trial's common attenuation for the peak ceiling applies.

    Returns:
        ``{system: gain in dB}``.
    """
    target = loudness_lufs(stimuli[reference], sample_rate)
    if not math.isfinite(target):
        raise DataError(f"the reference {reference!r} is silent; cannot match loudness to it")
    gains = {}
    for name, audio in stimuli.items():
        level = loudness_lufs(audio, sample_rate)
        gains[name] = target - level if match and math.isfinite(level) else 0.0
    peak = max(true_peak_dbtp(audio * 10 ** (gains[name] / 20), sample_rate) for name, audio in stimuli.items())
    headroom = min(0.0, PEAK_CEILING_DBTP - peak)
    return {name: gain + headroom for name, gain in gains.items()}


def read_stimuli(stimuli_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``<stimuli_dir>/stimuli.json`` (see the module docstring).

    Raises:
        DataNotFoundError: no manifest (make the set with :func:`export_stimuli` or :func:`demo_stimuli`).
        DataError: not a stimuli manifest, a malformed one (the trial is named), a listed file outside
            the folder, or a stimulus file whose checksum differs from the manifest's.
        DataNotFoundError: a listed file is missing.
    """
    root = Path(stimuli_dir)
    path = root / MANIFEST
    if not path.is_file():
        raise DataNotFoundError(f"{root} holds no {MANIFEST}: make a stimuli set there with "
                                "fxlib.listening.export_stimuli (trained runs) or demo_stimuli")
    manifest = read_kit_file(path, STIMULI_KIND, "stimuli")
    trials = manifest.get("trials")
    if not isinstance(trials, list) or not trials:
        raise DataError(f"{path}: 'trials' must be a non-empty list")
    for i, trial in enumerate(trials):
        where = f"{path}: trial {i}"
        if not isinstance(trial, dict) or not isinstance(trial.get("id"), str) \
                or not isinstance(trial.get("reference"), str) or not isinstance(trial.get("stimuli"), list) \
                or not trial["stimuli"]:
            raise DataError(f"{where} needs an 'id', a 'reference' file and a non-empty list of 'stimuli'")
        where = f"{path}: trial {trial['id']!r}"
        for stimulus in trial["stimuli"]:
            if not isinstance(stimulus, dict) or not all(isinstance(stimulus.get(k), str)
                                                         for k in ("system", "file", "sha256")):
                raise DataError(f"{where}: each stimulus needs a 'system', a 'file' and its 'sha256'")
        for rel in [trial["reference"]] + [s["file"] for s in trial["stimuli"]]:
            file = (root / rel).resolve()
            if Path(rel).is_absolute() or not file.is_relative_to(root.resolve()):
                raise DataError(f"{where} lists {rel}, outside the stimuli folder")
            if not file.is_file():
                raise DataNotFoundError(f"{where} lists {rel}, which does not exist")
        for stimulus in trial["stimuli"]:
            if file_digest(root / stimulus["file"]) != stimulus["sha256"]:
                raise DataError(f"{where}: {stimulus['file']} is not the file the set was made with (its "
                                "sha256 differs); export the set again")
    return manifest


def _fingerprint(trials: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the trials' ids, systems and file digests: the identity of a stimuli set."""
    key = [[t["id"], [[s["system"], s["sha256"]] for s in t["stimuli"]]] for t in trials]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _write_set(out_dir: Path, params: Mapping[str, Any], source: Mapping[str, Any], sample_rate: int,
               channels: int, trials: Sequence[Mapping[str, Any]],
               render: Callable[[Mapping[str, Any]], tuple[np.ndarray, dict[str, np.ndarray]]],
               protocol: str = "bs1534") -> dict[str, Any]:
    """Write a stimuli set trial by trial, resumably; ``stimuli.json`` comes last.

    Args:
        out_dir: the stimuli folder.
        params: the settings that determine the files; a folder made with others is refused.
        source: what the audio came from (recorded in the manifest).
        sample_rate: in Hz; channels: per file.
        trials: ``[{"id": str, "info": dict}, ...]``.
        render: ``trial -> (reference (C, T), {system: (C, T)})`` for trials not yet written.
        protocol: a key of :data:`PROTOCOLS`: its anchor and loudness rule.

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
        clash = {HIDDEN_REFERENCE, Path(OPEN_REFERENCE).stem, *([ANCHOR] if protocol == "bs1534" else [])} & set(systems)
        if clash:
            raise SpecError(f"system names {sorted(clash)} are reserved for the references and the anchor")
        for name in systems:
            if not SAFE_NAME.match(name):
                raise SpecError(f"system name {name!r} is not usable as a file name (letters, digits, '.', '_', '-')")
        stimuli = {HIDDEN_REFERENCE: reference, **systems}
        if protocol == "bs1534":
            stimuli[ANCHOR] = low_anchor(reference, sample_rate)
        for name, audio in stimuli.items():
            if audio.shape != reference.shape:
                raise DataError(f"trial {trial['id']!r}: system {name!r} gave shape {audio.shape}, "
                                f"the reference is {reference.shape}")
        stimuli = {name: _fade(audio, sample_rate) for name, audio in stimuli.items()}
        gains = loudness_gains(stimuli, HIDDEN_REFERENCE, sample_rate, match=protocol == "bs1534")
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
                "hidden_reference": HIDDEN_REFERENCE, "anchor": PROTOCOLS[protocol]["anchor"], "protocol": protocol,
                "loudness": PROTOCOLS[protocol]["loudness"],
                "source": dict(source), "params": params, "fingerprint": _fingerprint(records), "trials": records}
    write_json(previous, manifest)
    return manifest


def export_stimuli(out_dir: str | os.PathLike, runs: Sequence[str | os.PathLike] = (),
                   data_root: str | os.PathLike | None = None, trials: int = 8, seconds: float = 4.0,
                   seed: int = 0, split: str = "test", preroll: float = 1.0, protocol: str = "bs1534") -> dict[str, Any]:
    """Export listening-test stimuli from trained runs and/or a data set.

    Systems per trial: ``input`` (the unprocessed excerpt); per run (see
    :func:`fxlib.rundir.standard_systems`) ``chain-default``, ``chain-best-fixed`` (when the run
    is calibrated) and ``deepafx``, named ``<system>-<run folder name>`` when several runs are
    given; the task's own baselines (:attr:`fxlib.tasks.Task.baselines`); plus the hidden
    reference and the low anchor. The excerpts are seeded draws from ``split``; each system
    processes the excerpt with up to ``preroll`` seconds of the file before it (to settle the
    effects' state and the encoder's context), which is then cut off. Finished trials are kept
    when the export runs again with the same settings.

    With ``protocol="paper"`` the set follows the paper's test, as the virtual listening test
    does (:func:`fxlib.comparisons.virtual_listening`; pass its settings to get its very
    excerpts: 5 trials of 4 s, the run's seed): per run only ``deepafx``, a ``mid-anchor``
    (:func:`fxlib.comparisons.mid_anchor`, the task's kind), the input as the low anchor, and
    every stimulus at its own level (:data:`PROTOCOLS`).

    Args:
        out_dir: the stimuli folder (created).
        runs: trained run folders (:class:`~fxlib.rundir.RunDir`; calibrated, for the best fixed vector).
        data_root: the paired data set; default: the runs' own (their records' ``data_root``,
            which must agree), needed when no run is given.
        trials: number of trials (excerpts).
        seconds: excerpt length in seconds (at least 0.4 s, the loudness meter's block).
        seed: seeds the choice of files and start times.
        split: the data set split the excerpts come from.
        preroll: seconds of history given to the systems before each excerpt.
        protocol: ``"bs1534"`` (a 3.5 kHz low anchor, loudness-matched) or ``"paper"``.

    Returns:
        the manifest (also written as ``<out_dir>/stimuli.json``).

    Raises:
        DataNotFoundError: a run without ``best.pt`` or a missing data set.
        DataError: runs on different data sets or sample rates, no file long enough, a folder
            made with other settings.
        SpecError: no run and no data set, bad counts and lengths, an unknown protocol, or the
            paper's protocol without a run of a known task.
    """
    from ..comparisons import mid_anchor
    from ..data.paired import PairedDataset
    from ..experiment import draw_excerpts, render_excerpt
    from ..paths import resolve
    from ..rundir import RunDir
    from ..tasks import TASKS, get_task

    if not runs and data_root is None:
        raise SpecError("export_stimuli needs trained runs, a data set root, or both")
    if trials < 1 or seconds < 0.4 or preroll < 0:
        raise SpecError(f"need trials >= 1, seconds >= 0.4 and preroll >= 0; got {trials}, {seconds}, {preroll}")
    if protocol not in PROTOCOLS:
        raise SpecError(f"unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
    systems_of_runs: list[tuple[str, dict]] = []
    roots, formats, tasks, digests = set(), set(), set(), []
    for run in map(RunDir, runs):
        model = run.model()
        roots.add(str(resolve(run.record.data_root)))
        formats.add((int(model.sample_rate), int(model.channels)))
        tasks.add(run.record.task)
        digests.append(file_digest(run.best_path))
        keep = ("deepafx",) if protocol == "paper" else tuple(run.systems(baselines=False))
        systems_of_runs.append((run.path.name, {k: v for k, v in run.systems(baselines=False).items()
                                                if k != "input" and k in keep}))
    if len(formats) > 1:
        raise DataError(f"the runs work at different sample rates or channel counts {sorted(formats)}")
    if data_root is None and len(roots) > 1:
        raise DataError(f"the runs were trained on different data sets {sorted(roots)}; pass data_root")
    root = Path(data_root) if data_root is not None else Path(roots.pop())
    if data_root is None and not root.is_dir():
        raise DataNotFoundError(f"the runs were trained on {root}, which does not exist here; pass data_root")
    rate, channels = formats.pop() if formats else (None, None)
    dataset = PairedDataset(root, split, rate, channels)
    rate, channels = dataset.sample_rate, dataset.inputs[0].shape[0]
    task = tasks.pop() if len(tasks) == 1 else dataset.manifest.task
    systems: dict[str, Callable[[np.ndarray], np.ndarray]] = {"input": lambda x: x}
    for run_name, run_systems in systems_of_runs:
        for name, system in run_systems.items():
            systems[name if len(systems_of_runs) == 1 else f"{name}-{run_name}"] = system
    if task in TASKS and get_task(task).baselines is not None:  # fitted as the first run's, in its folder
        first = RunDir(runs[0]) if runs else None
        profile = first.profile if first else get_task(task).profile("quick")
        systems.update(get_task(task).baselines(root, rate, channels, profile, first and first.baselines_dir))

    length, history = round(seconds * rate), round(preroll * rate)
    picks = draw_excerpts(dataset.targets, dataset.ids, trials, length, rate, seed)
    where = {f"trial{k:02d}": pick for k, pick in enumerate(picks)}
    specs = [{"id": trial_id, "info": {"pair": dataset.ids[i], "start_s": start / rate,
                                       "seconds": length / rate}} for trial_id, (i, start) in where.items()]

    if protocol == "paper" and task not in TASKS:
        raise SpecError("the paper's protocol needs a run of a known task (its mid anchor is the task's)")

    def render(trial: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        i, start = where[trial["id"]]
        reference = dataset.targets[i][:, start:start + length]
        outputs = render_excerpt(systems, dataset.inputs[i], start, length, history)
        if protocol == "paper":
            outputs["mid-anchor"] = mid_anchor(get_task(task).mid_anchor, outputs["input"], reference, rate)
        return reference, outputs

    params = {"runs": [str(Path(r).resolve()) for r in runs], "checkpoints": digests, "data_root": str(root.resolve()),
              "split": split, "trials": trials, "seconds": seconds, "seed": seed, "preroll": preroll,
              "protocol": protocol}
    source = {"task": task, "data": dataset.manifest.source, "systems": list(systems)}
    return _write_set(Path(out_dir), params, source, rate, channels, specs, render, protocol)


def demo_stimuli(out_dir: str | os.PathLike, seed: int = 0, trials: int = 4, seconds: float = 3.0) -> dict[str, Any]:
    """A small self-contained stimuli set that needs no trained model, for demos and tests.

    Each trial is a seeded synthetic phrase (:func:`fxlib.reference_fx.demo_phrase`, 22.05 kHz mono). The
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
    from ..presets import chain_spec, load_chain
    from ..reference_fx import demo_phrase

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
        dry = demo_phrase(seconds, rate, trial["info"]["phrase_seed"])
        u_ref = np.array(trial["info"]["reference_unit"])
        with load_chain(chain_name) as fx:
            return fx.process(dry, u_ref), {"input": dry, "chain-default": fx.process(dry, default),
                                            "chain-halfway": fx.process(dry, (default + u_ref) / 2)}

    params = {"demo": chain_name, "seed": seed, "trials": trials, "seconds": seconds}
    source = {"demo": f"synthetic phrases through {chain_name}; reference = chain at a seeded setting"}
    return _write_set(Path(out_dir), params, source, rate, 1, specs, render)

