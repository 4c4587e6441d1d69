"""FxChain (parameter vector, channels, latency, specs, errors) and the python backend."""
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, impulse, noise, rms_db
from fxlib import FxChain
from fxlib.errors import (AudioFormatError, BackendUnavailableError, FxError, ParameterError, PluginNotFoundError,
                          SpecError)
from fxlib.hosts import load_effect
from fxlib.hosts.builtin import BuiltinEffect
from fxlib.hosts.python import PythonEffect
from fxlib.params import Param

HAVE_ZAM = Path("/usr/lib/vst3/ZamComp.vst3").exists()
needs_zam = pytest.mark.skipif(not HAVE_ZAM, reason="ZAM VST3 plugins not installed (/usr/lib/vst3/ZamComp.vst3)")

GAIN_PARAMS = [{"name": "gain_db", "low": -24.0, "high": 24.0, "default": 0.0, "unit": "dB"}]
COMP = {"name": "comp", "kind": "builtin", "id": "Compressor", "learn": ["threshold_db", "ratio"],
        "fixed": {"attack_ms": 5.0}, "ranges": {"ratio": {"low": 1, "high": 8, "scale": "log"}}}
EQ = {"name": "eq", "kind": "builtin", "id": "PeakFilter", "learn": ["cutoff_frequency_hz", "gain_db"]}


def chain(*effects, channels=1, **kw):
    return FxChain([dict(e) for e in effects], SR, channels, **kw)


# -- the parameter vector -----------------------------------------------------------------------
def test_vector_names_ranges_and_round_trip():
    c = chain(COMP, EQ)
    assert c.num_params == 4
    assert c.names == ["comp.threshold_db", "comp.ratio", "eq.cutoff_frequency_hz", "eq.gain_db"]
    assert [p.owner for p in c.params] == ["comp", "comp", "eq", "eq"]
    ratio = c.params[1]
    assert (ratio.low, ratio.high, ratio.scale) == (1.0, 8.0, "log")  # the range override
    u = np.array([0.25, 0.5, 0.75, 1.0])
    native = c.to_native(u)
    assert native["comp.threshold_db"] == pytest.approx(-45.0)
    assert native["comp.ratio"] == pytest.approx(8 ** 0.5)
    assert native["eq.gain_db"] == pytest.approx(24.0)
    np.testing.assert_allclose(c.to_unit(native), u, atol=1e-12)
    np.testing.assert_allclose(c.to_native(np.ones(4)).get("comp.ratio"), 8.0)


def test_default_unit_and_missing_values():
    c = chain(COMP, EQ)
    d = c.default_unit()
    assert d.shape == (4,)
    natives = c.to_native(d)
    assert natives == pytest.approx({n: p.default for n, p in zip(c.names, c.params)})
    assert natives["eq.cutoff_frequency_hz"] == pytest.approx(440.0)
    np.testing.assert_allclose(c.to_unit({}), d)
    partial = c.to_unit({"eq.gain_db": -24.0})
    assert partial[3] == 0.0 and np.allclose(partial[:3], d[:3])


def test_set_unit_reaches_the_effects_and_fixed_values_are_pinned():
    c = chain(COMP, EQ)
    comp = c.effect("comp")
    assert comp.get("attack_ms") == 5.0 and "comp.attack_ms" not in c.names
    c.set_unit(np.array([0.0, 1.0, 0.5, 0.5]))
    assert comp.get("threshold_db") == -60.0 and comp.get("ratio") == pytest.approx(8.0)
    assert comp.get("attack_ms") == 5.0
    assert comp._board.ratio == pytest.approx(8.0)  # reached pedalboard
    assert c.effect("eq").get("gain_db") == pytest.approx(0.0)


def test_stream_with_u_equals_setting_then_streaming():
    x = noise(0.5, dbfs=-6)
    u = np.array([0.1, 0.9, 0.3, 0.8])
    a = chain(COMP, EQ)
    b = chain(COMP, EQ)
    b.set_unit(u)
    np.testing.assert_array_equal(a.stream(x, u), b.stream(x))
    assert rms_db(a.process(x, u)) != pytest.approx(rms_db(chain(COMP, EQ).process(x)), abs=0.5)  # u matters
    np.testing.assert_array_equal(a.process(x), a.process(x, u))  # and stays set


