"""fxlib.hosts.builtin: pedalboard built-ins and the multiband composites, measured."""
import numpy as np
import pytest

from conftest import SR, band_db, noise, rms_db, sine
from fxlib.errors import AudioFormatError, ParameterError, PluginNotFoundError
from fxlib.hosts import load_effect
from fxlib.hosts.builtin import BUILTINS, BuiltinEffect, list_plugins

SETTLED = slice(SR // 2, None)  # measure after the first half second


def fx(name, **values):
    e = BuiltinEffect(name, SR)
    e.set(values)
    return e


# -- measured behaviour -------------------------------------------------------------------------
def test_compressor_static_gain():
    """-6 dBFS sine, threshold -30 dB, ratio 8: the peak detector sees -6 dB, so the static
    curve gives -30 + 24/8 = -27 dB, a reduction of 24 * (1 - 1/8) = 21 dB."""
    x = sine(1000, dbfs=-6, seconds=1.5)
    y = fx("Compressor", threshold_db=-30, ratio=8).process(x)
    expected = (-6 - -30) * (1 - 1 / 8)
    reduction = rms_db(x[:, SETTLED]) - rms_db(y[:, SETTLED])
    assert reduction == pytest.approx(expected, abs=2.0)
    # below threshold nothing happens
    quiet = sine(1000, dbfs=-40, seconds=1.0)
    y = fx("Compressor", threshold_db=-30, ratio=8).process(quiet)
    assert rms_db(y[:, SETTLED]) == pytest.approx(rms_db(quiet[:, SETTLED]), abs=0.1)


@pytest.mark.parametrize("name, values, boosted, gain", [
    ("PeakFilter", dict(cutoff_frequency_hz=1000, gain_db=12, q=2), (950, 1050), 12),
    ("LowShelfFilter", dict(cutoff_frequency_hz=200, gain_db=12), (40, 100), 12),
    ("HighShelfFilter", dict(cutoff_frequency_hz=3000, gain_db=-12), (8000, 10000), -12),
])
def test_eq_moves_its_band_by_the_gain_and_leaves_far_bands(name, values, boosted, gain):
    x = noise(2.0, dbfs=-20)
    y = fx(name, **values).process(x)
    change = lambda band: band_db(y[:, SETTLED], *band) - band_db(x[:, SETTLED], *band)  # noqa: E731
    assert change(boosted) == pytest.approx(gain, abs=1.0)
    far = (8000, 10000) if boosted[1] < 5000 else (40, 100)
    assert abs(change(far)) < 1.0


@pytest.mark.parametrize("name", ["MultibandCompressor", "MultibandGate"])
@pytest.mark.parametrize("freq", [50, 300, 2000, 8000])
def test_multiband_neutral_settings_are_nearly_transparent(name, freq):
    x = sine(freq, dbfs=-20, seconds=1.0)
    y = BuiltinEffect(name, SR).process(x)
    assert rms_db(y[:, SETTLED]) == pytest.approx(rms_db(x[:, SETTLED]), abs=3.0)


def test_multiband_params_and_levels():
    comp = BuiltinEffect("MultibandCompressor", SR)
    names = list(comp.params)
    assert names[0] == "level_in_db" and names[-1] == "level_out_db"
    assert names[1:4] == ["split_1_2", "split_2_3", "split_3_4"]
    assert len(names) == 1 + 3 + 4 * 5 + 1 and "makeup_db_3" in names
    assert len(BuiltinEffect("MultibandGate", SR).params) == 1 + 3 + 4 * 4 + 1
    x = sine(2000, dbfs=-20, seconds=1.0)
    ref = rms_db(comp.process(x)[:, SETTLED])
    comp.reset()
    comp.set(level_out_db=-6)
    assert rms_db(comp.process(x)[:, SETTLED]) == pytest.approx(ref - 6, abs=0.1)


def test_multiband_compressor_compresses_loud_noise():
    x = noise(1.0, dbfs=-10)
    values = {f"{k}_{i}": v for i in range(4) for k, v in (("threshold_db", -40), ("ratio", 10))}
    y = fx("MultibandCompressor", **values).process(x)
    assert rms_db(x[:, SETTLED]) - rms_db(y[:, SETTLED]) > 15


def test_multiband_gate_attenuates_a_quiet_signal_and_passes_a_loud_one():
    values = {f"threshold_db_{i}": -20 for i in range(4)}
    quiet = noise(1.0, dbfs=-50)
    assert rms_db(quiet[:, SETTLED]) - rms_db(fx("MultibandGate", **values).process(quiet)[:, SETTLED]) > 20
    loud = sine(1000, dbfs=-3, seconds=1.0)
    assert rms_db(fx("MultibandGate", **values).process(loud)[:, SETTLED]) == pytest.approx(
        rms_db(loud[:, SETTLED]), abs=3.0)


def test_ladder_filter_mode_choice():
    lp = fx("LadderFilter", mode="LPF24", cutoff_hz=1000)
    hp = fx("LadderFilter", mode="HPF24", cutoff_hz=1000)
    assert lp.get("mode") == "LPF24" and lp.params["mode"].scale == "choice"
    low, high = sine(100, -20, 1.0), sine(8000, -20, 1.0)
    gain = lambda e, x: rms_db(e.process(x)[:, SETTLED]) - rms_db(x[:, SETTLED])  # noqa: E731
    assert gain(lp, low) > -3 and gain(lp, high) < -30
    lp.reset(), hp.reset()
    assert gain(hp, high) > -3 and gain(hp, low) < -30
    with pytest.raises(ParameterError, match=r"LadderFilter\.mode: 'LPF48' is not one of"):
        lp.set(mode="LPF48")


# -- state ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, values", [
    ("Compressor", dict(threshold_db=-30, ratio=8)),
    ("LowpassFilter", dict(cutoff_frequency_hz=500)),
    ("Delay", dict(delay_seconds=0.1, feedback=0.5)),
    ("Reverb", {}),
    ("MultibandCompressor", dict(threshold_db_1=-40, ratio_1=8)),
])
def test_state_persists_across_calls_and_reset_restores(name, values):
    x = noise(1.0, dbfs=-10, channels=2)
    e = fx(name, **values)
    whole = e.process(x)
    e.reset()
    half = x.shape[1] // 2 + 17
    halves = np.concatenate([e.process(x[:, :half]), e.process(x[:, half:])], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)
    # the second half does depend on the state left by the first
    e.reset()
    fresh = e.process(x[:, half:])
    assert np.abs(fresh - whole[:, half:]).max() > 1e-3
    # reset restores the freshly loaded state
    e.reset()
    np.testing.assert_allclose(e.process(x), whole, atol=1e-6)


