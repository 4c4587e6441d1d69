"""The run folder: one training run of a task, and everything measured from it.

:class:`RunDir` is the one owner of a run folder's files: training (:mod:`fxlib.train`) writes
its checkpoints through it, calibration (:mod:`fxlib.calibrate`) its fixed vector and gains,
and evaluation, the notebooks, the listening kit and the reproduction read the trained systems
back through :meth:`RunDir.systems`. Layout (format :data:`FORMAT`)::

    <run>/run.json        the record (:class:`RunRecord`): task, profile and its settings, chain,
                          data, seed, the model's configuration, the commit, the format
    <run>/checkpoint.pt   the training state to resume from (tensors and plain data)
    <run>/best.pt         the encoder weights of the best validation epoch so far
    <run>/log.csv, tb/    training curves (CSV, TensorBoard)
    <run>/fixed.json      calibration: the single best fixed parameter vector (:class:`FixedSetting`)
    <run>/trim.json       calibration: output gains in dB per system (profiles with ``level_trim``)
    <run>/baselines/      what the task's learned baselines trained (such as the neural amp model)
    <run>/results/        the evaluation tables, when written to their default place (:mod:`fxlib.paths`)

Every file is written atomically. The ``.pt`` files hold only tensors and plain Python data,
so they load with ``torch.load(weights_only=True)``: a checkpoint cannot run code. Configs are
JSON beside them. A folder of another format (or of no record) is refused with a message
saying so, not read half-way.
"""
from __future__ import annotations

import datetime
import json
import os
import pickle
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .atomic import atomic_output, write_json, write_text
from .data.paired import PairedDataset
from .errors import FxError, SpecError
from .model import DeepAFx, render_curve
from .paths import PAPER, project_root, resolve
from .tasks import Profile, System, Task, get_task

#: The run folder format this fxlib reads and writes.
FORMAT = 2
RECORD = "run.json"
MODEL_RECORD = "record.json"  # an exported model's record (:meth:`RunDir.export_model`)
KIND = "fxlib-run"


class RunFormatError(FxError):
    """A run folder (or one of its files) that this fxlib cannot read: another format, a missing
    record, a file that is not what its name says. The message names the file."""


class RunWriteError(FxError):
    """A run folder's file could not be written (a full disk, for example); the message names it
    and says that the previous version of the file is kept."""


def folder_record(folder: str | os.PathLike) -> dict[str, Any]:
    """The record of a run folder (``run.json``) or of an exported model's folder (``record.json``,
    :meth:`RunDir.export_model`), as plain data: task, profile, chain, seed and the rest.

    Raises:
        RunFormatError: the folder holds neither.
    """
    folder = resolve(folder)
    for name in (RECORD, MODEL_RECORD):
        if (folder / name).is_file():
            return RunDir._read_json(folder / name)
    raise RunFormatError(f"{folder} is neither a run folder ({RECORD}) nor an exported model ({MODEL_RECORD})")


def git_commit(root: Path | None = None) -> str | None:
    """The commit the project checkout is at (``<hash>`` or ``<hash>-dirty``), None outside a git checkout.

    ``-dirty`` means a tracked file outside ``paper/`` has changed: the reproduction rewrites
    ``paper/`` as it goes (:data:`~fxlib.paths.PAPER`), so its own outputs do not make the runs that
    follow them in one ``make reproduce`` dirty.
    """
    root = root or project_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                f":(exclude){PAPER.as_posix()}"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


