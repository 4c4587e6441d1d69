"""Effect hosting: one :class:`~fxlib.hosts.base.Effect` protocol, one module per backend.

=========  =====================================  ==========================================
kind       module                                 id
=========  =====================================  ==========================================
builtin    :mod:`fxlib.hosts.builtin`             a name in ``BUILTINS`` (``"Compressor"``)
vst3       :mod:`fxlib.hosts.vst3`                a ``.vst3`` path or bundle name (``"ZamComp"``)
lv2        :mod:`fxlib.hosts.lv2`                 a plugin URI
python     :mod:`fxlib.hosts.python`              ``"package.module:function_or_class"``
=========  =====================================  ==========================================
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import PluginNotFoundError
from ..params import closest
from .base import Effect, check_audio

KINDS = {"builtin": "BuiltinEffect", "vst3": "Vst3Effect", "lv2": "Lv2Effect", "python": "PythonEffect"}


def backend(kind: str):
    """The module of backend ``kind`` (imported on first use: LV2 needs liblilv only when asked for)."""
    if kind not in KINDS:
        raise PluginNotFoundError(f"unknown effect kind {kind!r}{closest(kind, KINDS)}; kinds: {', '.join(KINDS)}")
    return importlib.import_module(f"{__name__}.{kind}")


def load_effect(kind: str, plugin_id: str, sample_rate: float, **options: Any) -> Effect:
    """Build an effect of backend ``kind``; ``options`` go to its constructor (python effects' ``params``)."""
    return getattr(backend(kind), KINDS[kind])(plugin_id, sample_rate, **options)


__all__ = ["Effect", "KINDS", "backend", "check_audio", "load_effect"]