def test_short_stereo_blocks_are_refused_not_misread():
    """pedalboard guesses the layout from the smaller dimension, so (2, 1) audio would be
    read as one channel of two samples; fxlib refuses it clearly instead."""
    e = fx("LowpassFilter", cutoff_frequency_hz=500)
    for n in (1, 2):
        with pytest.raises(AudioFormatError, match=r"LowpassFilter: .*2 channels"):
            e.process(np.zeros((2, n), np.float32))
    x = noise(0.01, channels=2)[:, :219]  # 73 blocks of 3
    ref = e.process(x)
    e.reset()
    blocks = np.concatenate([e.process(x[:, i:i + 3]) for i in range(0, x.shape[1], 3)], axis=1)
    np.testing.assert_allclose(blocks, ref, atol=1e-6)
    assert e.process(np.full((1, 1), 0.1, np.float32)).shape == (1, 1)  # mono single samples are fine


# -- every built-in works across its declared range --------------------------------------------
@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_builtin_loads_and_takes_its_whole_range(name):
    e = BuiltinEffect(name, SR)
    assert e.kind == "builtin" and e.channels == (1, 2) and e.latency == 0
    assert [p.name for p in e.params.values()] == [p.name for p in BUILTINS[name].params]
    assert all(p.owner == name for p in e.params.values())
    assert e.values == {n: p.default for n, p in e.params.items()}
    x = noise(0.05, channels=2)
    for u in (0.0, 0.5, 1.0):
        e.set({n: p.to_native(u) for n, p in e.params.items()})
        y = e.process(x)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize("name", list(BUILTINS))