@dataclass(frozen=True)
class RunRecord:
    """What a run is: its identity (a resumed run must match it) and its provenance.

    Attributes:
        task: the task name; profile: the profile's name ("custom" for an edited one);
        settings: the profile's settings (:class:`~fxlib.tasks.Profile` as a dict);
        chain: the preset chain's name; model: the model's configuration (:meth:`DeepAFx.config`,
            which holds the chain's spec);
        data_root: the data set folder, relative to the project root when inside it (:func:`fxlib.paths.portable`);
        seed: seeds every generator of the run.
        commit: the checkout's commit when the run started (None outside git); created: UTC time;
        format: :data:`FORMAT`.
    """

    task: str
    profile: str
    settings: dict
    chain: str
    model: dict
    data_root: str
    seed: int
    commit: str | None = None
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                         .isoformat(timespec="seconds"))
    format: int = FORMAT

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a run to resume (JSON-normalised)."""
        keys = ("task", "profile", "settings", "chain", "model", "data_root", "seed")
        return json.loads(json.dumps({k: getattr(self, k) for k in keys}))


@dataclass(frozen=True)
class FixedSetting:
    """The best fixed baseline of a run: the chain at one parameter vector, then a gain.

    Attributes:
        unit: ``(P,)`` the parameter vector in [0, 1] (``fixed.json``).
        trim_db: its output gain in dB (``trim.json``; 0 without a level trim).
    """

    unit: np.ndarray
    trim_db: float = 0.0

    def render(self, model: DeepAFx, audio: np.ndarray) -> np.ndarray:
        """``audio (C, T)`` through ``model``'s chain at this setting, then the gain: ``(C, T)``."""
        return render_curve(model.chain_spec, audio, self.unit, model.frame, self.trim_db)


def standard_systems(model: DeepAFx, fixed: FixedSetting | None) -> dict[str, System]:
    """The task-independent systems: input, chain at defaults, chain at best fixed, the model (and
    ``deepafx-hop``, the model hop by hop, when it sets the chain once per file)."""
    default = model.default_unit.double().numpy()
    systems: dict[str, System] = {
        "input": lambda x: x,
        "chain-default": lambda x: render_curve(model.chain_spec, x, default, model.frame),
    }
    if fixed is not None:
        systems["chain-best-fixed"] = lambda x: fixed.render(model, x)
    systems["deepafx"] = lambda x: model.process(x)[0]
    if model.inference == "song":
        systems["deepafx-hop"] = lambda x: model.render(x, model.predict(x))
    return systems


