"""The one protocol every effect backend implements.

An :class:`Effect` is built from a plain-data pair ``(plugin_id, sample_rate)`` so that a
worker process can rebuild it (no plugin object pickles). It exposes its parameters as
:class:`~fxlib.params.Param` with native ranges, takes native values in :meth:`Effect.set`,
processes float32 audio shaped ``(channels, samples)`` and keeps its internal state
(filters, envelopes, delay lines) between calls until :meth:`Effect.reset`.

Backends implement ``_load``, ``_set``, ``_process`` and ``reset`` (and ``_confirm`` where a
value set can be read back); this class does the checking, so every backend rejects bad input
with the same clear messages. The checks run in the public :meth:`Effect.set` and
:meth:`Effect.process`; a chain, which checks its parameter vector and its audio once per
render, uses the unchecked :meth:`Effect.render_plan` and :meth:`Effect.process_checked`.
"""
from __future__ import annotations

import abc
import functools
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import AudioFormatError, PluginOutputError
from ..params import Param, unknown_param


class Effect(abc.ABC):
    """A hosted audio effect with named, ranged parameters and internal state.

    Args:
        plugin_id: what identifies the plugin in its backend (a built-in name, a VST3 path
            or bundle name, an LV2 URI, a ``module:function`` path).
        sample_rate: in Hz; fixed for the effect's life (build a new one to change it).

    Attributes:
        params: ``{name: Param}`` in the plugin's own order, native units.
        channels: the channel counts :meth:`process` accepts, e.g. ``(1, 2)`` or ``(2,)``.
        latency: the latency the plugin reports, in samples (0 when it reports none).
            :class:`~fxlib.chain.FxChain` measures the real one with an impulse.
    """

    kind: ClassVar[str] = ""
    reads_back: ClassVar[bool] = False
    """Whether :meth:`set` reads each value back from the plugin (:meth:`_confirm`)."""

    def __init__(self, plugin_id: str, sample_rate: float) -> None:
        if not float(sample_rate) > 0:
            raise AudioFormatError(f"{plugin_id}: sample rate must be positive, got {sample_rate!r}")
        self.plugin_id = str(plugin_id)
        self.sample_rate = float(sample_rate)
        self.params: dict[str, Param] = {}
        self.channels: tuple[int, ...] = (1, 2)
        self.latency = 0
        self._values: dict[str, Any] = {}
        self._load()
        self._values = {n: p.default for n, p in self.params.items()}

    @property
    def name(self) -> str:
        """A short display name (the plugin's own where it has one)."""
        return self.plugin_id

    # -- what backends implement -------------------------------------------------------
    @abc.abstractmethod
    def _load(self) -> None:
        """Find and instantiate the plugin; fill ``params``, ``channels`` and ``latency``."""

    @abc.abstractmethod
    def _set(self, name: str, value: Any) -> None:
        """Apply one checked native value."""

    @abc.abstractmethod
    def _process(self, audio: np.ndarray) -> np.ndarray:
        """Process checked ``(C, T)`` float32 audio, keeping state; return ``(C, T)``."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Clear all internal state (as after loading), keeping the parameter values."""

    def _confirm(self, name: str, value: Any) -> None:
        """Check that the plugin took the value just set (read it back), or raise :class:`ParameterError`.

        Called by :meth:`set`, not per render; backends that cannot read a value back keep this no-op.
        """

    def close(self) -> None:
        """Release native resources; the effect is unusable afterwards."""

    # -- the checked public interface --------------------------------------------------
    def set(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Set parameters by name to native values (checked against their ranges).

        Raises:
            ParameterError: an unknown name (with the closest match) or a bad value.
        """
        values = {**(values or {}), **kwargs}
        checked = {}
        for name, value in values.items():
            if name not in self.params:
                raise unknown_param(self.name, name, self.params)
            checked[name] = self.params[name].check(value)
        for name, value in checked.items():
            self._set(name, value)
            self._confirm(name, value)
            self._values[name] = value

    def confirm_values(self, name: str, values: Sequence[Any]) -> None:
        """Set parameter ``name`` to each of ``values`` in turn, reading each back, then restore its value.

        A chain calls this once, when it is built, with the ends of every learned range, so
        that its renders (:meth:`render_plan`) need not read back. Nothing happens for backends that
        do not read back (:attr:`reads_back`).

        Raises:
            ParameterError: the plugin did not take one of the values.
        """
        if self.reads_back:
            current = self.get(name)
            for value in [*values, current]:
                self.set({name: value})

    def setter(self, name: str) -> Callable[[Any], None]:
        """A function that sets parameter ``name`` to a valid native value, with no checks.

        What a chain calls per render (:meth:`render_plan`); backends return the cheapest call
        that does what :meth:`_set` does (often the plugin's own attribute setter).
        """
        return functools.partial(self._set, name)

    def render_plan(self, names: Sequence[str], start: int) -> list[tuple[int, dict[str, Any], str, Callable]]:
        """How a chain sets learned parameters on every render, each only when its value changed.

        Returns one ``(index, values, name, setter)`` per name: the parameter's position in the
        chain's native vector (``start``, ``start + 1``, ...), this effect's live
        ``{name: native value}`` dictionary (the one :meth:`get` reads), the name and its
        :meth:`setter`. For each, the chain compares the new value with ``values[name]`` and,
        when it differs, calls the setter and stores the value there. The values come from
        :class:`~fxlib.params.NativeMap` inside ranges checked when the chain was built, so
        nothing is checked per render (:meth:`set` is the checked way), and a control whose
        value did not change is not touched (plugins recompute coefficients on every set).
        """
        return [(start + k, self._values, name, self.setter(name)) for k, name in enumerate(names)]

    def get(self, name: str) -> Any:
        """The native value last set (or the default) of parameter ``name``."""
        if name not in self.params:
            raise unknown_param(self.name, name, self.params)
        return self._values[name]

    @property
    def values(self) -> dict[str, Any]:
        """``{name: native value}`` of every parameter."""
        return dict(self._values)

    def process(self, audio: np.ndarray, sample_rate: float | None = None) -> np.ndarray:
        """Process a block of audio, continuing from the current state.

        Args:
            audio: float32 array shaped ``(channels, samples)``, finite values.
            sample_rate: optional, in Hz; must equal the rate the effect was built for.

        Returns:
            float32 array shaped ``(channels, samples)``.

        Raises:
            AudioFormatError: audio of the wrong dtype, shape, channel count or rate, or not finite.
            PluginOutputError: the plugin turned finite input into NaN or Inf.
        """
        check_audio(audio, self.name, self.channels)
        if sample_rate is not None and float(sample_rate) != self.sample_rate:
            raise AudioFormatError(
                f"{self.name}: built for {self.sample_rate:g} Hz but given audio at {float(sample_rate):g} Hz; "
                "build a new effect (or chain) for the new sample rate")
        return self.process_checked(np.ascontiguousarray(audio))

    def process_checked(self, audio: np.ndarray) -> np.ndarray:
        """:meth:`process` for audio already checked: C-contiguous float32 ``(C, T)``, finite, with
        a channel count in :attr:`channels` (a chain checks its input once, not per effect).

        Raises:
            PluginOutputError: the plugin turned finite input into NaN or Inf.
        """
        out = np.asarray(self._process(audio), dtype=np.float32)
        if not np.isfinite(out).all():
            settings = ", ".join(f"{k}={v}" for k, v in self._values.items())
            raise PluginOutputError(f"{self.name}: produced NaN or Inf at {self.sample_rate:g} Hz with {settings}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin_id!r}, sample_rate={self.sample_rate:g})"


def check_audio(audio: Any, owner: str, channels: tuple[int, ...] | None = None) -> None:
    """Raise :class:`AudioFormatError` unless ``audio`` is finite float32 ``(C, T)``."""
    if not isinstance(audio, np.ndarray):
        raise AudioFormatError(f"{owner}: audio must be a numpy float32 array, got {type(audio).__name__}")
    if audio.dtype != np.float32:
        raise AudioFormatError(f"{owner}: audio must be float32, got {audio.dtype}")
    if audio.ndim != 2:
        raise AudioFormatError(f"{owner}: audio must be shaped (channels, samples), got shape {audio.shape}")
    if channels is not None and audio.shape[0] not in channels:
        raise AudioFormatError(
            f"{owner}: takes {' or '.join(map(str, channels))} channel(s), got {audio.shape[0]} "
            f"(shape {audio.shape}; audio is (channels, samples))")
    if audio.shape[1] == 0:
        raise AudioFormatError(f"{owner}: audio has no samples (shape {audio.shape})")
    if not np.isfinite(audio).all():
        bad = np.argwhere(~np.isfinite(audio))[0]
        raise AudioFormatError(f"{owner}: audio holds NaN or Inf (first at channel {bad[0]}, sample {bad[1]})")

