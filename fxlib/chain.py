"""FxChain: an ordered chain of hosted effects with a learnable parameter vector.

A chain is built from a plain-data spec (a dict, or a TOML file) so that worker processes
can rebuild it; no plugin object ever needs to pickle::

    sample_rate = 22050
    channels = 1                      # 1 (mono) or 2 (stereo)

    [[effects]]
    name = "comp"                     # optional; unique within the chain
    kind = "builtin"                  # builtin | vst3 | lv2 | python
    id = "Compressor"
    learn = ["threshold_db", "ratio"] # or "all"; the others keep their values
    fixed = { attack_ms = 5.0 }       # pinned native values
    ranges = { ratio = { low = 1, high = 8, scale = "log" } }   # narrow a learned range

The learned parameters form one vector ``u`` in [0, 1] of length :attr:`FxChain.num_params`,
in spec order, named ``"<effect>.<param>"``; :meth:`FxChain.to_native` and
:meth:`FxChain.to_unit` map it to native values and back.

Channels: a mono-only plugin in a stereo chain runs as two instances, one per channel; a
stereo-only plugin in a mono chain gets the mono signal on both inputs and its two outputs
are averaged.

Rendering: the hot path of training renders many short blocks, so a chain checks its audio
and its parameter vector once per render, maps the vector with one
:class:`~fxlib.params.NativeMap`, sets only the controls whose value changed
(:meth:`~fxlib.hosts.base.Effect.render_plan`) and renders consecutive built-in effects in one
``pedalboard.Pedalboard`` call (:class:`~fxlib.hosts.builtin.BuiltinRun`). Names, ranges and
read-back are checked once, when the chain is built.

Latency: each effect's delay (the silent lead-in of its impulse response) is measured when
the chain is built (and by :meth:`FxChain.measure_latency`). :meth:`FxChain.process` renders a clip from a reset,
flushes the delay with zeros and returns output aligned with the input sample for sample;
:meth:`FxChain.stream` continues from the current state and returns the raw output, which
lags the input by :attr:`FxChain.latency` samples.
"""
from __future__ import annotations

import copy
import tomllib
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .atomic import write_text
from .errors import AudioFormatError, FxError, SpecError
from .hosts import Effect, backend, check_audio, load_effect
from .params import NativeMap, Param, closest, unknown_param

EFFECT_KEYS = ("name", "kind", "id", "learn", "fixed", "ranges", "params", "channels")
CHAIN_KEYS = ("sample_rate", "channels", "effects", "name", "description")
LATENCY_PROBE = 8192  # samples of impulse response examined (plus twice the reported latency)


class _Stage:
    """One effect of a chain, adapted to the chain's channel count."""

    def __init__(self, spec: dict, sample_rate: float, channels: int) -> None:
        self.spec = spec
        self.name = spec["name"]
        options = {k: spec[k] for k in ("params", "channels") if k in spec}
        if options and spec["kind"] != "python":
            raise SpecError(f"{self.name} ({spec['id']}): {' and '.join(map(repr, options))} apply to python "
                            f"effects only, not to kind {spec['kind']!r}")
        first = load_effect(spec["kind"], spec["id"], sample_rate, **options)
        if channels in first.channels:
            self.mode, self.instances = "direct", [first]
        elif channels == 2 and 1 in first.channels:
            second = load_effect(spec["kind"], spec["id"], sample_rate, **options)
            self.mode, self.instances = "dual-mono", [first, second]
        elif channels == 1 and 2 in first.channels:
            self.mode, self.instances = "mono-to-stereo", [first]
        else:
            raise AudioFormatError(f"{self.name} ({first.name}) takes {first.channels} channel(s); "
                                   f"a {channels}-channel chain cannot adapt it")
        self.effect = first
        self.latency = 0

    def set(self, values: Mapping[str, Any]) -> None:
        """Set native values by name on every instance, checked (and read back where the backend can)."""
        for inst in self.instances:
            inst.set(values)

    def confirm_values(self, name: str, values: Sequence[Any]) -> None:
        """Read back ``values`` of parameter ``name`` on every instance (:meth:`Effect.confirm_values`)."""
        for inst in self.instances:
            inst.confirm_values(name, values)

    def reset(self) -> None:
        for inst in self.instances:
            inst.reset()

    def process_checked(self, audio: np.ndarray) -> np.ndarray:
        """Render C-contiguous, finite float32 ``(channels, T)`` audio of the chain's channel count."""
        if self.mode == "direct":
            return self.instances[0].process_checked(audio)
        if self.mode == "dual-mono":
            return np.concatenate([inst.process_checked(audio[i:i + 1]) for i, inst in enumerate(self.instances)])
        out = self.instances[0].process_checked(np.repeat(audio, 2, axis=0))
        return out.mean(axis=0, keepdims=True)

    def close(self) -> None:
        for inst in self.instances:
            inst.close()


