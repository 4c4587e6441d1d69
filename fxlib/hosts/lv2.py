"""LV2 plugins through ctypes over the system's liblilv-0.

The id is a plugin URI (``lv2ls`` lists them). One lilv world per process is created on first
use and loads every bundle on ``LV2_PATH`` (lilv's default path when unset).

Ports:
    audio     the effect's channels, one per audio input port (optional ones included); the
              plugin must have as many audio outputs as inputs
    control   inputs are the parameters, keyed by port symbol, in native units; outputs
              (meters, latency) are read into scratch floats
    atom      given an empty ``atom:Sequence`` (inputs) or an 8 KiB buffer (outputs)
    CV        given a buffer of zeros
    other     left unconnected when ``lv2:connectionOptional``, else refused

Host features: ``urid:map``, ``urid:unmap``, ``options:options`` (block lengths, sequence
size, sample rate) and ``bufsz:boundedBlockLength``. A plugin that requires anything else
(for example ``worker:schedule``) raises :class:`UnsupportedPluginError`.

Latency: the value of the plugin's latency output port (``lv2:reportsLatency`` or
``lv2:designation lv2:latency``), in samples, read after every run (so a parameter change
that moves it shows after the next ``process``). The first instance runs one frame of silence
so that ``latency`` is known before the first :meth:`Lv2Effect.process`, and is then replaced.
The output is the raw plugin output, delayed by that latency.

Every instance is activated by its first run, so that it starts from the control values of that
run: a render after :meth:`Lv2Effect.reset` does not depend on what earlier renders set
(plugins such as Calf's read their controls when activated and on their first run).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import functools
import math
import threading
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import BackendUnavailableError, FxError, PluginNotFoundError, UnsupportedPluginError
from ..params import Param
from .base import Effect

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM = "http://lv2plug.in/ns/ext/atom#"
BUFSZ = "http://lv2plug.in/ns/ext/buf-size#"
URID = "http://lv2plug.in/ns/ext/urid#"
OPTIONS = "http://lv2plug.in/ns/ext/options#"
UNITS = "http://lv2plug.in/ns/extensions/units#"

PROVIDED_FEATURES = (URID + "map", URID + "unmap", OPTIONS + "options", BUFSZ + "boundedBlockLength")
"""Features passed to every plugin at instantiation."""
SATISFIED_FEATURES = (LV2 + "inPlaceBroken", LV2 + "hardRTCapable")
"""Required "features" fxlib meets by how it runs plugins (separate in/out buffers, no feature data)."""
ATOM_CAPACITY = 8192
"""Bytes of each atom port buffer."""
MAX_CHOICES = 64
"""An integer or enumeration port with at most this many values becomes a ``choice`` parameter."""
UNIT_SYMBOLS = {"bar": "bars", "beat": "beats", "bpm": "BPM", "cent": "ct", "cm": "cm", "coef": "",
                "db": "dB", "degree": "deg", "frame": "frames", "hz": "Hz", "inch": "in", "khz": "kHz",
                "km": "km", "m": "m", "mhz": "MHz", "midiNote": "note", "mile": "mi", "min": "min",
                "mm": "mm", "ms": "ms", "oct": "oct", "pc": "%", "s": "s", "semitone12TET": "semi"}
"""Symbols of the units:* units, for when the units ontology bundle is not installed."""

_vp, _u32, _f32 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_float


class _Descriptor(ctypes.Structure):
    """``LV2_Descriptor`` (lv2/core/lv2.h); the function pointers are cast on use."""
    _fields_ = [("URI", ctypes.c_char_p), ("instantiate", _vp), ("connect_port", _vp), ("activate", _vp),
                ("run", _vp), ("deactivate", _vp), ("cleanup", _vp), ("extension_data", _vp)]


class _Instance(ctypes.Structure):
    """``LilvInstance`` (lilv/lilv.h), whose accessors are static inline there."""
    _fields_ = [("lv2_descriptor", ctypes.POINTER(_Descriptor)), ("lv2_handle", _vp), ("pimpl", _vp)]


class _Feature(ctypes.Structure):
    """``LV2_Feature``."""
    _fields_ = [("URI", ctypes.c_char_p), ("data", _vp)]


class _UridMap(ctypes.Structure):
    """``LV2_URID_Map`` / ``LV2_URID_Unmap``: a handle and one callback."""
    _fields_ = [("handle", _vp), ("callback", _vp)]


class _Option(ctypes.Structure):
    """``LV2_Options_Option``; a zeroed one ends an options array."""
    _fields_ = [("context", _u32), ("subject", _u32), ("key", _u32), ("size", _u32), ("type", _u32),
                ("value", _vp)]


_SIGNATURES = {  # name: (restype, argtypes); every Lilv* pointer is an opaque c_void_p
    "lilv_world_new": (_vp, []),
    "lilv_world_load_all": (None, [_vp]),
    "lilv_world_get_all_plugins": (_vp, [_vp]),
    "lilv_world_get": (_vp, [_vp, _vp, _vp, _vp]),
    "lilv_new_uri": (_vp, [_vp, ctypes.c_char_p]),
    "lilv_node_free": (None, [_vp]),
    "lilv_node_as_string": (ctypes.c_char_p, [_vp]),
    "lilv_node_as_float": (_f32, [_vp]),
    "lilv_node_is_uri": (ctypes.c_bool, [_vp]),
    "lilv_plugins_begin": (_vp, [_vp]),
    "lilv_plugins_next": (_vp, [_vp, _vp]),
    "lilv_plugins_is_end": (ctypes.c_bool, [_vp, _vp]),
    "lilv_plugins_get": (_vp, [_vp, _vp]),
    "lilv_plugins_get_by_uri": (_vp, [_vp, _vp]),
    "lilv_nodes_begin": (_vp, [_vp]),
    "lilv_nodes_next": (_vp, [_vp, _vp]),
    "lilv_nodes_is_end": (ctypes.c_bool, [_vp, _vp]),
    "lilv_nodes_get": (_vp, [_vp, _vp]),
    "lilv_nodes_free": (None, [_vp]),
    "lilv_scale_points_begin": (_vp, [_vp]),
    "lilv_scale_points_next": (_vp, [_vp, _vp]),
    "lilv_scale_points_is_end": (ctypes.c_bool, [_vp, _vp]),
    "lilv_scale_points_get": (_vp, [_vp, _vp]),
    "lilv_scale_points_free": (None, [_vp]),
    "lilv_scale_point_get_value": (_vp, [_vp]),
    "lilv_plugin_get_uri": (_vp, [_vp]),
    "lilv_plugin_get_name": (_vp, [_vp]),
    "lilv_plugin_get_num_ports": (_u32, [_vp]),
    "lilv_plugin_get_port_by_index": (_vp, [_vp, _u32]),
    "lilv_plugin_get_port_ranges_float": (None, [_vp, ctypes.POINTER(_f32), ctypes.POINTER(_f32),
                                                  ctypes.POINTER(_f32)]),
    "lilv_plugin_get_required_features": (_vp, [_vp]),
    "lilv_plugin_has_latency": (ctypes.c_bool, [_vp]),
    "lilv_plugin_get_latency_port_index": (_u32, [_vp]),
    "lilv_port_is_a": (ctypes.c_bool, [_vp, _vp, _vp]),
    "lilv_port_has_property": (ctypes.c_bool, [_vp, _vp, _vp]),
    "lilv_port_get_symbol": (_vp, [_vp, _vp]),
    "lilv_port_get_classes": (_vp, [_vp, _vp]),
    "lilv_port_get": (_vp, [_vp, _vp, _vp]),
    "lilv_port_get_scale_points": (_vp, [_vp, _vp]),
    "lilv_plugin_instantiate": (ctypes.POINTER(_Instance), [_vp, ctypes.c_double,
                                                            ctypes.POINTER(ctypes.POINTER(_Feature))]),
    "lilv_instance_free": (None, [ctypes.POINTER(_Instance)]),
}

_CONNECT = ctypes.CFUNCTYPE(None, _vp, _u32, _vp)
_RUN = ctypes.CFUNCTYPE(None, _vp, _u32)
_HANDLE_ONLY = ctypes.CFUNCTYPE(None, _vp)
_MAP = ctypes.CFUNCTYPE(_u32, _vp, ctypes.c_char_p)
_UNMAP = ctypes.CFUNCTYPE(_vp, _vp, _u32)


class _Urids:
    """The process-wide URID map (URI <-> integer), shared by every instance."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._uris: list[ctypes.Array] = []  # id - 1 -> NUL-terminated URI kept alive for unmap
        self._lock = threading.Lock()
        self._map_cb = _MAP(lambda _handle, uri: self.map(uri))
        self._unmap_cb = _UNMAP(self._unmap)
        self.map_struct = _UridMap(None, ctypes.cast(self._map_cb, _vp))
        self.unmap_struct = _UridMap(None, ctypes.cast(self._unmap_cb, _vp))

    def map(self, uri: bytes | str) -> int:
        """The URID of ``uri`` (assigned on first use, never 0)."""
        uri = uri.encode() if isinstance(uri, str) else uri
        with self._lock:
            if uri not in self._ids:
                self._uris.append(ctypes.create_string_buffer(uri))
                self._ids[uri] = len(self._uris)
            return self._ids[uri]

    def _unmap(self, _handle: int, urid: int) -> int | None:
        with self._lock:
            return ctypes.addressof(self._uris[urid - 1]) if 0 < urid <= len(self._uris) else None


