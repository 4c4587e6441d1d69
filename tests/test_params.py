"""fxlib.params: the [0, 1] <-> native mapping, validation, range overrides, plain data."""
import math

import numpy as np
import pytest

from fxlib.errors import ParameterError
from fxlib.params import DB_FLOOR, NativeMap, Param, closest, unknown_param

U = np.linspace(0.0, 1.0, 11)


# -- linear ---------------------------------------------------------------------------------
def test_linear_bounds_midpoint_and_round_trip():
    p = Param("threshold_db", -60, 0, -20, unit="dB")
    assert p.to_native(0.0) == -60.0
    assert p.to_native(1.0) == 0.0
    assert p.to_native(0.5) == pytest.approx(-30.0)
    assert p.to_unit(-30.0) == pytest.approx(0.5)
    assert p.to_unit(p.default) == pytest.approx(40 / 60)
    np.testing.assert_allclose(p.to_unit(p.to_native(U)), U, atol=1e-12)


def test_linear_clips_out_of_range_inputs():
    p = Param("x", 1, 3, 2)
    assert p.to_native(-0.5) == 1.0 and p.to_native(7.0) == 3.0
    assert p.to_unit(-10.0) == 0.0 and p.to_unit(10.0) == 1.0
    np.testing.assert_allclose(p.to_native(np.array([-1.0, 0.5, 2.0])), [1.0, 2.0, 3.0])


def test_scalar_in_scalar_out_array_in_array_out():
    p = Param("x", 0, 1, 0)
    assert isinstance(p.to_native(0.3), float) and isinstance(p.to_unit(0.3), float)
    out = p.to_native(np.zeros((2, 3)))
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)


# -- log --------------------------------------------------------------------------------------
def test_log_is_geometric():
    p = Param("cutoff", 20, 20000, 1000, unit="Hz", scale="log")
    assert p.to_native(0.0) == pytest.approx(20.0)
    assert p.to_native(1.0) == pytest.approx(20000.0)
    assert p.to_native(0.5) == pytest.approx(math.sqrt(20 * 20000))
    assert p.to_native(1 / 3) == pytest.approx(200.0)
    assert p.to_unit(2000.0) == pytest.approx(2 / 3)
    np.testing.assert_allclose(p.to_unit(p.to_native(U)), U, atol=1e-12)
    native = np.geomspace(20, 20000, 7)
    np.testing.assert_allclose(p.to_native(p.to_unit(native)), native, rtol=1e-12)


# -- db ---------------------------------------------------------------------------------------
def test_db_moves_linearly_in_decibels():
    p = Param("gain", 0.1, 10.0, 1.0, scale="db")  # -20 dB .. +20 dB
    assert p.to_native(0.0) == pytest.approx(0.1)
    assert p.to_native(1.0) == pytest.approx(10.0)
    assert p.to_native(0.5) == pytest.approx(1.0)
    assert p.to_native(0.75) == pytest.approx(10 ** 0.5)
    assert p.to_unit(1.0) == pytest.approx(0.5)
    np.testing.assert_allclose(p.to_unit(p.to_native(U)), U, atol=1e-12)


