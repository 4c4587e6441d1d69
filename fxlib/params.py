"""Effect parameters: native ranges, units, scales and the [0, 1] mapping.

A network head outputs values in [0, 1]; effects want native values (dB, Hz, ms, linear
gains, choices). :class:`Param` is the contract between the two: it declares one control's
native range, unit and default, and maps unit values to native ones and back.

Scales:
    ``linear``  native = low + u * (high - low)
    ``log``     native = low * (high / low) ** u            (needs 0 < low < high; frequencies, times)
    ``db``      a linear amplitude gain moved linearly in decibels:
                native = 10 ** (dB / 20), dB = dB(low) + u * (dB(high) - dB(low));
                a ``low`` of 0 stands for ``DB_FLOOR`` dB and u = 0 maps to exactly 0
    ``choice``  one of ``choices`` (numbers, booleans or strings); u is split into
                ``len(choices)`` equal bins
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ParameterError

SCALES = ("linear", "log", "db", "choice")
DB_FLOOR = -80.0
"""dB value that a ``db``-scaled parameter with ``low == 0`` uses for u = 0+."""


@dataclass(frozen=True)
class Param:
    """One control of an effect.

    Args:
        name: the control's name as the effect knows it (a python name, a VST3 parameter
            name or an LV2 port symbol).
        low, high: native range, ``low < high``; for ``choice`` the index range 0..n-1.
        default: native default value (inside the range, or one of ``choices``).
        unit: physical unit, for display ("dB", "Hz", "ms", "" for unitless).
        scale: one of ``SCALES``.
        choices: the allowed native values of a ``choice`` parameter.
        owner: name of the effect the parameter belongs to, used in error messages.
    """

    name: str
    low: float
    high: float
    default: Any
    unit: str = ""
    scale: str = "linear"
    choices: tuple = ()
    owner: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.where
        if self.scale not in SCALES:
            raise ParameterError(f"{where}: unknown scale {self.scale!r}; use one of {SCALES}")
        if self.scale == "choice":
            if len(self.choices) < 1:
                raise ParameterError(f"{where}: a 'choice' parameter needs at least one choice")
            if self.default not in self.choices:
                raise ParameterError(f"{where}: default {self.default!r} is not one of {self.choices}")
            object.__setattr__(self, "low", 0.0)
            object.__setattr__(self, "high", float(len(self.choices) - 1))
            return
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ParameterError(f"{where}: range must be finite with low < high, got [{low}, {high}]")
        if self.scale == "log" and low <= 0:
            raise ParameterError(f"{where}: a 'log' scale needs low > 0, got {low}")
        if self.scale == "db" and low < 0:
            raise ParameterError(f"{where}: a 'db' scale is for linear gains >= 0, got low = {low}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "default", self.check(self.default))

    @property
    def where(self) -> str:
        """``owner.name``, or ``name`` alone, for messages."""
        return f"{self.owner}.{self.name}" if self.owner else self.name

    @classmethod
    def choice(cls, name: str, choices: Iterable, default: Any = None, unit: str = "",
               owner: str = "") -> "Param":
        """A parameter taking one of ``choices`` (default: the first)."""
        choices = tuple(choices)
        if default is None and choices:
            default = choices[0]
        return cls(name, 0.0, 0.0, default, unit=unit,
                   scale="choice", choices=choices, owner=owner)

    def with_range(self, low: float | None = None, high: float | None = None,
                   scale: str | None = None, default: Any = None) -> "Param":
        """A copy with a narrower range or another scale (used by chain specs).

        The new range must lie inside the effect's own range; the default is clipped into it.
        """
        if self.scale == "choice":
            raise ParameterError(f"{self.where}: a 'choice' parameter has no range to override")
        low = self.low if low is None else float(low)
        high = self.high if high is None else float(high)
        for v in (low, high):
            self.check(v)
        if default is None:
            default = min(max(self.default, low), high)
        return replace(self, low=low, high=high, scale=scale or self.scale, default=default)

    def check(self, value: Any) -> Any:
        """Return ``value`` if it is valid for this parameter, else raise :class:`ParameterError`."""
        if self.scale == "choice":
            if value not in self.choices:
                raise ParameterError(f"{self.where}: {value!r} is not one of {self.choices}")
            return value
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{self.where}: expected a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ParameterError(f"{self.where}: value must be finite, got {v}")
        tol = 1e-6 * max(1.0, abs(self.low), abs(self.high))
        if not self.low - tol <= v <= self.high + tol:
            raise ParameterError(
                f"{self.where}: {v:g} {self.unit} is outside [{self.low:g}, {self.high:g}]".replace("  ", " "))
        return min(max(v, self.low), self.high)

    def to_native(self, u: Any) -> Any:
        """Map a unit value (float, or an array of them; clipped to [0, 1]) to the native value.

        A scalar gives a float (or the choice); an array gives an array of the same shape (a
        list of the choices for a ``choice`` parameter). The mapping is :class:`NativeMap`'s.
        """
        if np.ndim(u) == 0:
            return self._map.values(np.array([u], dtype=np.float64))[0]
        flat = np.asarray(u, dtype=np.float64).reshape(-1, 1)
        if self.scale == "choice":
            return [self.choices[int(i)] for i in self._map.array(flat)[:, 0]]
        return self._map.array(flat)[:, 0].reshape(np.shape(u))

    @functools.cached_property
    def _map(self) -> "NativeMap":
        """This parameter's :class:`NativeMap` (built on first use; not a field)."""
        return NativeMap([self])

    def to_unit(self, value: Any) -> Any:
        """Map a native value (or an array or list of them) to [0, 1]; the inverse of :meth:`to_native`."""
        if isinstance(value, (list, tuple, np.ndarray)):
            return np.array([self.to_unit(v) for v in value], dtype=np.float64)
        if self.scale == "choice":
            return (self.choices.index(self.check(value)) + 0.5) / len(self.choices)
        return min(max(self._unit(min(max(float(value), self.low), self.high)), 0.0), 1.0)

    def _unit(self, v: float) -> float:
        """The unit value of a native value v inside [low, high] (not a choice)."""
        if self.scale == "linear":
            return (v - self.low) / (self.high - self.low)
        if self.scale == "log":
            return math.log(v / self.low) / math.log(self.high / self.low)
        lo, hi = self._db_bounds()
        if v <= self.low:
            return 0.0
        return (20.0 * math.log10(max(v, 10.0 ** (lo / 20.0))) - lo) / (hi - lo)

    def _db_bounds(self) -> tuple[float, float]:
        """A ``db`` parameter's range in decibels (``DB_FLOOR`` for a ``low`` of 0)."""
        lo = 20.0 * math.log10(self.low) if self.low > 0 else DB_FLOOR
        return lo, 20.0 * math.log10(self.high)

    def to_dict(self) -> dict:
        """Plain data (for specs, JSON and TOML)."""
        d = asdict(self)
        d.pop("owner")
        if self.scale == "choice":
            d.pop("low")
            d.pop("high")
            d["choices"] = list(self.choices)
        else:
            d.pop("choices")
        return d

    @classmethod
    def from_dict(cls, d: dict, owner: str = "") -> "Param":
        """Inverse of :meth:`to_dict`; raises :class:`ParameterError` naming missing keys."""
        d = dict(d)
        name = d.get("name", "?")
        if d.get("scale") == "choice":
            return cls.choice(name, d.get("choices", ()), d.get("default"), d.get("unit", ""), owner)
        missing = [k for k in ("name", "low", "high") if k not in d]
        if missing:
            raise ParameterError(f"{owner}.{name}: parameter declaration lacks {missing}")
        d.setdefault("default", d["low"])
        unknown = set(d) - {"name", "low", "high", "default", "unit", "scale"}
        if unknown:
            raise ParameterError(f"{owner}.{name}: unknown keys {sorted(unknown)} in parameter declaration")
        return cls(owner=owner, **d)


