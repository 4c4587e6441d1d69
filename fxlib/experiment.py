"""A task from data to results: train, calibrate, evaluate; and excerpts to listen to.

:func:`run_task` is the whole of ``fxlib train`` and of a task notebook's training cell:

1. build the data set when its folder holds none (:meth:`fxlib.tasks.Task.ensure_data`);
2. train the encoder (:class:`fxlib.train.Trainer`), or resume, or skip a finished run;
3. calibrate (:func:`fxlib.calibrate.calibrate`): the best fixed vector and any level trims;
4. evaluate every system on the test split (:func:`fxlib.evaluate.evaluate_run`).

Paths left out take their defaults from :mod:`fxlib.paths` (the data set ``data/<task>``, the run
folder ``runs/<task>-<profile>``, the results inside the run folder). :func:`examples` renders the
first seconds of a few test files through every system of a run, for players and plots.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .calibrate import calibrate
from .atomic import write_json, write_text
from .data.audio import DataError, load_audio, save_audio
from .errors import FxError, SpecError
from .evaluate import evaluate_run
from .model import MODELS_DIR, DeepAFx, pretrained_names
from .paths import Outputs, data_dir, resolve, run_dir, run_outputs
from .rundir import MODEL_RECORD, RECORD, RunDir, RunFormatError, folder_record, standard_systems
from .metrics import loudness_lufs
from .tasks import Profile, System, get_task
from .train import EpochReport, Trainer


def train_command(task: str, profile: str, data: str, chain: str | None, seed: int, out: str,
                  results: str) -> str:
    """The ``fxlib train`` command line that does what :func:`run_task` does with these arguments."""
    words = ["fxlib", "train", "--task", task, "--profile", profile, "--data", str(data), "--out", str(out),
             "--seed", str(seed), "--results", str(results)]
    if chain:
        words += ["--chain", chain]
    return shlex.join(words + ["--no-progress"])


def run_task(task: str, profile: str | Profile = "quick", data: str | os.PathLike | None = None,
             chain: str | None = None, seed: int = 0, out: str | os.PathLike | None = None,
             results: str | os.PathLike | None = None, device: str | None = None, checkpoint_every: int = 25,
             progress: bool = True, notebook: str | None = None,
             on_epoch: Callable[[EpochReport], None] | None = None) -> dict[str, Any] | None:
    """Train a task's model (or resume, or reuse a finished run), calibrate it, evaluate every system.

    Args:
        task: "amp", "breath" or "mastering"; profile: "smoke", "quick", "paper" or a :class:`Profile`.
        data: data set folder (default :func:`fxlib.paths.data_dir`; built offline when it holds no
            manifest, so a folder holding the paper's downloaded data is used as it is).
        chain: a preset chain name, or None for the task's first chain that builds here.
        seed: seeds the data build, the initialisation and the perturbations.
        out: run folder (default :func:`fxlib.paths.run_dir`).
        results: folder of ``<task>.json`` and ``<task>.md`` (default: the run's ``results/``).
        device: the encoder's device ("cpu", "cuda"; default CUDA when available).
        checkpoint_every: steps between mid-epoch checkpoints.
        progress: show progress bars.
        notebook: the notebook that ran this, recorded in the results.
        on_epoch: called after every epoch with its :class:`~fxlib.train.EpochReport` (a notebook
            redraws its training curve there: :class:`fxlib.plots.LiveTraining`).

    Relative paths are relative to the project root (:func:`fxlib.paths.resolve`); the results
    record the equivalent ``fxlib train`` command (:func:`train_command`) and the wall time.

    Returns:
        The results (as written to ``<results>/<task>.json``) with ``run_dir`` and ``results_dir``
        added, on rank 0; None on the other ranks of a distributed run.
    """
    started = time.monotonic()
    name = get_task(task).profile_name(profile)
    data = data or data_dir(task, name)
    out = out or run_dir(task, name)
    results = results or run_outputs(out).results
    trainer = Trainer(task, profile, out, data_root=data, chain=chain, seed=seed, device=device,
                      checkpoint_every=checkpoint_every, progress=progress, on_epoch=on_epoch)
    run = trainer.fit()
    if trainer.rank != 0:
        return None
    calibrate(run, progress)
    facts = {"wall_seconds": round(time.monotonic() - started, 1), "notebook": notebook}
    command = train_command(task, name, str(data), chain, seed, str(out), str(results))
    written = evaluate_run(run, results, extra=facts, command=command)
    return {**written, "run_dir": str(run.path), "results_dir": str(resolve(results))}


def outputs(results: dict[str, Any], figures: str | os.PathLike | None = None,
            audio: str | os.PathLike | None = None) -> Outputs:
    """Where a notebook puts what it shows, for the results :func:`run_task` returned: its results
    folder, and ``figures`` and ``audio`` as given or, when None, the run folder's own
    (:func:`fxlib.paths.run_outputs`)."""
    own = run_outputs(results["run_dir"])
    return Outputs(Path(results["results_dir"]), resolve(figures) if figures else own.figures,
                   resolve(audio) if audio else own.audio)


def describe(results: Mapping[str, Any]) -> str:
    """What a task notebook shows, in two lines: the task, profile, chain and test files, then the
    shipped model's name or the ``fxlib train`` command with the wall time (:func:`run_task`,
    :func:`shipped`)."""
    head = (f"{results['task']} on profile {results['profile']} with chain {results['chain']}: "
            f"{results['data']['test_files']} test files")
    if "shipped" in results:
        return (f"{head}; the shipped model {results['shipped']!r}, not trained here (train=True trains "
                f"one)\nit was trained by: {results['command']}")
    return f"{head}, {results['wall_seconds']:.0f} s\n{results['command']}"


# -- excerpts of test files through every system ----------------------------------------------
MIN_EXCERPT_LUFS = -50.0  # excerpts quieter than this are drawn again
MAX_DRAWS = 50  # excerpt draws per trial before giving up on finding a non-silent one


def draw_excerpts(targets: Sequence[np.ndarray], ids: Sequence[str], n_trials: int, length: int,
                  sample_rate: int, seed: int) -> list[tuple[int, int]]:
    """``n_trials`` seeded ``(file index, start sample)`` excerpts of ``length`` samples, not silent.

    Files are visited in a seeded random order (cycling when there are fewer files than trials);
    a start whose target is quieter than :data:`MIN_EXCERPT_LUFS` is drawn again. The listening
    kit's stimuli and the virtual listening test draw their excerpts here.

    Args:
        targets: the files' targets, ``(C, T_i)`` each; ids: their pair ids (for messages).
        n_trials: excerpts; length: samples each; sample_rate: Hz; seed: seeds the draws.

    Raises:
        DataError: no file is long enough, or one has no excerpt loud enough.
    """
    rng = np.random.default_rng(seed)
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
            if loudness_lufs(targets[i][:, start:start + length], sample_rate) >= MIN_EXCERPT_LUFS:
                picks.append((i, start))
                break
        else:
            raise DataError(f"test file {ids[i]!r}: no excerpt louder than {MIN_EXCERPT_LUFS:g} LUFS "
                            f"found in {MAX_DRAWS} draws")
    return picks


def render_excerpt(systems: Mapping[str, System], audio: np.ndarray, start: int, length: int,
                   preroll: int) -> dict[str, np.ndarray]:
    """Each system's output for ``audio[:, start:start + length]``, given up to ``preroll`` samples of
    the file before it (to settle the effects' state and fill the encoder's context), then cut.

    Shape:
        audio ``(C, T)``; returns ``{name: (C, length)}``.
    """
    lead = min(preroll, start)
    x = audio[:, start - lead:start + length]
    return {name: np.asarray(system(x))[:, lead:] for name, system in systems.items()}



@dataclass
class Example:
    """One excerpt of a test file through every system of a run.

    Attributes:
        id: the test pair's id; sample_rate: Hz; offset: start of the excerpt in the file, s.
        audio: ``{system: float32 (C, T)}``: ``input``, every system of the run
            (:meth:`fxlib.rundir.RunDir.systems`: the chain at its defaults and at the best fixed
            vector, ``deepafx``, the task's baselines), and ``target``, in that order.
        u: ``(N, P)`` the model's parameter vectors in [0, 1], one per hop of ``frame`` samples.
        chain_spec: the chain the parameters drive.
        events: labelled events inside the excerpt (``Pair.info["events"]``, times relative
            to the excerpt's start, in s; empty when the data has none).
    """

    id: str
    sample_rate: int
    offset: float
    audio: dict[str, np.ndarray]
    u: np.ndarray
    frame: int
    chain_spec: dict
    events: list[dict] = field(default_factory=list)

    def systems(self) -> dict[str, np.ndarray]:
        """``{name: audio (C, T)}``, input first and target last."""
        return self.audio


def examples(run: RunDir | str | os.PathLike, count: int = 2, seconds: float = 5.0,
             split: str = "test") -> list[Example]:
    """The first ``seconds`` of the first ``count`` files of ``split``, through every system of ``run``.

    Args:
        run: a trained (and calibrated, for the best fixed vector) run folder, or an exported
            model's folder (:func:`export`, :func:`shipped`), whose own excerpts are played
            (:func:`exported_examples`; ``split`` must then be ``"test"``).
        count: files; seconds: excerpt length in s (shorter files are taken whole).

    Raises:
        FileNotFoundError: when the run holds no trained model.
    """
    if not isinstance(run, RunDir) and is_exported(run):
        if split != "test":
            raise SpecError(f"{run} is an exported model: it holds excerpts of the test split only, not {split!r}")
        return exported_examples(run, count, seconds)
    run = run if isinstance(run, RunDir) else RunDir(run)
    model = run.model()
    systems = run.systems()
    dataset = run.dataset(split)
    rate = dataset.sample_rate
    found = []
    for i, pair in enumerate(dataset.pairs[:count]):
        x, target = dataset[i]
        n = min(x.shape[1], int(seconds * rate))
        x, target = np.ascontiguousarray(x[:, :n]), np.ascontiguousarray(target[:, :n])
        y, u = model.process(x)
        audio = {"input": x}
        for name, system in systems.items():
            if name not in audio:
                audio[name] = y if name == "deepafx" else system(x)
        events = [e for e in (pair.info or {}).get("events", []) if e["start"] < n / rate]
        found.append(Example(pair.id, rate, 0.0, {**audio, "target": target}, u, model.frame,
                             model.chain_spec, events))
    return found


def export_examples(found: Sequence[Example], folder: str | os.PathLike,
                    systems: Sequence[str] = ("input", "deepafx", "target")) -> list:
    """Write the given systems of each example as WAV files ``<folder>/<id>_<system>.wav``.

    The audio is clipped to [-1, 1] (what a player would play) and stored as 32-bit float.

    Raises:
        SpecError: an example lacks one of ``systems``.
    """
    folder = resolve(folder)
    written = []
    for ex in found:
        missing = [s for s in systems if s not in ex.audio]
        if missing:
            raise SpecError(f"example {ex.id} has no systems {missing}; it has {list(ex.audio)}")
        for name in systems:
            written.append(save_audio(folder / f"{ex.id}_{name}.wav", np.clip(ex.audio[name], -1.0, 1.0),
                                      ex.sample_rate))
    return written


# -- exported and shipped models ---------------------------------------------------------------
EXCERPTS = "excerpts"  # an exported model's excerpts: <folder>/excerpts/excerpts.json and FLAC files
#: The systems an exported model renders when played (from its model and fixed vector); the
#: task's baselines need the training data to fit, so their excerpts are stored at export.
RENDERED = ("chain-default", "chain-best-fixed", "deepafx", "deepafx-hop")


def is_exported(folder: str | os.PathLike) -> bool:
    """True for a folder :func:`export` wrote (``model.pt`` and its record, not a run folder)."""
    folder = resolve(folder)
    return (folder / "model.pt").is_file() and (folder / MODEL_RECORD).is_file() and not (folder / RECORD).exists()


def export(run: RunDir | str | os.PathLike, folder: str | os.PathLike, results: str | os.PathLike | None = None,
           count: int = 2, seconds: float = 5.0) -> Path:
    """Write a trained run's model to ship or share, with what shows it without its data set.

    ``<folder>`` gets :meth:`fxlib.rundir.RunDir.export_model`'s files (``model.pt``,
    ``record.json``, ``log.csv``, ``fixed.json``); with ``results`` (a ``<task>.json`` that
    :func:`fxlib.evaluate.evaluate_run` wrote for this run) that file and its ``.md`` table;
    and the first ``seconds`` of the first ``count`` test files (:func:`examples`) in
    ``excerpts/``: the input, the target and every system's output except those rendered
    when played (:data:`RENDERED`), as FLAC, listed in ``excerpts.json``.

    Returns the folder.

    Raises:
        SpecError: ``results`` is not a readable results table, or has no ``.md`` beside it.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    table = None
    if results is not None:
        results = resolve(results)
        try:
            table = json.loads(results.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SpecError(f"{results}: not a readable results table ({e})") from e
        if not results.with_suffix(".md").is_file():
            raise SpecError(f"{results}: its markdown table {results.with_suffix('.md').name} is missing beside it")
    folder = run.export_model(resolve(folder), table)
    if results is not None:
        for source in (results, results.with_suffix(".md")):
            write_text(folder / f"{run.record.task}{source.suffix}", source.read_text())
    listed = []
    for ex in examples(run, count, seconds):
        files = {}
        for name, audio in ex.audio.items():
            if name not in RENDERED:
                files[name] = f"{ex.id}_{name}.flac"
                save_audio(folder / EXCERPTS / files[name], audio, ex.sample_rate)
        listed.append({"id": ex.id, "offset": ex.offset, "sample_rate": ex.sample_rate, "systems": list(ex.audio),
                       "files": files, "events": ex.events})
    write_json(folder / EXCERPTS / "excerpts.json", {"seconds": seconds, "excerpts": listed})
    return folder


def exported_examples(folder: str | os.PathLike, count: int = 2, seconds: float = 5.0) -> list[Example]:
    """The excerpts an exported model's folder holds (:func:`export`), at most ``count`` of them and
    ``seconds`` long, with the model's own systems rendered now (:data:`RENDERED`) and the others
    (input, target, the task's baselines) read from their files; systems in the order of
    :func:`examples`.

    Raises:
        RunFormatError: the folder holds no excerpts, or an excerpt file is missing.
    """
    folder = resolve(folder)
    listing = folder / EXCERPTS / "excerpts.json"
    if not listing.is_file():
        raise RunFormatError(f"{folder} holds no excerpts ({EXCERPTS}/excerpts.json); export the model again with "
                             "`fxlib export`")
    model = DeepAFx.load(folder / "model.pt")
    systems = standard_systems(model, RunDir(folder).fixed())
    found = []
    for entry in json.loads(listing.read_text())["excerpts"][:count]:
        rate = int(entry["sample_rate"])
        n = int(round(seconds * rate))
        stored = {}
        for name, file in entry["files"].items():
            if not (folder / EXCERPTS / file).is_file():
                raise RunFormatError(f"{folder / EXCERPTS / file}: excerpt file missing; export the model again")
            stored[name] = load_audio(folder / EXCERPTS / file, rate, model.channels)[0][:, :n]
        x = stored["input"]
        y, u = model.process(x)
        audio = {}
        for name in entry["systems"]:
            if name in stored:
                audio[name] = stored[name]
            elif name in systems:
                audio[name] = y if name == "deepafx" else np.asarray(systems[name](x))
        events = [e for e in entry["events"] if e["start"] < x.shape[1] / rate]
        found.append(Example(entry["id"], rate, float(entry["offset"]), audio, u, model.frame, model.chain_spec,
                             events))
    return found


def shipped_name(task: str, chain: str | None = None) -> str:
    """The shipped model (:func:`fxlib.model.pretrained_names`) of ``task`` on ``chain``, or, with no
    chain given, on the first of the task's chains that has one and builds here.

    Raises:
        SpecError: no model of that task (and chain) is shipped.
        FxError: none of their chains builds here, with each one's reason.
    """
    by_chain = {}
    for name in pretrained_names():
        record = folder_record(MODELS_DIR / name)
        if record["task"] == task:
            by_chain[record["chain"]] = name
    wanted = [chain] if chain else [c for c in get_task(task).chains if c in by_chain]
    if not wanted or wanted[0] not in by_chain:
        raise SpecError(f"no shipped {task} model{' on chain ' + repr(chain) if chain else ''}; shipped "
                        f"{task} models: {', '.join(f'{n} ({c})' for c, n in by_chain.items()) or 'none'}")
    reasons = []
    for name in wanted:
        try:
            get_task(task).select_chain(name)
        except FxError as e:
            reasons.append(str(e))
            continue
        return by_chain[name]
    raise FxError(f"no shipped {task} model's chain builds here:\n  " + "\n  ".join(reasons))


def shipped(task: str, chain: str | None = None, out: str | os.PathLike | None = None) -> dict[str, Any]:
    """A shipped model's recorded results, as :func:`run_task` returns them, without training.

    The model (:func:`shipped_name`) is copied from :data:`fxlib.model.MODELS_DIR` into ``out``
    (default :func:`fxlib.paths.run_dir` ``(<name>, "shipped")``, such as ``runs/amp-shipped``),
    where figures and audio then go (:func:`outputs`); ``run_dir`` and ``results_dir`` of the
    returned results name that copy, which :func:`examples` and :func:`fxlib.plots.plot_training`
    read like a run folder.

    Raises:
        SpecError, FxError: see :func:`shipped_name`. RunFormatError: the model ships no results table.
    """
    name = shipped_name(task, chain)
    source = MODELS_DIR / name
    table = source / f"{task}.json"
    if not table.is_file():
        raise RunFormatError(f"the shipped model {name!r} has no results table ({table}); export it again")
    out = resolve(out or run_dir(name, "shipped"))
    shutil.copytree(source, out, dirs_exist_ok=True)
    return {**json.loads(table.read_text()), "shipped": name, "run_dir": str(out), "results_dir": str(out)}
