"""Objective listeners: measures that may stand in for a listening test, validated on the paper's own stimuli.

A measure is ``measure(test, reference, sample_rate) -> float`` on numpy audio ``(C, T)`` or
``(T,)`` (full-scale units; channels averaged to mono), with a stated direction
(:attr:`Measure.higher_is_better`). The panel (:data:`MEASURES`; which ones each task uses:
:data:`PANELS`):

=====================  ======  =====================================================================
name                   better  what
=====================  ======  =====================================================================
``visqol_audio``       higher  ViSQOL v3 audio mode (``visqol-python``, its bundled SVR model),
                               MOS-LQO 1-5, at 48 kHz, the test scaled to the reference's loudness
``visqol_speech``      higher  ViSQOL v3 speech mode at 16 kHz with the deep-lattice mapping of the
                               C++ release (``ai-edge-litert`` runs its bundled model), loudness-matched
``dnsmos_ovrl``        higher  DNSMOS P.835 overall quality (``speechmos`` on ``onnxruntime``, bundled
                               models), 16 kHz, non-intrusive: the reference is not used
``dnsmos_bak``         higher  DNSMOS P.835 background-noise quality, likewise
``loudness_error_lu``  lower   ``|L_test - L_ref|``, integrated loudness (BS.1770), LU
``lsd_db``             lower   multi-resolution log-spectral distance (FFT 256, 1024, 4096), dB
``lsd_matched_db``     lower   the same after scaling the test to the reference's loudness
``mfcc_cosine``        lower   :func:`fxlib.metrics.mfcc_cosine` (energy-normalised)
``event_error_db``     lower   breath: the test's short-time magnitude error inside the events that
                               the input and the reference differ by (:func:`fxlib.data.stats.locate_events`)
                               and outside them, each relative to the input's, dB; also takes the input
=====================  ======  =====================================================================

The optional packages are imported when a measure first runs; a missing one raises
:class:`~fxlib.errors.MissingPackageError` naming it and the pip line (:data:`PACKAGES`).

**Validation** (:func:`validate`). A measure may carry a task's virtual listening test only if,
on the paper's own stimuli (:mod:`fxlib.data.paper_examples`), it orders the conditions as the
listening test's design and listeners did (:data:`KNOWN_ORDERS`): the anchors (target > mid
anchor > low anchor, the unprocessed input) in every task, and for mastering the listeners'
medians (:data:`LISTENER_MEDIANS`). The hidden reference is the target itself, so an intrusive
measure (one that compares with the reference) gives it a trivially perfect score: intrusive
measures are not asked to score it, and their checks leave it out (mid anchor > low anchor; for
mastering DeepAFx > online service > mid anchor > low anchor). Non-intrusive measures score
every condition, the reference included. The pass rule (:data:`PASS_RULE`): the anchors in the
right order in every example, and for mastering also the order of the conditions' median scores
equal to the listeners' (Kendall tau 1) with a mean per-example Kendall tau of at least
:data:`MIN_MEAN_TAU`. :func:`score_systems` gives every condition's scores (the paper's systems
re-measured) without judging.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .data.audio import resample
from .data.paper_examples import CONDITIONS, Example, LoadedExample, load_example
from .data.stats import check_rate, frame_power_spectra, locate_events, magnitude_difference, mono
from .errors import AudioFormatError, FxError, require
from .metrics import loudness_lufs, mfcc_cosine

VISQOL_AUDIO_RATE = 48000
VISQOL_SPEECH_RATE = 16000
DNSMOS_RATE = 16000
LSD_FFT_SIZES = (256, 1024, 4096)  # hop a quarter of each, Hann
LSD_POWER_FLOOR = 1e-10  # -100 dB re full-scale power per bin: below it, bins count as equal

#: The pip line of each optional package, by import name.
PACKAGES = {
    "visqol": "pip install visqol-python==3.8.0",
    "ai_edge_litert": "pip install ai-edge-litert==2.3.0",
    "speechmos": "pip install speechmos==0.0.1.1 onnxruntime==1.31.1 requests",
    "onnxruntime": "pip install onnxruntime==1.31.1",
}

#: The conditions of each task in the order the listening test's design (the anchors) and, for
#: mastering, the listeners put them, best first.
KNOWN_ORDERS: dict[str, tuple[str, ...]] = {
    "amp": ("target", "mid_anchor", "input"),
    "breath": ("target", "mid_anchor", "input"),
    "mastering": ("target", "deepafx", "online_service", "mid_anchor", "input"),
}
#: The listeners' median scores (0-1) of the mastering test, and where they come from.
LISTENER_MEDIANS = {"mastering": {"target": 0.95, "deepafx": 0.88, "online_service": 0.79,
                                  "mid_anchor": 0.24, "input": 0.15}}
LISTENER_MEDIANS_SOURCE = ("a secondary account of the paper (a review), as summarised in the project's notes "
                           "on the paper")
MIN_MEAN_TAU = 0.6
PASS_RULE = ("anchors in the designed order in every example (intrusive measures: mid anchor better than the "
             "low anchor, the hidden reference left out; non-intrusive: target > mid anchor > low anchor), and for "
             "mastering also the conditions' median scores in the listeners' order (Kendall tau 1) and a mean "
             f"per-example Kendall tau of at least {MIN_MEAN_TAU}")
HIDDEN_REFERENCE = ("an intrusive measure compares each condition with the target, so the target (the hidden "
                    "reference) would score itself perfectly: intrusive measures do not score it and their "
                    "checks leave it out; non-intrusive measures score it like any condition")


def _require(module: str, measure: str) -> Any:
    """Import ``module`` for ``measure``, or raise :class:`~fxlib.errors.MissingPackageError` with its pip line."""
    return require(module, measure, PACKAGES[module.partition(".")[0]])


# ---------------------------------------------------------------------------- helpers

def _pair(test: np.ndarray, reference: np.ndarray, sample_rate: float,
          measure: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(test, reference, rate)``: mono float64 of one length, and the rate as an int."""
    sr = check_rate(sample_rate, measure)
    a, b = mono(test, "test", measure), mono(reference, "reference", measure)
    if a.shape != b.shape:
        raise AudioFormatError(f"{measure}: test has {a.size} samples but reference has {b.size}; align them "
                               "first (fxlib.data.paper_examples.load_example does)")
    return a, b, sr