# -- the render path: values mapped at once, set only on change, built-ins in one call ------------------
GAIN = {"name": "gain", "kind": "builtin", "id": "Gain", "learn": ["gain_db"]}
USER_GAIN = {"name": "user", "kind": "python", "id": "fxlib.reference_fx:gain", "learn": ["gain_db"],
             "params": GAIN_PARAMS}


def changing_vectors(c: FxChain, steps: int, seed: int = 0) -> np.ndarray:
    """``(steps, P)`` unit vectors where each entry keeps its last value half of the time."""
    rng = np.random.default_rng(seed)
    u = rng.random((steps, c.num_params))
    keep = rng.random(u.shape) < 0.5
    for i in range(1, steps):
        u[i] = np.where(keep[i], u[i - 1], u[i])
    return u


def test_controls_are_set_only_when_they_change_and_render_as_if_set_every_time(monkeypatch):
    calls = []
    real_setter = BuiltinEffect.setter

    def counting_setter(effect, name):
        setter = real_setter(effect, name)

        def counted(value):
            calls.append(name)
            setter(value)
        return counted
    monkeypatch.setattr(BuiltinEffect, "setter", counting_setter)
    fast, every = chain(COMP, EQ, GAIN), chain(COMP, EQ, GAIN)
    u = changing_vectors(fast, 40)
    x = noise(40 * 1024 / SR, dbfs=-6)
    for i in range(len(u)):
        block = x[:, i * 1024:(i + 1) * 1024]
        for stage in every.stages:  # the checked path sets every value, every time
            stage.effect.set({p.name: v for p, v in zip(every.params, every.to_native(u[i]).values())
                              if p.owner == stage.name})
        np.testing.assert_array_equal(fast.stream(block, u[i]), every.stream(block))
    changed = int((u[1:] != u[:-1]).sum()) + fast.num_params  # the first vector sets every control
    assert len(calls) == changed < len(u) * fast.num_params


def test_consecutive_builtins_render_in_one_pedalboard_call_as_one_call_each():
    c = chain(COMP, EQ, GAIN, USER_GAIN, GAIN | {"name": "gain2"})
    assert [type(r).__name__ for r in c._renderers] == ["BuiltinRun", "_Stage", "_Stage"]
    c.set_unit(np.array([0.3, 0.6, 0.2, 0.9, 0.7, 0.4, 0.5]))
    separate = [load_effect(s.spec["kind"], s.spec["id"], SR, **({"params": GAIN_PARAMS} if s.name == "user" else {}))
                for s in c.stages]
    for effect, stage in zip(separate, c.stages):
        effect.set(stage.effect.values)
    for n in (1024, 30000, 100):  # one block, several of pedalboard's 8192-sample blocks, a short one
        x = noise(n / SR, dbfs=-6, seed=n)
        expected = x
        for effect in separate:
            expected = effect.process(expected)
        np.testing.assert_array_equal(c.stream(x), expected)


def test_native_rows_map_a_batch_as_to_native_maps_each_vector():
    c = chain(COMP, EQ, {"kind": "builtin", "id": "LadderFilter", "learn": ["mode", "cutoff_hz"]})
    u = changing_vectors(c, 6)
    rows = c.native_rows(u)
    assert rows == [list(c.to_native(v).values()) for v in u]
    x = noise(0.1, dbfs=-6)
    a, b = chain(COMP, EQ, {"kind": "builtin", "id": "LadderFilter", "learn": ["mode", "cutoff_hz"]}), c
    for v, row in zip(u, rows):
        np.testing.assert_array_equal(a.stream(x, v), b.stream(x, native=row))
    with pytest.raises(SpecError, match=r"must be shaped \(N, 6\)"):
        c.native_rows(u[0])
    with pytest.raises(SpecError, match="NaN or Inf"):
        c.native_rows(np.full((1, 6), np.nan))
    with pytest.raises(SpecError, match="not both"):
        c.stream(x, u[0], native=rows[0])
    with pytest.raises(SpecError, match="5 native values for 6 learned parameters"):
        c.stream(x, native=rows[0][:5])


