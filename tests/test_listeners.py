"""fxlib.listeners: each measure on synthetic signals, the validation logic on a fake example set with a
known order, and the validation on the paper's own stimuli (slow; skipped when they are absent)."""
from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import scipy.signal

from conftest import ROOT
from fxlib import listeners
from fxlib.data import paper_examples as pe
from fxlib.errors import AudioFormatError, FxError, MissingPackageError

SHARED = ROOT.parent / "shared" / "paper-listening-test"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the paper's stimuli, a local copy) is absent")


def needs(*modules: str):
    """Skip unless the optional packages providing ``modules`` are installed (listeners.PACKAGES has the pip lines)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason="optional package(s) missing: "
                              + "; ".join(listeners.PACKAGES[m] for m in missing))


needs_visqol = needs("visqol", "ai_edge_litert")
needs_dnsmos = needs("speechmos", "onnxruntime")
SR = 44100


def white(seconds: float, rms_db: float, seed: int, sr: int = SR) -> np.ndarray:
    return 10 ** (rms_db / 20) * np.random.default_rng(seed).standard_normal(int(seconds * sr))


def music(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Chords over pink-ish noise, about -20 dBFS, ``(1, T)``."""
    t = np.arange(int(seconds * SR)) / SR
    chord = sum(0.08 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) for f in (220, 277, 330, 440))
    noise = scipy.signal.lfilter([1], [1, -0.95], white(seconds, -40, seed))
    return (chord + noise)[None]


def degraded(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """``x`` plus white noise ``snr_db`` below its power."""
    power_db = 10 * math.log10(np.mean(x ** 2))
    return x + white(x.shape[-1] / SR, power_db - snr_db, seed)[None]


@pytest.mark.parametrize("name", ["loudness_error_lu", "lsd_db", "lsd_matched_db", "mfcc_cosine"])
def test_fast_measures_are_best_for_identity_and_worse_for_a_degradation(name):
    measure = listeners.MEASURES[name]
    x = music()
    lowpassed = scipy.signal.sosfilt(scipy.signal.butter(6, 2000, fs=SR, output="sos"), x)
    identity, slight, heavy = (measure(t, x, SR) for t in (x, degraded(x, 30), degraded(lowpassed, 5)))
    assert not measure.higher_is_better
    assert identity == pytest.approx(0.0, abs=1e-9)
    assert identity < slight < heavy


def test_lsd_counts_a_gain_and_lsd_matched_does_not():
    x = music()
    assert listeners.lsd_db(2 * x, x, SR) == pytest.approx(6.02, abs=0.05)
    assert listeners.lsd_matched_db(2 * x, x, SR) == pytest.approx(0.0, abs=1e-6)
    assert listeners.loudness_error_lu(2 * x, x, SR) == pytest.approx(6.02, abs=0.01)


@pytest.mark.slow
@needs_visqol
@pytest.mark.parametrize("name", ["visqol_audio", "visqol_speech"])
def test_visqol_is_best_for_identity_and_worse_for_a_degradation(name):
    measure = listeners.MEASURES[name]
    _, x, _ = speech_with_breaths()  # speech-like phrases over a room floor (defined below)
    identity, slight, heavy = (measure(t, x, SR) for t in (x, degraded(x, 20), degraded(x, 5)))
    assert measure.higher_is_better
    assert identity > slight > heavy
    assert identity > 4.0 and heavy < identity - 1.0


@pytest.mark.slow
@needs_dnsmos
def test_dnsmos_scores_added_noise_lower():
    t = np.arange(3 * SR) / SR
    syllables = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 25)) * syllables
    voice = (0.05 * voice)[None]
    noisy = degraded(voice, 0)
    for name in ("dnsmos_ovrl", "dnsmos_bak"):
        measure = listeners.MEASURES[name]
        assert not measure.intrusive
        assert measure(voice, voice, SR) > measure(noisy, voice, SR), name