class _World:
    """The lilv library, its world with every bundle loaded, and the nodes fxlib queries."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.ptr = lib.lilv_world_new()
        lib.lilv_world_load_all(self.ptr)
        self.plugins = lib.lilv_world_get_all_plugins(self.ptr)
        self.urids = _Urids()
        uris = {"audio": LV2 + "AudioPort", "control": LV2 + "ControlPort", "cv": LV2 + "CVPort",
                "atom": ATOM + "AtomPort", "input": LV2 + "InputPort", "output": LV2 + "OutputPort",
                "optional": LV2 + "connectionOptional", "toggled": LV2 + "toggled",
                "integer": LV2 + "integer", "enumeration": LV2 + "enumeration",
                "logarithmic": "http://lv2plug.in/ns/ext/port-props#logarithmic",
                "unit": UNITS + "unit", "symbol": UNITS + "symbol"}
        self.node = {key: lib.lilv_new_uri(self.ptr, uri.encode()) for key, uri in uris.items()}

    def iterate(self, kind: str, collection: int) -> Iterator[int]:
        """The elements of a lilv collection (``kind`` is "plugins", "nodes" or "scale_points")."""
        lib = self.lib
        begin, nxt, is_end, get = (getattr(lib, f"lilv_{kind}_{f}") for f in ("begin", "next", "is_end", "get"))
        it = begin(collection)
        while not is_end(collection, it):
            yield get(collection, it)
            it = nxt(collection, it)

    def string(self, node: int | None) -> str:
        """The string of a lilv node ("" for NULL)."""
        return self.lib.lilv_node_as_string(node).decode() if node else ""

    def all_plugins(self) -> Iterator[tuple[str, int]]:
        """``(uri, LilvPlugin*)`` for every installed plugin, sorted by URI."""
        for plugin in self.iterate("plugins", self.plugins):
            yield self.string(self.lib.lilv_plugin_get_uri(plugin)), plugin

    def find(self, uri: str) -> int:
        """The ``LilvPlugin*`` of ``uri``; :class:`PluginNotFoundError` suggesting close URIs otherwise.

        Suggestions come from URIs and plugin names, so ``"lsp limiter"`` points at LSP's limiters.
        """
        node = self.lib.lilv_new_uri(self.ptr, uri.encode()) if ":" in uri else None
        plugin = self.lib.lilv_plugins_get_by_uri(self.plugins, node) if node else None
        self.lib.lilv_node_free(node)
        if plugin:
            return plugin
        installed = list(self.all_plugins())
        uri_of = {u.lower(): u for u, _ in installed}
        uri_of.update({self.name(p).lower(): u for u, p in installed})
        close = dict.fromkeys(uri_of[k] for k in difflib.get_close_matches(uri.lower(), uri_of, n=3, cutoff=0.6))
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise PluginNotFoundError(f"LV2 plugin {uri!r} not found among {len(installed)} installed{hint} "
                                  "(`lv2ls` lists them; set LV2_PATH to add folders)")

    def name(self, plugin: int) -> str:
        """The plugin's ``doap:name`` (its URI when it has none)."""
        node = self.lib.lilv_plugin_get_name(plugin)
        name = self.string(node) or self.string(self.lib.lilv_plugin_get_uri(plugin))
        self.lib.lilv_node_free(node)
        return name

    def port_is(self, plugin: int, port: int, key: str) -> bool:
        """Whether ``port`` is of class ``node[key]`` ("audio", "input", ...)."""
        return bool(self.lib.lilv_port_is_a(plugin, port, self.node[key]))

    def port_has(self, plugin: int, port: int, key: str) -> bool:
        """Whether ``port`` has the port property ``node[key]`` ("toggled", "optional", ...)."""
        return bool(self.lib.lilv_port_has_property(plugin, port, self.node[key]))

    def unit(self, plugin: int, port: int) -> str:
        """The symbol of the port's ``units:unit`` ("" when it has none)."""
        lib = self.lib
        unit = lib.lilv_port_get(plugin, port, self.node["unit"])
        if not unit:
            return ""
        symbol_node = lib.lilv_world_get(self.ptr, unit, self.node["symbol"], None)
        symbol = self.string(symbol_node)
        if not symbol_node and lib.lilv_node_is_uri(unit):
            symbol = UNIT_SYMBOLS.get(self.string(unit).rpartition("#")[2], "")
        lib.lilv_node_free(symbol_node)
        lib.lilv_node_free(unit)
        return symbol

    def scale_values(self, plugin: int, port: int) -> list[float]:
        """The sorted distinct values of the port's scale points."""
        points = self.lib.lilv_port_get_scale_points(plugin, port)
        if not points:
            return []
        values = {_shortest(self.lib.lilv_node_as_float(self.lib.lilv_scale_point_get_value(p)))
                  for p in self.iterate("scale_points", points)}
        self.lib.lilv_scale_points_free(points)
        return sorted(values)