def test_the_render_path_setters_do_what_set_does(name):
    """Each setter a chain calls per render (Effect.render_plan) leaves the plugin as set() does:
    the same output, sample for sample, across the whole range."""
    fast, checked = BuiltinEffect(name, SR), BuiltinEffect(name, SR)
    names = list(fast.params)
    plan = fast.render_plan(names, 0)
    x = noise(0.05, channels=2)
    for u in (0.0, 0.3, 1.0):
        values = [p.to_native(u) for p in fast.params.values()]
        for index, current, key, setter in plan:
            setter(values[index])
            current[key] = values[index]
        checked.set(dict(zip(names, values)))
        assert fast.values == checked.values
        np.testing.assert_array_equal(fast.process(x), checked.process(x))


def test_first_order_filters_stay_below_nyquist_on_the_render_path():
    e = BuiltinEffect("MultibandGate", 8000)  # split ranges reach 16 kHz, above this rate's Nyquist
    plan = {key: setter for _, _, key, setter in e.render_plan(["split_3_4"], 0)}
    plan["split_3_4"](16000.0)
    filters = [plugin for plugin, _, _ in e._targets["split_3_4"]]
    assert len(filters) == 2 and all(f.cutoff_frequency_hz == 4000.0 for f in filters)


def test_list_plugins():
    listed = list_plugins()
    assert [d["id"] for d in listed] == list(BUILTINS)
    assert all(d["doc"] for d in listed)


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_builtin_suggests_closest():
    with pytest.raises(PluginNotFoundError, match=r"no built-in effect named 'Compresor' \(did you mean 'Compressor'\?\)"):
        BuiltinEffect("Compresor", SR)
    with pytest.raises(PluginNotFoundError, match="unknown effect kind 'bultin'.*did you mean 'builtin'"):
        load_effect("bultin", "Compressor", SR)


def test_parameter_errors_name_plugin_and_parameter():
    e = BuiltinEffect("Compressor", SR)
    with pytest.raises(ParameterError, match=r"Compressor: no parameter named 'treshold_db' \(did you mean 'threshold_db'\?\)"):
        e.set(treshold_db=-10)
    with pytest.raises(ParameterError, match=r"Compressor\.ratio: 40 is outside \[1, 20\]"):
        e.set(ratio=40)
    with pytest.raises(ParameterError, match="Compressor: no parameter named 'knee'"):
        e.get("knee")
    # a refused set changes nothing, not even the valid values given with it
    with pytest.raises(ParameterError):
        e.set(threshold_db=-20, ratio=40)
    assert e.get("threshold_db") == 0.0


@pytest.mark.parametrize("audio, message", [
    (np.zeros((1, 100), np.float64), "must be float32, got float64"),
    (np.zeros(100, np.float32), r"shaped \(channels, samples\), got shape \(100,\)"),
    (np.zeros((1, 1, 100), np.float32), r"got shape \(1, 1, 100\)"),
    (np.zeros((3, 100), np.float32), "takes 1 or 2 channel"),
    (np.zeros((1, 0), np.float32), "no samples"),
    (np.array([[0.0, np.nan, 0.0]], np.float32), "NaN or Inf .*sample 1"),
    (np.array([[0.0, 0.0, np.inf]], np.float32), "NaN or Inf .*sample 2"),
    ([[0.0, 0.1]], "numpy float32 array, got list"),
])
def test_bad_audio_is_refused_naming_the_plugin(audio, message):
    with pytest.raises(AudioFormatError, match=message) as err:
        BuiltinEffect("Compressor", SR).process(audio)
    assert str(err.value).startswith("Compressor:")


def test_sample_rate_is_fixed():
    e = BuiltinEffect("Compressor", 22050)
    assert e.process(np.zeros((1, 64), np.float32), sample_rate=22050).shape == (1, 64)
    with pytest.raises(AudioFormatError, match="Compressor: built for 22050 Hz but given audio at 44100 Hz"):
        e.process(np.zeros((1, 64), np.float32), sample_rate=44100)
    with pytest.raises(AudioFormatError, match="sample rate must be positive"):
        BuiltinEffect("Compressor", 0)
