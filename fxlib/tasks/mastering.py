"""Automatic mastering: learn a multiband compressor, a graphic EQ and a limiter to master a mix.

Chain: the paper's Calf MultibandCompressor, LSP graph_equalizer_x32_mono and LSP limiter_mono
(``mastering-lv2``, 16 + 33 + 1 controls, trained progressively, one phase per effect); where LV2
is missing, ZAM's ZaMultiComp, ZamGEQ31 and ZaMaximX2 (``mastering-vst3``) or built-ins
(``mastering-builtin``).
Data: songs of a song manifest (``fxlib data mastering download --manifest FILE``; the paper used
the Mixing Secrets library), else the offline builder (:mod:`fxlib.data.mastering`). The task
runs in mono, as the paper's mono plugins do (stereo files are read mixed to mono).

Metrics, beside :func:`fxlib.metrics.compute_all`'s: ``loudness_error_lufs`` (LU; unlike the
signed difference, its mean over songs cannot cancel) and ``true_peak_error_db`` (dBTP). ESR is not a mastering metric here: the Calf crossovers' all-pass
phase delays the bass, so any output of the chain has a higher ESR than the input.

The quick profile departs from the paper's recipe where offline data and 2 cores ask for it
(each a :class:`~fxlib.tasks.Profile` field): the EQ as a curve through 6 knots
(:data:`EQ_CURVE`, against SPSA noise), a loss of magnitudes and levels (:data:`LOSS_OPTIONS`),
the centre of a 0.93 s context seen by the encoder, defaults regressed 0.1 inside [0, 1] (Calf's
makeup gains default to a bound), 6 SPSA draws, the EQ's phase at 0.4 times the learning rate,
and the chain set once per song (``inference="song"``, as the targets were made; the results add
the model hop by hop, ``deepafx-hop``). No gain is added after the chain: its limiter sets the
level. The evidence for each: ``docs/experiments/mastering.md``.

Baseline: ``matchering`` (:mod:`fxlib.baselines.matchering`) with one reference master from the
training split (the training target of median loudness), never the song's own target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..data import mastering
from ..data.paired import Pair
from ..metrics import loudness_lufs, true_peak_dbtp
from . import PaperResults, Profile, System, Task


#: The graphic EQ's 32 band gains (1/3 octave apart) as one curve through 6 knots, two octaves apart.
EQ_CURVE = {r"geq\.g_\d+": 6}

#: The spectral loss of the smoke and quick profiles (:class:`fxlib.losses.SpectralLoss`), term by term:
#:
#: - the paper's linear and log STFT magnitudes (kept, the defaults): the tone the EQ learns;
#: - ``w_time`` 0: the time-domain L1 term is dropped, because the Calf crossovers' all-pass
#:   phase delays the bass, and the term then pulls the level down wherever the phase differs;
#: - ``w_loudness`` 0.5: K-weighted level (dB), which the limiter's threshold and the makeup
#:   gains answer to; the magnitude terms alone weigh a level error too lightly at the quiet
#:   sections the multiband compressor has to lift;
#: - ``w_bands`` 0.1: octave-band level (dB), the spectral balance between bands, which the
#:   compressor's makeups and the EQ's six knots set;
#: - no peak term: no learned control sets the peak. With its gain boost on (as released), the
#:   limiter lifts its output by as much as its threshold lowers it, so whenever it limits, the
#:   output's sample peak is 0 dBFS whatever the threshold; the true-peak error is measured, not
#:   trained on (``benchmarks/mastering_peaks.py``).
LOSS_OPTIONS = {"w_time": 0.0, "w_loudness": 0.5, "w_bands": 0.1}


def build_data(root: Path, seconds: float, seed: int) -> None:
    """Build the offline mastering dataset under ``root`` (see :mod:`fxlib.data.mastering`)."""
    mastering.build(root, seconds=seconds, seed=seed)


def metrics(output: np.ndarray, target: np.ndarray, inp: np.ndarray, pair: Pair,
            sample_rate: int) -> dict[str, float]:
    """The mastering metrics of one test song (see the module docstring).

    Shape:
        output, target, inp: ``(C, T)``; returns ``{name: value}`` in LU and dB (``inf`` when
        the output is silent, below the -70 LUFS gate).
    """
    return {"loudness_error_lufs": abs(loudness_lufs(output, sample_rate) - loudness_lufs(target, sample_rate)),
            "true_peak_error_db": abs(true_peak_dbtp(output, sample_rate) - true_peak_dbtp(target, sample_rate))}


def baselines(data_root: Path, sample_rate: int, channels: int, profile: Profile,
              cache_dir: Path | None) -> Mapping[str, System]:
    """``{"matchering": f(x (C, T)) -> y (C, T)}`` with the reference picked from the training split."""
    from ..baselines import matchering

    _, reference = matchering.pick_reference(data_root, sample_rate)
    return {"matchering": lambda x: matchering.master(x, sample_rate, reference, sample_rate)}


TASK = Task(
    name="mastering",
    description="Automatic music mastering with a multiband compressor, a graphic EQ and a limiter (paper section 4.3)",
    chains=("mastering-lv2", "mastering-vst3", "mastering-builtin"),
    sample_rate=22050,
    channels=1,
    build_data=build_data,
    data_generator=mastering.GENERATOR,
    paper_results=PaperResults(
        conditions={"reference": "target", "mid-anchor": "mid_anchor", "input": "input", "deepafx": "deepafx",
                    "matchering": "online_service"},
        stand_in="a commercial online mastering service: matchering, an open reference-based mastering tool, "
                 "stands in for it"),
    metrics=metrics,
    baselines=baselines,
    mid_anchor="gain",
    profiles={
        "smoke": Profile(data_seconds=36, context=8192, batch_size=4, pooling="centre", curves=EQ_CURVE,
                         loss_options=LOSS_OPTIONS, phase_lr_factor=0.4, stage1_margin=0.1, stage1_steps=40,
                         stage1_epochs=1, stage1_lr=3e-3, steps_per_epoch=4, epochs=1, valid_batches=2,
                         fixed_steps=4, workers=1, inference="song"),
        "quick": Profile(data_seconds=1200, context=20480, batch_size=16, pooling="centre", curves=EQ_CURVE,
                         loss_options=LOSS_OPTIONS, stage1_margin=0.1, stage1_steps=40, stage1_epochs=2,
                         stage1_lr=3e-3, steps_per_epoch=80, epochs=40, lr=5e-4, phase_lr_factor=0.4, patience=12,
                         lr_patience=2, valid_batches=20, draws=6, fixed_steps=400, fixed_lr=5e-3,
                         inference="song"),
        "paper": Profile(data_seconds=0, context=40960, batch_size=100, backbone="mobilenetv2",
                         stage1_steps=1000, stage1_epochs=1000, steps_per_epoch=1000, epochs=1000,
                         lr=1e-4, patience=25, valid_batches=100, fixed_steps=20000),
    },
)