class FxChain:
    """Ordered effects, their learned parameters, channel adaptation and latency compensation.

    Args:
        effects: effect specs (dicts with the keys in the module docstring).
        sample_rate: in Hz, for every effect.
        channels: 1 or 2; the audio given to :meth:`process` must have this many channels.
        name, description: free text kept in the spec.

    Attributes:
        params: the learned parameters, ``Param`` with ``owner`` = effect name, in vector order.
        names: ``"<effect>.<param>"`` for each learned parameter.
        latency: total measured latency in samples.
    """

    def __init__(self, effects: Iterable[Mapping], sample_rate: float = 22050, channels: int = 1,
                 name: str = "", description: str = "") -> None:
        if channels not in (1, 2):
            raise SpecError(f"chain channels must be 1 or 2, got {channels!r}")
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.name = name
        self.description = description
        specs = _normalise_effects(effects)
        self.stages: list[_Stage] = []
        try:
            for spec in specs:
                self.stages.append(_Stage(spec, self.sample_rate, self.channels))
            self.params: list[Param] = []
            for stage in self.stages:
                self.params += _configure(stage)
            self.measure_latency()
        except BaseException:
            self.close()
            raise
        self.names = [f"{p.owner}.{p.name}" for p in self.params]
        self._index = {n: i for i, n in enumerate(self.names)}
        own = {s.name: s.effect.params for s in self.stages}
        self._map = NativeMap(self.params, [own[p.owner][p.name] for p in self.params])
        self._plan = [entry for effect, start, names in _targets(self.stages, self.params)
                      for entry in effect.render_plan(names, start)]
        self._renderers = _renderers(self.stages)

    # -- construction from and to plain data -------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping) -> "FxChain":
        """Build from a dict such as :meth:`to_spec` returns."""
        _check_keys(spec, CHAIN_KEYS, "chain spec")
        if "effects" not in spec:
            raise SpecError("chain spec has no 'effects' list")
        return cls(spec["effects"], spec.get("sample_rate", 22050), spec.get("channels", 1),
                   spec.get("name", ""), spec.get("description", ""))

    @classmethod
    def from_toml(cls, path: str | Path) -> "FxChain":
        """Build from a TOML file laid out as in the module docstring."""
        path = Path(path)
        try:
            with path.open("rb") as f:
                spec = tomllib.load(f)
        except FileNotFoundError:
            raise SpecError(f"chain spec file {path} does not exist") from None
        except IsADirectoryError:
            raise SpecError(f"chain spec file {path} is a folder, not a TOML file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SpecError(f"chain spec file {path} is not valid TOML: {e}") from e
        return cls.from_spec(spec)

    def to_spec(self) -> dict:
        """The plain-data spec that rebuilds this chain (``FxChain.from_spec(c.to_spec())``)."""
        spec: dict[str, Any] = {"sample_rate": self.sample_rate, "channels": self.channels,
                                "effects": [copy.deepcopy(s.spec) for s in self.stages]}
        if self.name:
            spec["name"] = self.name
        if self.description:
            spec["description"] = self.description
        return spec

    def to_toml(self, path: str | Path) -> None:
        """Write :meth:`to_spec` as TOML, atomically (a temporary file renamed into place)."""
        import tomli_w

        write_text(path, tomli_w.dumps(self.to_spec()))

    # -- the parameter vector ----------------------------------------------------------
    @property
    def num_params(self) -> int:
        """P, the length of the learned parameter vector."""
        return len(self.params)

    def to_native(self, u: Any) -> dict[str, Any]:
        """``{"<effect>.<param>": native value}`` for a unit vector ``u`` shaped ``(P,)``."""
        return dict(zip(self.names, self._map.values(self._check_unit(u))))

    def to_unit(self, values: Mapping[str, Any]) -> np.ndarray:
        """The unit vector ``(P,)`` for ``{"<effect>.<param>": native value}``.

        Learned parameters missing from ``values`` take their default.
        """
        for key in values:
            if key not in self._index:
                raise unknown_param(self.name or "chain", key, self.names)
        return np.array([p.to_unit(values.get(n, p.default)) for n, p in zip(self.names, self.params)])

    def default_unit(self) -> np.ndarray:
        """The unit vector ``(P,)`` of every learned parameter's default."""
        return np.array([p.to_unit(p.default) for p in self.params])

    def native_rows(self, u: Any) -> list[list[Any]]:
        """The learned parameters' native values, in vector order, for each row of ``u``.

        One vectorised pass for a batch of renders; each row can then be given to
        :meth:`stream` or :meth:`process` as ``native`` (an engine maps a whole job at once).

        Shape:
            u ``(N, P)`` in [0, 1] (clipped) -> N lists of P values.
        """
        u = np.asarray(u, dtype=np.float64)
        if u.ndim != 2 or u.shape[1] != self.num_params:
            raise SpecError(f"{self.name or 'chain'}: parameter vectors must be shaped (N, {self.num_params}) "
                            f"for {self.names}, got {u.shape}")
        if not np.isfinite(u).all():
            raise SpecError(f"{self.name or 'chain'}: parameter vectors hold NaN or Inf")
        return self._map.rows(u)

    def set_unit(self, u: Any) -> None:
        """Set every learned parameter from a unit vector ``(P,)`` (clipped to [0, 1]).

        Only the controls whose native value changed are set (:meth:`Effect.render_plan`).
        """
        self._set_native(self._map.values(self._check_unit(u)))

    def _set_native(self, values: Sequence[Any]) -> None:
        """Set the learned parameters to native values in vector order (a row of :meth:`native_rows`)."""
        if len(values) != self.num_params:
            raise SpecError(f"{self.name or 'chain'}: {len(values)} native values for {self.num_params} "
                            f"learned parameters {self.names}")
        for index, current, name, setter in self._plan:  # see Effect.render_plan
            value = values[index]
            if current[name] != value:
                setter(value)
                current[name] = value

    def _check_unit(self, u: Any) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.num_params,):
            raise SpecError(f"{self.name or 'chain'}: parameter vector must have shape ({self.num_params},) "
                            f"for {self.names}, got {u.shape}")
        if not np.isfinite(u).all():
            raise SpecError(f"{self.name or 'chain'}: parameter vector holds NaN or Inf: {u}")
        return u

    # -- processing ----------------------------------------------------------------------
    def reset(self) -> None:
        """Clear every effect's state (parameter values are kept)."""
        for stage in self.stages:
            stage.reset()

    def stream(self, audio: np.ndarray, u: Any = None, native: Sequence[Any] | None = None) -> np.ndarray:
        """Process the next block of a stream, continuing from the current state.

        Args:
            audio: float32 ``(channels, T)``.
            u: optional unit parameter vector ``(P,)`` applied before the block.
            native: instead of ``u``, a row of :meth:`native_rows` (not checked again).

        Returns:
            float32 ``(channels, T)``, lagging the input by :attr:`latency` samples.
        """
        self._check_audio(audio)
        self._set(u, native)
        return self._render(np.ascontiguousarray(audio))

    def process(self, audio: np.ndarray, u: Any = None, preroll: int = 0,
                native: Sequence[Any] | None = None) -> np.ndarray:
        """Render a clip from a reset, latency-compensated.

        Args:
            audio: float32 ``(channels, T)``.
            u: optional unit parameter vector ``(P,)``.
            preroll: the first ``preroll`` samples warm the effects' state and are not returned.
            native: instead of ``u``, a row of :meth:`native_rows` (not checked again).

        Returns:
            float32 ``(channels, T - preroll)``, aligned with ``audio[:, preroll:]``.
        """
        self._check_audio(audio)
        if not 0 <= preroll < audio.shape[1]:
            raise AudioFormatError(f"{self.name or 'chain'}: preroll {preroll} must be in [0, {audio.shape[1]})")
        self.reset()
        self._set(u, native)
        return self._clip(np.ascontiguousarray(audio), preroll)

    def process_checked(self, audio: np.ndarray, native: Sequence[Any], preroll: int = 0) -> np.ndarray:
        """:meth:`process` for audio already checked (C-contiguous, finite float32 ``(channels, T)``,
        ``0 <= preroll < T``) with a row of :meth:`native_rows`, as :meth:`stream_checked` is
        for :meth:`stream`: an engine checks a whole job's audio at once."""
        self.reset()
        self._set_native(native)
        return self._clip(audio, preroll)

    def stream_checked(self, audio: np.ndarray, native: Sequence[Any]) -> np.ndarray:
        """:meth:`stream` for audio already checked (C-contiguous, finite float32 ``(channels, T)``)
        with a row of :meth:`native_rows`: an engine checks a whole job's audio at once, then
        calls this per render. The output is checked (a plugin's NaN or Inf is named)."""
        self._set_native(native)
        return self._render(audio)

    def _set(self, u: Any, native: Sequence[Any] | None) -> None:
        if u is not None and native is not None:
            raise SpecError(f"{self.name or 'chain'}: give the parameters as u or as native values, not both")
        if u is not None:
            self.set_unit(u)
        elif native is not None:
            self._set_native(native)

    def _clip(self, audio: np.ndarray, preroll: int) -> np.ndarray:
        """Render checked, C-contiguous audio from the current state with the latency flushed by
        zeros, and return it aligned with ``audio[:, preroll:]``."""
        padded = np.pad(audio, ((0, 0), (0, self.latency))) if self.latency else audio
        return self._render(padded)[:, preroll + self.latency:]

    def _render(self, audio: np.ndarray) -> np.ndarray:
        """Render checked, C-contiguous audio through every effect, continuing from the current state."""
        for renderer in self._renderers:
            audio = renderer.process_checked(audio)
        return audio

    def _check_audio(self, audio: np.ndarray) -> None:
        check_audio(audio, self.name or "chain", (self.channels,))

    def measure_latency(self) -> int:
        """Measure each effect's delay with an impulse (at current values); return the total.

        An effect's delay is the length of the silent lead-in of its response to an impulse
        from a fresh reset: the first sample above 1e-3 of the response's peak. That is exact
        for plugins that delay their output (look-ahead limiters, linear-phase filters whose
        host pads), and 0 for filters that respond at once however they disperse (crossovers).
        A plugin that reports a longer latency than the lead-in (a linear-phase design whose
        pre-ringing starts early) keeps the reported value. An effect that mutes the impulse
        keeps the reported latency, with a warning. Effects are reset afterwards.
        """
        for stage in self.stages:
            reported = stage.effect.latency
            impulse = np.zeros((self.channels, LATENCY_PROBE + 2 * reported), np.float32)
            impulse[:, 0] = 0.5
            stage.reset()
            response = np.abs(stage.process_checked(impulse)).max(axis=0)
            stage.reset()
            if response.max() < 1e-4:
                warnings.warn(f"{stage.name}: the latency probe came out silent; using the reported "
                              f"{reported} samples", stacklevel=2)
                stage.latency = reported
            else:
                onset = int(np.argmax(response > 1e-3 * response.max()))
                stage.latency = max(onset, reported)
        self.latency = sum(s.latency for s in self.stages)
        return self.latency

    # -- housekeeping --------------------------------------------------------------------
    def effect(self, name: str) -> Effect:
        """The (first) effect instance of stage ``name``."""
        for stage in self.stages:
            if stage.name == name:
                return stage.effect
        raise FxError(f"{self.name or 'chain'} has no effect named {name!r}"
                      f"{closest(name, [s.name for s in self.stages])}")

    def describe(self) -> str:
        """A table of the learned parameters: name, range, unit, scale, default."""
        rows = [f"{'parameter':36} {'low':>10} {'high':>10} {'unit':6} {'scale':7} default"]
        for n, p in zip(self.names, self.params):
            rng = (f"{p.low:>10.4g} {p.high:>10.4g}" if p.scale != "choice"
                   else f"{'choices:':>10} {len(p.choices):>10}")
            rows.append(f"{n:36} {rng} {p.unit:6} {p.scale:7} {p.default}")
        return "\n".join(rows)

    def close(self) -> None:
        """Release every effect's native resources."""
        for stage in getattr(self, "stages", []):
            stage.close()

    def __enter__(self) -> "FxChain":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        fx = " -> ".join(f"{s.name}({s.spec['kind']})" for s in self.stages)
        return f"FxChain({fx}, P={self.num_params}, sr={self.sample_rate:g}, channels={self.channels})"


