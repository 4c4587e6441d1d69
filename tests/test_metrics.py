"""Evaluation metrics on signals whose answers are known."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from conftest import SR, noise, sine
from fxlib.errors import AudioFormatError
from fxlib.losses import MultiResolutionSTFTLoss
from fxlib.metrics import (METRICS, compute_all, esr, loudness_difference_lufs, loudness_lufs, mfcc_cosine,
                           ms_mse, mrstft_distance, spectral_balance_distance, true_peak_dbtp)


def music_like(seconds=1.0, sr=SR):
    """Stereo noise plus a tone: broadband, two different channels."""
    return noise(seconds, sr, channels=2, dbfs=-26.0).astype(np.float64) + sine(440.0, -12.0, seconds, sr)


def lowpassed(x, cutoff=1000.0, sr=SR):
    sos = scipy.signal.butter(6, cutoff, fs=sr, output="sos")
    return scipy.signal.sosfilt(sos, x, axis=-1)


def sine_at(freq, dbfs, seconds, sr, phase=0.0):
    t = np.arange(int(seconds * sr)) / sr
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + phase)


def test_every_metric_is_zero_for_identical_signals():
    x = music_like()
    values = compute_all(x, x.copy(), SR)
    assert list(values) == list(METRICS)
    for name, value in values.items():
        assert value == pytest.approx(0.0, abs=1e-9), name


def test_a_gain_change_reads_as_expected():
    target = music_like()
    gain = 0.5
    values = compute_all(gain * target, target, SR)
    assert values["mfcc_cosine"] == pytest.approx(0.0, abs=1e-9)  # energy-normalised
    assert values["ms_mse"] == pytest.approx(0.0, abs=1e-9)  # energy-normalised
    assert values["spectral_balance_distance"] == pytest.approx(0.0, abs=1e-6)  # loudness-normalised
    assert values["esr"] == pytest.approx((gain - 1) ** 2, rel=1e-9)
    assert values["loudness_difference_lufs"] == pytest.approx(20 * math.log10(gain), abs=0.1)
    assert values["mrstft_distance"] > 0.5


def test_loudness_difference_equals_gain_in_db_for_mono_and_boost():
    target = noise(1.0, SR, dbfs=-30.0).astype(np.float64)[0]
    assert loudness_difference_lufs(10 ** (4.5 / 20) * target, target, SR) == pytest.approx(4.5, abs=0.1)


@pytest.mark.parametrize("dbfs, channels, expected", [
    (0.0, 1, -3.01),     # BS.1770: a 0 dBFS 1 kHz sine on one channel reads -3.01 LKFS
    (-20.0, 1, -23.01),
    (-18.0, 2, -18.0),   # the same sine on two channels: +3.01 LU
])
def test_loudness_of_a_997_hz_sine_follows_bs1770(dbfs, channels, expected):
    x = np.repeat(sine_at(997.0, dbfs, 2.0, 48000)[None], channels, axis=0)
    assert loudness_lufs(x, 48000) == pytest.approx(expected, abs=0.1)


def test_loudness_at_the_papers_sample_rate():
    assert loudness_lufs(sine_at(997.0, -20.0, 2.0, SR), SR) == pytest.approx(-23.01, abs=0.1)


def test_silence_has_no_loudness_and_no_peak():
    assert loudness_lufs(np.zeros(SR), SR) == -math.inf
    assert true_peak_dbtp(np.zeros(SR), SR) == -math.inf


def test_true_peak_finds_the_inter_sample_peak_of_a_quarter_rate_sine():
    # sin(pi/2 n + pi/4): every sample is +-0.707 (-3.01 dBFS) while the waveform reaches 1.0.
    n = np.arange(SR)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 2000)  # no onset overshoot
    x = np.sin(np.pi / 2 * n + np.pi / 4) * fade
    sample_peak = 20 * np.log10(np.max(np.abs(x)))
    assert sample_peak == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x, SR) == pytest.approx(0.0, abs=0.05)
    assert true_peak_dbtp(x, SR) - sample_peak == pytest.approx(3.01, abs=0.05)


def test_true_peak_of_a_slow_sine_is_its_sample_peak():
    assert true_peak_dbtp(sine(100.0, -6.0), SR) == pytest.approx(-6.0, abs=0.05)


def test_ms_mse_sees_amplitude_modulation():
    tone = sine_at(440.0, -12.0, 2.0, SR)
    other_tone = sine_at(440.0, -18.0, 2.0, SR, phase=1.0)
    t = np.arange(tone.size) / SR
    modulated = tone * (1 + 0.8 * np.sin(2 * np.pi * 4.0 * t))
    between_tones = ms_mse(other_tone, tone, SR)
    assert between_tones < 0.05
    assert ms_mse(modulated, tone, SR) > 10 * between_tones
    assert ms_mse(modulated, tone, SR) > 0.3


def test_mfcc_cosine_sees_a_lowpass():
    x = music_like()
    assert mfcc_cosine(x, x, SR) == pytest.approx(0.0, abs=1e-12)
    assert mfcc_cosine(lowpassed(x), x, SR, pair_by="coefficient") > 0.1
    assert mfcc_cosine(lowpassed(x), x, SR) > mfcc_cosine(x, x, SR) + 0.01


def test_mfcc_cosine_pairs_frame_vectors_by_default():
    """The default pairs per-frame MFCC vectors; METRICS also reports the authors' pairing."""
    from fxlib.metrics import METRICS

    x, y = music_like(), lowpassed(music_like())
    assert METRICS["mfcc_cosine"](y, x, SR) == mfcc_cosine(y, x, SR, pair_by="frame")
    assert METRICS["mfcc_cosine_trajectory"](y, x, SR) == mfcc_cosine(y, x, SR, pair_by="coefficient")
    assert mfcc_cosine(y, x, SR, pair_by="frame") != mfcc_cosine(y, x, SR, pair_by="coefficient")