_LIBM_POW = np.frompyfunc(math.pow, 2, 1)


def _pow(base: Any, exponent: np.ndarray) -> np.ndarray:
    """``base ** exponent`` entry by entry with the C library's ``pow``, as Python's float ``**`` does.

    numpy's own power runs SIMD code on some processors (AVX-512) that rounds differently, and a
    chain's native values must not depend on the machine, nor on whether they were mapped one
    at a time (:meth:`Param.to_native` on a float) or as a batch.
    """
    return _LIBM_POW(base, exponent).astype(np.float64)


class NativeMap:
    """The unit -> native mapping of several parameters at once, vectorised with numpy.

    A chain maps its whole learned vector on every render, and an engine a whole batch of
    such vectors at once, so the parameters' ranges are gathered here once and every scale
    is computed for every entry in a few whole-array operations (:meth:`Param.to_native`
    uses a one-parameter map, so there is one definition of the scales). Per scale, on ``u``
    clipped to [0, 1]::

        linear  low + u * (high - low)
        log     low * (high / low) ** u
        db      10 ** ((lo_db + u * (hi_db - lo_db)) / 20), and low itself at u = 0
        choice  the index min(int(u * n), n - 1)

    then clipped to ``[low, high]`` (and into ``within``'s ranges).

    Args:
        params: the parameters, in the order of the vector's entries.
        within: optional, one parameter per entry whose range the values are clipped into as
            well: a chain's learned parameter may have a range narrowed from its effect's own
            (:meth:`Param.with_range`), which it may overhang by :meth:`Param.check`'s
            tolerance, and the effect takes a value clipped into its own range.
    """

    def __init__(self, params: Sequence[Param], within: Sequence[Param] | None = None) -> None:
        self.params = tuple(params)
        within = self.params if within is None else tuple(within)
        if len(within) != len(self.params):
            raise ParameterError(f"NativeMap: {len(within)} ranges to clip into for {len(self.params)} parameters")
        scales = np.array([p.scale for p in self.params], dtype=object).reshape(-1)
        self._low = np.array([p.low for p in self.params], dtype=np.float64)
        high = np.array([p.high for p in self.params], dtype=np.float64)
        self._span = high - self._low
        self._floor = np.maximum(self._low, [p.low for p in within])
        self._ceiling = np.minimum(high, [p.high for p in within])
        self._log = scales == "log"  # the other entries get a ratio of 1: no warnings, and overwritten
        self._ratio = np.where(self._log, high / np.where(self._log, self._low, 1.0), 1.0)
        self._db = scales == "db"
        decibels = np.array([p._db_bounds() if p.scale == "db" else (0.0, 0.0) for p in self.params],
                            dtype=np.float64).reshape(-1, 2)
        self._db_low, self._db_span = decibels[:, 0], decibels[:, 1] - decibels[:, 0]
        self._choice = np.flatnonzero(scales == "choice")
        self._count = np.array([len(self.params[i].choices) for i in self._choice], dtype=np.float64)

    def array(self, u: np.ndarray) -> np.ndarray:
        """Native values as float64, choices as their index into ``choices``.

        Shape:
            u ``(..., P)`` float64 -> ``(..., P)``.
        """
        u = np.minimum(np.maximum(u, 0.0), 1.0)
        out = self._low + u * self._span
        if self._log.any():
            log = self._log
            out[..., log] = self._low[log] * _pow(self._ratio[log], u[..., log])
        if self._db.any():
            db = self._db
            gain = _pow(10.0, (self._db_low[db] + u[..., db] * self._db_span[db]) / 20.0)
            out[..., db] = np.where(u[..., db] > 0, gain, self._low[db])
        out = np.minimum(np.maximum(out, self._floor), self._ceiling)
        if self._choice.size:
            out[..., self._choice] = np.minimum((u[..., self._choice] * self._count).astype(np.int64),
                                                self._count - 1)
        return out

    def rows(self, u: np.ndarray) -> list[list[Any]]:
        """The native values of each vector of ``u`` ``(N, P)``: floats, and each choice itself."""
        rows = self.array(u).tolist()
        for i in self._choice.tolist():
            choices = self.params[i].choices
            for row in rows:
                row[i] = choices[int(row[i])]
        return rows

    def values(self, u: np.ndarray) -> list[Any]:
        """The native values of one vector ``u`` ``(P,)``: floats, and each choice itself."""
        return self.rows(u[None])[0]


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint for a misspelt name, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_param(owner: str, name: str, known: Iterable[str]) -> ParameterError:
    """The error for a parameter name that ``owner`` does not have."""
    known = list(known)
    return ParameterError(f"{owner}: no parameter named {name!r}{closest(name, known)}; "
                          f"it has {', '.join(known) if known else 'no parameters'}")
