"""Sessions: one listener's trials in a seeded order, rated and saved after each trial."""
from __future__ import annotations

import datetime
import math
import os
import zlib
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..atomic import write_json
from ..data.audio import DataError
from ..errors import SpecError

from .formats import FORMAT, RATINGS_KIND, SAFE_NAME, RatingError, StimuliMismatchError, read_kit_file
from .stimuli import read_stimuli


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
            self.state = read_ratings_file(self.path)
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


def read_ratings_file(path: Path) -> dict[str, Any]:
    """A ratings file's content, checked for its kind, format and structure: a ``listener`` and a
    ``fingerprint`` (strings), ``simulated`` (true or false), and ``ratings`` per trial, each a
    score from 0 to 100 per system.

    Raises:
        DataError: not a ratings file, or a malformed one (the file and the field are named).
        RatingError: a score that is not a number from 0 to 100 (the file, trial and system named).
    """
    state = read_kit_file(path, RATINGS_KIND, "ratings")
    kinds = {"listener": str, "fingerprint": str, "simulated": bool, "ratings": dict}
    for key, kind in kinds.items():
        if not isinstance(state.get(key), kind):
            raise DataError(f"{path}: {key!r} must be a {kind.__name__}, got {state.get(key)!r}")
    for trial, record in state["ratings"].items():
        if not isinstance(record, dict) or not isinstance(record.get("ratings"), dict):
            raise DataError(f"{path}: trial {trial!r} holds no 'ratings' of its systems")
        for system, score in record["ratings"].items():
            try:
                check_rating(score, system, trial)
            except RatingError as e:
                raise RatingError(f"{path}: {e}") from e
    return state