def _shortest(value: float) -> float:
    """A float32 value as the shortest decimal that rounds to it (0.1, not 0.10000000149011612)."""
    return float(str(np.float32(value)))


_world_lock = threading.Lock()
_world_cache: list[_World] = []


def _world() -> _World:
    """The process's lilv world, created on first call; :class:`BackendUnavailableError` without liblilv."""
    with _world_lock:
        if not _world_cache:
            path = ctypes.util.find_library("lilv-0") or "liblilv-0.so.0"
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                raise BackendUnavailableError(
                    f"LV2 hosting needs the lilv library (liblilv-0), which could not be loaded ({e}); install "
                    "`liblilv-0-0` (Debian/Ubuntu: apt install liblilv-0-0) or `lilv` (Homebrew, conda-forge)"
                ) from e
            for name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
            _world_cache.append(_World(lib))
        return _world_cache[0]


def list_plugins() -> list[dict]:
    """``[{"id": uri, "name", "channels": audio inputs}]`` for every installed LV2 plugin (none instantiated)."""
    world = _world()
    found = []
    for uri, plugin in world.all_plugins():
        ports = (world.lib.lilv_plugin_get_port_by_index(plugin, i)
                 for i in range(world.lib.lilv_plugin_get_num_ports(plugin)))
        n_in = sum(world.port_is(plugin, p, "audio") and world.port_is(plugin, p, "input") for p in ports)
        found.append({"id": uri, "name": world.name(plugin), "channels": n_in})
    return found


