"""VST3 plugins through ``pedalboard.load_plugin``.

The id is a path to a ``.vst3`` bundle, or a bundle name (``"ZamComp"`` or
``"ZamComp.vst3"``) looked up in :func:`search_paths`. Parameter ranges, units and defaults
are read from the plugin; read-only meters and program selectors are left out. Every value
set through :meth:`~fxlib.hosts.base.Effect.set` is read back to check that the plugin took it
(a chain confirms the ends of each learned range once, when it is built, and renders without
reading back).

Latency: pedalboard drops the first ``reported_latency_samples`` output samples after a
reset. To keep ``process`` shape-preserving, those samples come back as leading zeros, so a
stream behaves like the raw plugin (delayed by its latency); :class:`~fxlib.chain.FxChain`
measures that delay and compensates it.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pedalboard as pb

from ..errors import ParameterError, PluginNotFoundError, UnsupportedPluginError
from ..params import Param, closest
from .base import Effect
from .builtin import check_layout


def search_paths() -> list[Path]:
    """Folders searched for VST3 bundles: ``$FXLIB_VST3_PATH`` first, then the OS's standard ones."""
    extra = [Path(p) for p in os.environ.get("FXLIB_VST3_PATH", "").split(os.pathsep) if p]
    home = Path.home()
    if sys.platform == "darwin":
        std = [home / "Library/Audio/Plug-Ins/VST3", Path("/Library/Audio/Plug-Ins/VST3")]
    elif sys.platform == "win32":
        std = [Path(os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files")) / "VST3"]
    else:
        std = [home / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3")]
    return extra + std


def installed_bundles() -> dict[str, Path]:
    """``{bundle name without .vst3: path}`` for every bundle in :func:`search_paths`."""
    found: dict[str, Path] = {}
    for folder in search_paths():
        if folder.is_dir():
            for bundle in sorted(folder.glob("*.vst3")):
                found.setdefault(bundle.stem, bundle)
    return found


def resolve(plugin_id: str) -> Path:
    """The bundle path for a path or a bundle name; :class:`PluginNotFoundError` otherwise."""
    path = Path(plugin_id).expanduser()
    if path.suffix == ".vst3" and path.exists():
        return path
    bundles = installed_bundles()
    name = path.name[: -len(".vst3")] if path.name.endswith(".vst3") else path.name
    if name in bundles:
        return bundles[name]
    folders = ", ".join(str(p) for p in search_paths())
    raise PluginNotFoundError(f"VST3 plugin {plugin_id!r} not found{closest(name, bundles)}; searched {folders} "
                              "(set FXLIB_VST3_PATH to add folders)")


class Vst3Effect(Effect):
    """A VST3 plugin hosted by pedalboard."""

    kind = "vst3"
    reads_back = True

    @property
    def name(self) -> str:
        return getattr(self, "_plugin_name", self.plugin_id)

    def _load(self) -> None:
        path = resolve(self.plugin_id)
        try:
            self._plugin = pb.load_plugin(str(path))
        except (ImportError, RuntimeError, ValueError) as e:
            raise UnsupportedPluginError(f"VST3 plugin {path} failed to load: {e}") from e
        self._plugin_name = self._plugin.name
        for key, p in self._plugin.parameters.items():
            if not p.is_automatable or key == "current_program" or (p.type is str and not p.valid_values):
                continue
            value = getattr(self._plugin, key)
            if p.type is str:  # an enumeration (e.g. ZamTube's tone_stack_model)
                param = Param.choice(key, p.valid_values, value, owner=self.name)
            elif p.type is bool:
                param = Param.choice(key, (False, True), bool(value), owner=self.name)
            else:
                low, high = p.range[0], p.range[1]
                unit = (p.label or "").strip()
                scale = "log" if unit == "Hz" and low > 0 else "linear"
                param = Param(key, low, high, min(max(float(value), low), high), unit, scale, owner=self.name)
            self.params[key] = param
        self.channels = tuple(c for c in (1, 2) if self._accepts(c))
        if not self.channels:
            raise UnsupportedPluginError(f"VST3 plugin {self.name} ({path}) accepts neither mono nor stereo audio")
        self.latency = int(self._plugin.reported_latency_samples)

    def _accepts(self, channels: int) -> bool:
        try:
            self._plugin.process(np.zeros((channels, 64), np.float32), self.sample_rate, reset=True)
        except ValueError:
            return False
        return True

    def _set(self, name: str, value: Any) -> None:
        setattr(self._plugin, name, value)

    def setter(self, name: str) -> Callable[[Any], None]:
        """The plugin's attribute setter (no read-back: see :meth:`_confirm`)."""
        return functools.partial(setattr, self._plugin, name)

    def _confirm(self, name: str, value: Any) -> None:
        got = getattr(self._plugin, name)
        param = self.params[name]
        if param.scale == "choice":
            ok = got == value
        else:
            step = self._plugin.parameters[name].approximate_step_size or 0.0
            ok = abs(float(got) - float(value)) <= max(2 * step, 1e-3 * (param.high - param.low))
        if not ok:
            raise ParameterError(f"{param.where}: set to {value!r} but the plugin reports {got!r}")

    def _process(self, audio: np.ndarray) -> np.ndarray:
        check_layout(audio, self.name)
        out = self._plugin.process(audio, self.sample_rate, reset=False)
        missing = audio.shape[1] - out.shape[1]
        return np.pad(out, ((0, 0), (missing, 0))) if missing else out

    def reset(self) -> None:
        self._plugin.reset()


def list_plugins() -> list[dict]:
    """``[{"id", "name", "path"}]`` for every bundle found (not loaded: that can be slow)."""
    return [{"id": name, "name": name, "path": str(path)} for name, path in installed_bundles().items()]