def speech_with_breaths(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input, reference, breath)``: harmonic phrases over a -75 dBFS floor; the input also holds the breath."""
    t = np.arange(3 * SR) / SR
    gate = np.clip(np.minimum(t - 0.3, 1.2 - t) / 0.02, 0, 1) + np.clip(np.minimum(t - 1.8, 2.8 - t) / 0.02, 0, 1)
    speech = 0.05 * gate * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 27))
    floor = white(3.0, -75, seed)
    band = scipy.signal.sosfilt(scipy.signal.butter(4, [500, 4000], btype="band", fs=SR, output="sos"),
                                white(3.0, -45, seed + 1))
    breath = np.where((t > 1.35) & (t < 1.7), band, 0.0)
    coding = [0.03 * gate * white(3.0, -20, seed + k) for k in (2, 3)]  # two "encodes" of the speech
    return (speech + floor + breath + coding[0])[None], (speech + floor + coding[1])[None], breath[None]


def test_event_error_rewards_removal_and_penalises_damage():
    x, y, breath = speech_with_breaths()
    measure = listeners.MEASURES["event_error_db"]
    assert measure.needs_input and not measure.higher_is_better
    assert measure(x, y, SR, x) == pytest.approx(0.0, abs=0.05)  # the input itself
    assert measure(y, y, SR, x) == -math.inf  # the reference
    assert measure(x - breath, y, SR, x) == pytest.approx(-3.0, abs=0.5)  # the breath gone, the rest as the input
    damaged = degraded(x, 10)  # the breath left and the speech damaged
    assert measure(damaged, y, SR, x) > 3.0
    with pytest.raises(AudioFormatError, match="needs the unprocessed input"):
        measure(x, y, SR)


def test_a_missing_package_names_the_pip_line(monkeypatch):
    listeners._visqol.cache_clear()
    monkeypatch.setitem(sys.modules, "visqol", None)  # import visqol now raises ImportError
    with pytest.raises(MissingPackageError, match=r"pip install visqol-python==3\.8\.0"):
        listeners.visqol_audio(music(0.5), music(0.5), SR)
    listeners._visqol.cache_clear()


def test_a_missing_submodule_names_its_packages_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "speechmos.dnsmos", None)  # import speechmos.dnsmos now raises ImportError
    with pytest.raises(MissingPackageError, match=r"pip install speechmos==0\.0\.1\.1"):
        listeners.MEASURES["dnsmos_ovrl"](music(0.5), music(0.5), SR)


def test_measures_check_their_inputs():
    x = music(0.5)
    with pytest.raises(AudioFormatError, match="lsd_db: test has .* samples but reference has"):
        listeners.lsd_db(x[:, :-10], x, SR)
    with pytest.raises(AudioFormatError, match="sample_rate"):
        listeners.loudness_error_lu(x, x, 0)
    with pytest.raises(FxError, match="unknown measure 'pesq'"):
        listeners.validate([], "amp", ["pesq"])
    with pytest.raises(FxError, match="unknown task 'drums'"):
        listeners.validate([], "drums")


def test_kendall_tau():
    assert listeners.kendall_tau([3, 2, 1], [3, 2, 1]) == 1.0
    assert listeners.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert listeners.kendall_tau([4, 3, 1, 2], [4, 3, 2, 1]) == pytest.approx(4 / 6)
    assert listeners.kendall_tau([1, 1], [2, 1]) == 0.0  # a tie is neither concordant nor discordant


def fake_mastering_examples(n: int = 3) -> list[pe.LoadedExample]:
    """Examples whose conditions are the target plus noise, less noise the better the listeners' rank."""
    snr = {"deepafx": 30, "online_service": 25, "mid_anchor": 12, "input": 5}
    examples = []
    for i in range(n):
        target = music(1.0, seed=10 + i)
        audio = {"target": target, **{c: degraded(target, s, seed=20 + i) for c, s in snr.items()}}
        examples.append(pe.LoadedExample("mastering", i, SR, audio, {c: 0 for c in audio}))
    return examples