def test_range_default_is_clipped_into_the_range_and_applied():
    c = chain({"kind": "builtin", "id": "Compressor", "learn": ["ratio"], "ranges": {"ratio": {"low": 2, "high": 8}}})
    assert c.params[0].default == 2.0 and c.effect("Compressor").get("ratio") == 2.0
    c = chain({"kind": "builtin", "id": "Compressor", "learn": ["ratio"],
               "ranges": {"ratio": {"low": 2, "high": 8, "default": 4}}})
    assert c.effect("Compressor").get("ratio") == 4.0
    np.testing.assert_allclose(c.default_unit(), [0.5])  # ratio is log-scaled: 4 is half way from 2 to 8


def test_learn_all():
    c = chain({"kind": "builtin", "id": "Compressor", "learn": "all", "fixed": {"release_ms": 50}})
    assert c.names == ["Compressor.threshold_db", "Compressor.ratio", "Compressor.attack_ms"]
    c = chain({"kind": "builtin", "id": "MultibandGate", "learn": "all"})
    assert c.num_params == 21
    assert chain({"kind": "builtin", "id": "Gain"}).num_params == 0  # learn defaults to nothing


def test_automatic_effect_names_are_unique():
    c = chain({"kind": "builtin", "id": "Gain", "learn": "all"}, {"kind": "builtin", "id": "Gain", "learn": "all"},
              {"kind": "python", "id": "fx_user:gain", "params": GAIN_PARAMS, "learn": "all"})
    assert [s.name for s in c.stages] == ["Gain", "Gain_2", "gain"]
    assert c.names == ["Gain.gain_db", "Gain_2.gain_db", "gain.gain_db"]
    assert "Gain_2.gain_db" in c.describe()


# -- channels -------------------------------------------------------------------------------------
def test_mono_only_python_effect_in_a_stereo_chain_runs_dual_mono():
    spec = {"kind": "python", "id": "fx_user:OnePole", "channels": [1], "learn": ["cutoff_hz"],
            "params": [{"name": "cutoff_hz", "low": 20, "high": 10000, "default": 500, "scale": "log"}]}
    c = chain(spec, channels=2)
    assert c.stages[0].mode == "dual-mono" and len(c.stages[0].instances) == 2
    x = noise(0.3, channels=2)
    y = c.process(x)
    for ch in range(2):
        alone = PythonEffect("fx_user:OnePole", SR, params=spec["params"], channels=[1])
        np.testing.assert_allclose(y[ch:ch + 1], alone.process(x[ch:ch + 1]), atol=1e-6)
    c.set_unit([1.0])  # both instances follow the vector
    assert [inst.get("cutoff_hz") for inst in c.stages[0].instances] == [pytest.approx(10000)] * 2


@needs_zam
def test_mono_only_vst3_in_a_stereo_chain_runs_dual_mono():
    c = chain({"kind": "vst3", "id": "ZamComp", "fixed": {"threshold_db": -30, "ratio": 8}}, channels=2)
    assert c.stages[0].mode == "dual-mono"
    x = noise(0.5, channels=2, dbfs=-6)
    x[1] *= 0.1  # different levels: the channels must not share a detector
    y = c.process(x)
    from fxlib.hosts.vst3 import Vst3Effect
    for ch in range(2):
        alone = Vst3Effect("ZamComp", SR)
        alone.set(threshold_db=-30, ratio=8)
        np.testing.assert_allclose(y[ch:ch + 1], alone.process(x[ch:ch + 1]), atol=1e-6)


def test_stereo_only_effect_in_a_mono_chain_averages_its_outputs():
    c = chain({"kind": "python", "id": "fx_user:swap", "channels": [2]})
    assert c.stages[0].mode == "mono-to-stereo"
    x = noise(0.1)
    np.testing.assert_allclose(c.process(x), 0.75 * x, rtol=1e-6)