class Lv2Effect(Effect):
    """An LV2 plugin: parameters are its control input ports, channels its audio input ports.

    Args:
        plugin_id: the plugin URI.
        sample_rate: in Hz, passed to the plugin at instantiation (some refuse some rates).
        max_block: the most frames handed to the plugin per ``run``; longer audio is split.

    Buffers are allocated once at ``max_block`` frames and connected once per instance:
    ``process`` copies each block in, runs the plugin and copies the block out.
    """

    kind = "lv2"

    def __init__(self, plugin_id: str, sample_rate: float, max_block: int = 4096) -> None:
        if int(max_block) < 1:
            raise ValueError(f"{plugin_id}: max_block must be at least 1, got {max_block!r}")
        self.max_block = int(max_block)
        self._instance: Any = None
        super().__init__(plugin_id, sample_rate)

    @property
    def name(self) -> str:
        return getattr(self, "_name", self.plugin_id)

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        world = self._world = _world()
        lib = world.lib
        plugin = self._plugin = world.find(self.plugin_id)
        self._name = world.name(plugin)
        self._check_features()
        n_ports = lib.lilv_plugin_get_num_ports(plugin)
        lows, highs, defaults = (_f32 * n_ports)(), (_f32 * n_ports)(), (_f32 * n_ports)()
        lib.lilv_plugin_get_port_ranges_float(plugin, lows, highs, defaults)

        self._controls = np.zeros(n_ports, np.float32)  # one float per port; control ports use theirs
        self._index: dict[str, int] = {}  # parameter -> port index
        self._rounded: set[str] = set()  # integer parameters with too many values for a choice
        self._connections: list[tuple[int, int | None]] = []  # (port index, address or None)
        audio: dict[bool, list[int]] = {True: [], False: []}  # is_input -> port indices
        cv, atom_in, atom_out = [], [], []
        for i in range(n_ports):
            port = lib.lilv_plugin_get_port_by_index(plugin, i)
            symbol = world.string(lib.lilv_port_get_symbol(plugin, port))
            is_input = world.port_is(plugin, port, "input")
            if world.port_is(plugin, port, "audio"):
                audio[is_input].append(i)
            elif world.port_is(plugin, port, "control"):
                self._controls[i] = self._control_port(i, port, symbol, is_input, lows[i], highs[i], defaults[i])
                self._connections.append((i, self._controls.ctypes.data + 4 * i))
            elif world.port_has(plugin, port, "optional"):
                self._connections.append((i, None))
            elif world.port_is(plugin, port, "cv"):
                cv.append(i)
            elif world.port_is(plugin, port, "atom"):
                (atom_in if is_input else atom_out).append(i)
            else:
                classes = [world.string(n) for n in world.iterate("nodes", lib.lilv_port_get_classes(plugin, port))]
                raise UnsupportedPluginError(
                    f"LV2 plugin {self.plugin_id}: port {symbol!r} of type {', '.join(classes)} is required "
                    "(not lv2:connectionOptional) and fxlib cannot host it")
        if not audio[True] or len(audio[True]) != len(audio[False]):
            raise UnsupportedPluginError(
                f"LV2 plugin {self.plugin_id}: has {len(audio[True])} audio input(s) and {len(audio[False])} "
                "audio output(s); fxlib hosts effects with as many audio outputs as inputs (at least one)")
        self.channels = (len(audio[True]),)

        self._audio_in = np.zeros((len(audio[True]), self.max_block), np.float32)
        self._audio_out = np.zeros_like(self._audio_in)
        self._cv = np.zeros((len(cv), self.max_block), np.float32)
        # uint64 rows keep each LV2_Atom_Sequence 8-byte aligned; the header is 4 uint32
        self._atoms = np.zeros((len(atom_in) + len(atom_out), ATOM_CAPACITY // 8), np.uint64)
        header = self._atoms.view(np.uint32)[:, :4]
        header[: len(atom_in)] = (8, world.urids.map(ATOM + "Sequence"), 0, 0)  # empty sequence body
        self._atom_out_header = header[len(atom_in):, :2]
        self._atom_out_fill = np.array((ATOM_CAPACITY - 8, world.urids.map(ATOM + "Chunk")), np.uint32)
        for buffer, ports in ((self._audio_in, audio[True]), (self._audio_out, audio[False]), (self._cv, cv),
                              (self._atoms, atom_in + atom_out)):
            self._connections += [(i, buffer[row].ctypes.data) for row, i in enumerate(ports)]

        self._latency_port = self._find_latency_port(n_ports)
        self._features = self._make_features()
        self._instantiate()
        self._audio_in[:, 0] = 0.0
        self._run_block(1)  # reads the latency at the default controls
        self.reset()

    def _check_features(self) -> None:
        world = self._world
        required = world.lib.lilv_plugin_get_required_features(self._plugin)
        missing = [uri for uri in (world.string(n) for n in world.iterate("nodes", required))
                   if uri not in PROVIDED_FEATURES + SATISFIED_FEATURES]
        world.lib.lilv_nodes_free(required)
        if missing:
            raise UnsupportedPluginError(
                f"LV2 plugin {self.plugin_id} requires host feature(s) fxlib does not provide: {', '.join(missing)} "
                f"(provided: {', '.join(PROVIDED_FEATURES)})")

    def _control_port(self, index: int, port: int, symbol: str, is_input: bool, low: float, high: float,
                      default: float) -> float:
        """Add the parameter of a control input port (when it has a usable range); return its start value."""
        low, high, default = _shortest(low), _shortest(high), _shortest(default)
        if not math.isfinite(default):
            default = low if math.isfinite(low) else 0.0
        if not is_input:
            return default
        world, plugin = self._world, self._plugin
        if world.port_has(plugin, port, "toggled"):
            param = Param.choice(symbol, (0.0, 1.0), 1.0 if default > 0 else 0.0, owner=self.name)
        elif not (math.isfinite(low) and math.isfinite(high) and low < high):
            return default
        else:
            default = min(max(default, low), high)
            unit = world.unit(plugin, port)
            values: list[float] = []
            integer = world.port_has(plugin, port, "integer")
            if integer or world.port_has(plugin, port, "enumeration"):
                values = world.scale_values(plugin, port)
                if not values and integer and high - low <= MAX_CHOICES:
                    values = [float(v) for v in range(math.ceil(low), math.floor(high) + 1)]
            if 2 <= len(values) <= MAX_CHOICES:
                nearest = min(values, key=lambda v: abs(v - default))
                param = Param.choice(symbol, values, nearest, unit=unit, owner=self.name)
            else:
                scale = "log" if world.port_has(plugin, port, "logarithmic") and low > 0 else "linear"
                param = Param(symbol, low, high, default, unit=unit, scale=scale, owner=self.name)
                if integer:
                    self._rounded.add(symbol)
        self.params[symbol] = param
        self._index[symbol] = index
        return float(param.default)

    def _find_latency_port(self, n_ports: int) -> int | None:
        """Index of the control output that reports latency in samples (None when there is none)."""
        lib, plugin, world = self._world.lib, self._plugin, self._world
        if lib.lilv_plugin_has_latency(plugin):
            return int(lib.lilv_plugin_get_latency_port_index(plugin))
        for i in range(n_ports):
            port = lib.lilv_plugin_get_port_by_index(plugin, i)
            if (world.string(lib.lilv_port_get_symbol(plugin, port)) == "latency"
                    and world.port_is(plugin, port, "control") and world.port_is(plugin, port, "output")):
                return i
        return None

    def _make_features(self) -> ctypes.Array:
        """The NULL-terminated ``LV2_Feature*`` array (its pieces are kept on ``self``)."""
        urids = self._world.urids
        atom_int, atom_float = urids.map(ATOM + "Int"), urids.map(ATOM + "Float")
        self._option_values = (ctypes.c_int32(1), ctypes.c_int32(self.max_block), ctypes.c_int32(ATOM_CAPACITY),
                               _f32(self.sample_rate))
        keys = (BUFSZ + "minBlockLength", BUFSZ + "maxBlockLength", BUFSZ + "sequenceSize")
        options = [_Option(0, 0, urids.map(key), 4, atom_int, ctypes.addressof(value))
                   for key, value in zip(keys, self._option_values)]
        options.append(_Option(0, 0, urids.map(BUFSZ + "nominalBlockLength"), 4, atom_int,
                               ctypes.addressof(self._option_values[1])))
        options.append(_Option(0, 0, urids.map("http://lv2plug.in/ns/ext/parameters#sampleRate"), 4, atom_float,
                               ctypes.addressof(self._option_values[3])))
        self._options = (_Option * (len(options) + 1))(*options)
        self._feature_structs = [
            _Feature(URID.encode() + b"map", ctypes.addressof(urids.map_struct)),
            _Feature(URID.encode() + b"unmap", ctypes.addressof(urids.unmap_struct)),
            _Feature(OPTIONS.encode() + b"options", ctypes.addressof(self._options)),
            _Feature(BUFSZ.encode() + b"boundedBlockLength", None)]
        return (ctypes.POINTER(_Feature) * (len(self._feature_structs) + 1))(
            *(ctypes.pointer(f) for f in self._feature_structs))

    def _instantiate(self) -> None:
        """Make a fresh instance and connect every port; its first run activates it (:meth:`_run_block`)."""
        instance = self._world.lib.lilv_plugin_instantiate(self._plugin, self.sample_rate, self._features)
        if not instance:
            raise UnsupportedPluginError(
                f"LV2 plugin {self.plugin_id} failed to instantiate at {self.sample_rate:g} Hz "
                "(the plugin refused; it may not support this sample rate)")
        self._instance = instance
        descriptor = instance.contents.lv2_descriptor.contents
        self._handle = instance.contents.lv2_handle
        connect = _CONNECT(descriptor.connect_port)
        for index, address in self._connections:
            connect(self._handle, index, address)
        self._run = _RUN(descriptor.run)
        self._activate = _HANDLE_ONLY(descriptor.activate) if descriptor.activate else None
        self._deactivate = _HANDLE_ONLY(descriptor.deactivate) if descriptor.deactivate else None
        self._active = False

    # -- the Effect interface ------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> None:
        self._controls[self._index[name]] = round(value) if name in self._rounded else value

    def setter(self, name: str) -> Callable[[Any], None]:
        """A store into the port's control float (a rounding :meth:`_set` for integer ports)."""
        if name in self._rounded:
            return super().setter(name)
        return functools.partial(self._controls.__setitem__, self._index[name])

    def _run_block(self, frames: int) -> None:
        if not self._active:
            if self._activate is not None:
                self._activate(self._handle)
            self._active = True
        self._atom_out_header[:] = self._atom_out_fill
        self._run(self._handle, frames)
        if self._latency_port is not None:
            self.latency = int(round(float(self._controls[self._latency_port])))

    def _process(self, audio: np.ndarray) -> np.ndarray:
        """Run ``(C, T)`` float32 audio through the plugin in blocks of ``max_block`` frames."""
        if self._instance is None:
            raise FxError(f"{self.name}: the effect is closed")
        out = np.empty_like(audio)
        for start in range(0, audio.shape[1], self.max_block):
            n = min(self.max_block, audio.shape[1] - start)
            self._audio_in[:, :n] = audio[:, start:start + n]
            self._run_block(n)
            out[:, start:start + n] = self._audio_out[:, :n]
        return out

    def reset(self) -> None:
        """Replace the instance by a fresh one (LV2 has no reset; deactivate/activate keeps state)."""
        self.close()
        self._instantiate()

    def close(self) -> None:
        """Deactivate and free the instance; safe to call twice."""
        if self._instance is not None:
            if self._active and self._deactivate is not None:
                self._deactivate(self._handle)
            self._world.lib.lilv_instance_free(self._instance)
            self._instance = None

    def __del__(self) -> None:
        if getattr(self, "_instance", None) is not None:
            self.close()
