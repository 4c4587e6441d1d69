"""The plugins' own compute, with nothing of fxlib around it: what the benchmarks compare fxlib with.

A *raw call* calls the object underneath an fxlib effect directly, on input already in the
shape the plugin takes:

- builtin: the pedalboard plugin's ``process(audio, sample_rate, reset=False)``;
- vst3: the pedalboard ``ExternalPlugin.process(audio, sample_rate, reset=False)``;
- lv2: the plugin's C ``run(handle, frames)`` (``lilv_instance_run``) through ctypes, once per
  ``max_block`` frames, on the port buffers fxlib connected when it instantiated the plugin;
- python: the user's callable itself, ``fn(audio, sample_rate, **values)``.

:class:`RawChain` renders a whole chain that way, as cheaply as a host can: consecutive
built-ins in one ``pedalboard.Pedalboard`` call, an LV2 plugin's input copied into its
connected buffer (both inputs of a stereo plugin fed from a mono chain) and run, nothing
copied between plugins. New parameter values, when given, are written the cheapest way a host
can, every one on every render (each backend's unchecked ``Effect._set``: pedalboard's
attribute setters, a store into an LV2 control port), since a plugin's reaction to them (filters
redesigned, coefficients recomputed) is its own compute; outputs are not checked and nothing
is mapped, validated or sent between processes. A clip's reset is each plugin's own:
pedalboard's ``reset()``, and for LV2, which has none, a fresh instance (``Lv2Effect.reset``:
instantiate, connect the ports, activate).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import pedalboard as pb

from fxlib.chain import FxChain, _Stage
from fxlib.hosts import Effect


def raw_call(effect: Effect) -> Callable[[np.ndarray], Any]:
    """The underlying object's own processing call (see the module docstring)."""
    sr = effect.sample_rate
    if effect.kind == "builtin":
        board = effect._board
        return lambda audio: board.process(audio, sr, reset=False)
    if effect.kind == "vst3":
        plugin = effect._plugin
        return lambda audio: plugin.process(audio, sr, reset=False)
    if effect.kind == "lv2":
        def run(audio: np.ndarray) -> None:
            for start in range(0, audio.shape[1], effect.max_block):  # the handle changes on reset: look it up
                effect._run(effect._handle, min(effect.max_block, audio.shape[1] - start))
        return run
    if effect.kind == "python":
        fn, values = effect._fn, effect.values
        return lambda audio: fn(audio, sr, **values)
    raise ValueError(f"no raw call for kind {effect.kind!r}")


def raw_stage(stage: _Stage, audio: np.ndarray) -> Callable[[], Any]:
    """A no-argument raw call of one chain stage on inputs shaped for its plugin(s) in advance."""
    calls = [raw_call(inst) for inst in stage.instances]
    if stage.mode == "direct":
        return lambda: calls[0](audio)
    if stage.mode == "dual-mono":
        parts = [np.ascontiguousarray(audio[i:i + 1]) for i in range(audio.shape[0])]
        return lambda: [call(part) for call, part in zip(calls, parts)]
    stereo = np.repeat(audio, 2, axis=0)
    return lambda: calls[0](stereo)


def _lv2_render(effect: Effect, channel: int | None) -> Callable[[np.ndarray], None]:
    """Copy the input into the plugin's connected input buffer and run it, block by block.

    ``channel``: the chain channel this instance takes (dual mono), or None for all of them
    (a mono chain's signal goes to every input of a stereo plugin by broadcasting).
    """
    def render(audio: np.ndarray) -> None:
        source = audio if channel is None else audio[channel:channel + 1]
        for start in range(0, audio.shape[1], effect.max_block):
            n = min(effect.max_block, audio.shape[1] - start)
            effect._audio_in[:, :n] = source[:, start:start + n]
            effect._run(effect._handle, n)
    return render


class RawChain:
    """A chain's plugins, called directly (see the module docstring).

    Args:
        chain: a built :class:`~fxlib.chain.FxChain`; its plugin instances are used (and so
            its parameter values and state).
    """

    def __init__(self, chain: FxChain) -> None:
        self.chain = chain
        self.setters = [[functools.partial(inst._set, p.name) for inst in _stage(chain, p.owner).instances]
                        for p in chain.params]  # per learned parameter, one per instance of its stage
        self.renders: list[Callable[[np.ndarray], Any]] = []
        self.resets: list[Callable[[], None]] = []
        sr = chain.sample_rate
        run: list[Any] = []
        for stage in [*chain.stages, None]:
            if stage is not None and stage.spec["kind"] == "builtin":
                run.append(stage.effect._board)
                continue
            if run:
                board = pb.Pedalboard(list(run))
                self.renders.append(lambda audio, board=board: board.process(audio, sr, reset=False))
                self.resets.append(board.reset)
                run = []
            if stage is None:
                break
            for k, inst in enumerate(stage.instances):
                if inst.kind == "lv2":
                    self.renders.append(_lv2_render(inst, k if stage.mode == "dual-mono" else None))
                elif stage.mode == "dual-mono":
                    call = raw_call(inst)
                    self.renders.append(lambda audio, call=call, k=k: call(np.ascontiguousarray(audio[k:k + 1])))
                elif stage.mode == "mono-to-stereo":
                    call = raw_call(inst)
                    self.renders.append(lambda audio, call=call: call(np.repeat(audio, 2, axis=0)))
                else:
                    self.renders.append(raw_call(inst))
                self.resets.append(inst.reset)

    def stream(self, audio: np.ndarray, native: list | None = None) -> None:
        """Write the learned parameters' native values ``native`` (a row of
        :meth:`FxChain.native_rows`; None: leave them), then run every plugin on a ``(C, T)``
        float32 block, continuing from its state."""
        if native is not None:
            for setters, value in zip(self.setters, native):
                for setter in setters:
                    setter(value)
        for render in self.renders:
            render(audio)

    def clip(self, audio: np.ndarray, native: list | None = None) -> None:
        """Reset every plugin, then write ``native`` and run a clip and the chain's latency in
        zeros after it (as :meth:`FxChain.process` must, to return output aligned with the input)."""
        for reset in self.resets:
            reset()
        latency = self.chain.latency
        self.stream(np.pad(audio, ((0, 0), (0, latency))) if latency else audio, native)


def _stage(chain: FxChain, name: str) -> _Stage:
    """The stage named ``name``."""
    return next(stage for stage in chain.stages if stage.name == name)