@needs_zam
def test_zamaximx2_in_a_mono_chain_is_adapted():
    c = chain({"kind": "vst3", "id": "ZaMaximX2"})
    assert c.stages[0].mode == "mono-to-stereo" and c.effect("ZaMaximX2").channels == (2,)
    y = c.process(noise(0.2))
    assert y.shape == (1, int(0.2 * SR)) and np.abs(y).max() > 0


def test_an_effect_that_cannot_adapt():
    with pytest.raises(AudioFormatError, match=r"fx_user:gain\) takes \(3,\) channel"):
        chain({"kind": "python", "id": "fx_user:gain", "channels": [3]})


# -- latency --------------------------------------------------------------------------------------
def check_alignment(c, at=1000, n=8192):
    x = impulse(n, at=at, channels=c.channels)
    y = c.process(x)
    assert y.shape == x.shape
    assert abs(int(np.argmax(np.abs(y[0]))) - at) <= 1
    c.reset()
    s = c.stream(x)
    assert int(np.argmax(np.abs(s[0]))) == at + c.latency
    # streamed in blocks, the lag is the same
    c.reset()
    blocks = np.concatenate([c.stream(x[:, i:i + 1024]) for i in range(0, n, 1024)], axis=1)
    assert int(np.argmax(np.abs(blocks[0]))) == at + c.latency


def test_latency_of_a_python_delay_is_compensated():
    delay = {"kind": "python", "id": "fx_user:DelayLine", "fixed": {"samples": 300},
             "params": [{"name": "samples", "low": 0, "high": 1000, "default": 0}]}
    c = chain(delay, {"kind": "builtin", "id": "Gain", "fixed": {"gain_db": 0}}, {**delay, "name": "d2"})
    assert c.latency == 600 and [s.latency for s in c.stages] == [300, 0, 300]
    check_alignment(c)
    x = noise(0.2)
    np.testing.assert_allclose(c.process(x), x, atol=1e-6)  # a pure delay compensates to identity
    y = c.process(x, preroll=100)
    np.testing.assert_allclose(y, x[:, 100:], atol=1e-6)


@needs_zam
@pytest.mark.parametrize("channels", [1, 2])
def test_latency_of_zamaximx2_is_compensated(channels):
    c = chain({"kind": "vst3", "id": "ZaMaximX2"}, channels=channels)
    assert c.effect("ZaMaximX2").latency == 480
    assert abs(c.latency - 480) <= 1
    check_alignment(c)


def test_latency_of_the_lsp_lv2_limiter_is_compensated():
    lookahead_ms = 10.0
    try:
        c = chain({"kind": "lv2", "id": "http://lsp-plug.in/plugins/lv2/limiter_mono", "fixed": {"lk": lookahead_ms}})
    except BackendUnavailableError as e:
        pytest.skip(f"LV2 backend unavailable: {e}")
    except PluginNotFoundError as e:
        pytest.skip(f"LSP limiter not installed: {e}")
    expected = lookahead_ms * SR / 1000
    assert abs(c.latency - expected) <= 1
    check_alignment(c)


# -- specs ----------------------------------------------------------------------------------------
def deterministic_chain():
    return chain(COMP, EQ, {"kind": "python", "id": "fx_user:gain", "params": GAIN_PARAMS, "learn": ["gain_db"]},
                 {"kind": "builtin", "id": "LadderFilter", "fixed": {"mode": "HPF12", "cutoff_hz": 100.0}},
                 name="test-chain", description="round trip")


