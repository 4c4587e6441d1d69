"""Breath and pop removal: learn a multiband gate's controls to remove breaths and plosive pops from speech.

Chain: the paper's Calf MultibandGate (``breath-lv2``, 17 controls); where LV2 is missing, the
built-in four-band gate (``breath-builtin``).
Data: the paper's DAPS recordings when downloaded (``fxlib data breath download``), else the
offline builder: speech recordings with synthetic, labelled breaths and pops (:mod:`fxlib.data.breath`).

Task metrics per test file (:func:`metrics`), beside the standard ones:

* ``event_attenuation_db``, ``breath_attenuation_db``, ``pop_attenuation_db``: how many dB the
  output's energy in the labelled events is below the input's (higher is better);
* ``speech_gain_db``: the output's energy outside the events relative to the input's, in dB
  (closer to 0 is better), to tell removal from an overall change of level;
* ``speech_si_sdr_db``, ``speech_stoi``, ``speech_pesq``: speech distortion outside the events
  against the target (higher is better). SI-SDR compares waveforms, so it also counts the barely
  audible all-pass phase of the crossovers; STOI and wide-band PESQ weigh what a listener hears.

Unlabelled pairs (DAPS) give NaN for the event measures, and their speech measures cover the
whole file. The quick profile's encoder pools the centre of its context band by band
(``pooling="centre-bands"``, :mod:`fxlib.encoder`): with global pooling it cannot tell a breath
at the rendered frame from one a second away. Baseline: ``energy-gate``, a classic
energy-threshold gate (:mod:`fxlib.baselines.gate`) with its threshold fitted on the training split.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from ..data import breath
from ..data.paired import Pair, PairedDataset
from ..metrics import event_attenuation_db, event_mask, pesq, si_sdr, stoi
from . import PaperResults, Profile, System, Task

KINDS = ("breath", "pop")
FIT_FILES = 16  # training files used to fit the energy gate's threshold


def build_data(root: Path, seconds: float, seed: int) -> None:
    """Build the offline breath dataset under ``root`` (see :mod:`fxlib.data.breath`)."""
    breath.build(root, seconds=seconds, seed=seed)


def metrics(output: np.ndarray, target: np.ndarray, input: np.ndarray, pair: Pair,
            sample_rate: int) -> dict[str, float]:
    """The task's measures of one test file (see the module docstring).

    Args:
        output: the system's output, float ``(C, T)``.
        target: the clean target, ``(C, T)``.
        input: the unprocessed input, ``(C, T)``.
        pair: the file's record; ``pair.info["events"]`` holds the labels, if any.
        sample_rate: in Hz.

    Returns:
        ``{"event_attenuation_db", "breath_attenuation_db", "pop_attenuation_db", "speech_gain_db",
        "speech_si_sdr_db", "speech_stoi", "speech_pesq"}``; dB values in dB, STOI in [0, 1],
        PESQ in MOS-LQO; NaN where the file has no labelled events (of that kind).
    """
    events = (pair.info or {}).get("events")
    row = {"event_attenuation_db": math.nan, **{f"{k}_attenuation_db": math.nan for k in KINDS},
           "speech_gain_db": math.nan}
    speech = None
    if events:
        attenuation = event_attenuation_db(output, input, events, sample_rate)
        row["event_attenuation_db"] = attenuation.get("all", math.nan)
        row.update({f"{k}_attenuation_db": attenuation.get(k, math.nan) for k in KINDS})
        speech = ~event_mask(events, input.shape[-1], sample_rate)
        row["speech_gain_db"] = float(10 * np.log10(np.sum(output[:, speech].astype(np.float64) ** 2)
                                                    / np.sum(input[:, speech].astype(np.float64) ** 2)))
    row["speech_si_sdr_db"] = si_sdr(output, target, sample_rate, speech)
    row["speech_stoi"] = stoi(output, target, sample_rate, speech)
    row["speech_pesq"] = pesq(output, target, sample_rate, speech)
    return row


def baselines(data_root: Path, sample_rate: int, channels: int, profile: Profile,
              cache_dir: Path | None) -> Mapping[str, System]:
    """``{"energy-gate": system}``: the energy gate, its threshold fitted on the training split."""
    from ..baselines.gate import fit_threshold

    train = PairedDataset(data_root, "train", sample_rate, channels)
    gate = fit_threshold([train[i] for i in range(min(FIT_FILES, len(train)))], sample_rate)
    return {"energy-gate": lambda x: gate(x, sample_rate)}


TASK = Task(
    name="breath",
    description="Breath and pop removal from speech with a multiband gate (paper section 4.2)",
    chains=("breath-lv2", "breath-builtin"),
    sample_rate=22050,
    channels=1,
    build_data=build_data,
    data_generator=breath.GENERATOR,
    paper_results=PaperResults(
        conditions={"reference": "target", "mid-anchor": "mid_anchor", "input": "input", "deepafx": "deepafx"}),
    profiles={
        "smoke": Profile(data_seconds=50, context=8192, batch_size=4, pooling="centre-bands", stage1_steps=4,
                         stage1_epochs=1,
                         steps_per_epoch=4, epochs=1, valid_batches=2, fixed_steps=4, workers=1),
        "quick": Profile(data_seconds=600, context=40960, batch_size=16, pooling="centre-bands",
                         stage1_steps=50, stage1_epochs=2,
                         steps_per_epoch=100, epochs=40, lr=5e-4, patience=8, valid_batches=16, draws=2,
                         fixed_steps=2000, fixed_lr=1e-3),
        "paper": Profile(data_seconds=0, context=40960, batch_size=100, backbone="mobilenetv2",
                         stage1_steps=1000, stage1_epochs=1000, steps_per_epoch=1000, epochs=1000,
                         lr=1e-4, patience=25, valid_batches=100, fixed_steps=20000),
    },
    metrics=metrics,
    baselines=baselines,
    higher_is_better=("event_attenuation_db", "breath_attenuation_db", "pop_attenuation_db",
                      "speech_si_sdr_db", "speech_stoi", "speech_pesq"),
)