def _check_keys(spec: Any, allowed: Iterable[str], where: str) -> None:
    """Raise :class:`SpecError` unless ``spec`` is a mapping with only ``allowed`` keys."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"{where} must be a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}{closest(unknown[0], allowed)}")


def _normalise_effects(effects: Iterable[Mapping]) -> list[dict]:
    """Check the effect specs' keys and give every effect a unique name."""
    specs, seen = [], set()
    for i, raw in enumerate(effects):
        where = f"effect #{i}" + (f" ({raw.get('id', '?')})" if isinstance(raw, Mapping) else "")
        _check_keys(raw, EFFECT_KEYS, where)
        for key in ("kind", "id"):
            if key not in raw:
                raise SpecError(f"effect #{i}: missing {key!r}")
        spec = copy.deepcopy(dict(raw))
        base = spec.get("name") or (str(spec["id"]).rstrip("/#").removesuffix(".vst3").split("/")[-1]
                                     .split(":")[-1].replace(".", "_"))
        name, k = base, 2
        while name in seen:
            if "name" in raw:
                raise SpecError(f"effect name {name!r} is used twice")
            name, k = f"{base}_{k}", k + 1
        if "." in name:
            raise SpecError(f"effect name {name!r} must not contain '.'")
        seen.add(name)
        spec["name"] = name
        spec.setdefault("learn", [])
        spec.setdefault("fixed", {})
        spec.setdefault("ranges", {})
        specs.append(spec)
    if not specs:
        raise SpecError("a chain needs at least one effect")
    return specs


