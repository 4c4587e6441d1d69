"""Users' own DSP in Python: ``f(audio, sample_rate, **params) -> audio``.

The id is an import path ``"package.module:name"`` so that worker processes can rebuild
the effect. ``name`` may be a function (stateless) or a class; a class is instantiated once
per effect, called like the function, and its ``reset()`` (if any) is called on reset, so
stateful DSP (filters with memory) works. The parameters are declared in the spec, since a
callable has no ranges of its own.
"""
from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import AudioFormatError, PluginNotFoundError, SpecError
from ..params import Param
from .base import Effect


def import_callable(path: str) -> Callable:
    """Import ``"package.module:qualified.name"``; :class:`PluginNotFoundError` if it is not there."""
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise PluginNotFoundError(f"python effect id {path!r} must look like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginNotFoundError(f"python effect {path!r}: cannot import module {module_name!r}: {e}") from e
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise PluginNotFoundError(f"python effect {path!r}: {module_name!r} has no attribute {qualname!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginNotFoundError(f"python effect {path!r} is not callable")
    return obj


class PythonEffect(Effect):
    """A Python callable as an effect.

    Args:
        plugin_id: ``"package.module:name"`` of a function or class.
        sample_rate: in Hz.
        params: the declared parameters, as :class:`Param` or their dicts
            (``{"name", "low", "high", "default", "unit", "scale"}``).
        channels: accepted channel counts (default: mono and stereo).
    """

    kind = "python"

    def __init__(self, plugin_id: str, sample_rate: float, params: Iterable[Param | dict] = (),
                 channels: Iterable[int] = (1, 2)) -> None:
        self._declared = list(params)
        self._channels = tuple(int(c) for c in channels)
        super().__init__(plugin_id, sample_rate)

    def _load(self) -> None:
        target = import_callable(self.plugin_id)
        self._fn = target() if isinstance(target, type) else target
        for p in self._declared:
            if isinstance(p, dict):
                p = Param.from_dict(p, owner=self.name)
            if p.name in self.params:
                raise SpecError(f"{self.name}: parameter {p.name!r} is declared twice")
            self.params[p.name] = replace(p, owner=self.name)
        self.channels = self._channels

    def _set(self, name: str, value: Any) -> None:
        """Values are passed to the callable on each call."""

    def _process(self, audio: np.ndarray) -> np.ndarray:
        out = np.asarray(self._fn(audio, self.sample_rate, **self._values), dtype=np.float32)
        if out.shape != audio.shape:
            raise AudioFormatError(f"{self.name}: returned shape {out.shape} for input {audio.shape}")
        return out

    def reset(self) -> None:
        reset = getattr(self._fn, "reset", None)
        if reset is not None:
            reset()
