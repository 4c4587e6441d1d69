"""fxlib.hosts.vst3 with the ZAM plugins (Debian package zam-plugins)."""
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, impulse, noise, rms_db, sine, tone_db
from fxlib.errors import AudioFormatError, ParameterError, PluginNotFoundError, UnsupportedPluginError
from fxlib.hosts import load_effect

ZAM = Path("/usr/lib/vst3")
pytestmark = pytest.mark.skipif(not (ZAM / "ZamComp.vst3").exists(),
                                reason="ZAM VST3 plugins not installed (/usr/lib/vst3/ZamComp.vst3 is absent; "
                                       "apt-get install zam-plugins)")

from fxlib.hosts.vst3 import Vst3Effect, installed_bundles, list_plugins, resolve  # noqa: E402

SETTLED = slice(SR // 2, None)


@pytest.fixture
def zamcomp():
    e = Vst3Effect("ZamComp", SR)
    yield e
    e.close()


def test_zamcomp_lowers_rms_by_the_static_curve(zamcomp):
    """-6 dBFS sine, threshold -30 dB, ratio 8, hard knee: about 24 * (1 - 1/8) = 21 dB less."""
    zamcomp.set(threshold_db=-30, ratio=8, knee_db=0)
    x = sine(1000, dbfs=-6, seconds=1.5)
    reduction = rms_db(x[:, SETTLED]) - rms_db(zamcomp.process(x)[:, SETTLED])
    assert reduction == pytest.approx(21.0, abs=2.5)  # ZamComp measures 19.3 dB: its detector smooths peaks
    zamcomp.reset()
    zamcomp.set(ratio=1)
    assert rms_db(zamcomp.process(x)[:, SETTLED]) == pytest.approx(rms_db(x[:, SETTLED]), abs=0.2)


def test_zameq2_boost_raises_its_band_only():
    e = Vst3Effect("ZamEQ2", SR)
    e.set(boost_cut_1_db=12, frequency_1_hz=1000, bandwidth_1=1.0)
    x = sine(1000, -20, 1.0) + sine(4000, -20, 1.0)
    y = e.process(x)
    assert tone_db(y[:, SETTLED], 1000) - tone_db(x[:, SETTLED], 1000) == pytest.approx(12, abs=1.0)
    assert abs(tone_db(y[:, SETTLED], 4000) - tone_db(x[:, SETTLED], 4000)) < 1.0


def test_ranges_units_and_defaults_come_from_the_plugin(zamcomp):
    p = zamcomp.params
    assert zamcomp.kind == "vst3" and zamcomp.name == "ZamComp"
    assert (p["threshold_db"].unit, p["threshold_db"].low, p["threshold_db"].high) == ("dB", -80.0, 0.0)
    assert (p["ratio"].low, p["ratio"].high) == (1.0, 20.0)
    assert p["attack_ms"].unit == "ms" and p["attack_ms"].owner == "ZamComp"
    assert zamcomp.values == {n: q.default for n, q in p.items()}
    eq = Vst3Effect("ZamEQ2", SR).params["frequency_1_hz"]
    assert (eq.unit, eq.scale, eq.low, eq.high) == ("Hz", "log", 20.0, 14000.0)


def test_meters_and_host_values_are_left_out(zamcomp):
    raw = set(zamcomp._plugin.parameters)
    assert {"gain_reduction_db", "output_level_db", "current_program", "buffer_size_frames"} <= raw
    assert not {"gain_reduction_db", "output_level_db", "current_program", "buffer_size_frames",
                "sample_rate_frames"} & set(zamcomp.params)
    assert set(zamcomp.params) == {"attack_ms", "release_ms", "knee_db", "ratio", "threshold_db", "makeup_db",
                                   "slew", "sidechain"}


def test_enumerations_become_choices():
    e = Vst3Effect("ZamTube", SR)
    p = e.params["tone_stack_model"]
    assert p.scale == "choice" and len(p.choices) > 10 and "JTM 45" in p.choices
    e.set(tone_stack_model="JTM 45")
    assert e._plugin.tone_stack_model == "JTM 45"
    with pytest.raises(ParameterError, match=r"ZamTube\.tone_stack_model: 'JTM 46' is not one of"):
        e.set(tone_stack_model="JTM 46")


def test_set_values_reach_the_plugin(zamcomp):
    zamcomp.set(threshold_db=-30, ratio=8)
    assert zamcomp._plugin.threshold_db == pytest.approx(-30, abs=0.01)
    assert zamcomp._plugin.ratio == pytest.approx(8, abs=0.01)
    assert zamcomp.get("ratio") == 8.0


def test_state_persists_and_reset_restores(zamcomp):
    zamcomp.set(threshold_db=-40, ratio=10, release_ms=300)
    x = noise(1.0, dbfs=-6)
    whole = zamcomp.process(x)
    zamcomp.reset()
    halves = np.concatenate([zamcomp.process(x[:, :10000]), zamcomp.process(x[:, 10000:])], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)
    zamcomp.reset()
    assert np.abs(zamcomp.process(x[:, 10000:]) - whole[:, 10000:]).max() > 1e-3
    zamcomp.reset()
    np.testing.assert_allclose(zamcomp.process(x), whole, atol=1e-5)


def test_a_chain_reads_learned_ranges_back_once_when_built_not_per_render(monkeypatch):
    from fxlib import FxChain

    confirmed = []
    real = Vst3Effect._confirm

    def confirm(self, name, value):
        confirmed.append((name, value))
        real(self, name, value)
    monkeypatch.setattr(Vst3Effect, "_confirm", confirm)
    c = FxChain([{"kind": "vst3", "id": "ZamComp", "learn": ["threshold_db", "ratio"], "fixed": {"knee_db": 0},
                  "ranges": {"ratio": {"low": 2, "high": 8}}}], SR, 1)
    assert ("knee_db", 0.0) in confirmed  # a pinned value, set through the checked path
    assert {("threshold_db", -80.0), ("threshold_db", 0.0), ("ratio", 2.0), ("ratio", 8.0)} <= set(confirmed)
    confirmed.clear()
    for k, u in enumerate(np.linspace(0, 1, 5)):
        c.stream(noise(0.05, seed=k), np.array([u, 1 - u]))
    assert confirmed == []
    effect = c.effect("ZamComp")
    assert effect._plugin.threshold_db == pytest.approx(0.0, abs=0.01)  # the last render's values reached the plugin
    assert effect._plugin.ratio == pytest.approx(2.0, abs=0.01)
    assert effect.get("threshold_db") == 0.0


# -- finding plugins ------------------------------------------------------------------------------
def test_bundle_name_and_path_resolution():
    path = ZAM / "ZamComp.vst3"
    assert resolve("ZamComp") == resolve("ZamComp.vst3") == resolve(str(path)) == path
    assert installed_bundles()["ZamComp"] == path
    assert {"id": "ZamComp", "name": "ZamComp", "path": str(path)} in list_plugins()
    assert Vst3Effect(str(path), SR).name == "ZamComp"
    assert load_effect("vst3", "ZamComp.vst3", SR).params.keys() == Vst3Effect("ZamComp", SR).params.keys()


def test_extra_search_path(tmp_path, monkeypatch):
    """$FXLIB_VST3_PATH folders are searched before the standard ones."""
    (tmp_path / "ZamComp.vst3").symlink_to(ZAM / "ZamComp.vst3")
    monkeypatch.setenv("FXLIB_VST3_PATH", str(tmp_path))
    assert resolve("ZamComp") == tmp_path / "ZamComp.vst3"
    assert Vst3Effect("ZamComp", SR).name == "ZamComp"


def test_unknown_plugin_suggests_closest():
    with pytest.raises(PluginNotFoundError, match=r"VST3 plugin 'ZamCmp' not found \(did you mean 'ZamComp'\?\)"):
        Vst3Effect("ZamCmp", SR)
    with pytest.raises(PluginNotFoundError, match="FXLIB_VST3_PATH"):
        Vst3Effect("/nowhere/NoSuch.vst3", SR)


def test_broken_bundle_is_unsupported(tmp_path):
    fake = tmp_path / "Broken.vst3"
    fake.mkdir()
    with pytest.raises(UnsupportedPluginError, match="Broken.vst3 failed to load"):
        Vst3Effect(str(fake), SR)


# -- channels and latency -------------------------------------------------------------------------
def test_zamaximx2_is_stereo_only_and_reports_latency():
    e = Vst3Effect("ZaMaximX2", SR)
    assert e.channels == (2,) and e.latency == 480
    with pytest.raises(AudioFormatError, match=r"ZaMaximX2: takes 2 channel\(s\), got 1"):
        e.process(np.zeros((1, 1000), np.float32))
    with pytest.raises(AudioFormatError, match="ZaMaximX2: .*too short"):
        e.process(np.zeros((2, 2), np.float32))
    # the raw stream lags by the reported latency, in one call or in blocks
    x = impulse(4096, at=100, channels=2)
    e.reset()
    whole = e.process(x)
    assert np.argmax(np.abs(whole[0])) == 100 + 480
    e.reset()
    blocks = np.concatenate([e.process(x[:, i:i + 256]) for i in range(0, 4096, 256)], axis=1)
    np.testing.assert_allclose(blocks, whole, atol=1e-6)


def test_zamcomp_is_mono_only(zamcomp):
    assert zamcomp.channels == (1,)
    with pytest.raises(AudioFormatError, match=r"ZamComp: takes 1 channel\(s\), got 2"):
        zamcomp.process(np.zeros((2, 100), np.float32))


# -- errors ---------------------------------------------------------------------------------------
def test_errors_name_plugin_and_parameter(zamcomp):
    with pytest.raises(ParameterError, match=r"ZamComp: no parameter named 'treshold_db' \(did you mean 'threshold_db'\?\)"):
        zamcomp.set(treshold_db=-10)
    with pytest.raises(ParameterError, match=r"ZamComp\.threshold_db: -90 dB is outside \[-80, 0\]"):
        zamcomp.set(threshold_db=-90)
    with pytest.raises(AudioFormatError, match="ZamComp: audio must be float32, got float64"):
        zamcomp.process(np.zeros((1, 100)))
    with pytest.raises(AudioFormatError, match="ZamComp: built for 22050 Hz but given audio at 44100 Hz"):
        zamcomp.process(np.zeros((1, 100), np.float32), sample_rate=44100)
    with pytest.raises(AudioFormatError, match="ZamComp: audio holds NaN or Inf"):
        zamcomp.process(np.full((1, 100), np.nan, np.float32))