def _targets(stages: Sequence[_Stage], params: Sequence[Param]) -> list[tuple[Effect, int, list[str]]]:
    """``(effect instance, start, names)``: the slice of the learned vector each instance takes.

    A stage's learned parameters are consecutive in the vector (:func:`_configure` adds them
    stage by stage), and each of its instances (two for dual mono) takes them all; stages that
    learn nothing are left out.
    """
    targets, start = [], 0
    for stage in stages:
        names = [p.name for p in params[start:] if p.owner == stage.name]
        if names:
            targets += [(inst, start, names) for inst in stage.instances]
        start += len(names)
    return targets


def _renderers(stages: Sequence[_Stage]) -> list[Any]:
    """What :meth:`FxChain.stream` calls in turn: each stage, except that consecutive built-ins
    become one :class:`~fxlib.hosts.builtin.BuiltinRun` (one pedalboard call, same output)."""
    renderers: list[Any] = []
    run: list[_Stage] = []
    for stage in [*stages, None]:
        if stage is not None and stage.spec["kind"] == "builtin" and stage.mode == "direct":
            run.append(stage)
            continue
        if len(run) > 1:
            renderers.append(backend("builtin").BuiltinRun([s.effect for s in run]))
        else:
            renderers += run
        run = []
        if stage is not None:
            renderers.append(stage)
    return renderers


