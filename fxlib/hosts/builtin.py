"""pedalboard's built-in effects, with the ranges fxlib declares for them.

pedalboard does not publish its built-ins' ranges, so :data:`BUILTINS` declares each
control's native range, unit and scale here. Two composite effects made only of built-ins
stand in for the paper's Calf multiband plugins on machines without LV2:
``MultibandCompressor`` and ``MultibandGate`` (four bands split by first-order low- and
high-pass filters, a compressor or noise gate and a make-up gain per band, input and
output gains). Their first-order crossovers are an approximation, not a copy of Calf's.
``GraphicEQ`` (nine octave bands of peaking filters) stands in for LSP's graphic equaliser.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import pedalboard as pb

from ..errors import AudioFormatError, PluginNotFoundError, PluginOutputError
from ..params import Param, closest
from .base import Effect

Target = tuple[Any, str]  # (pedalboard plugin, attribute name)


def _p(name: str, low: float, high: float, default: Any, unit: str = "", scale: str = "linear") -> Param:
    return Param(name, low, high, default, unit=unit, scale=scale)


FREQ = dict(unit="Hz", scale="log")
_COMPRESSOR = [_p("threshold_db", -60, 0, 0, "dB"), _p("ratio", 1, 20, 1, scale="log"),
               _p("attack_ms", 0.1, 100, 1, "ms", "log"), _p("release_ms", 10, 1000, 100, "ms", "log")]
_FILTER = [_p("cutoff_frequency_hz", 20, 20000, 440, **FREQ)]
_SHELF = [_p("cutoff_frequency_hz", 20, 20000, 440, **FREQ), _p("gain_db", -24, 24, 0, "dB"),
          _p("q", 0.1, 10, 0.7071067690849304, scale="log")]
_LADDER_MODES = tuple(pb.LadderFilter.Mode.__members__)


@dataclass(frozen=True)
class Builtin:
    """How to build one built-in: a factory returning ``(processor, {param: [targets]})``."""

    build: Callable[[], tuple[Any, dict[str, list[Target]]]]
    params: tuple[Param, ...]
    doc: str


def _simple(cls: type, params: list[Param], doc: str) -> Builtin:
    def build():
        plugin = cls()
        return plugin, {p.name: [(plugin, p.name)] for p in params}
    return Builtin(build, tuple(params), doc)


def _multiband(band: Callable[[int], tuple[list, dict[str, Target]]], band_params: list[Param],
               doc: str, bands: int = 4) -> Builtin:
    """A ``bands``-band effect: input gain, crossovers, ``band(i)`` per band, output gain."""
    edges = [100.0, 1000.0, 5000.0][: bands - 1]
    params = [_p("level_in_db", -24, 24, 0, "dB")]
    params += [_p(f"split_{i}_{i + 1}", 20, 16000, f, **FREQ) for i, f in enumerate(edges, start=1)]
    params += [replace(p, name=f"{p.name}_{i}") for i in range(bands) for p in band_params]
    params += [_p("level_out_db", -24, 24, 0, "dB")]

    def build():
        level_in, level_out = pb.Gain(0.0), pb.Gain(0.0)
        targets: dict[str, list[Target]] = {"level_in_db": [(level_in, "gain_db")],
                                            "level_out_db": [(level_out, "gain_db")]}
        chains = []
        for i in range(bands):
            filters = []
            if i > 0:
                hp = pb.HighpassFilter(edges[i - 1])
                filters.append(hp)
                targets.setdefault(f"split_{i}_{i + 1}", []).append((hp, "cutoff_frequency_hz"))
            if i < bands - 1:
                lp = pb.LowpassFilter(edges[i])
                filters.append(lp)
                targets.setdefault(f"split_{i + 1}_{i + 2}", []).append((lp, "cutoff_frequency_hz"))
            processors, band_targets = band(i)
            chains.append(pb.Chain(filters + processors))
            targets.update({f"{name}_{i}": [t] for name, t in band_targets.items()})
        return pb.Chain([level_in, pb.Mix(chains), level_out]), targets
    return Builtin(build, tuple(params), doc)


GEQ_CENTRES = (32, 63, 125, 250, 500, 1000, 2000, 4000, 8000)


def _graphic_eq() -> Builtin:
    """Octave-band graphic equaliser: a peaking filter (Q 1.41) per band, then an output gain."""
    params = [_p(f"gain_db_{f}hz", -12, 12, 0, "dB") for f in GEQ_CENTRES] + [_p("level_out_db", -24, 24, 0, "dB")]

    def build():
        bells = [pb.PeakFilter(float(f), 0.0, 1.41) for f in GEQ_CENTRES]
        out = pb.Gain(0.0)
        targets = {f"gain_db_{f}hz": [(b, "gain_db")] for f, b in zip(GEQ_CENTRES, bells)}
        targets["level_out_db"] = [(out, "gain_db")]
        return pb.Chain(bells + [out]), targets
    return Builtin(build, tuple(params), "Nine-band octave graphic EQ (32 Hz to 8 kHz) from built-in peak filters.")


def _compressor_band(i: int):
    comp, makeup = pb.Compressor(), pb.Gain(0.0)
    return [comp, makeup], {"threshold_db": (comp, "threshold_db"), "ratio": (comp, "ratio"),
                            "attack_ms": (comp, "attack_ms"), "release_ms": (comp, "release_ms"),
                            "makeup_db": (makeup, "gain_db")}


def _gate_band(i: int):
    gate = pb.NoiseGate()
    return [gate], {"threshold_db": (gate, "threshold_db"), "ratio": (gate, "ratio"),
                    "attack_ms": (gate, "attack_ms"), "release_ms": (gate, "release_ms")}


BUILTINS: dict[str, Builtin] = {
    "Gain": _simple(pb.Gain, [_p("gain_db", -24, 24, 1, "dB")], "Gain in decibels."),
    "Compressor": _simple(pb.Compressor, _COMPRESSOR, "Dynamic range compressor."),
    "Limiter": _simple(pb.Limiter, [_p("threshold_db", -30, 0, -10, "dB"),
                                    _p("release_ms", 10, 1000, 100, "ms", "log")], "Brick-wall limiter."),
    "NoiseGate": _simple(pb.NoiseGate, [_p("threshold_db", -100, 0, -100, "dB"), _p("ratio", 1, 20, 10, scale="log"),
                                        _p("attack_ms", 0.1, 100, 1, "ms", "log"),
                                        _p("release_ms", 10, 1000, 100, "ms", "log")], "Downward expander."),
    "Distortion": _simple(pb.Distortion, [_p("drive_db", 0, 60, 25, "dB")], "tanh waveshaper with input drive."),
    "Clipping": _simple(pb.Clipping, [_p("threshold_db", -40, 0, -6, "dB")], "Hard clipper."),
    "HighpassFilter": _simple(pb.HighpassFilter, _FILTER, "First-order high-pass filter."),
    "LowpassFilter": _simple(pb.LowpassFilter, _FILTER, "First-order low-pass filter."),
    "HighShelfFilter": _simple(pb.HighShelfFilter, _SHELF, "Second-order high shelf."),
    "LowShelfFilter": _simple(pb.LowShelfFilter, _SHELF, "Second-order low shelf."),
    "PeakFilter": _simple(pb.PeakFilter, _SHELF, "Second-order peaking (bell) filter."),
    "LadderFilter": _simple(pb.LadderFilter, [Param.choice("mode", _LADDER_MODES, "LPF12"),
                                              _p("cutoff_hz", 20, 20000, 200, **FREQ),
                                              _p("resonance", 0, 1, 0), _p("drive", 1, 10, 1, scale="log")],
                            "Moog-style ladder filter."),
    "Reverb": _simple(pb.Reverb, [_p("room_size", 0, 1, 0.5), _p("damping", 0, 1, 0.5),
                                  _p("wet_level", 0, 1, 0.33000001311302185), _p("dry_level", 0, 1, 0.4000000059604645),
                                  _p("width", 0, 1, 1), _p("freeze_mode", 0, 1, 0)], "Freeverb-style reverb."),
    "Chorus": _simple(pb.Chorus, [_p("rate_hz", 0.01, 20, 1, "Hz", "log"), _p("depth", 0, 1, 0.25),
                                  _p("centre_delay_ms", 1, 50, 7, "ms"), _p("feedback", -0.95, 0.95, 0),
                                  _p("mix", 0, 1, 0.5)], "Chorus."),
    "Phaser": _simple(pb.Phaser, [_p("rate_hz", 0.01, 20, 1, "Hz", "log"), _p("depth", 0, 1, 0.5),
                                  _p("centre_frequency_hz", 20, 20000, 1300, **FREQ),
                                  _p("feedback", -0.95, 0.95, 0), _p("mix", 0, 1, 0.5)], "Phaser."),
    "Delay": _simple(pb.Delay, [_p("delay_seconds", 0.001, 2, 0.5, "s", "log"), _p("feedback", 0, 0.95, 0),
                                _p("mix", 0, 1, 0.5)], "Feedback delay."),
    "Bitcrush": _simple(pb.Bitcrush, [_p("bit_depth", 1, 32, 8, "bits")], "Bit-depth reduction."),
    "MultibandCompressor": _multiband(_compressor_band, [
        _p("threshold_db", -60, 0, 0, "dB"), _p("ratio", 1, 20, 1, scale="log"),
        _p("attack_ms", 0.1, 100, 10, "ms", "log"), _p("release_ms", 10, 1000, 100, "ms", "log"),
        _p("makeup_db", 0, 24, 0, "dB")],
        "Four-band compressor from built-ins (first-order crossovers); portable stand-in for Calf's."),
    "MultibandGate": _multiband(_gate_band, [
        _p("threshold_db", -100, 0, -100, "dB"), _p("ratio", 1, 20, 10, scale="log"),
        _p("attack_ms", 0.1, 100, 1, "ms", "log"), _p("release_ms", 10, 1000, 100, "ms", "log")],
        "Four-band noise gate from built-ins (first-order crossovers); portable stand-in for Calf's."),
    "GraphicEQ": _graphic_eq(),
}


class BuiltinEffect(Effect):
    """One of :data:`BUILTINS`, run by pedalboard; accepts any channel count."""

    kind = "builtin"

    def _load(self) -> None:
        if self.plugin_id not in BUILTINS:
            raise PluginNotFoundError(f"no built-in effect named {self.plugin_id!r}"
                                      f"{closest(self.plugin_id, BUILTINS)}; built-ins: {', '.join(BUILTINS)}")
        spec = BUILTINS[self.plugin_id]
        self._board, targets = spec.build()
        # (plugin, attribute, whether the value is held below Nyquist): decided once, not per set
        self._targets = {name: [(plugin, attr, isinstance(plugin, (pb.LowpassFilter, pb.HighpassFilter)))
                                for plugin, attr in found] for name, found in targets.items()}
        self.params = {p.name: replace(p, owner=self.name) for p in spec.params}
        self.channels = (1, 2)
        for p in self.params.values():
            self._set(p.name, p.default)

    def _set(self, name: str, value: Any) -> None:
        if name == "mode":
            value = pb.LadderFilter.Mode.__members__[value]
        for plugin, attr, below_nyquist in self._targets[name]:
            # above Nyquist the first-order filters blow up
            setattr(plugin, attr, min(value, self.sample_rate / 2) if below_nyquist else value)

    def setter(self, name: str) -> Callable[[Any], None]:
        """The pedalboard attribute's own setter where one plugin attribute takes the value as it is."""
        targets = self._targets[name]
        if name != "mode" and len(targets) == 1 and not targets[0][2]:
            return functools.partial(setattr, targets[0][0], targets[0][1])
        return super().setter(name)

    @property
    def board(self) -> pb.Plugin:
        """The pedalboard plugin (or ``pedalboard.Chain``) that renders this effect; a chain puts
        consecutive built-ins' boards in one ``pedalboard.Pedalboard`` and renders them in one call."""
        return self._board

    def _process(self, audio: np.ndarray) -> np.ndarray:
        check_layout(audio, self.name)
        return self._board.process(audio, self.sample_rate, reset=False)

    def reset(self) -> None:
        self._board.reset()


