"""Tube-amplifier emulation: learn a multiband compressor's controls to sound like a tube preamp.

Chain: the paper's Calf MultibandCompressor (``amp-lv2``, 21 controls); where LV2 is missing,
ZAM's ZaMultiComp (``amp-vst3``) or the built-in stand-in (``amp-builtin``).
Data: the paper's AudioMDPI recordings when downloaded (``fxlib data amp download``),
else the offline builder: FluidSynth guitar and bass DI through a guitarix JCM800 preamp and a
limiter, as the paper's targets went through a tube preamp and a limiting amplifier.

Baseline: ``neural-amp``, an end-to-end neural amp model trained on the same pairs
(:mod:`fxlib.baselines.neural`, ``neural_steps`` of the profile), standing in for the paper's
CAFx, the authors' earlier end-to-end network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..baselines import neural
from ..data import amp
from . import PaperResults, Profile, System, Task


def build_data(root: Path, seconds: float, seed: int) -> None:
    """Build the offline amp dataset under ``root`` (see :mod:`fxlib.data.amp`)."""
    amp.build(root, seconds=seconds, seed=seed)


def baselines(data_root: Path, sample_rate: int, channels: int, profile: Profile,
              cache_dir: Path | None) -> Mapping[str, System]:
    """``{"neural-amp": system}``: the end-to-end neural amp model, trained on the training split for
    ``profile.neural_steps`` steps, cached in ``cache_dir``."""
    settings = neural.NeuralAmpSettings(steps=profile.neural_steps)
    return {neural.NAME: neural.fitted(data_root, sample_rate, channels, cache_dir, settings)}


TASK = Task(
    name="amp",
    description="Tube-amplifier emulation with a multiband compressor (paper section 4.1)",
    chains=("amp-lv2", "amp-vst3", "amp-builtin"),
    sample_rate=22050,
    channels=1,
    build_data=build_data,
    data_generator=amp.GENERATOR,
    baselines=baselines,
    paper_results=PaperResults(
        conditions={"reference": "target", "mid-anchor": "mid_anchor", "input": "input", "deepafx": "deepafx",
                    neural.NAME: "cafx"},
        stand_in="CAFx, the authors' end-to-end network (Applied Sciences 2020): our end-to-end neural amp "
                 "model trained on the same pairs stands in for it"),
    profiles={
        "smoke": Profile(data_seconds=50, context=8192, batch_size=4, stage1_steps=4, stage1_epochs=1,
                         steps_per_epoch=4, epochs=1, valid_batches=2, fixed_steps=4, workers=1,
                         neural_steps=6),
        "quick": Profile(data_seconds=600, context=40960, batch_size=16, stage1_steps=50, stage1_epochs=2,
                         steps_per_epoch=100, epochs=25, lr=3e-4, patience=8, valid_batches=16, draws=2,
                         fixed_steps=2000, fixed_lr=1e-3),
        "paper": Profile(data_seconds=0, context=40960, batch_size=100, backbone="mobilenetv2",
                         stage1_steps=1000, stage1_epochs=1000, steps_per_epoch=1000, epochs=1000,
                         lr=1e-4, patience=25, valid_batches=100, fixed_steps=20000, neural_steps=6000),
    },
)