def test_spec_round_trip_through_dict_and_toml(tmp_path):
    c = deterministic_chain()
    spec = c.to_spec()
    assert spec["name"] == "test-chain" and spec["channels"] == 1 and spec["sample_rate"] == SR
    again = FxChain.from_spec(spec)
    assert again.to_spec() == spec and again.names == c.names
    path = tmp_path / "chain.toml"
    c.to_toml(path)
    assert not (tmp_path / "chain.toml.tmp").exists()
    loaded = FxChain.from_toml(path)
    assert loaded.to_spec() == spec
    assert [p.to_dict() for p in loaded.params] == [p.to_dict() for p in c.params]
    x = noise(0.5, dbfs=-6)
    u = np.array([0.3, 0.7, 0.6, 0.8, 0.4])
    ref = c.process(x, u)
    np.testing.assert_array_equal(again.process(x, u), ref)
    np.testing.assert_array_equal(loaded.process(x, u), ref)
    np.testing.assert_array_equal(c.process(x, u), ref)  # process starts from a reset every time


def test_to_spec_does_not_alias_the_input():
    effects = [dict(COMP)]
    c = FxChain(effects, SR)
    c.to_spec()["effects"][0]["fixed"]["attack_ms"] = 50.0
    assert c.to_spec()["effects"][0]["fixed"]["attack_ms"] == 5.0 and COMP["fixed"]["attack_ms"] == 5.0


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_plugins_and_kinds():
    with pytest.raises(PluginNotFoundError, match=r"'Compresor' \(did you mean 'Compressor'\?\)"):
        chain({"kind": "builtin", "id": "Compresor"})
    with pytest.raises(PluginNotFoundError, match=r"unknown effect kind 'vst'.*did you mean 'vst3'"):
        chain({"kind": "vst", "id": "ZamComp"})
    with pytest.raises(PluginNotFoundError, match="VST3 plugin '/no/such/Plugin.vst3' not found"):
        chain({"kind": "vst3", "id": "/no/such/Plugin.vst3"})
    with pytest.raises(PluginNotFoundError, match="cannot import module 'no_such_module'"):
        chain({"kind": "python", "id": "no_such_module:f"})


@pytest.mark.parametrize("where", ["learn", "fixed", "ranges"])
def test_misspelt_parameter_names_suggest_the_closest(where):
    value = {"learn": ["treshold_db"], "fixed": {"treshold_db": -10}, "ranges": {"treshold_db": {"low": -20}}}[where]
    with pytest.raises(ParameterError, match=r"comp \(Compressor\): no parameter named 'treshold_db' "
                                             r"\(did you mean 'threshold_db'\?\)"):
        chain({"name": "comp", "kind": "builtin", "id": "Compressor", where: value})


def test_out_of_range_values():
    with pytest.raises(ParameterError, match=r"Compressor\.ratio: 40 is outside \[1, 20\]"):
        chain({"kind": "builtin", "id": "Compressor", "fixed": {"ratio": 40}})
    with pytest.raises(ParameterError, match=r"Compressor\.ratio: 0\.5 is outside \[1, 20\]"):
        chain({"kind": "builtin", "id": "Compressor", "learn": ["ratio"], "ranges": {"ratio": {"low": 0.5}}})
    with pytest.raises(ParameterError, match=r"LadderFilter\.mode: 'LPF' is not one of"):
        chain({"kind": "builtin", "id": "LadderFilter", "fixed": {"mode": "LPF"}})


@pytest.mark.parametrize("effect, message", [
    ({"kind": "builtin", "id": "Compressor", "learn": ["ratio"], "fixed": {"ratio": 2}},
     r"Compressor\.ratio is both learned and fixed"),
    ({"kind": "builtin", "id": "Compressor", "learn": ["ratio", "ratio"]}, "listed twice"),
    ({"kind": "builtin", "id": "Compressor", "learn": "ratio"}, "'learn' must be a list"),
    ({"kind": "builtin", "id": "Compressor", "ranges": {"ratio": {"low": 2}}}, "has a range but is not learned"),
    ({"kind": "builtin", "id": "Compressor", "learn": ["ratio"], "ranges": {"ratio": {"lo": 2}}},
     "a range is a table of low, high"),
    ({"kind": "builtin", "id": "Compressor", "fixd": {}}, r"unknown key 'fixd' \(did you mean 'fixed'\?\)"),
    ({"kind": "builtin"}, "missing 'id'"),
    ({"id": "Compressor"}, "missing 'kind'"),
    ({"name": "a.b", "kind": "builtin", "id": "Gain"}, "must not contain '.'"),
    ({"kind": "builtin", "id": "Compressor", "params": GAIN_PARAMS}, "apply to python effects only"),
    ({"kind": "vst3", "id": "ZamComp", "channels": [1]}, "apply to python effects only"),
])
def test_bad_effect_specs(effect, message):
    with pytest.raises(SpecError, match=message):
        chain(effect)


