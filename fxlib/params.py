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
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

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
        """Map a unit value (float, or an array of them; clipped to [0, 1]) to the native value."""
        if np.ndim(u) == 0:
            return self._native(min(max(float(u), 0.0), 1.0))
        values = [self.to_native(x) for x in np.asarray(u, dtype=np.float64).flat]
        return values if self.scale == "choice" else np.array(values).reshape(np.shape(u))

    def to_unit(self, value: Any) -> Any:
        """Map a native value (or an array or list of them) to [0, 1]; the inverse of :meth:`to_native`."""
        if isinstance(value, (list, tuple, np.ndarray)):
            return np.array([self.to_unit(v) for v in value], dtype=np.float64)
        if self.scale == "choice":
            return (self.choices.index(self.check(value)) + 0.5) / len(self.choices)
        return min(max(self._unit(min(max(float(value), self.low), self.high)), 0.0), 1.0)

    def _native(self, u: float) -> Any:
        """The native value of a unit value u in [0, 1] (plain floats: this runs per render)."""
        if self.scale == "choice":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.scale == "linear":
            v = self.low + u * (self.high - self.low)
        elif self.scale == "log":
            v = self.low * (self.high / self.low) ** u
        else:
            lo, hi = self._db_bounds()
            v = 10.0 ** ((lo + u * (hi - lo)) / 20.0) if u > 0 else self.low
        return min(max(v, self.low), self.high)

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


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint for a misspelt name, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_param(owner: str, name: str, known: Iterable[str]) -> ParameterError:
    """The error for a parameter name that ``owner`` does not have."""
    known = list(known)
    return ParameterError(f"{owner}: no parameter named {name!r}{closest(name, known)}; "
                          f"it has {', '.join(known) if known else 'no parameters'}")