def test_spectral_balance_sees_a_lowpass_but_not_a_gain():
    x = music_like()
    assert spectral_balance_distance(3.0 * x, x, SR) == pytest.approx(0.0, abs=1e-6)
    assert spectral_balance_distance(lowpassed(x), x, SR) > 10.0


def test_spectral_balance_of_a_one_band_tilt():
    # White noise, and the same noise with one third-octave band 12 dB up and the level
    # restored: the distance is positive but far below the 12 dB of the changed band.
    x = noise(2.0, SR, dbfs=-20.0).astype(np.float64)
    sos = scipy.signal.butter(4, [891, 1122], btype="bandpass", fs=SR, output="sos")
    boosted = x + (10 ** (12 / 20) - 1) * scipy.signal.sosfilt(sos, x)
    distance = spectral_balance_distance(boosted, x, SR)
    assert 0.4 < distance < 1.2


def test_esr_known_values_and_pre_emphasis():
    target = noise(0.5, SR).astype(np.float64)
    assert esr(1.2 * target, target, SR) == pytest.approx(0.04, rel=1e-9)
    assert esr(1.2 * target, target, SR, pre_emphasis=0.95) == pytest.approx(0.04, rel=1e-9)
    # A 100 Hz target and an 8 kHz error 20 dB below it: ESR 0.01, and pre-emphasis
    # H(z) = 1 - a z^-1 weights each by |H|^2 = 1 + a^2 - 2 a cos(w).
    tone = sine_at(100.0, -6.0, 1.0, SR)
    error = 0.1 * sine_at(8000.0, -6.0, 1.0, SR)
    assert esr(tone + error, tone, SR) == pytest.approx(0.01, rel=1e-3)
    a = 0.95
    weight = [1 + a ** 2 - 2 * a * math.cos(2 * math.pi * f / SR) for f in (8000.0, 100.0)]
    assert esr(tone + error, tone, SR, pre_emphasis=a) == pytest.approx(0.01 * weight[0] / weight[1], rel=1e-2)