def _configure(stage: _Stage) -> list[Param]:
    """Apply a stage's pinned values and return its learned parameters (ranges narrowed)."""
    spec, effect = stage.spec, stage.effect
    fixed, ranges, learn = spec["fixed"], spec["ranges"], spec["learn"]
    for key in list(fixed) + list(ranges):
        if key not in effect.params:
            raise unknown_param(f"{stage.name} ({effect.name})", key, effect.params)
    stage.set(fixed)
    if learn == "all":
        learn = [n for n in effect.params if n not in fixed]
    elif isinstance(learn, str) or not all(isinstance(n, str) for n in learn):
        raise SpecError(f"{stage.name}: 'learn' must be a list of parameter names or \"all\", got {learn!r}")
    learned = []
    for key in learn:
        if key not in effect.params:
            raise unknown_param(f"{stage.name} ({effect.name})", key, effect.params)
        if key in fixed:
            raise SpecError(f"{stage.name}.{key} is both learned and fixed")
        if list(learn).count(key) > 1:
            raise SpecError(f"{stage.name}.{key} is listed twice in 'learn'")
        param = effect.params[key]
        if key in ranges:
            r = ranges[key]
            if not isinstance(r, Mapping) or set(r) - {"low", "high", "scale", "default"}:
                raise SpecError(f"{stage.name}.{key}: a range is a table of low, high, scale, default; got {r!r}")
            param = param.with_range(r.get("low"), r.get("high"), r.get("scale"), r.get("default"))
            if param.default != effect.get(key):
                stage.set({key: param.default})
        stage.confirm_values(key, [param.to_native(0.0), param.to_native(1.0)])
        learned.append(replace(param, owner=stage.name))
    for key in ranges:
        if key not in learn:
            raise SpecError(f"{stage.name}.{key}: has a range but is not learned")
    return learned
