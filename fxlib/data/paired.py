"""The on-disk layout of every paired (input, target) data set, and its in-memory loader.

Layout::

    <root>/manifest.json          written last: its presence means the data set is complete
    <root>/manifest.partial.json  progress of a build or download that has not finished
    <root>/train/<id>_input.wav   float32 WAV files, one input and one target per pair
    <root>/train/<id>_target.wav
    <root>/valid/...  <root>/test/...

``manifest.json``::

    {"format": 1, "task": "amp", "source": {...how the data was made or where it came from...},
     "sample_rate": 22050, "channels": 1, "seed": 0,
     "command": "fxlib data amp build --root data/amp",
     "params": {...the settings that determine the files...},
     "pairs": [{"id": "0000", "split": "train", "input": "train/0000_input.wav",
                "target": "train/0000_target.wav", "duration": 10.0,
                "input_sha256": "...", "target_sha256": "..."}, ...]}

Paths are relative to ``<root>``; ``duration`` is in seconds; the checksums are optional.
:class:`PairWriter` writes such a data set pair by pair so that an interrupted run resumes
where it stopped; :class:`PairedDataset` loads one split into memory.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..atomic import atomic_output
from .audio import AudioFileError, DataError, DataNotFoundError, load_audio
from .download import file_digest

MANIFEST = "manifest.json"
PARTIAL = "manifest.partial.json"
FORMAT = 1
SPLITS = ("train", "valid", "test")
HINT = ("build it offline with `fxlib data <task> build --root {root}` or download the paper's "
        "data with `fxlib data <task> download --root {root}`, where <task> is amp, breath or mastering")


@dataclass(frozen=True)
class Pair:
    """One (input, target) pair of a data set.

    Attributes:
        id: unique within the data set; also the stem of its file names.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        input, target: WAV paths relative to the data set's root.
        duration: in seconds.
        input_sha256, target_sha256: hex digests of the files, or ``None``.
        info: optional facts about the pair (instrument, tempo, source file names, ...).
    """

    id: str
    split: str
    input: str
    target: str
    duration: float
    input_sha256: str | None = None
    target_sha256: str | None = None
    info: dict[str, Any] | None = None


@dataclass
class Manifest:
    """The contents of ``manifest.json`` (see the module docstring)."""

    task: str
    source: dict[str, Any]
    sample_rate: int
    channels: int
    seed: int
    command: str
    params: dict[str, Any] = field(default_factory=dict)
    pairs: list[Pair] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> "Manifest":
        """Check and convert the JSON content of manifest file ``path``."""
        if not isinstance(data, dict):
            raise DataError(f"{path}: a manifest is a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise DataError(f"{path}: manifest format {data.get('format')!r}, this fxlib reads format {FORMAT}")
        keys = ("task", "source", "sample_rate", "channels", "seed", "command", "params", "pairs")
        missing = [k for k in keys if k not in data]
        if missing:
            raise DataError(f"{path}: manifest lacks {', '.join(map(repr, missing))}")
        if not isinstance(data["pairs"], list):
            raise DataError(f"{path}: 'pairs' must be a list")
        pairs = []
        for i, p in enumerate(data["pairs"]):
            try:
                pair = Pair(**p)
            except TypeError as e:
                raise DataError(f"{path}: pair #{i} is malformed ({e}): {p!r}") from e
            if pair.split not in SPLITS:
                raise DataError(f"{path}: pair {pair.id!r} has split {pair.split!r}, not one of {SPLITS}")
            pairs.append(pair)
        return cls(**{k: data[k] for k in keys[:-1]}, pairs=pairs)


def write_manifest(root: str | Path, manifest: Manifest, name: str = MANIFEST) -> Path:
    """Write ``manifest`` as ``<root>/<name>`` (JSON), atomically; return its path."""
    path = Path(root) / name
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    return path


def read_manifest(root: str | Path, name: str = MANIFEST) -> Manifest:
    """Read and check ``<root>/<name>``.

    Raises:
        DataNotFoundError: the folder or the manifest does not exist (the message says how to
            build or download the data).
        DataError: the manifest is not valid JSON or lacks fields.
    """
    root = Path(root)
    path = root / name
    if not root.is_dir():
        raise DataNotFoundError(f"data folder {root} does not exist; " + HINT.format(root=root))
    if not path.is_file():
        state = " (an unfinished build or download left manifest.partial.json)" if (root / PARTIAL).exists() else ""
        raise DataNotFoundError(f"{root} has no {name}{state}: the data set is incomplete; run the command that "
                                f"makes it again to finish it, or " + HINT.format(root=root))
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    return Manifest.from_dict(data, path)


def split_names(n: int, seed: int = 0, test: float = 0.1, valid_of_rest: float = 0.11111111111) -> list[str]:
    """Assign ``n`` files to train, valid and test, deterministically from ``seed``.

    The rule of the paper's code, which applied scikit-learn's ``train_test_split`` twice to
    the sorted file list: ``test`` of the files go to test, then ``valid_of_rest`` of the
    others to valid (0.1 and 0.11111111111 there: 80/10/10). Each draw takes
    ``ceil(fraction * count)`` files from the front of
    ``numpy.random.RandomState(seed).permutation(count)``, so ``seed=0`` reproduces the paper's
    split of a sorted file list.

    Returns:
        ``names[i]`` is the split of file ``i``.
    """
    if n < 3:
        raise DataError(f"splitting needs at least 3 files (one per split), got {n}")
    if not (0 < test < 1 and 0 < valid_of_rest < 1):
        raise DataError(f"split fractions must be in (0, 1), got test={test}, valid_of_rest={valid_of_rest}")
    names = ["train"] * n
    test_idx, rest = _take(np.arange(n), test, seed)
    valid_idx, _ = _take(rest, valid_of_rest, seed)
    for i in test_idx:
        names[i] = "test"
    for i in valid_idx:
        names[i] = "valid"
    return names


def _take(indices: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(taken, rest)``: ``ceil(fraction * len)`` of ``indices`` from the front of a seeded permutation."""
    perm = np.random.RandomState(seed).permutation(len(indices))
    k = math.ceil(fraction * len(indices))
    return indices[perm[:k]], indices[perm[k:]]