class BuiltinRun:
    """Consecutive built-in effects rendered by one ``pedalboard.Pedalboard`` call.

    The board holds the effects' own pedalboard plugins, so state and parameter values are
    theirs (resetting or setting an effect acts on the run). pedalboard passes every block of
    the audio through each plugin in turn, so the output equals one call per effect, sample
    for sample; one call saves the per-call cost (a few microseconds each) that dominates
    short blocks.

    Args:
        effects: the built-in effects, in order (all at one sample rate).
    """

    def __init__(self, effects: Sequence[BuiltinEffect]) -> None:
        self.effects = list(effects)
        self.sample_rate = self.effects[0].sample_rate
        self.name = " -> ".join(e.name for e in self.effects)
        self._board = pb.Pedalboard([e.board for e in self.effects])

    def process_checked(self, audio: np.ndarray) -> np.ndarray:
        """Render audio already checked (C-contiguous, finite float32 ``(C, T)``), keeping state.

        Raises:
            PluginOutputError: the output holds NaN or Inf (the message names every effect of the run).
        """
        check_layout(audio, self.name)
        out = self._board.process(audio, self.sample_rate, reset=False)
        if not np.isfinite(out).all():
            settings = "; ".join(f"{e.name}: " + ", ".join(f"{k}={v}" for k, v in e.values.items())
                                 for e in self.effects)
            raise PluginOutputError(f"{self.name}: produced NaN or Inf at {self.sample_rate:g} Hz with {settings}")
        return out


def check_layout(audio: np.ndarray, owner: str) -> None:
    """pedalboard takes the smaller dimension for the channels, so it misreads (or refuses)
    multichannel blocks of no more samples than channels; refuse them clearly."""
    if 1 < audio.shape[0] >= audio.shape[1]:
        raise AudioFormatError(f"{owner}: a block of {audio.shape[1]} sample(s) with {audio.shape[0]} channels "
                               f"is too short for pedalboard; use blocks of more than {audio.shape[0]} samples")


def list_plugins() -> list[dict]:
    """``[{"id", "name", "channels", "doc"}]`` for every built-in."""
    return [{"id": n, "name": n, "channels": "1 or 2", "doc": b.doc} for n, b in BUILTINS.items()]