def _loudness_matched(test: np.ndarray, reference: np.ndarray, sample_rate: int, measure: str) -> np.ndarray:
    """``test`` scaled so its integrated loudness equals the reference's (BS.1770)."""
    levels = {"test": loudness_lufs(test, sample_rate), "reference": loudness_lufs(reference, sample_rate)}
    for name, level in levels.items():
        if not math.isfinite(level):
            raise AudioFormatError(f"{measure}: the {name} is silent (below the -70 LUFS loudness gate)")
    return test * 10 ** ((levels["reference"] - levels["test"]) / 20)


def _at(x: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """Mono float64 ``x`` resampled to ``rate`` (polyphase)."""
    return x if sample_rate == rate else resample(x[None], sample_rate, rate)[0].astype(np.float64)


# ---------------------------------------------------------------------------- ViSQOL

@functools.lru_cache(maxsize=None)
def _visqol(mode: str) -> Any:
    """A ViSQOL API object for ``mode`` (``"audio"`` or ``"speech"``), made once."""
    visqol = _require("visqol", f"visqol_{mode}")
    api = visqol.VisqolApi()
    if mode == "speech":
        _require("ai_edge_litert", "visqol_speech")
        api.create(mode="speech", use_lattice_model=True)
    else:
        api.create(mode="audio")
    return api


def visqol_audio(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """ViSQOL v3 audio mode, MOS-LQO from 1 to about 4.7 (higher is better).

    ``visqol-python`` (a port of Google's ViSQOL v3.3.3) with its bundled SVR model: both
    signals resampled to 48 kHz (the rate the model was trained at) and the test scaled to the
    reference's integrated loudness first, so the score is about quality, not level (the
    loudness error is its own measure).
    """
    t, r, sr = _pair(test, reference, sample_rate, "visqol_audio")
    t = _loudness_matched(t, r, sr, "visqol_audio")
    result = _visqol("audio").measure_from_arrays(_at(r, sr, VISQOL_AUDIO_RATE), _at(t, sr, VISQOL_AUDIO_RATE),
                                                   VISQOL_AUDIO_RATE)
    return float(result.moslqo)


def visqol_speech(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """ViSQOL v3 speech mode, MOS-LQO from 1 to about 4.5 (higher is better).

    At 16 kHz, with the deep-lattice mapping from similarity to MOS that the C++ release uses
    by default (its bundled ``.tflite`` model, run by ``ai-edge-litert``); the test is scaled
    to the reference's loudness first, as in :func:`visqol_audio`.
    """
    t, r, sr = _pair(test, reference, sample_rate, "visqol_speech")
    t = _loudness_matched(t, r, sr, "visqol_speech")
    result = _visqol("speech").measure_from_arrays(_at(r, sr, VISQOL_SPEECH_RATE), _at(t, sr, VISQOL_SPEECH_RATE),
                                                    VISQOL_SPEECH_RATE)
    return float(result.moslqo)


# ---------------------------------------------------------------------------- DNSMOS

def _dnsmos(test: np.ndarray, sample_rate: float, measure: str) -> dict[str, float]:
    """speechmos's DNSMOS scores of ``test`` at 16 kHz: ``{"ovrl_mos", "sig_mos", "bak_mos", "p808_mos"}``."""
    _require("onnxruntime", measure)
    _require("speechmos.dnsmos", measure)
    x, _, sr = _pair(test, test, sample_rate, measure)
    x = _at(x, sr, DNSMOS_RATE)
    peak = np.max(np.abs(x))
    if peak == 0:
        raise AudioFormatError(f"{measure}: the test is silent")
    if peak > 1:  # speechmos refuses samples beyond full scale
        x = x / peak
    return dict(_dnsmos_scores(x.astype(np.float32).tobytes()))


@functools.lru_cache(maxsize=16)
def _dnsmos_scores(samples: bytes) -> tuple[tuple[str, float], ...]:
    """DNSMOS of float32 16 kHz samples (cached: OVRL and BAK come from one run, a few seconds each)."""
    from speechmos import dnsmos

    scores = dnsmos.run(np.frombuffer(samples, np.float32), DNSMOS_RATE)
    return tuple((k, float(v)) for k, v in scores.items() if isinstance(v, (float, np.floating)))


def dnsmos_ovrl(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """DNSMOS P.835 overall quality (OVRL), about 1-5 (higher is better); non-intrusive.

    ``speechmos.dnsmos`` (Microsoft's DNSMOS ONNX models, shipped in the package) at 16 kHz;
    a clip shorter than the model's 9.01 s input is repeated to fill it (speechmos's rule), a
    test whose samples exceed full scale is scaled to peak 1. ``reference`` is checked for its
    shape but not used.
    """
    _pair(test, reference, sample_rate, "dnsmos_ovrl")
    return float(_dnsmos(test, sample_rate, "dnsmos_ovrl")["ovrl_mos"])


def dnsmos_bak(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """DNSMOS P.835 background-noise quality (BAK), about 1-5 (higher is better); non-intrusive, as
    :func:`dnsmos_ovrl`."""
    _pair(test, reference, sample_rate, "dnsmos_bak")
    return float(_dnsmos(test, sample_rate, "dnsmos_bak")["bak_mos"])


# ---------------------------------------------------------------------------- level and spectrum

def loudness_error_lu(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """``|L_test - L_ref|``: the integrated loudness error in LU (BS.1770-4; lower is better)."""
    t, r, sr = _pair(test, reference, sample_rate, "loudness_error_lu")
    return abs(loudness_lufs(t, sr) - loudness_lufs(r, sr))


def lsd_db(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """Multi-resolution log-spectral distance in dB (lower is better; 0 for identical signals).

    For each FFT size ``N`` in 256, 1024 and 4096 samples (Hann frames, hop ``N / 4``), the mean
    over frames and bins of ``|10 log10(P_test + e) - 10 log10(P_ref + e)|`` with the power
    spectra of :func:`fxlib.data.stats.frame_power_spectra` and ``e`` = 1e-10 (-100 dB: bins
    below it count as equal); the three means are averaged. Level differences count in full:
    a gain of ``g`` dB reads about ``|g|``.
    """
    t, r, sr = _pair(test, reference, sample_rate, "lsd_db")
    return _lsd(t, r, sr)


def lsd_matched_db(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """:func:`lsd_db` after scaling the test to the reference's integrated loudness: spectral shape, not level."""
    t, r, sr = _pair(test, reference, sample_rate, "lsd_matched_db")
    return _lsd(_loudness_matched(t, r, sr, "lsd_matched_db"), r, sr)


def _lsd(test: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    if test.size < max(LSD_FFT_SIZES):
        raise AudioFormatError(f"lsd_db: needs at least {max(LSD_FFT_SIZES)} samples, got {test.size}")
    distances = []
    for n in LSD_FFT_SIZES:
        p_test, _, _ = frame_power_spectra(test, sample_rate, n / sample_rate, n / 4 / sample_rate)
        p_ref, _, _ = frame_power_spectra(reference, sample_rate, n / sample_rate, n / 4 / sample_rate)
        log_test, log_ref = (10 * np.log10(p + LSD_POWER_FLOOR) for p in (p_test, p_ref))
        distances.append(np.mean(np.abs(log_test - log_ref)))
    return float(np.mean(distances))


def mfcc_distance(test: np.ndarray, reference: np.ndarray, sample_rate: float) -> float:
    """:func:`fxlib.metrics.mfcc_cosine` on the mono signals (lower is better; 0 for identical signals)."""
    t, r, sr = _pair(test, reference, sample_rate, "mfcc_cosine")
    return mfcc_cosine(t, r, sr)


# ---------------------------------------------------------------------------- events

def event_error_db(test: np.ndarray, reference: np.ndarray, sample_rate: float, input: np.ndarray) -> float:
    """Breath and pop removal: how much of the events is left, and how much else changed, in dB (lower is better).

    The events are where the input and the reference differ in short-time magnitude
    (:func:`fxlib.data.stats.locate_events`: what the engineer removed). With ``D_a[t]`` the
    power of the magnitude difference between signal ``a`` and the reference in frame ``t``
    (:func:`fxlib.data.stats.magnitude_difference`; blind to phase, so MP3 coding noise
    counts little):

    - inside the events, ``R_in = sum D_test / sum D_input``: the share of the events' energy
      the test still has (1 for the input, 0 once removed exactly as in the reference);
    - outside them, ``R_out = sum D_test / sum D_input``: the test's error where nothing was to
      be removed, against the input's there (1 for the input, whose only difference there is
      coding noise and the engineer's other edits; more when a system damages the speech).

    The result is ``10 log10((R_in + R_out) / 2)``: about 0 dB for the input itself, -3 dB for a
    system that removes the events exactly and leaves the rest as the input had it, -inf for
    the reference. Without events (the input and reference differ nowhere), ``R_out`` alone.
    The test is first scaled to the reference's integrated loudness, so that an overall gain
    does not count as damage (:func:`loudness_error_lu` measures it).

    Args:
        test, reference, input: aligned audio of one length; sample_rate: in Hz.
    """
    t, r, sr = _pair(test, reference, sample_rate, "event_error_db")
    x, _, _ = _pair(input, reference, sample_rate, "event_error_db")
    t = _loudness_matched(t, r, sr, "event_error_db")
    events = locate_events(x, r, sr)
    d_test, _, _, _, centres = magnitude_difference(t, r, sr)
    d_input = magnitude_difference(x, r, sr)[0]
    inside = np.zeros(centres.size, bool)
    for event in events:
        inside |= (centres >= event["start"]) & (centres <= event["end"])
    ratios = []
    for mask in (inside, ~inside):
        if mask.any():
            reference_error = d_input[mask].sum()
            if reference_error == 0:
                raise AudioFormatError("event_error_db: the input equals the reference where measured")
            ratios.append(d_test[mask].sum() / reference_error)
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(np.mean(ratios)))


# ---------------------------------------------------------------------------- the panel

@dataclass(frozen=True)
class Measure:
    """One objective listener.

    Attributes:
        name: its key in :data:`MEASURES`; fn: the function; unit: of its values.
        higher_is_better: its direction.
        intrusive: it compares the test with the reference (so it cannot score the reference).
        needs_input: it also takes the unprocessed input (``fn(test, reference, rate, input)``).
        description: one line.
    """

    name: str
    fn: Callable[..., float]
    unit: str
    higher_is_better: bool
    intrusive: bool
    needs_input: bool
    description: str

    def __call__(self, test: np.ndarray, reference: np.ndarray, sample_rate: float,
                 input: np.ndarray | None = None) -> float:
        """The measure's value; ``input`` is required when :attr:`needs_input`."""
        if self.needs_input:
            if input is None:
                raise AudioFormatError(f"{self.name}: needs the unprocessed input (input=...)")
            return self.fn(test, reference, sample_rate, input)
        return self.fn(test, reference, sample_rate)

    def describe(self) -> dict[str, Any]:
        """As plain data, without the function."""
        return {"unit": self.unit, "higher_is_better": self.higher_is_better, "intrusive": self.intrusive,
                "needs_input": self.needs_input, "description": self.description}


MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure("visqol_audio", visqol_audio, "MOS-LQO", True, True, False,
            "ViSQOL v3 audio mode, 48 kHz, loudness-matched"),
    Measure("visqol_speech", visqol_speech, "MOS-LQO", True, True, False,
            "ViSQOL v3 speech mode (lattice mapping), 16 kHz, loudness-matched"),
    Measure("dnsmos_ovrl", dnsmos_ovrl, "MOS", True, False, False, "DNSMOS P.835 overall, non-intrusive"),
    Measure("dnsmos_bak", dnsmos_bak, "MOS", True, False, False, "DNSMOS P.835 background, non-intrusive"),
    Measure("loudness_error_lu", loudness_error_lu, "LU", False, True, False, "integrated loudness error"),
    Measure("lsd_db", lsd_db, "dB", False, True, False, "multi-resolution log-spectral distance"),
    Measure("lsd_matched_db", lsd_matched_db, "dB", False, True, False,
            "multi-resolution log-spectral distance, loudness-matched"),
    Measure("mfcc_cosine", mfcc_distance, "cosine distance", False, True, False, "MFCC cosine distance"),
    Measure("event_error_db", event_error_db, "dB", False, True, True,
            "error inside and outside the events located between input and reference"),
)}
"""Every measure by name."""

_GENERAL = ("visqol_audio", "loudness_error_lu", "lsd_db", "lsd_matched_db", "mfcc_cosine")
#: The measures tried on each task.
PANELS: dict[str, tuple[str, ...]] = {
    "amp": _GENERAL,
    "breath": _GENERAL + ("visqol_speech", "dnsmos_ovrl", "dnsmos_bak", "event_error_db"),
    "mastering": _GENERAL,
}


def _measures(measures: Iterable[str | Measure] | None, task: str) -> list[Measure]:
    if task not in PANELS:
        raise FxError(f"unknown task {task!r}; choose {', '.join(PANELS)}")
    chosen = []
    for m in PANELS[task] if measures is None else measures:
        if isinstance(m, Measure):
            chosen.append(m)
        elif m in MEASURES:
            chosen.append(MEASURES[m])
        else:
            raise FxError(f"unknown measure {m!r}; choose from {', '.join(MEASURES)}")
    return chosen


# ---------------------------------------------------------------------------- scoring and validation

def score_systems(examples: Sequence[Example | LoadedExample],
                  measures: Iterable[str | Measure] | None = None) -> dict[str, Any]:
    """Every condition of every example scored by every measure: the paper's systems, re-measured.

    Args:
        examples: of one task, from :func:`fxlib.data.paper_examples.examples` (read with
            :func:`~fxlib.data.paper_examples.load_example`) or already loaded; each must hold
            the target, and the input for a measure that needs it.
        measures: names or :class:`Measure` objects (default: the task's panel, :data:`PANELS`).

    Returns:
        Plain data: ``{"task", "examples": [ids], "conditions": [...], "measures": {name:
        Measure.describe()}, "scores": {name: {id: {condition: value}}}, "medians": {name:
        {condition: median}}, "seconds"}``. Intrusive measures give the target None.
        Ids are strings (JSON keys).
    """
    start = time.perf_counter()
    loaded = [e if isinstance(e, LoadedExample) else load_example(e) for e in examples]
    if not loaded:
        raise FxError("score_systems: no examples given")
    tasks = {e.task for e in loaded}
    if len(tasks) != 1:
        raise FxError(f"score_systems: the examples mix tasks {sorted(tasks)}; score one task at a time")
    task = tasks.pop()
    chosen = _measures(measures, task)
    conditions = [c for c in CONDITIONS if any(c in e.audio for e in loaded)]
    scores: dict[str, dict[str, dict[str, float | None]]] = {m.name: {} for m in chosen}
    for example in loaded:
        reference = example.audio.get("target")
        if reference is None:
            raise FxError(f"{task} example {example.id} has no target; it cannot be scored")
        for m in chosen:
            row = {}
            for condition, audio in example.audio.items():
                if m.intrusive and condition == "target":
                    row[condition] = None
                else:
                    row[condition] = m(audio, reference, example.sample_rate, example.audio.get("input"))
            scores[m.name][str(example.id)] = row
    medians = {name: {c: _median([row.get(c) for row in table.values()]) for c in conditions}
               for name, table in scores.items()}
    return {"task": task, "examples": [str(e.id) for e in loaded], "conditions": conditions,
            "measures": {m.name: m.describe() for m in chosen}, "scores": scores, "medians": medians,
            "seconds": round(time.perf_counter() - start, 1)}


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def kendall_tau(scores: Sequence[float], known: Sequence[float]) -> float:
    """Kendall's tau-a between two rankings: (concordant - discordant pairs) / all pairs, in [-1, 1].

    A pair tied in either sequence counts as neither (so a tie in the measure pulls tau
    towards 0). Both sequences: higher is better; at least two items.
    """
    if len(scores) != len(known) or len(scores) < 2:
        raise FxError(f"kendall_tau: needs two sequences of one length >= 2, got {len(scores)} and {len(known)}")
    total = concordant = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            total += 1
            concordant += int(np.sign(scores[i] - scores[j]) * np.sign(known[i] - known[j]))
    return concordant / total


def validate(examples: Sequence[Example | LoadedExample], task: str,
             measures: Iterable[str | Measure] | None = None) -> dict[str, Any]:
    """Check each measure against the known orders of a task's conditions on its examples.

    For every measure and example, the conditions of :data:`KNOWN_ORDERS` that the measure
    can score (intrusive measures: all but the target, see :data:`HIDDEN_REFERENCE`) are
    ranked by the measure (by its direction) and compared with the known order:

    - ``anchors_right``: examples where the anchors are in the designed order (strictly: a tie
      is wrong): mid anchor better than the low anchor, and for non-intrusive measures the
      target better than the mid anchor;
    - ``tau``: per example, Kendall's tau (:func:`kendall_tau`) between the measure's ranking and
      the known order of the checked conditions; ``tau_mean`` their mean; ``tau_of_medians``:
      the same between the conditions' median scores and the known order;
    - ``passes``: :data:`PASS_RULE`, with ``why`` saying what failed.

    Args:
        examples: the task's examples (each with every condition of :data:`KNOWN_ORDERS`).
        task: ``"amp"``, ``"breath"`` or ``"mastering"``.
        measures: names or :class:`Measure` objects (default: the task's panel).

    Returns:
        Plain data (JSON-able): ``{"task", "rule", "hidden_reference", "known_order",
        "listener_medians", "examples", "measures": {name: {..., "scores", "medians",
        "checked", "anchors_right", "examples", "tau", "tau_mean", "tau_of_medians", "passes",
        "why"}}, "passing": [names], "seconds"}``.
    """
    start = time.perf_counter()
    chosen = _measures(measures, task)
    loaded = [e if isinstance(e, LoadedExample) else load_example(e) for e in examples]
    wrong = [e.id for e in loaded if e.task != task]
    if wrong:
        raise FxError(f"validate: examples {wrong} are not of task {task!r}")
    order = KNOWN_ORDERS[task]
    for e in loaded:
        missing = [c for c in order if c not in e.audio]
        if missing:
            raise FxError(f"validate: {task} example {e.id} lacks {missing}; every condition of the known order "
                          "is needed")
    scored = score_systems(loaded, chosen)
    known_score = {c: len(order) - i for i, c in enumerate(order)}  # higher is better
    results = {}
    for name, meta in scored["measures"].items():
        sign = 1.0 if meta["higher_is_better"] else -1.0
        checked = [c for c in order if not (meta["intrusive"] and c == "target")]
        anchors = [c for c in ("target", "mid_anchor", "input") if c in checked]
        taus, anchors_right = {}, 0
        for example_id, row in scored["scores"][name].items():
            values = [sign * row[c] for c in checked]
            taus[example_id] = kendall_tau(values, [known_score[c] for c in checked])
            anchor_values = [sign * row[c] for c in anchors]
            anchors_right += int(all(a > b for a, b in zip(anchor_values, anchor_values[1:])))
        medians = scored["medians"][name]
        tau_of_medians = kendall_tau([sign * medians[c] for c in checked], [known_score[c] for c in checked])
        tau_mean = float(np.mean(list(taus.values())))
        why = []
        if anchors_right < len(taus):
            why.append(f"anchors wrong in {len(taus) - anchors_right} of {len(taus)} examples")
        if task in LISTENER_MEDIANS:
            if tau_of_medians < 1:
                why.append(f"median order differs from the listeners' (tau {tau_of_medians:.2f})")
            if tau_mean < MIN_MEAN_TAU:
                why.append(f"mean per-example tau {tau_mean:.2f} < {MIN_MEAN_TAU}")
        results[name] = {**meta, "scores": scored["scores"][name], "medians": medians, "checked": checked,
                         "anchors_right": anchors_right, "examples": len(taus), "tau": taus, "tau_mean": tau_mean,
                         "tau_of_medians": tau_of_medians, "passes": not why, "why": "; ".join(why) or "passes"}
    return {"task": task, "rule": PASS_RULE, "hidden_reference": HIDDEN_REFERENCE, "known_order": list(order),
            "listener_medians": LISTENER_MEDIANS.get(task),
            "listener_medians_source": LISTENER_MEDIANS_SOURCE if task in LISTENER_MEDIANS else None,
            "examples": scored["examples"], "measures": results,
            "passing": [name for name, r in results.items() if r["passes"]],
            "seconds": round(time.perf_counter() - start, 1)}