def match_lengths(inp: np.ndarray, tgt: np.ndarray, sample_rate: int, tolerance: float,
                  name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Trim an input and a target to the shorter one's length.

    Args:
        inp, tgt: ``(C, T_in)`` and ``(C, T_tgt)``.
        sample_rate: in Hz.
        tolerance: the largest length difference accepted, in seconds.
        name: what the pair is called in the error message.

    Returns:
        ``(inp, tgt, trimmed)``, both ``(C, min(T_in, T_tgt))``; ``trimmed`` = samples removed.

    Raises:
        AudioFileError: the lengths differ by more than ``tolerance``.
    """
    a, b = inp.shape[1], tgt.shape[1]
    if abs(a - b) > tolerance * sample_rate:
        raise AudioFileError(f"{name}: input has {a} samples, target {b} ({abs(a - b) / sample_rate:.3f} s apart, "
                             f"more than the {tolerance:g} s tolerated): not the same recording?")
    n = min(a, b)
    return inp[:, :n], tgt[:, :n], abs(a - b)


class PairWriter:
    """Writes a data set pair by pair, resumably; ``manifest.json`` comes last.

    A writer compares ``params`` with those of a manifest (complete or partial) already in
    ``root``: different settings are refused (the files would not match them). A pair whose
    files exist with the checksums recorded there is reused; anything else is (re)written by
    the caller. After each pair ``manifest.partial.json`` is updated; :meth:`finish` writes
    ``manifest.json`` and removes it. Before the first file is rewritten an existing
    ``manifest.json`` is renamed to ``manifest.partial.json``, so the data set never looks
    complete while its files change.

    Args:
        root: the data set folder (created).
        header: the manifest's fields; its ``pairs`` are ignored.

    Example::

        writer = PairWriter(root, Manifest("amp", source, 22050, 1, seed, command, params))
        for pair_id in ids:
            if not writer.reuse(pair_id):
                ... write the two files ...
                writer.add(writer.pair(pair_id, split, duration))
        writer.finish()
    """

    def __init__(self, root: str | Path, header: Manifest) -> None:
        self.root = Path(root)
        self.header = replace(header, params=json.loads(json.dumps(header.params)), pairs=[])
        self.pairs: list[Pair] = []
        self._known: dict[str, Pair] = {}
        for name in (MANIFEST, PARTIAL):
            if (self.root / name).is_file():
                previous = read_manifest(self.root, name)
                if (previous.task, previous.params) != (self.header.task, self.header.params):
                    raise DataError(f"{self.root / name} was made with other settings ({previous.params}) than "
                                    f"these ({self.header.params}); use another folder or delete {self.root}")
                self._known.update({p.id: p for p in previous.pairs})
        self.root.mkdir(parents=True, exist_ok=True)

    def paths(self, pair_id: str, split: str) -> tuple[Path, Path]:
        """The input and target WAV paths of a pair."""
        return self.root / split / f"{pair_id}_input.wav", self.root / split / f"{pair_id}_target.wav"

    def reuse(self, pair_id: str) -> bool:
        """True (and the pair is kept) if its files exist with their recorded checksums."""
        known = self._known.get(pair_id)
        if known is not None and all(
                (self.root / rel).is_file() and file_digest(self.root / rel) == digest
                for rel, digest in ((known.input, known.input_sha256), (known.target, known.target_sha256))):
            self.pairs.append(known)
            return True
        if (self.root / MANIFEST).exists():
            os.replace(self.root / MANIFEST, self.root / PARTIAL)
        return False

    def pair(self, pair_id: str, split: str, duration: float, info: dict[str, Any] | None = None) -> Pair:
        """The record of a pair whose two files have just been written (checksums computed here)."""
        inp, tgt = self.paths(pair_id, split)
        return Pair(pair_id, split, inp.relative_to(self.root).as_posix(), tgt.relative_to(self.root).as_posix(),
                    round(float(duration), 6), file_digest(inp), file_digest(tgt), info)

    def add(self, pair: Pair) -> None:
        """Record a newly written pair and save the progress."""
        self.pairs.append(pair)
        write_manifest(self.root, replace(self.header, pairs=self.pairs), PARTIAL)

    def audio(self, sample_rate: int, channels: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray, Pair]]:
        """``(input (C, T), target (C, T), pair)`` of every pair written or reused so far, read back
        from disk (at ``sample_rate``, ``channels``), for the statistics a builder records."""
        for pair in self.pairs:
            yield (load_audio(self.root / pair.input, sample_rate, channels)[0],
                   load_audio(self.root / pair.target, sample_rate, channels)[0], pair)

    def finish(self) -> Path:
        """Write ``manifest.json`` (pairs in the order given) and remove the progress file."""
        ids = [p.id for p in self.pairs]
        if len(set(ids)) != len(ids):
            raise DataError(f"{self.root}: pair ids are not unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        path = write_manifest(self.root, replace(self.header, pairs=self.pairs))
        (self.root / PARTIAL).unlink(missing_ok=True)
        return path


class PairedDataset:
    """One split of a paired data set, loaded into memory.

    Args:
        root: the data set folder (see the module docstring).
        split: ``"train"``, ``"valid"``, ``"test"``, or ``None`` for every pair.
        sample_rate: in Hz; files at another rate are resampled (or refused, see ``resample``).
            ``None`` keeps the manifest's rate.
        channels: 1 or 2; files are converted (mono copied, stereo averaged). ``None`` keeps them.
        resample: ``False`` makes a file at another rate an error instead.
        length_tolerance: seconds; an input and target that differ in length by up to this are
            trimmed to the shorter (with one warning for the data set), more is an error.

    Shape:
        ``dataset[i]`` is ``(input, target)``, both float32 ``(C, T_i)``.

    Raises:
        DataNotFoundError: missing folder, manifest or audio file.
        AudioFileError: a corrupt WAV, a rate mismatch with ``resample=False``, or an input and
            target of very different lengths (the file is named).
        DataError: a malformed manifest, an unknown split, or no pairs in the split.
    """

    def __init__(self, root: str | Path, split: str | None, sample_rate: int | None = 22050, channels: int | None = 1,
                 resample: bool = True, length_tolerance: float = 0.05) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if split is not None and split not in SPLITS:
            raise DataError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if not self.manifest.pairs:
            raise DataError(f"{self.root / MANIFEST} lists no pairs: the data set is empty")
        self.split = split
        self.sample_rate = int(sample_rate or self.manifest.sample_rate)
        self.channels = channels
        self.pairs = [p for p in self.manifest.pairs if split is None or p.split == split]
        if not self.pairs:
            counts = {s: sum(p.split == s for p in self.manifest.pairs) for s in SPLITS}
            raise DataError(f"{self.root / MANIFEST} has no pairs in split {split!r} "
                            f"({', '.join(f'{s}: {n}' for s, n in counts.items())})")
        self.inputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        trimmed = []
        for pair in self.pairs:
            inp = self._load(pair.input, resample)
            tgt = self._load(pair.target, resample)
            inp, tgt, cut = match_lengths(inp, tgt, self.sample_rate, length_tolerance,
                                          f"pair {pair.id!r} ({self.root / pair.input}, {self.root / pair.target})")
            if cut:
                trimmed.append((pair.id, cut))
            self.inputs.append(inp)
            self.targets.append(tgt)
        if len({x.shape[0] for x in self.inputs}) > 1:
            raise AudioFileError(f"{self.root}: files have different channel counts; pass channels=1 or 2")
        if trimmed:
            worst = max(trimmed, key=lambda t: t[1])
            warnings.warn(f"{self.root}: {len(trimmed)} pair(s) had inputs and targets of slightly different "
                          f"lengths and were trimmed to the shorter (at most {worst[1]} samples, pair {worst[0]!r})",
                          stacklevel=2)

    def _load(self, rel: str, resample: bool) -> np.ndarray:
        path = self.root / rel
        audio, rate = load_audio(path, self.sample_rate if resample else None, self.channels)
        if rate != self.sample_rate:
            raise AudioFileError(f"{path}: sample rate {rate} Hz, but {self.sample_rate} Hz was asked for "
                                 "and resample=False")
        return audio

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[i], self.targets[i]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.pairs]

    @property
    def seconds(self) -> float:
        """Total duration of the loaded inputs, in seconds."""
        return sum(x.shape[1] for x in self.inputs) / self.sample_rate

    def __repr__(self) -> str:
        return (f"PairedDataset({str(self.root)!r}, split={self.split!r}, pairs={len(self)}, "
                f"{self.seconds:.1f} s at {self.sample_rate} Hz)")