def test_db_with_zero_low_uses_the_floor_and_exact_zero():
    p = Param("gain", 0.0, 1.0, 0.5, scale="db")
    assert p.to_native(0.0) == 0.0  # exactly silent
    assert p.to_unit(0.0) == 0.0
    assert p.to_native(1.0) == pytest.approx(1.0)
    # u = 0.5 is half way between DB_FLOOR and 0 dB
    assert p.to_native(0.5) == pytest.approx(10 ** (DB_FLOOR / 2 / 20))
    assert p.to_unit(10 ** (DB_FLOOR / 2 / 20)) == pytest.approx(0.5)
    u = np.array([0.0, 1e-3, 0.25, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(p.to_unit(p.to_native(u)), u, atol=1e-12)
    assert p.to_native(u)[0] == 0.0


# -- choice -----------------------------------------------------------------------------------
def test_choice_bins_and_centres():
    p = Param.choice("mode", ["LPF", "HPF", "BPF"], "HPF")
    assert (p.low, p.high, p.default) == (0.0, 2.0, "HPF")
    assert [p.to_native(u) for u in (0.0, 0.33, 0.34, 0.66, 0.67, 1.0)] == ["LPF", "LPF", "HPF", "HPF", "BPF", "BPF"]
    assert [p.to_unit(c) for c in ("LPF", "HPF", "BPF")] == pytest.approx([1 / 6, 0.5, 5 / 6])
    for c in p.choices:
        assert p.to_native(p.to_unit(c)) == c


def test_choice_arrays_round_trip():
    p = Param.choice("on", [False, True])
    assert p.default is False
    natives = p.to_native(np.array([0.0, 0.4, 0.6, 1.0]))
    assert natives == [False, False, True, True]
    np.testing.assert_allclose(p.to_unit(natives), [0.25, 0.25, 0.75, 0.75])
    assert p.to_native(p.to_unit(natives)) == natives


def test_single_choice_and_bad_choice():
    p = Param.choice("only", [7])
    assert p.to_unit(7) == 0.5 and p.to_native(0.9) == 7
    q = Param.choice("mode", ["a", "b"], owner="Fx")
    with pytest.raises(ParameterError, match=r"Fx\.mode: 'c' is not one of"):
        q.to_unit("c")
    with pytest.raises(ParameterError, match="not one of"):
        q.check("c")


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(low=0, high=1, default=0, scale="exp"), "unknown scale 'exp'"),
    (dict(low=0, high=10, default=1, scale="log"), "'log' scale needs low > 0"),
    (dict(low=-1, high=10, default=1, scale="log"), "'log' scale needs low > 0"),
    (dict(low=-1, high=1, default=0, scale="db"), "'db' scale is for linear gains"),
    (dict(low=0, high=1, default=2), "outside"),
    (dict(low=0, high=1, default=-0.5), "outside"),
    (dict(low=1, high=1, default=1), "low < high"),
    (dict(low=2, high=1, default=1), "low < high"),
    (dict(low=0, high=math.inf, default=1), "finite"),
    (dict(low=0, high=1, default=math.nan), "finite"),
    (dict(low=0, high=1, default="loud"), "expected a number"),
])
def test_bad_declarations_raise_naming_the_parameter(kwargs, message):
    with pytest.raises(ParameterError, match=message) as err:
        Param("knob", owner="MyFx", **kwargs)
    assert "MyFx.knob" in str(err.value)


def test_bad_choice_declarations():
    with pytest.raises(ParameterError, match="at least one choice"):
        Param.choice("mode", [])
    with pytest.raises(ParameterError, match="default 'x' is not one of"):
        Param.choice("mode", ["a", "b"], "x")


def test_check_accepts_range_and_rejects_outside():
    p = Param("ratio", 1, 20, 4, owner="Comp")
    assert p.check(20) == 20.0 and p.check("2.5") == 2.5
    assert p.check(20 + 1e-9) == 20.0  # float noise at the edge is clipped, not refused
    with pytest.raises(ParameterError, match=r"Comp\.ratio: 21 is outside \[1, 20\]"):
        p.check(21)
    with pytest.raises(ParameterError, match="finite"):
        p.check(float("nan"))


# -- with_range -------------------------------------------------------------------------------
def test_with_range_narrows_and_clips_default():
    p = Param("ratio", 1, 20, 10, scale="log", owner="Comp")
    q = p.with_range(1, 8)
    assert (q.low, q.high, q.scale, q.default, q.owner) == (1.0, 8.0, "log", 8.0, "Comp")
    assert (p.low, p.high, p.default) == (1.0, 20.0, 10.0)  # original untouched
    assert q.to_native(1.0) == pytest.approx(8.0)
    r = p.with_range(high=4, scale="linear", default=2)
    assert (r.low, r.high, r.scale, r.default) == (1.0, 4.0, "linear", 2.0)
    assert r.to_native(0.5) == pytest.approx(2.5)


def test_with_range_errors():
    p = Param("threshold_db", -60, 0, 0, unit="dB", owner="Comp")
    with pytest.raises(ParameterError, match=r"Comp\.threshold_db: -70 dB is outside \[-60, 0\]"):
        p.with_range(-70, -10)
    with pytest.raises(ParameterError, match="outside"):
        p.with_range(-30, 6)
    with pytest.raises(ParameterError, match="low < high"):
        p.with_range(-10, -30)
    with pytest.raises(ParameterError, match="'log' scale needs low > 0"):
        p.with_range(scale="log")
    with pytest.raises(ParameterError, match="outside"):
        p.with_range(-40, -20, default=-10)
    with pytest.raises(ParameterError, match="no range to override"):
        Param.choice("mode", "ab").with_range(0, 1)


