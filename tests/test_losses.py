"""Training losses: known values, zero at identity, gradients, shapes and input errors."""
import math

import numpy as np
import pytest
import torch

from fxlib.errors import AudioFormatError
from fxlib.losses import LOSSES, MultiResolutionSTFTLoss, SpectralLoss, get_loss, k_weighting, octave_bands

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def audio(shape=(2, 2, 4096), seed=0, dtype=torch.float32):
    return (0.1 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))).to(dtype)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("shape", [(1, 1, 4096), (3, 2, 2500)])
@pytest.mark.parametrize("device", DEVICES)
def test_zero_for_identical_and_positive_otherwise(name, shape, device):
    loss = get_loss(name)
    x = audio(shape).to(device)
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, audio(shape, seed=1).to(device)).item() > 0.1


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_flows_and_is_finite(name):
    target = audio()
    for output in (0.5 * target, torch.zeros_like(target)):
        output = output.clone().requires_grad_(True)
        get_loss(name)(output, target).backward()
        assert torch.isfinite(output.grad).all()
        if output.detach().abs().sum() > 0:
            assert output.grad.abs().sum() > 0


def test_time_term_is_weighted_l1():
    x = audio()
    loss = SpectralLoss(w_mag=0.0, w_log_mag=0.0)  # default w_time 10
    assert loss(x + 0.1, x).item() == pytest.approx(10 * 0.1, rel=1e-5)


def test_log_magnitude_term_of_a_gain_is_log_gain_squared():
    x = audio(dtype=torch.float64)
    loss = SpectralLoss(w_mag=0.0, w_time=0.0, eps=1e-12)
    assert loss(2 * x, x).item() == pytest.approx(math.log(2) ** 2, rel=1e-6)


def test_magnitude_term_of_a_gain_is_scaled_mean_power():
    x = audio(dtype=torch.float64)
    loss = SpectralLoss(w_log_mag=0.0, w_time=0.0)
    mean_power = torch.mean(loss.magnitude(x) ** 2).item()
    assert loss(3 * x, x).item() == pytest.approx(4 * mean_power, rel=1e-9)


def test_stft_frames_are_non_overlapping_hann_frames_padded_at_the_end():
    x = audio((1, 1, 2500), dtype=torch.float64)
    mag = SpectralLoss().magnitude(x)
    assert mag.shape == (1, 1, 513, 3)  # ceil(2500 / 1024) frames
    signal = np.pad(x.numpy()[0, 0], (0, 3 * 1024 - 2500))
    window = np.hanning(1025)[:-1]  # periodic Hann
    expected = np.abs(np.fft.rfft(signal.reshape(3, 1024) * window, axis=-1)).T
    np.testing.assert_allclose(mag[0, 0].numpy(), expected, atol=1e-10)


def test_spectral_loss_hyper_parameters_are_configurable():
    x, y = audio(), audio(seed=1)
    default = SpectralLoss()(x, y).item()
    assert SpectralLoss(n_fft=512, win_length=512, hop_length=256)(x, y).item() != default
    assert SpectralLoss(w_time=0.0)(x, y).item() < default


def test_loudness_term_of_a_gain_is_the_level_difference_squared():
    x = audio(dtype=torch.float64)
    loss = SpectralLoss(w_mag=0.0, w_log_mag=0.0, w_time=0.0, w_loudness=1.0)
    assert loss(2 * x, x).item() == pytest.approx((20 * math.log10(2)) ** 2, rel=1e-6)  # 6.02 dB per frame
    assert loss(x, x).item() == 0.0
    assert SpectralLoss()(2 * x, x).item() == SpectralLoss(w_loudness=0.0)(2 * x, x).item()  # off by default


def test_loudness_term_weighs_bands_as_k_weighting_does():
    """A boost at 40 Hz, which K-weighting discounts, costs less than the same boost at 4 kHz."""
    t = torch.arange(8192, dtype=torch.float64) / 22050
    low, high = (0.1 * torch.sin(2 * math.pi * f * t).view(1, 1, -1) for f in (40.0, 4000.0))
    loss = SpectralLoss(w_mag=0.0, w_log_mag=0.0, w_time=0.0, w_loudness=1.0)
    assert loss(2 * low + high, low + high).item() < 0.5 * loss(low + 2 * high, low + high).item()


@pytest.mark.parametrize("term", ["w_bands", "w_peak"])
def test_band_and_peak_terms_of_a_gain_are_the_level_difference_squared(term):
    x = audio(dtype=torch.float64)
    loss = SpectralLoss(w_mag=0.0, w_log_mag=0.0, w_time=0.0, **{term: 1.0})
    assert loss(2 * x, x).item() == pytest.approx((20 * math.log10(2)) ** 2, rel=1e-4)
    assert loss(x, x).item() == 0.0
    assert SpectralLoss()(2 * x, x).item() == SpectralLoss(**{term: 0.0})(2 * x, x).item()  # off by default