def test_mrstft_distance_is_the_loss_without_gradient():
    x, y = music_like(), lowpassed(music_like())
    loss = MultiResolutionSTFTLoss()(torch.from_numpy(y[None]).float(), torch.from_numpy(x[None]).float())
    assert mrstft_distance(y, x, SR) == pytest.approx(loss.item(), rel=1e-6)


def test_mono_input_is_accepted_as_1d_or_one_channel():
    x = music_like()[0]
    y = lowpassed(x)
    for name, metric in METRICS.items():
        assert metric(y, x, SR) == pytest.approx(metric(y[None], x[None], SR), rel=1e-9), name


def test_compute_all_runs_the_named_subset_in_order():
    x = music_like()
    assert list(compute_all(x, x, SR, names=["esr", "mfcc_cosine"])) == ["esr", "mfcc_cosine"]
    with pytest.raises(ValueError, match="unknown metric"):
        compute_all(x, x, SR, names=["snr"])


@pytest.mark.parametrize("name", sorted(METRICS))
def test_bad_pairs_are_named(name):
    metric = METRICS[name]
    x = music_like()
    with pytest.raises(AudioFormatError, match="differs from target shape"):
        metric(x, x[0], SR)
    bad = x.copy()
    bad[1, 100] = np.nan
    with pytest.raises(AudioFormatError, match="output contains NaN"):
        metric(bad, x, SR)
    with pytest.raises(AudioFormatError, match="target contains NaN"):
        metric(x, bad, SR)
    with pytest.raises(AudioFormatError, match="empty"):
        metric(np.zeros((2, 0)), np.zeros((2, 0)), SR)
    with pytest.raises(AudioFormatError, match=r"channel-first \(C, T\)"):
        metric(x.T, x.T, SR)
    with pytest.raises(AudioFormatError, match="floating-point"):
        metric((x * 1000).astype(np.int16), (x * 1000).astype(np.int16), SR)
    with pytest.raises(AudioFormatError, match="numpy array"):
        metric(torch.from_numpy(x), torch.from_numpy(x), SR)
    for rate in (0, -22050, 22050.5, "22050"):
        with pytest.raises(AudioFormatError, match="sample_rate"):
            metric(x, x, rate)


@pytest.mark.parametrize("name, samples, needs", [
    ("mfcc_cosine", 4095, "at least 4096"),
    ("ms_mse", 3500, "at least 3528"),
    ("loudness_difference_lufs", 8819, "at least 8820"),
    ("spectral_balance_distance", 8000, "at least 8820"),
    ("mrstft_distance", 1024, "at least 1025"),
])
def test_too_short_audio_is_named(name, samples, needs):
    x = noise(1.0)[:, :samples].astype(np.float64)
    with pytest.raises(AudioFormatError, match=needs):
        METRICS[name](x, x, SR)


@pytest.mark.parametrize("name", ["mfcc_cosine", "ms_mse", "esr", "loudness_difference_lufs",
                                  "spectral_balance_distance"])
def test_silent_target_is_named(name):
    x = noise(1.0).astype(np.float64)
    with pytest.raises(AudioFormatError, match="target .*silent"):
        METRICS[name](x, np.zeros_like(x), SR)


def test_level_specific_input_errors():
    with pytest.raises(AudioFormatError, match="too low for the gammatone bank"):
        ms_mse(noise(1.0, 8000), noise(1.0, 8000), 8000)
    with pytest.raises(AudioFormatError, match="at most 5 channels"):
        loudness_lufs(noise(1.0, channels=6), SR)
    with pytest.raises(AudioFormatError, match="output .*silent"):
        loudness_difference_lufs(np.zeros(SR), noise(1.0)[0].astype(np.float64), SR)
    with pytest.raises(ValueError, match="pair_by"):
        mfcc_cosine(music_like(), music_like(), SR, pair_by="row")