# -- plain data -------------------------------------------------------------------------------
@pytest.mark.parametrize("param", [
    Param("threshold_db", -60, 0, -12.5, unit="dB"),
    Param("cutoff", 20, 20000, 440, unit="Hz", scale="log"),
    Param("gain", 0, 4, 1, scale="db"),
    Param.choice("mode", ["LPF12", "HPF12"], "HPF12"),
    Param.choice("on", [False, True], True, unit="switch"),
])
def test_dict_round_trip(param):
    d = param.to_dict()
    assert "owner" not in d
    back = Param.from_dict(d, owner="Fx")
    assert back == param and back.owner == "Fx"
    assert back.to_dict() == d
    assert ("choices" in d) == (param.scale == "choice")
    assert ("low" in d) == (param.scale != "choice")


def test_from_dict_errors_and_default():
    assert Param.from_dict({"name": "x", "low": 2, "high": 3}).default == 2.0
    with pytest.raises(ParameterError, match=r"Fx\.x: parameter declaration lacks \['high'\]"):
        Param.from_dict({"name": "x", "low": 0}, owner="Fx")
    with pytest.raises(ParameterError, match=r"unknown keys \['hi'\]"):
        Param.from_dict({"name": "x", "low": 0, "high": 1, "hi": 2}, owner="Fx")


def test_closest_and_unknown_param():
    assert closest("treshold_db", ["threshold_db", "ratio"]) == " (did you mean 'threshold_db'?)"
    assert closest("zzz", ["threshold_db", "ratio"]) == ""
    err = unknown_param("Comp", "raito", ["threshold_db", "ratio"])
    assert isinstance(err, ParameterError)
    assert "Comp: no parameter named 'raito' (did you mean 'ratio'?)" in str(err)
    assert "no parameters" in str(unknown_param("Fx", "x", []))


# -- NativeMap: the vectorised mapping of a chain ------------------------------------------------
MIXED = [Param("threshold", -60, 0, -20, unit="dB"), Param("cutoff", 20, 20000, 440, unit="Hz", scale="log"),
         Param("gain", 0.1, 10.0, 1.0, scale="db"), Param("makeup", 0.0, 4.0, 1.0, scale="db"),
         Param.choice("mode", ["LPF", "HPF", "BPF"], "HPF"), Param("ratio", 1, 20, 2, scale="log")]


def scalar_native(param: Param, u: float):
    """The scales' formulas in plain Python floats, one value at a time (the module docstring's)."""
    u = min(max(u, 0.0), 1.0)
    if param.scale == "choice":
        return param.choices[min(int(u * len(param.choices)), len(param.choices) - 1)]
    if param.scale == "linear":
        v = param.low + u * (param.high - param.low)
    elif param.scale == "log":
        v = param.low * (param.high / param.low) ** u
    else:
        lo = 20.0 * math.log10(param.low) if param.low > 0 else DB_FLOOR
        hi = 20.0 * math.log10(param.high)
        v = 10.0 ** ((lo + u * (hi - lo)) / 20.0) if u > 0 else param.low
    return min(max(v, param.low), param.high)


def test_native_map_gives_the_scalar_formulas_bit_for_bit():
    u = np.random.default_rng(0).random((500, len(MIXED)))
    u[:5] = [[0.0] * 6, [1.0] * 6, [-0.5] * 6, [1.5] * 6, [1e-300] * 6]
    rows = NativeMap(MIXED).rows(u)
    for row, vector in zip(rows, u):
        expected = [scalar_native(p, float(x)) for p, x in zip(MIXED, vector)]
        assert row == expected  # exact: a chain's renders must not move when it maps a batch at once
        assert [type(v) for v in row] == [type(v) for v in expected]
    assert NativeMap(MIXED).values(u[7]) == rows[7]
    assert [p.to_native(float(x)) for p, x in zip(MIXED, u[7])] == rows[7]


def test_native_map_clips_into_the_effects_own_ranges():
    narrowed = Param("threshold", -60.00001, 0, -20, unit="dB")  # overhangs by less than check's tolerance
    own = Param("threshold", -60, 0, -20, unit="dB")
    mapping = NativeMap([narrowed], within=[own])
    assert mapping.values(np.array([0.0])) == [-60.0]
    assert mapping.values(np.array([1.0])) == [0.0]
    with pytest.raises(ParameterError, match="2 ranges to clip into for 1 parameters"):
        NativeMap([narrowed], within=[own, own])