def test_bad_chain_specs(tmp_path):
    with pytest.raises(SpecError, match=r"unknown key 'sample_rat' \(did you mean 'sample_rate'\?\)"):
        FxChain.from_spec({"sample_rat": 22050, "effects": [{"kind": "builtin", "id": "Gain"}]})
    with pytest.raises(SpecError, match="no 'effects' list"):
        FxChain.from_spec({"sample_rate": 22050})
    with pytest.raises(SpecError, match="at least one effect"):
        FxChain([], SR)
    with pytest.raises(SpecError, match="at least one effect"):
        FxChain.from_spec({"effects": []})
    with pytest.raises(SpecError, match="must be a mapping"):
        FxChain.from_spec([{"kind": "builtin", "id": "Gain"}])
    with pytest.raises(SpecError, match="effect #0 must be a mapping"):
        FxChain(["Gain"], SR)
    with pytest.raises(SpecError, match="channels must be 1 or 2, got 3"):
        FxChain([{"kind": "builtin", "id": "Gain"}], SR, channels=3)
    with pytest.raises(SpecError, match="'g' is used twice"):
        FxChain([{"name": "g", "kind": "builtin", "id": "Gain"}, {"name": "g", "kind": "builtin", "id": "Gain"}], SR)
    with pytest.raises(SpecError, match="does not exist"):
        FxChain.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("sample_rate = 22050\n[[effects]\nkind = 'builtin'\n")
    with pytest.raises(SpecError, match="bad.toml is not valid TOML"):
        FxChain.from_toml(bad)


@pytest.mark.parametrize("audio, message", [
    (np.zeros((2, 512), np.float32), r"takes 1 channel\(s\), got 2"),
    (np.zeros((1, 512), np.float64), "must be float32, got float64"),
    (np.zeros(512, np.float32), r"shaped \(channels, samples\), got shape \(512,\)"),
    (np.zeros((1, 1, 512), np.float32), r"got shape \(1, 1, 512\)"),
    (np.array([[0.0, np.nan]], np.float32), "NaN or Inf"),
    (np.array([[np.inf, 0.0]], np.float32), "NaN or Inf"),
])
@pytest.mark.parametrize("method", ["process", "stream"])
def test_bad_audio_is_refused_by_the_chain(audio, message, method):
    c = chain(COMP, name="mychain")
    with pytest.raises(AudioFormatError, match=message) as err:
        getattr(c, method)(audio)
    assert str(err.value).startswith("mychain:")


def test_bad_vectors_and_preroll():
    c = chain(COMP, EQ)
    with pytest.raises(SpecError, match=r"shape \(4,\).*got \(3,\)"):
        c.to_native(np.zeros(3))
    with pytest.raises(SpecError, match="NaN or Inf"):
        c.set_unit([0.5, np.nan, 0.5, 0.5])
    with pytest.raises(ParameterError, match=r"no parameter named 'comp\.ratoi' \(did you mean 'comp\.ratio'\?\)"):
        c.to_unit({"comp.ratoi": 2})
    with pytest.raises(AudioFormatError, match="preroll 512 must be in"):
        c.process(np.zeros((1, 512), np.float32), preroll=512)
    with pytest.raises(FxError, match=r"no effect named 'cmp' \(did you mean 'comp'\?\)"):
        c.effect("cmp")


def test_effect_in_a_chain_refuses_another_sample_rate():
    c = chain(COMP)
    with pytest.raises(AudioFormatError, match="Compressor: built for 22050 Hz but given audio at 44100 Hz"):
        c.effect("comp").process(np.zeros((1, 512), np.float32), sample_rate=44100)


