"""The paper's effect chains as ready specs, and their portable equivalents.

Each chain is a TOML file in ``fxlib/chains/`` (plain data: read it, copy it, edit it):

================  =======  ================================================================
name              backend  chain
================  =======  ================================================================
amp-lv2           LV2      Calf MultibandCompressor, 21 learned controls (the paper's)
amp-builtin       builtin  fxlib's four-band MultibandCompressor from pedalboard built-ins
amp-vst3          VST3     ZAM ZaMultiComp
breath-lv2        LV2      Calf MultibandGate, 17 learned controls (the paper's)
breath-builtin    builtin  fxlib's four-band MultibandGate from pedalboard built-ins
mastering-lv2     LV2      Calf MultibandCompressor (16) then LSP graph_equalizer_x32_mono (33)
mastering-builtin builtin  MultibandCompressor then the nine-band GraphicEQ
mastering-vst3    VST3     ZaMultiComp then ZamGEQ31
================  =======  ================================================================
"""
from __future__ import annotations

import tomllib
from importlib import resources

from .chain import FxChain
from .errors import SpecError
from .params import closest

CHAINS = ("amp-lv2", "amp-builtin", "amp-vst3", "breath-lv2", "breath-builtin",
          "mastering-lv2", "mastering-builtin", "mastering-vst3")


def chain_spec(name: str) -> dict:
    """The plain-data spec of preset chain ``name`` (one of :data:`CHAINS`)."""
    if name not in CHAINS:
        raise SpecError(f"no preset chain named {name!r}{closest(name, CHAINS)}; presets: {', '.join(CHAINS)}")
    return tomllib.loads(resources.files("fxlib").joinpath("chains", f"{name}.toml").read_text())


def load_chain(name: str, sample_rate: float | None = None) -> FxChain:
    """Build preset chain ``name``, optionally at another sample rate (Hz)."""
    spec = chain_spec(name)
    if sample_rate is not None:
        spec["sample_rate"] = float(sample_rate)
    return FxChain.from_spec(spec)