class RunDir:
    """A run folder (see the module docstring). Creating one touches nothing on disk.

    Args:
        path: the folder; relative paths are relative to the project root (:func:`fxlib.paths.resolve`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = resolve(path)
        self.record_path = self.path / RECORD
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.best_path = self.path / "best.pt"
        self.log_path = self.path / "log.csv"
        self.tensorboard_dir = self.path / "tb"
        self.fixed_path = self.path / "fixed.json"
        self.trim_path = self.path / "trim.json"
        self.baselines_dir = self.path / "baselines"
        self._record: RunRecord | None = None
        self._models: dict[bool, DeepAFx] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- the record ----------------------------------------------------------------------------
    @property
    def record(self) -> RunRecord:
        """The run's :class:`RunRecord` (read once).

        Raises:
            RunFormatError: no ``run.json`` (a folder of an older fxlib, or no run at all), another
                format, or a malformed record.
        """
        if self._record is None:
            self._record = self._read_record()
        return self._record

    def _read_record(self) -> RunRecord:
        if not self.record_path.is_file():
            if self.checkpoint_path.exists() or self.best_path.exists():
                raise RunFormatError(f"{self.path} was written by an older fxlib (it has no {RECORD}); this fxlib "
                                     f"reads run folders of format {FORMAT}: train again into another folder, or "
                                     f"delete {self.path}")
            raise RunFormatError(f"{self.path} holds no training run ({RECORD} does not exist); train one with "
                                 "`fxlib train`")
        data = self._read_json(self.record_path)
        if data.get("kind") != KIND:
            raise RunFormatError(f"{self.record_path} is not an fxlib run record (kind {data.get('kind')!r})")
        if data.get("format") != FORMAT:
            raise RunFormatError(f"{self.record_path} is of run folder format {data.get('format')!r}; this fxlib "
                                 f"reads format {FORMAT}: train again into another folder, or delete {self.path}")
        names = {f.name for f in fields(RunRecord)}
        missing = {f.name for f in fields(RunRecord) if f.name not in ("commit", "created")} - set(data)
        if missing:
            raise RunFormatError(f"{self.record_path} lacks {', '.join(sorted(missing))}")
        return RunRecord(**{k: v for k, v in data.items() if k in names})

    def start(self, record: RunRecord) -> None:
        """Write ``record`` as this folder's ``run.json``, or check that the one there is the same run.

        Raises:
            SpecError: the folder holds another run (another task, profile, chain, data or seed).
            RunFormatError: the folder holds a run of another format.
        """
        if self.record_path.exists() or self.checkpoint_path.exists() or self.best_path.exists():
            have = self.record
            if have.identity() != record.identity():
                differ = [k for k, v in record.identity().items() if have.identity().get(k) != v]
                raise SpecError(f"{self.path} belongs to another run (its {', '.join(differ)} differ from this "
                                f"one's); use another output folder or delete it to start over")
            return
        write_json(self.record_path, {"kind": KIND, **asdict(record)})
        self._record = record

    @property
    def task(self) -> Task:
        """The run's :class:`~fxlib.tasks.Task`."""
        return get_task(self.record.task)

    @property
    def profile(self) -> Profile:
        """The run's :class:`~fxlib.tasks.Profile`, from its recorded settings."""
        return Profile(**self.record.settings)

    # -- training state ------------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Write the training state atomically (tensors and plain data only)."""
        self._save(state, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The training state, or None when training has not checkpointed yet."""
        return self._load(self.checkpoint_path) if self.checkpoint_path.exists() else None

    def save_best(self, encoder: Mapping[str, torch.Tensor], **info: Any) -> None:
        """Write the best validation encoder weights, with plain facts (phase, epoch, loss)."""
        self._save({"encoder": dict(encoder), **info}, self.best_path)

    def load_best(self) -> dict[str, Any]:
        """``{"encoder": state dict, ...facts}`` of the best validation epoch.

        Raises:
            FileNotFoundError: no ``best.pt`` (the run has not finished an epoch).
        """
        if not self.best_path.is_file():
            raise FileNotFoundError(f"{self.path} holds no trained model (best.pt); train first with `fxlib train`")
        return self._load(self.best_path)

    @staticmethod
    def _save(state: Mapping[str, Any], path: Path) -> None:
        try:
            with atomic_output(path) as tmp:
                torch.save(dict(state), tmp)
        except (OSError, RuntimeError) as e:  # a full disk, a lost mount; torch's zip writer raises RuntimeError
            raise RunWriteError(f"could not write {path} ({type(e).__name__}: {e}); the previous {path.name} is "
                                "kept, unchanged") from e

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            raise RunFormatError(f"{path} is not a readable fxlib checkpoint (it may be cut short, of an older "
                                 f"fxlib, or hold objects other than tensors and plain data): "
                                 f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        if not isinstance(state, dict):
            raise RunFormatError(f"{path} is not an fxlib checkpoint (it holds a {type(state).__name__})")
        return state

    # -- calibrations --------------------------------------------------------------------------
    def save_fixed(self, unit: np.ndarray, **info: Any) -> None:
        """Write the best fixed parameter vector ``(P,)`` in [0, 1], with plain facts about its fit."""
        write_json(self.fixed_path, {"unit": np.asarray(unit, np.float64).tolist(), **info})

    def fixed_unit(self) -> np.ndarray | None:
        """The best fixed vector ``(P,)``, or None when calibration has not fitted it yet."""
        if not self.fixed_path.is_file():
            return None
        data = self._read_json(self.fixed_path)
        unit = np.asarray(data.get("unit", []), np.float64)
        if unit.ndim != 1 or unit.size == 0 or not np.all((unit >= 0) & (unit <= 1)):
            raise RunFormatError(f"{self.fixed_path} holds no parameter vector in [0, 1] (key 'unit'); delete "
                                 "it to fit the baseline again")
        return unit

    def save_trims(self, trims: Mapping[str, float], **info: Any) -> None:
        """Write output gains ``{system: dB}`` (``deepafx``, ``chain-best-fixed``), with facts."""
        write_json(self.trim_path, {"trim_db": {k: float(v) for k, v in trims.items()}, **info})
        self._models.pop(True, None)

    def trims(self) -> dict[str, float]:
        """``{system: gain in dB}`` measured by calibration; empty without ``trim.json``."""
        if not self.trim_path.is_file():
            return {}
        trims = self._read_json(self.trim_path).get("trim_db")
        if not isinstance(trims, dict) or not all(isinstance(v, (int, float)) and np.isfinite(v)
                                                  for v in trims.values()):
            raise RunFormatError(f"{self.trim_path} holds no finite gains in dB (key 'trim_db'); delete it to "
                                 "measure them again")
        return {k: float(v) for k, v in trims.items()}

    # -- the trained systems -------------------------------------------------------------------
    def model(self, calibrated: bool = True) -> DeepAFx:
        """The trained model (best validation weights), on the CPU, in eval mode.

        Args:
            calibrated: with the output gain calibration measured for it (``trim.json``), as
                every system of the run uses it; False: the chain's output as trained.

        Loaded once per :class:`RunDir` and flag.
        """
        if calibrated not in self._models:
            trim = self.trims().get("deepafx", 0.0) if calibrated else 0.0
            model = DeepAFx.from_config(self.record.model, trim)
            model.encoder.load_state_dict(self.load_best()["encoder"])
            self._models[calibrated] = model.eval()
        return self._models[calibrated]

    def fixed(self) -> FixedSetting | None:
        """The best fixed baseline with its gain, or None when calibration has not fitted it."""
        unit = self.fixed_unit()
        return None if unit is None else FixedSetting(unit, self.trims().get("chain-best-fixed", 0.0))

    def dataset(self, split: str) -> PairedDataset:
        """The ``split`` of the run's data set, at the model's sample rate and channels."""
        config = self.record.model["chain_spec"]
        return PairedDataset(resolve(self.record.data_root), split, int(config["sample_rate"]),
                             int(config.get("channels", 1)))

    def systems(self, baselines: bool = True) -> dict[str, System]:
        """Every system of the run: :func:`standard_systems` and, with ``baselines``, the task's own
        (:attr:`fxlib.tasks.Task.baselines`, fitted on the run's data set)."""
        model = self.model()
        systems = standard_systems(model, self.fixed())
        if baselines and self.task.baselines is not None:
            systems.update(self.task.baselines(resolve(self.record.data_root), int(model.sample_rate),
                                               model.channels, self.profile, self.baselines_dir))
        return systems

    def export_model(self, folder: str | os.PathLike, results: Mapping[str, Any] | None = None) -> Path:
        """Write the trained model alone, to ship or share: ``<folder>/model.pt``
        (:meth:`DeepAFx.save`, loaded by :meth:`DeepAFx.load` or, in ``fxlib/models/``, by
        :meth:`DeepAFx.pretrained`), ``<folder>/record.json``: this run's record (task,
        profile and settings, chain, data, seed, commit) and, when given, the test metrics of
        every system (``results["systems"]``, the evaluation table of this run), and copies of
        the run's ``log.csv`` (its training curve) and ``fixed.json`` (the best fixed vector).

        Returns the folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = asdict(self.record)
        if results is not None:
            if not isinstance(results.get("systems"), Mapping) or "deepafx" not in results["systems"]:
                raise RunFormatError("the results to export with the model hold no 'systems' table with a "
                                     "'deepafx' row")
            if results.get("task") not in (None, self.record.task):
                raise RunFormatError(f"the results are of task {results.get('task')!r}, the run of "
                                     f"{self.record.task!r}")
            record["test_metrics"] = {name: dict(row) for name, row in results["systems"].items()}
        self.model().save(folder / "model.pt")
        for source in (self.log_path, self.fixed_path):
            if source.is_file():
                write_text(folder / source.name, source.read_text())
        write_json(folder / MODEL_RECORD, record)
        return folder

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunFormatError(f"{path} is not valid JSON ({e}); delete it to compute it again") from e
        if not isinstance(data, dict):
            raise RunFormatError(f"{path} does not hold a JSON object")
        return data