# -- the python backend ---------------------------------------------------------------------------
def test_python_function_with_declared_params():
    e = load_effect("python", "fx_user:gain", SR, params=GAIN_PARAMS)
    assert e.kind == "python" and list(e.params) == ["gain_db"] and e.params["gain_db"].unit == "dB"
    assert e.params["gain_db"].owner == "fx_user:gain"
    x = noise(0.1)
    e.set(gain_db=-6)
    np.testing.assert_allclose(e.process(x), x * 10 ** (-6 / 20), rtol=1e-6)
    with pytest.raises(ParameterError, match=r"fx_user:gain\.gain_db: 30 dB is outside \[-24, 24\]"):
        e.set(gain_db=30)
    with pytest.raises(ParameterError, match=r"fx_user:gain: no parameter named 'gain' \(did you mean 'gain_db'\?\)"):
        e.set(gain=1)
    # Param objects work as declarations too; the callable's own default is not used
    e = PythonEffect("fx_user:gain", SR, params=[Param("gain_db", -12, 12, 6)])
    np.testing.assert_allclose(e.process(x), x * 10 ** (6 / 20), rtol=1e-6)


def test_python_stateful_class_and_reset():
    params = [{"name": "cutoff_hz", "low": 20, "high": 10000, "default": 300, "scale": "log"}]
    e = PythonEffect("fx_user:OnePole", SR, params=params)
    other = PythonEffect("fx_user:OnePole", SR, params=params)
    assert e._fn is not other._fn  # one instance per effect
    x = noise(0.2, channels=2)
    whole = e.process(x)
    e.reset()
    halves = np.concatenate([e.process(x[:, :1000]), e.process(x[:, 1000:])], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-6)
    e.reset()
    assert np.abs(e.process(x[:, 1000:]) - whole[:, 1000:]).max() > 1e-3
    e.reset()
    np.testing.assert_allclose(e.process(x), whole, atol=1e-6)


@pytest.mark.parametrize("plugin_id, message", [
    ("fx_user.gain", "must look like 'package.module:function'"),
    (":gain", "must look like"),
    ("fx_user:", "must look like"),
    ("no_such_module:gain", "cannot import module 'no_such_module'"),
    ("fx_user:no_such_function", "'fx_user' has no attribute 'no_such_function'"),
    ("fx_user:NOT_CALLABLE", "is not callable"),
])
def test_python_bad_import_paths(plugin_id, message):
    with pytest.raises(PluginNotFoundError, match=message):
        PythonEffect(plugin_id, SR)


def test_python_errors():
    with pytest.raises(AudioFormatError, match=r"fx_user:drop_last_sample: returned shape \(1, 99\) for input \(1, 100\)"):
        PythonEffect("fx_user:drop_last_sample", SR).process(np.zeros((1, 100), np.float32))
    with pytest.raises(SpecError, match="'gain_db' is declared twice"):
        PythonEffect("fx_user:gain", SR, params=GAIN_PARAMS * 2)
    with pytest.raises(ParameterError, match=r"fx_user:gain\.gain_db: parameter declaration lacks \['high'\]"):
        PythonEffect("fx_user:gain", SR, params=[{"name": "gain_db", "low": 0}])
    with pytest.raises(AudioFormatError, match=r"fx_user:swap: takes 2 channel\(s\), got 1"):
        PythonEffect("fx_user:swap", SR, channels=[2]).process(np.zeros((1, 100), np.float32))


def test_auto_names_from_dotted_ids_are_usable():
    chain = FxChain([{"kind": "python", "id": "fx_user:gain",
                      "params": [{"name": "gain_db", "low": -24, "high": 24, "default": 0}], "learn": ["gain_db"]}])
    assert chain.names == ["gain.gain_db"]


def test_toml_folder_and_binary_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="is a folder"):
        FxChain.from_toml(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SpecError, match="not valid TOML"):
        FxChain.from_toml(bad)