def quietness(test, reference, sample_rate):
    """A non-intrusive toy measure: minus the test's power in dB (the fake conditions add noise)."""
    return -10 * math.log10(np.mean(np.asarray(test) ** 2))


def test_validation_passes_a_measure_that_orders_as_listeners_and_fails_one_that_does_not():
    inverted = listeners.Measure("inverted_lsd", lambda t, r, sr: -listeners.lsd_db(t, r, sr), "dB", False, True,
                                 False, "lsd with the wrong direction")
    toy = listeners.Measure("quietness", quietness, "dB", True, False, False, "non-intrusive toy")
    result = listeners.validate(fake_mastering_examples(), "mastering", ["lsd_db", inverted, toy])
    good, bad, non_intrusive = (result["measures"][k] for k in ("lsd_db", "inverted_lsd", "quietness"))
    assert good["checked"] == ["deepafx", "online_service", "mid_anchor", "input"]  # the hidden reference left out
    assert good["anchors_right"] == 3 and good["tau_of_medians"] == 1.0 and good["tau_mean"] == 1.0
    assert good["passes"] and good["why"] == "passes"
    assert all(row["target"] is None for row in good["scores"].values())
    assert bad["anchors_right"] == 0 and bad["tau_mean"] == -1.0 and not bad["passes"]
    assert "anchors wrong in 3 of 3" in bad["why"] and "median order differs" in bad["why"]
    assert non_intrusive["checked"] == ["target", "deepafx", "online_service", "mid_anchor", "input"]
    assert non_intrusive["passes"] and non_intrusive["scores"]["0"]["target"] is not None
    assert result["passing"] == ["lsd_db", "quietness"]
    assert result["listener_medians"]["deepafx"] == 0.88


def test_validation_needs_every_known_condition():
    examples = fake_mastering_examples(1)
    del examples[0].audio["online_service"]
    with pytest.raises(FxError, match=r"lacks \['online_service'\]"):
        listeners.validate(examples, "mastering", ["lsd_db"])
    with pytest.raises(FxError, match="not of task 'amp'"):
        listeners.validate(fake_mastering_examples(1), "amp", ["lsd_db"])


def test_score_systems_tables_every_condition():
    table = listeners.score_systems(fake_mastering_examples(2), ["loudness_error_lu"])
    assert table["task"] == "mastering" and table["examples"] == ["0", "1"]
    assert table["conditions"] == ["input", "mid_anchor", "target", "deepafx", "online_service"]
    medians = table["medians"]["loudness_error_lu"]
    assert medians["target"] is None and medians["input"] > medians["mid_anchor"] > medians["deepafx"]


@pytest.mark.slow
@needs_shared
@needs_visqol
@needs_dnsmos
def test_validation_on_the_papers_stimuli():
    """The facts issue 19 reports, re-measured: ViSQOL audio fails mastering on both checks, the loudness
    error alone orders mastering as the listeners did; on amp every general measure orders the anchors."""
    mastering = listeners.validate(pe.examples(SHARED, ["mastering"]), "mastering")
    visqol, loudness = mastering["measures"]["visqol_audio"], mastering["measures"]["loudness_error_lu"]
    assert not visqol["passes"] and visqol["anchors_right"] < 7 and visqol["tau_of_medians"] < 1
    assert loudness["passes"] and loudness["tau_of_medians"] == 1.0
    amp = listeners.validate(pe.examples(SHARED, ["amp"]), "amp")
    assert amp["passing"] == list(listeners.PANELS["amp"])
    breath = listeners.validate(pe.examples(SHARED, ["breath"]), "breath")
    visqol_breath = breath["measures"]["visqol_audio"]["medians"]
    assert visqol_breath["input"] > visqol_breath["mid_anchor"]  # the warning: low anchor above the mid
    assert set(breath["passing"]) <= set(listeners.PANELS["breath"])