def test_band_term_counts_a_quiet_band_as_much_as_a_loud_one():
    """Halving a tone 34 dB below a loud 100 Hz one costs the band term a full 6 dB in one of its
    8 bands; the magnitude term hardly sees it."""
    t = torch.arange(8192, dtype=torch.float64) / 22050
    low, high = (a * torch.sin(2 * math.pi * f * t).view(1, 1, -1) for a, f in ((0.5, 100.0), (0.01, 4000.0)))
    bands = SpectralLoss(w_mag=0.0, w_log_mag=0.0, w_time=0.0, w_bands=1.0)
    assert bands(low + high / 2, low + high).item() == pytest.approx((20 * math.log10(2)) ** 2 / 8, rel=0.05)
    magnitude = SpectralLoss(w_log_mag=0.0, w_time=0.0)
    assert magnitude(low + high / 2, low + high).item() < 1e-3 * magnitude(low / 2 + high, low + high).item()


def test_peak_term_compares_each_block_peak():
    x = torch.zeros(1, 1, 2048, dtype=torch.float64)
    x[..., 100], x[..., 1500] = 0.5, 0.25
    y = x.clone()
    y[..., 1500] = 0.5  # the second 1024-sample block's peak is 6 dB higher; the first is the same
    loss = SpectralLoss(w_mag=0.0, w_log_mag=0.0, w_time=0.0, w_peak=1.0)
    assert loss(x, y).item() == pytest.approx((20 * math.log10(2)) ** 2 / 2, rel=1e-4)


def test_octave_bands_partition_the_bins_from_44_hz_to_nyquist():
    bands = octave_bands(22050, 1024).numpy()
    freqs = np.linspace(0, 11025, 513)
    assert bands.shape == (8, 513) and bands.sum(axis=0).max() == 1  # 62.5 Hz .. 8 kHz, no bin twice
    covered = freqs[bands.sum(axis=0) == 1]
    assert 40 < covered.min() < 62.5 / math.sqrt(2) + 22 and covered.max() == 11025
    assert octave_bands(8000, 256).shape[0] == 6  # 62.5 Hz .. 2 kHz below 4 kHz


def test_k_weighting_response():
    power = k_weighting(22050, 1024).numpy()
    freqs = np.linspace(0, 11025, 513)
    db = 10 * np.log10(power[np.searchsorted(freqs, [20.0, 1000.0, 8000.0])])
    assert db[0] < -10 and abs(db[1]) < 1.0 and 3.0 < db[2] < 4.5  # BS.1770: RLB high-pass, +4 dB shelf


def test_mrstft_single_resolution_spectral_convergence_of_a_gain():
    x = audio()
    loss = MultiResolutionSTFTLoss(fft_sizes=(1024,), hop_sizes=(256,), win_lengths=(1024,), w_log_mag=0.0)
    assert loss(0.5 * x, x).item() == pytest.approx(0.5, rel=1e-4)  # ||Y - Y/2|| / ||Y||


def test_get_loss_passes_hyper_parameters_and_rejects_unknown_names():
    assert isinstance(get_loss("spectral", n_fft=2048, win_length=2048), SpectralLoss)
    assert get_loss("mrstft", fft_sizes=(256,), hop_sizes=(64,), win_lengths=(256,)).fft_sizes == (256,)
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        get_loss("l2")
    with pytest.raises(ValueError, match="takes no option 'w_lodness'"):
        get_loss("spectral", w_lodness=1.0)
    assert get_loss("spectral", 44100, w_loudness=0.1).sample_rate == 44100
    assert get_loss("mrstft", 44100).fft_sizes == (2048, 1024, 512)  # takes no sample rate


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_input_is_named(name):
    loss = get_loss(name)
    x = audio()
    with pytest.raises(AudioFormatError, match="differs from target shape"):
        loss(x, x[:, :1])
    with pytest.raises(AudioFormatError, match=r"\(B, C, T\)"):
        loss(x[0], x[0])
    bad = x.clone()
    bad[1, 0, 7] = float("nan")
    with pytest.raises(AudioFormatError, match="output contains NaN"):
        loss(bad, x)
    with pytest.raises(AudioFormatError, match="target contains NaN"):
        loss(x, bad)
    with pytest.raises(AudioFormatError, match="floating-point"):
        loss(x.to(torch.int32), x.to(torch.int32))
    with pytest.raises(AudioFormatError, match="needs at least"):
        loss(x[..., :0], x[..., :0])


def test_mrstft_names_the_minimum_length():
    x = audio((1, 1, 1024))
    with pytest.raises(AudioFormatError, match="1024 samples; this loss needs at least 1025"):
        MultiResolutionSTFTLoss()(x, x)


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="win_length <= n_fft"):
        SpectralLoss(n_fft=512, win_length=1024)
    for term in ("w_loudness", "w_bands", "w_peak"):
        with pytest.raises(ValueError, match=f"{term} >= 0"):
            SpectralLoss(**{term: -1.0})
    with pytest.raises(ValueError, match="sample_rate > 0"):
        SpectralLoss(sample_rate=0.0)
    with pytest.raises(ValueError, match="one length"):
        MultiResolutionSTFTLoss(fft_sizes=(1024, 512), hop_sizes=(256,), win_lengths=(1024,))
