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


# -- values recorded before the MFCC moved to librosa -----------------------------------------------
def _recorded_sine(freq, dbfs, seconds, sr, phase=0.0):
    t = np.arange(int(seconds * sr)) / sr
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + phase)


def _recorded_noise(seconds, sr, channels, dbfs, seed):
    return 10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))


def _recorded_chord(seconds, sr, root=220.0):
    """A decaying major chord with five harmonics per note (no FluidSynth), float64 ``(T,)``."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for ratio in (1.0, 5 / 4, 3 / 2, 2.0):
        for h in range(1, 6):
            x += 0.1 / h * np.sin(2 * np.pi * root * ratio * h * t)
    return x * np.exp(-1.5 * t)


def _recorded_pairs():
    """name -> (output, target, sample_rate): the seeded signals the numbers below were measured on."""
    half_silent = np.zeros(SR)
    half_silent[SR // 2:] = _recorded_sine(440.0, -12.0, 0.5, SR)  # silent frames sit at the -80 dB floor
    click = np.zeros(SR)
    click[1000] = 1e-3
    pairs = {
        "sine_vs_sine": (_recorded_sine(440.0, -12.0, 1.0, SR, 1.0), _recorded_sine(880.0, -6.0, 1.0, SR)),
        "noise_vs_noise": (_recorded_noise(1.0, SR, 2, -20.0, 1), _recorded_noise(1.0, SR, 2, -26.0, 2)),
        "chord_vs_noisy_chord": (_recorded_chord(1.0, SR) + _recorded_noise(1.0, SR, 1, -40.0, 4)[0],
                                 _recorded_chord(1.0, SR)),
        "half_silent_vs_sine": (half_silent, _recorded_sine(440.0, -12.0, 1.0, SR)),
        "sine_vs_half_silent": (_recorded_sine(660.0, -12.0, 1.0, SR), half_silent),
        "quiet_noise_vs_chord": (_recorded_noise(1.0, SR, 1, -60.0, 3)[0], _recorded_chord(1.0, SR)),
        "short_4096": (_recorded_noise(1.0, SR, 1, -20.0, 6)[0, :4096], _recorded_chord(1.0, SR)[:4096]),
        "odd_length": (_recorded_noise(1.0, SR, 1, -20.0, 7)[0, :7777], _recorded_chord(1.0, SR)[:7777]),
        "click_vs_chord": (click, _recorded_chord(1.0, SR)),
    }
    pairs = {name: (out, tgt, SR) for name, (out, tgt) in pairs.items()}
    for sr in (16000, 44100, 48000):
        pairs[f"chord_vs_noise_{sr}"] = (_recorded_chord(0.5, sr), _recorded_noise(0.5, sr, 1, -20.0, 5)[0], sr)
    return pairs


# Produced by the hand-written NumPy MFCC and mel filterbank (fxlib/metrics.py before the switch to
# librosa), numpy 2.4.6, scipy 1.17.1, torch 2.13.0, pyloudnorm 0.2.0. Columns in METRICS order:
# mfcc_cosine, mfcc_cosine_trajectory, ms_mse, esr, mrstft_distance, loudness_difference_lufs,
# spectral_balance_distance.
RECORDED_COMPUTE_ALL = {
    "sine_vs_sine": (0.03840774920827037, 0.9677028633832349, 1.4347973364269093, 1.2511886431509578,
                     1.809976577758789, -6.438259317959963, 9.066749207803639),
    "noise_vs_noise": (0.035440810955772895, 0.8812432133033621, 0.3682841645645031, 4.9640703446156955,
                       2.2831742763519287, 5.994848241804222, 0.5461098269573804),
    "chord_vs_noisy_chord": (0.02172026554279529, 0.4242288311183572, 47.2872005624808, 0.008155700545189552,
                             5.837057590484619, 0.08819700809000253, 24.5838101822816),
    "half_silent_vs_sine": (0.016974721058160003, 0.30890266698226126, 135.346559094391, 0.5,
                            1.336212158203125, -1.5507279438860184, 25.570306866654665),
    "sine_vs_half_silent": (0.03004858852820057, 0.9974557129053655, 149.29355049034754, 3.000000000000002,
                            2.578660726547241, 1.7000556191019491, 32.11714669814082),
    "quiet_noise_vs_chord": (0.18295147307264117, 0.9980519760004174, 113.10279871100488, 1.0001009056871188,
                             5.47570276260376, -37.036719631348625, 38.95754421960082),
}
# The same hand-written implementation: mfcc_cosine with pair_by="frame" and pair_by="coefficient".
RECORDED_MFCC = {
    "chord_vs_noise_16000": (0.18034694242294302, 1.0586056473053171),
    "chord_vs_noise_44100": (0.17061029887292192, 0.9533446211966372),
    "chord_vs_noise_48000": (0.17687425243459345, 0.9502840510311775),
    "short_4096": (0.1859225754592301, 1.0572159263282026),
    "odd_length": (0.19763802673948985, 0.9604456835704701),
    "click_vs_chord": (0.16790751017176175, 0.9881293897242008),
}
MFCC_RTOL = 1e-9
OTHER_RTOL = 1e-6


@pytest.mark.parametrize("name", sorted(RECORDED_COMPUTE_ALL))
def test_compute_all_values_did_not_change_with_librosa(name):
    """Every metric of compute_all still gives the numbers of the hand-written MFCC implementation.

    The MFCC metrics agree to about 1e-15 (frame pairing) and 1e-12 (coefficient pairing),
    relative, not exactly: the definition is the same (zero padding of the centred frames,
    matched with ``pad_mode="constant"``; dB relative to the maximum, ``ref=np.max``; the mel
    filters built in float64), but librosa computes the STFT (edge frames apart), the filterbank
    product (einsum) and the Slaney mel edges (``f / (200/3)`` instead of ``f * 3 / 200``) in
    another order, so round-off differs in the last bits. ``MFCC_RTOL`` = 1e-9 leaves room for
    that and still catches a real change: on these signals reflect padding moves the distances
    by up to 8 %, dB relative to 1.0 instead of the maximum by up to 800 %, and librosa's
    default float32 filterbank by up to 7e-8. The other metrics did not change code; ``OTHER_RTOL`` = 1e-6 allows for
    float32 STFTs (mrstft_distance) on other FFT back ends.
    """
    output, target, sr = _recorded_pairs()[name]
    values = compute_all(output, target, sr)
    assert list(values) == list(METRICS)
    for (metric, value), expected in zip(values.items(), RECORDED_COMPUTE_ALL[name]):
        rtol = MFCC_RTOL if metric.startswith("mfcc") else OTHER_RTOL
        assert value == pytest.approx(expected, rel=rtol), metric


@pytest.mark.parametrize("name", sorted(RECORDED_MFCC))
def test_mfcc_cosine_values_did_not_change_with_librosa(name):
    """Other sample rates (the mel filters follow sr / 2), the shortest input and a lone click."""
    output, target, sr = _recorded_pairs()[name]
    frame, coefficient = RECORDED_MFCC[name]
    assert mfcc_cosine(output, target, sr) == pytest.approx(frame, rel=MFCC_RTOL)
    assert mfcc_cosine(output, target, sr, pair_by="coefficient") == pytest.approx(coefficient, rel=MFCC_RTOL)
