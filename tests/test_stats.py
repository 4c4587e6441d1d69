"""fxlib.data.stats on signals whose answers are known, and once on the paper's own examples."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from conftest import ROOT, SR
from fxlib.data import paper_examples as pe
from fxlib.data import stats
from fxlib.errors import AudioFormatError

SHARED = ROOT.parent / "shared" / "paper-listening-test"


def white(seconds: float, rms_db: float, seed: int, sr: int = SR) -> np.ndarray:
    return 10 ** (rms_db / 20) * np.random.default_rng(seed).standard_normal(int(seconds * sr))


def tone(seconds: float, amplitude: float, freq: float = 1000.0, sr: int = SR) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


def test_align_finds_a_delay_and_an_inverted_polarity():
    reference = white(1.0, -20, 0)
    late = np.concatenate([np.zeros(137), reference])[None]
    shifted, lag = stats.align(late, reference, max_lag=500)
    assert lag == 137 and shifted.shape == (1, reference.size)
    np.testing.assert_allclose(shifted[0], reference)
    shifted, lag = stats.align(-reference[50:], reference, max_lag=500)  # early, shorter, inverted
    assert lag == -50
    np.testing.assert_allclose(shifted[50:], -reference[50:])
    assert not shifted[:50].any()  # zero where the test has no audio


def test_band_levels_of_a_tone_and_a_gain_change():
    x = tone(1.0, 1.0, 1000.0)
    levels = stats.band_levels_db(x, SR)
    # all the power is in 150 Hz-2 kHz; a full-scale 1 kHz sine: power -3.01 dB, loudness -3.01 LUFS
    assert levels["150_hz_2_khz"] == pytest.approx(0.0, abs=0.1)
    assert max(levels["below_150_hz"], levels["2_6_khz"], levels["above_6_khz"]) < -60
    noise = white(2.0, -20, 1)
    gained = stats.band_levels_db(noise * 4.0, SR, stats.OCTAVE_BANDS)
    for name, level in stats.band_levels_db(noise, SR, stats.OCTAVE_BANDS).items():
        assert gained[name] == pytest.approx(level, abs=1e-6)
    # a low-pass at 2 kHz removes the top bands against the loudness
    lowpassed = scipy.signal.sosfilt(scipy.signal.butter(8, 2000, fs=SR, output="sos"), noise)
    change = stats.band_levels_db(lowpassed, SR)["above_6_khz"] - stats.band_levels_db(noise, SR)["above_6_khz"]
    assert change < -40


def test_nonlinear_share_of_a_filter_added_noise_and_a_distortion():
    x = white(4.0, -20, 2)
    filtered = scipy.signal.lfilter(*scipy.signal.butter(2, 3000, fs=SR), x)
    assert stats.nonlinear_share_db(x, filtered, SR) < -18  # linear: only the estimator's floor
    noise = white(4.0, -20, 3) / 3.0  # noise power 1/9 of the signal's: share 0.1, -10 dB
    assert stats.nonlinear_share_db(x, x + noise, SR) == pytest.approx(-10.0, abs=0.7)
    music = tone(4.0, 0.5, 220.0) + tone(4.0, 0.3, 330.0)
    assert stats.nonlinear_share_db(music + 1e-3 * x, np.tanh(4 * music) + 1e-3 * x, SR) > -12


def test_crest_factor_and_level_range():
    assert stats.crest_factor_db(tone(1.0, 0.5)) == pytest.approx(3.01, abs=0.01)
    steady = white(4.0, -20, 4)
    assert stats.level_range_db(steady, SR) < 0.5
    two_levels = np.concatenate([white(2.0, -20, 5), white(2.0, -35, 6)])
    assert stats.level_range_db(two_levels, SR) == pytest.approx(15.0, abs=1.0)
    with pytest.raises(AudioFormatError, match="crest_factor_db: the signal is silent"):
        stats.crest_factor_db(np.zeros(100))


def test_noise_floor_and_bandwidth():
    floor = white(4.0, -70, 7)
    bursts = floor + np.where(np.arange(floor.size) % SR < SR // 2, tone(4.0, 0.3), 0.0)
    assert stats.noise_floor_dbfs(bursts) == pytest.approx(-70.0, abs=1.0)
    assert stats.noise_floor_dbfs(np.concatenate([np.zeros(SR), bursts])) == -200.0  # digital silence shows
    lowpassed = scipy.signal.sosfilt(scipy.signal.butter(12, 4000, fs=SR, output="sos"), white(4.0, -20, 8))
    assert 3400 < stats.bandwidth_hz(lowpassed, SR) < 4300
    assert stats.bandwidth_hz(white(4.0, -20, 9), SR) == pytest.approx(0.99 * SR / 2, abs=50)


def test_p56_active_level_does_not_depend_on_pauses():
    on = tone(2.0, 0.1)
    short = stats.active_speech_level(np.concatenate([on, np.zeros(2 * SR)]), SR)
    long = stats.active_speech_level(np.concatenate([on, np.zeros(6 * SR)]), SR)
    sine_power_db = 20 * math.log10(0.1 / math.sqrt(2))  # -23.01
    # P.56 counts 0.2 s of hangover (and the envelope's decay) as active: a little below the tone's power
    assert sine_power_db - 0.7 < short.level_db < sine_power_db
    assert long.level_db == pytest.approx(short.level_db, abs=0.01)
    assert long.activity == pytest.approx(short.activity / 2, rel=0.01)
    assert 0.5 < short.activity < 0.6
    with_floor = stats.active_speech_level(np.concatenate([on, np.zeros(2 * SR)]) + white(4.0, -80, 10), SR)
    assert with_floor.level_db == pytest.approx(short.level_db, abs=0.1)
    active = stats.speech_activity(np.concatenate([on, np.zeros(2 * SR)]), SR, short)
    assert active[:2 * SR].all() and not active[2 * SR + SR // 100:].any()  # within 10 ms of the tone
    with pytest.raises(AudioFormatError, match="silent"):
        stats.active_speech_level(np.zeros(SR), SR)


def speech_like(seconds: float = 4.0, phrases=((0.5, 1.5), (2.5, 3.5))) -> np.ndarray:
    """Harmonic phrases (150 Hz and its harmonics to 4 kHz, 20 ms fades) at about -20 dBFS."""
    t = np.arange(int(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 27)) * 0.06
    gate = np.zeros_like(t)
    for start, end in phrases:
        gate = np.maximum(gate, np.clip(np.minimum(t - start, end - t) / 0.02, 0, 1))
    return voice * gate, gate


def breath(start: float, end: float, rms_db: float, seed: int, seconds: float = 4.0) -> np.ndarray:
    """Noise band-passed to 500 Hz-4 kHz, on between ``start`` and ``end`` (s), at ``rms_db`` while on."""
    n = scipy.signal.sosfilt(scipy.signal.butter(4, [500, 4000], btype="band", fs=SR, output="sos"),
                             np.random.default_rng(seed).standard_normal(int(seconds * SR)))
    t = np.arange(n.size) / SR
    on = (t >= start) & (t < end)
    return np.where(on, n * 10 ** (rms_db / 20) / np.sqrt(np.mean(n[on] ** 2)), 0.0)


def test_located_events_are_where_they_were_put():
    speech, gate = speech_like()
    floor = white(4.0, -75, 11)
    coding = [gate * white(4.0, -47, seed) for seed in (12, 13)]  # two "encodes": 25 dB below the speech
    target = speech + floor + coding[0]
    level = stats.active_speech_level(target, SR).level_db
    events_in = breath(0.20, 0.48, level - 25, 14) + breath(1.90, 2.30, level - 20, 15)
    input = speech + floor + coding[1] + events_in
    events = stats.locate_events(input, target, SR)
    assert len(events) == 2
    near, far = events
    assert near["start"] == pytest.approx(0.20, abs=0.03) and near["end"] == pytest.approx(0.48, abs=0.03)
    assert far["start"] == pytest.approx(1.90, abs=0.03) and far["end"] == pytest.approx(2.30, abs=0.03)
    assert near["level_db"] == pytest.approx(-25, abs=1.5) and far["level_db"] == pytest.approx(-20, abs=1.5)
    for event in events:
        assert event["louder_in"] == "input" and event["band_shares"]["500_hz_4_khz"] > 0.8
        assert 1000 < event["centroid_hz"] < 3000
    assert near["touches_speech"] and not far["touches_speech"]  # 20 ms and 200 ms from a phrase
    assert near["onset_gap"] == pytest.approx(0.02, abs=0.03)
    assert far["distance_to_speech"] == pytest.approx(0.2, abs=0.05)
    summary = stats.event_summary(events)
    assert summary["count"] == 2 and summary["touching_speech_share"] == 0.5
    assert stats.locate_events(speech + floor + coding[1], target, SR) == []  # coding noise alone: no event


def test_pair_statistics_of_a_known_gain():
    x = white(2.0, -30, 16)
    stats_ = stats.pair_statistics(x, 2.0 * x, SR)
    gain = 20 * math.log10(2.0)
    for key in ("loudness_lufs", "true_peak_dbtp", "sample_peak_dbfs"):
        assert stats_[key]["change"] == pytest.approx(gain, abs=1e-6), key
    assert stats_["crest_factor_db"]["change"] == pytest.approx(0.0, abs=1e-9)
    assert all(abs(v) < 1e-6 for v in stats_["broad_bands_db"]["change"].values())
    assert stats_["nonlinear_share_db"] < -25
    summary = stats.summarise([stats_, stats.pair_statistics(x, 4.0 * x, SR)])
    assert summary["loudness_lufs"]["change"]["max"] == pytest.approx(2 * gain, abs=1e-6)
    assert summary["loudness_lufs"]["change"]["n"] == 2
    with pytest.raises(AudioFormatError, match="align them first"):
        stats.pair_statistics(x, x[:-1], SR)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the paper's stimuli, a local copy) is absent")
def test_statistics_of_the_papers_examples():
    amp = pe.load_example(pe.examples(SHARED, ["amp"])[0])
    s = stats.pair_statistics(amp.audio["input"], amp.audio["target"], amp.sample_rate)
    assert 6 < s["loudness_lufs"]["change"] < 10  # the preamp: about +7 LU
    assert s["broad_bands_db"]["change"]["above_6_khz"] > 8
    assert s["nonlinear_share_db"] > -10  # a distortion: much of the output is not a filter of the input
    mastering = pe.load_example(pe.examples(SHARED, ["mastering"])[0])
    s = stats.pair_statistics(mastering.audio["input"], mastering.audio["target"], mastering.sample_rate)
    assert -28 < s["loudness_lufs"]["input"] < -20 and -16.5 < s["loudness_lufs"]["target"] < -10
    breath_ = pe.load_example(pe.examples(SHARED, ["breath"])[0])
    s = stats.pair_statistics(breath_.audio["input"], breath_.audio["target"], breath_.sample_rate, events=True)
    assert -90 < s["noise_floor_dbfs"]["target"] < -70 and 2000 < s["bandwidth_hz"]["target"] < 10000
    assert any(e["duration"] > 0.2 and e["level_db"] < -20 for e in s["events"])  # a breath
