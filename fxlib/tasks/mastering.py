"""Automatic mastering: learn a multiband compressor and a graphic EQ to master a mix.

Chain: the paper's Calf MultibandCompressor then LSP graph_equalizer_x32_mono
(``mastering-lv2``, 16 + 33 controls, trained progressively: the Trainer runs one phase per
effect); where LV2 is missing, ZAM's ZaMultiComp and ZamGEQ31 (``mastering-vst3``) or the
built-in stand-in (``mastering-builtin``).
Data: songs listed in a song manifest (``python data_scripts/mastering.py download --manifest
FILE``, the paper used the Mixing Secrets library), else the offline builder: stereo MIDI songs
mastered by a ZAM reference chain to -14 LUFS (:mod:`fxlib.data.mastering`).

Channels: 1. The paper's plugins are mono, so a stereo task would run the chain dual-mono at
twice the render cost per SPSA step for no new parameter (both channels get the same
settings); the stereo files are read mixed to mono (:class:`~fxlib.data.paired.PairedDataset`).

Task metrics (beside :func:`fxlib.metrics.compute_all`'s, which include the signed
``loudness_difference_lufs`` and ``spectral_balance_distance``):

* ``loudness_error_lufs``: ``|L(output) - L(target)|``, integrated loudness (BS.1770) in LU;
  unlike the signed difference its mean over songs cannot cancel;
* ``true_peak_error_db``: ``|TP(output) - TP(target)|``, true peaks in dBTP.

Quick profile, beside the paper's recipe (see :class:`~fxlib.tasks.Profile`): 100 songs of 12 s (80
to train, 10 to validate, 10 to test; with 5 test songs, as at 600 s, the systems' mean loudness
errors moved by more than their differences from one training run to the next), early stopping
after 12 epochs without a better validation loss (the validation loss jumps from epoch to epoch
under SPSA noise, and 6 stopped the compressor's phase at epoch 13), the EQ's 32 band gains are
predicted as a curve through 6 knots two octaves apart (:data:`EQ_CURVE`; one by one, SPSA noise
leaves them jagged; against 11 knots an octave apart, as in commit 6a9a675, two training seeds each
(``fxlib train --task mastering --profile quick --seed 0``, then ``1``) give mixed evidence: MFCC
trajectory distance 0.0270 and 0.0286 with 6 knots for seeds 0 and 1, 0.0385 and 0.0241 with 11,
the input's 0.0374), the spectral loss drops its time-domain term and gains level terms
(:data:`LOSS_OPTIONS`), the encoder also sees the centre of its 0.93 s context
(``pooling="centre"``), stage 1 regresses the defaults moved 0.1 inside [0, 1] (``stage1_margin``:
Calf's makeup gains default to their lower bound, where the sigmoid saturates), SPSA averages 6
draws per step, the EQ's phase starts at 0.4 times the compressor's learning rate
(``phase_lr_factor``), and the output level is trimmed after training (``level_trim``, below).
The trained model sets the chain once per song (``inference="song"``: the mean of its per-hop
predictions, :data:`fxlib.model.INFERENCE`), as the targets were made. The results also hold the
same model hop by hop (``deepafx-hop``, with the same trim): in the committed quick run it is
further from the targets on every metric but ESR.

Level trim: the four quick runs trained before it came out louder than the targets. Their
test songs' mean loudness difference (``loudness_difference_lufs``) was +0.61 and +0.76 LU for
seeds 0 and 1, +0.84 with twice the K-weighted level term (``w_loudness`` 1.0 in
:data:`LOSS_OPTIONS`, seed 0) and +0.38 with 11 knots (:data:`EQ_CURVE`, seed 1), each run with
that one setting edited, so a heavier level term does not remove the bias; its cause is left open.
Untrimmed, the model's loudness error (0.79 and 0.82 LU for seeds 0 and 1) tied matchering's
(0.80), and for seed 1 its true-peak error (3.06 dB) that of the best fixed vector (3.04). The
trims measured on the training songs after training (:func:`fxlib.train.level_trim`, the
``level_trim`` record in ``best.pt``) are -0.56, -0.78 and +0.08 dB for seeds 0, 1 and 2, whose
EQ phases kept their 2nd, 4th and 11th epochs. Trimmed, the model's
loudness errors are 0.54, 0.72 and 0.54 LU against matchering's 0.80, its true-peak errors 1.95,
2.34 and 1.77 dB against the trimmed best fixed vectors' 4.90, 2.94 and 2.49, its spectral-balance
distances 1.32, 1.39 and 1.11 against matchering's 3.01, and its MFCC trajectory distances
0.0270, 0.0286 and 0.0261 against the input's 0.0374 (seeds 0, 1 and 2:
``fxlib train --task mastering --profile quick --seed N``; seed 0 is the committed run).

What the quick run learns (``paper/results/mastering.md``): no epoch of the EQ's phase betters the
compressor phase's validation loss (3.55 at best against 3.32, ``runs/mastering-quick/log.csv``),
so the EQ phase keeps its second epoch and the curves it predicts for the songs in
``paper/figures/mastering_*_eq.png`` stay within 1 dB of flat: the compressor does the mastering.

ESR is reported but is not a mastering metric here: the all-pass phase of the Calf crossovers
delays the low band, so any output of the chain has a higher ESR than the unprocessed input,
whatever its level and spectrum.

Baseline: ``matchering`` (:mod:`fxlib.baselines.matchering`) with one reference master from
the training split (the training target of median loudness), never the song's own target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..data.paired import Pair
from ..metrics import loudness_lufs, true_peak_dbtp
from . import Profile, System, Task


#: The graphic EQ's 32 band gains (1/3 octave apart) as one curve through 6 knots, two octaves apart.
EQ_CURVE = {r"geq\.g_\d+": 6}

#: The spectral loss of the smoke and quick profiles (:class:`fxlib.losses.SpectralLoss`): no
#: time-domain L1 term, which pulls the level down wherever the phase differs (the Calf
#: crossovers delay the bass), and K-weighted level (dB) and octave-band level (dB) terms beside
#: the paper's linear and log magnitudes. No peak term: the targets' maximiser holds peaks that
#: the learned chain, which has no limiter, cannot; with a peak term (``w_peak`` 0.05, the
#: results committed in 0bc2db1) the quick run came out quieter and further from the targets'
#: loudness.
LOSS_OPTIONS = {"w_time": 0.0, "w_loudness": 0.5, "w_bands": 0.1}


def build_data(root: Path, seconds: float, seed: int) -> None:
    """Build the offline mastering dataset under ``root`` (see :mod:`fxlib.data.mastering`)."""
    from ..data import mastering

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


def baselines(data_root: Path, sample_rate: int, channels: int) -> Mapping[str, System]:
    """``{"matchering": f(x (C, T)) -> y (C, T)}`` with the reference picked from the training split."""
    from ..baselines import matchering

    _, reference = matchering.pick_reference(data_root, sample_rate)
    return {"matchering": lambda x: matchering.master(x, sample_rate, reference, sample_rate)}


TASK = Task(
    name="mastering",
    description="Automatic music mastering with a multiband compressor and a graphic EQ (paper section 4.3)",
    chains=("mastering-lv2", "mastering-vst3", "mastering-builtin"),
    sample_rate=22050,
    channels=1,
    build_data=build_data,
    metrics=metrics,
    baselines=baselines,
    profiles={
        "smoke": Profile(data_seconds=36, context=8192, batch_size=4, pooling="centre", curves=EQ_CURVE,
                         loss_options=LOSS_OPTIONS, phase_lr_factor=0.4, stage1_margin=0.1, stage1_steps=40,
                         stage1_epochs=1, stage1_lr=3e-3, steps_per_epoch=4, epochs=1, valid_batches=2,
                         fixed_steps=4, workers=1, inference="song", level_trim=True),
        "quick": Profile(data_seconds=1200, context=20480, batch_size=16, pooling="centre", curves=EQ_CURVE,
                         loss_options=LOSS_OPTIONS, stage1_margin=0.1, stage1_steps=40, stage1_epochs=2,
                         stage1_lr=3e-3, steps_per_epoch=80, epochs=40, lr=5e-4, phase_lr_factor=0.4, patience=12,
                         lr_patience=2, valid_batches=20, draws=6, fixed_steps=400, fixed_lr=5e-3,
                         inference="song", level_trim=True),
        "paper": Profile(data_seconds=0, context=40960, batch_size=100, backbone="mobilenetv2",
                         stage1_steps=1000, stage1_epochs=1000, steps_per_epoch=1000, epochs=1000,
                         lr=1e-4, patience=25, valid_batches=100, fixed_steps=20000),
    },
)
