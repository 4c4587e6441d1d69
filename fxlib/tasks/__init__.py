"""Task configurations: one module per application, each holding its profiles.

A :class:`Task` names the chain presets to try (the paper's LV2 chain first, then portable
ones), how to get its data (the module ``fxlib.data.<name>``), the task's own metrics and
baselines, and three :class:`Profile` s:

* ``smoke``: seconds, for tests;
* ``quick``: minutes on 2 cores, the default of ``make reproduce``;
* ``paper``: the paper's settings (batch 100, 1000 steps per epoch, patience 25, ...).
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..chain import FxChain
from ..data.audio import DataError
from ..data.paired import read_manifest
from ..errors import FxError, SpecError
from ..framing import INFERENCE
from ..params import closest
from ..presets import chain_spec

log = logging.getLogger(__name__)

#: The task names: one module per task in this package (``amp``, ``breath``, ``mastering``).
TASKS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))

#: ``f(input (C, T)) -> output (C, T)``: one system of the evaluation (a baseline or the model).
System = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Profile:
    """The settings of one training and evaluation run; every unit is stated.

    Data:
        data_seconds: audio per built dataset (offline builder), in seconds.
        context: encoder input length in samples (the paper: 40960 at 22.05 kHz).
        frame: samples rendered by the effects per item and step (the paper: 1024).
        batch_size: items per step (the paper: 100).
    Encoder:
        backbone: "small", "mobilenetv2" or "inception".
        pooling: "global" (the paper's), "centre" or "centre-bands" (also the features at the
            context's centre, averaged over frequency or band by band, for controls that must
            follow what sounds at the rendered frame; see :mod:`fxlib.encoder`).
        curves: ``{regular expression: knots}``: learned parameters that are points of one curve
            (a graphic EQ's band gains) are predicted as a piecewise-linear curve through that
            many knots (:func:`fxlib.model.curve_ranges`); ``{}``: every parameter on its own.
    Stage 1 (regress the default parameters):
        stage1_steps: steps per epoch; stage1_epochs: at most; stage1_lr; stage1_patience.
        stage1_margin: stage 1 regresses each default moved at least this far (normalised units)
            inside [0, 1]. A default at a bound, such as Calf's makeup gains (0 dB, the bottom of
            their range), drives the encoder's sigmoid into saturation, where its slope, and so
            every stage-2 step on that control, is near 0; 0 regresses the defaults as they are
            (the paper).
    Stage 2 (through the effects):
        steps_per_epoch, epochs (at most), lr, patience (early stopping, in epochs),
        phase_lr_factor: stage-2 phase k (of a progressive, multi-effect chain) starts at
            ``lr * phase_lr_factor ** (k - 1)``: a new effect joins an encoder already trained
            through the earlier ones, and a full-size first step would undo much of that;
        min_lr (ReduceLROnPlateau floor), lr_factor, lr_patience (epochs),
        valid_batches: batches of the validation split per evaluation.
    SPSA:
        epsilon (normalised units), draws (K), mode ("stream" or "clip"), workers (None: cores).
    Loss:
        loss: "spectral" (the paper's) or "mrstft".
        loss_options: keyword arguments of that loss (:func:`fxlib.losses.get_loss`), such as
            ``{"w_loudness": 0.05}`` for the spectral loss's K-weighted level term; ``{}``: the
            loss as the paper defines it.
        anchor: weight of an MSE term holding the parameters of the effects not yet trained
            (progressive stage 2 of a multi-effect chain) at their defaults, so that a shared
            encoder does not carry them off while the earlier effects train; 0 turns it off.
    Baselines:
        fixed_steps: SPSA steps fitting the single best fixed parameter vector;
        fixed_lr: their Adam learning rate (on the unit vector itself);
        neural_steps: optimiser steps of a task's end-to-end neural baseline
            (:mod:`fxlib.baselines.neural`), a multiple of 6.
    Inference:
        inference: how the trained model sets the chain over a whole file
            (:data:`fxlib.framing.INFERENCE`): ``"hop"``, a parameter vector per hop (the paper's);
            ``"song"``, the mean of those vectors over the file, for targets made with the chain
            set once per file.
        level_trim: after training, measure the gain (dB) that makes the model's outputs as loud
            as the targets on average over the training split (integrated loudness of whole
            files, :func:`fxlib.calibrate.level_trim`) and apply it after the chain, to the model
            and to the best fixed vector alike (each gets its own); for targets set to a loudness
            that the chain cannot reach. False (every shipped profile): the paper's recipe, no
            gain after the chain.
    """

    data_seconds: float = 240.0
    context: int = 40960
    frame: int = 1024
    batch_size: int = 16
    backbone: str = "small"
    pooling: str = "global"
    curves: Mapping[str, int] = field(default_factory=dict)
    stage1_steps: int = 50
    stage1_epochs: int = 20
    stage1_lr: float = 1e-3
    stage1_patience: int = 4
    stage1_margin: float = 0.0
    steps_per_epoch: int = 100
    epochs: int = 10
    lr: float = 1e-4
    phase_lr_factor: float = 1.0
    patience: int = 25
    min_lr: float = 1.6e-6
    lr_factor: float = 0.5
    lr_patience: int = 3
    valid_batches: int = 10
    epsilon: float = 0.01
    draws: int = 1
    mode: str = "stream"
    workers: int | None = None
    loss: str = "spectral"
    loss_options: Mapping[str, float] = field(default_factory=dict)
    anchor: float = 1.0
    fixed_steps: int = 500
    fixed_lr: float = 1e-3
    neural_steps: int = 300
    inference: str = "hop"
    level_trim: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.stage1_margin < 0.5:
            raise SpecError(f"profile setting stage1_margin must be in [0, 0.5), got {self.stage1_margin}")
        if self.inference not in INFERENCE:
            raise SpecError(f"profile setting inference must be one of {', '.join(map(repr, INFERENCE))}, "
                            f"got {self.inference!r}")

    def override(self, **changes: Any) -> "Profile":
        """A copy with some settings changed (unknown names raise :class:`SpecError`)."""
        known = set(asdict(self))
        for key in changes:
            if key not in known:
                raise SpecError(f"profile has no setting {key!r}{closest(key, known)}")
        return replace(self, **changes)


#: The listening test's protocol (the same for the three tasks) and where it is known from.
PROTOCOL = ("web-based MUSHRA-style test, 17 participants, five 4-second excerpts per task, paired t-tests with "
            "Bonferroni correction; hidden reference = the target (high anchor), low anchor = the unprocessed "
            "input, plus a mid anchor")
PROTOCOL_SOURCE = ("a secondary account of the paper (a review), as summarised in the project's notes on the paper; "
                   "the conditions as the published stimuli show them (fxlib.data.paper_examples)")


@dataclass(frozen=True)
class PaperResults:
    """What the paper's own evaluation of a task compared, under our systems' names.

    The known orders of the conditions and the listeners' medians are kept, with their sources,
    beside the measures validated on them (:data:`fxlib.listeners.KNOWN_ORDERS`,
    :data:`fxlib.listeners.LISTENER_MEDIANS`), in the names of the paper's conditions
    (:data:`fxlib.data.paper_examples.CONDITIONS`); this maps ours onto those.

    Attributes:
        conditions: ``{our system or condition: the paper's condition}``: ``reference`` (the hidden
            reference, the paper's ``target``), ``mid-anchor``, ``input`` (the low anchor),
            ``deepafx``, and the task's baseline that stands in for the paper's other system.
        stand_in: what the paper's other system was and why ours stands in for it ("" if none).
        protocol: the test's protocol; protocol_source: where it is known from.
        metrics: ``{system: {metric: value}}`` objective figures under our metric names (none are
            known: the released evaluation computes only an MFCC distance, on unreported data).
    """

    conditions: Mapping[str, str]
    stand_in: str = ""
    protocol: str = PROTOCOL
    protocol_source: str = PROTOCOL_SOURCE
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One application of the paper.

    Args:
        name: "amp", "breath" or "mastering".
        description: one line.
        chains: preset chain names to try in order (the first that builds is used).
        sample_rate: Hz; channels: 1 or 2.
        build_data: ``(root, seconds, seed) -> None``, the offline dataset builder.
        data_generator: that builder's version (its ``GENERATOR``), which an offline data set's
            manifest records; a set built by another version is refused, not reused.
        profiles: ``{"smoke": Profile, "quick": Profile, "paper": Profile}``.
        paper_results: what is known of the paper's evaluation of this task (:class:`PaperResults`).
        metrics: optional task metrics per test file,
            ``f(output (C, T), target (C, T), input (C, T), pair, sample_rate) -> {name: value}``,
            where ``pair`` is the file's :class:`~fxlib.data.paired.Pair` (its ``info`` holds
            labels such as event times); added to :func:`fxlib.metrics.compute_all`'s.
        baselines: optional task baselines, ``f(data_root, sample_rate, channels, profile, cache_dir) ->
            {name: System}``, fitted on the data set's training split; ``cache_dir`` is where a
            baseline may keep what it trains (the run folder's ``baselines/``; None: keep nothing),
            evaluated beside the standard systems (input, chain at defaults and best fixed, model).
        higher_is_better: metric names where larger is better (all others: lower is better).
        mid_anchor: how the virtual listening test builds the mid anchor from an excerpt's input and
            target, as the paper's published ones suggest (:func:`fxlib.comparisons.mid_anchor`):
            ``"mix"`` or ``"gain"``.
    """

    name: str
    description: str
    chains: tuple[str, ...]
    sample_rate: int
    channels: int
    build_data: Callable[..., Any]
    data_generator: str
    profiles: dict[str, Profile] = field(default_factory=dict)
    paper_results: PaperResults | None = None
    metrics: Callable[..., dict[str, float]] | None = None
    baselines: Callable[[Path, int, int, "Profile", Path | None], Mapping[str, System]] | None = None
    higher_is_better: tuple[str, ...] = ()
    mid_anchor: str = "mix"

    def profile(self, name: str) -> Profile:
        """The profile ``name``; :class:`SpecError` naming the choices otherwise."""
        if name not in self.profiles:
            raise SpecError(f"task {self.name!r} has no profile {name!r}{closest(name, self.profiles)}; "
                            f"profiles: {', '.join(self.profiles)}")
        return self.profiles[name]

    def profile_name(self, profile: str | Profile) -> str:
        """The name of ``profile``: itself when a name, else the name of the task's profile that equals it,
        else ``"custom"``."""
        if isinstance(profile, str):
            return profile
        return next((name for name, p in self.profiles.items() if p == profile), "custom")

    def select_chain(self, requested: str | None = None) -> tuple[str, dict]:
        """``(name, spec)`` of the first of the task's preset chains that builds here (or of ``requested``).

        Raises:
            FxError: no chain builds, with each one's reason.
        """
        reasons = []
        for name in [requested] if requested else self.chains:
            spec = chain_spec(name)
            try:
                FxChain.from_spec(spec).close()
            except FxError as e:
                reasons.append(f"{name}: {e}")
                continue
            return name, spec
        raise FxError(f"no chain of task {self.name!r} can be built here:\n  " + "\n  ".join(reasons))

    def ensure_data(self, root: Path, profile: Profile, seed: int) -> Path:
        """The data set folder ``root``, built with the task's offline builder when it has no manifest.

        Raises:
            FileNotFoundError: no data set and the profile builds none (it expects downloaded data).
            DataError: the folder holds an offline build of another size than the profile's
                ``data_seconds`` (for example a smoke-sized build where quick is asked for), or one
                made by another version of the builder.
        """
        if not (root / "manifest.json").exists():
            if profile.data_seconds <= 0:
                raise FileNotFoundError(f"{root} holds no dataset (no manifest.json); download it with "
                                        f"`fxlib data {self.name} download --root {root}`")
            log.info("building the offline %s dataset in %s", self.name, root)
            self.build_data(root, profile.data_seconds, seed)
            return root
        manifest = read_manifest(root)
        if manifest.source.get("kind") == "offline" and manifest.params.get("generator") != self.data_generator:
            raise DataError(f"{root} holds an offline {self.name} build by {manifest.params.get('generator')}, not by "
                            f"today's builder ({self.data_generator}); delete {root} to build it again")
        seconds = sum(p.duration for p in manifest.pairs)
        if manifest.source.get("kind") == "offline" and profile.data_seconds > 0 \
                and abs(seconds - profile.data_seconds) > 0.1 * profile.data_seconds:
            raise DataError(f"{root} holds an offline {self.name} build of {seconds:.0f} s, but this profile asks "
                            f"for {profile.data_seconds:.0f} s; pass another data folder (--data) or delete {root} "
                            "to build it again")
        return root


def get_task(name: str) -> Task:
    """The :class:`Task` named ``name`` (one of :data:`TASKS`)."""
    if name not in TASKS:
        raise SpecError(f"no task named {name!r}{closest(name, TASKS)}; tasks: {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}").TASK
