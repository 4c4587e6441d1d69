"""fxlib.encoder: log-mel front end, backbones, the encoder and its config round trip."""
import json
import math

import librosa
import numpy as np
import pytest
import torch

from fxlib.encoder import (BACKBONES, Encoder, InceptionBackbone, LogMel, MobileNetV2Backbone, SmallCNN, centre_pool,
                           global_average_pool, knot_matrix)
from fxlib.errors import AudioFormatError

SR = 22050
CONTEXT = 40960  # the paper's encoder context, in samples


def tone(freq: float, samples: int = CONTEXT, channels: int = 1) -> torch.Tensor:
    """A sine of amplitude 0.5, shaped (1, channels, samples)."""
    t = torch.arange(samples, dtype=torch.float64) / SR
    x = (0.5 * torch.sin(2 * math.pi * freq * t)).float()
    return x.expand(1, channels, samples).clone()


def num_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def mel_centres(sr: float, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Centre frequency in Hz of each of LogMel's filters, ``(n_mels,)``."""
    return librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max, htk=False)[1:-1]


# The Slaney mel scale and filterbank fxlib wrote by hand before LogMel used librosa, kept as the
# reference that trained encoders saw.
def handwritten_hz_to_mel(freq):
    freq = np.asarray(freq, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(freq < 1000.0, freq * 3.0 / 200.0, log_part)


def handwritten_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    log_part = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel < 15.0, mel * 200.0 / 3.0, log_part)


def handwritten_edges(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``n_mels + 2`` filter edges in Hz, equally spaced in mel; filter ``m`` peaks at edge ``m + 1``."""
    return handwritten_mel_to_hz(np.linspace(handwritten_hz_to_mel(f_min), handwritten_hz_to_mel(f_max), n_mels + 2))


def handwritten_filterbank(sample_rate: float, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Area-normalised triangles on :func:`handwritten_edges`, float64 ``(n_mels, n_fft // 2 + 1)``."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = handwritten_edges(n_mels, f_min, f_max)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))


# -- LogMel ----------------------------------------------------------------------------------------
def test_logmel_shape_for_the_paper_context():
    lm = LogMel()
    out = lm(torch.randn(3, 2, CONTEXT))
    assert out.shape == (3, 1, 128, 1 + CONTEXT // 256) == (3, 1, 128, 161)
    assert lm.num_frames(CONTEXT) == 161
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_logmel_mixes_channels_by_mean():
    lm = LogMel()
    stereo = torch.randn(2, 2, 4096)
    np.testing.assert_allclose(lm(stereo), lm(stereo.mean(1, keepdim=True)), atol=1e-5)


def test_logmel_silence_is_the_eps_floor():
    lm = LogMel(eps=1e-6)
    out = lm(torch.zeros(1, 1, 2048))
    np.testing.assert_allclose(out, math.log(1e-6), atol=1e-6)


def test_filterbank_rows_are_non_negative_and_cover_zero_to_nyquist():
    n_fft, n_mels = 1024, 128
    fb = LogMel(SR, n_fft, 256, n_mels).filterbank.numpy()
    assert fb.shape == (n_mels, n_fft // 2 + 1)
    assert (fb >= 0).all()
    assert (fb.sum(axis=1) > 0).all(), "every mel band sees at least one FFT bin"
    # every bin strictly between 0 Hz and sr/2 (the outer filter edges) has weight
    assert (fb.sum(axis=0)[1:-1] > 0).all()
    bins = np.linspace(0, SR / 2, n_fft // 2 + 1)
    assert bins[fb[0] > 0].min() < 50.0 and bins[fb[-1] > 0].max() > SR / 2 - 300.0
    centres = mel_centres(SR, n_mels, 0.0, SR / 2)
    assert (np.diff(centres) > 0).all() and 0 < centres[0] and centres[-1] < SR / 2
    # each filter peaks at the bin nearest its centre (within one bin)
    assert (np.abs(bins[fb.argmax(axis=1)] - centres) <= SR / n_fft).all()


def test_logmel_filterbank_is_librosas_as_float32():
    lm = LogMel()
    expected = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, fmin=0.0, fmax=SR / 2, htk=False, norm="slaney",
                                   dtype=np.float64)
    assert lm.filterbank.dtype == torch.float32
    assert np.array_equal(lm.filterbank.numpy(), expected.astype(np.float32))
    assert "filterbank" not in lm.state_dict()


@pytest.mark.parametrize("sr, n_fft, n_mels, f_min, f_max", [
    (22050, 1024, 128, 0.0, None),     # the paper's front end, and every task's
    (22050, 2048, 128, 0.0, None),
    (22050, 1024, 64, 20.0, 8000.0),
    (16000, 512, 40, 0.0, None),
    (44100, 2048, 128, 0.0, None),
    (48000, 1024, 80, 50.0, 16000.0),
])
def test_logmel_filterbank_is_bit_identical_to_the_handwritten_one(sr, n_fft, n_mels, f_min, f_max):
    """Trained encoders saw the hand-written filterbank; librosa's, cast to float32, is the same bits
    (the float64 filters differ by at most about 1e-15)."""
    f_max = sr / 2 if f_max is None else f_max
    lm = LogMel(sr, n_fft, 256, n_mels, f_min, f_max)
    old = handwritten_filterbank(sr, n_fft, n_mels, f_min, f_max)
    assert np.array_equal(lm.filterbank.numpy(), torch.tensor(old, dtype=torch.float32).numpy())
    np.testing.assert_allclose(mel_centres(sr, n_mels, f_min, f_max), handwritten_edges(n_mels, f_min, f_max)[1:-1],
                               rtol=1e-12)


@pytest.mark.parametrize("band", [5, 20, 40, 64, 90, 120])
def test_a_tone_at_a_band_centre_lands_in_that_band(band):
    freq = mel_centres(SR, 128, 0.0, SR / 2)[band]
    out = LogMel()(tone(freq))[0, 0].mean(dim=1)
    assert int(out.argmax()) == band


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 7000.0])
def test_a_tone_lands_in_the_band_with_the_nearest_centre(freq):
    centres = mel_centres(SR, 128, 0.0, SR / 2)
    out = LogMel()(tone(freq))[0, 0].mean(dim=1)
    assert int(out.argmax()) == int(np.argmin(np.abs(centres - freq)))


def test_logmel_rejects_a_2d_input():
    with pytest.raises(AudioFormatError, match="batch, channels, samples"):
        LogMel()(torch.randn(2, CONTEXT))


def test_logmel_rejects_audio_shorter_than_one_frame():
    with pytest.raises(AudioFormatError, match="shorter than one frame"):
        LogMel()(torch.randn(1, 1, 1023))


def test_logmel_rejects_nan():
    x = torch.randn(1, 1, 4096)
    x[0, 0, 100] = float("nan")
    with pytest.raises(AudioFormatError, match="NaN"):
        LogMel()(x)


def test_logmel_rejects_integer_audio_and_bad_settings():
    with pytest.raises(AudioFormatError, match="floating-point"):
        LogMel()(torch.zeros(1, 1, 4096, dtype=torch.int16))
    with pytest.raises(ValueError, match="f_max"):
        LogMel(f_max=20000.0)
    with pytest.raises(ValueError, match="hop"):
        LogMel(hop=0)


# -- sliding windows: whole-file inference ------------------------------------------------------------
def windows(audio: torch.Tensor, first: int, step: int, length: int, count: int) -> torch.Tensor:
    """``(count, C, length)``: the windows :meth:`LogMel.sliding` describes, cut one by one."""
    padded = torch.nn.functional.pad(audio, (max(0, -first), first + (count - 1) * step + length))
    offset = max(0, -first)
    return torch.stack([padded[:, offset + first + i * step:offset + first + i * step + length] for i in range(count)])


@pytest.mark.parametrize("n_fft, hop, length, step, first, samples, channels", [
    (1024, 256, CONTEXT, 1024, -19968, 60000, 1),  # the paper's context and frame: frames shared
    (1024, 256, 20480, 1024, -9728, 30000, 2),     # stereo, mixed to mono as forward mixes it
    (512, 128, 3000, 256, -1000, 7000, 1),         # a window that is no whole number of hops
    (1024, 256, 8192, 1000, -3584, 9000, 1),       # windows off the hop grid: each computed whole
])
def test_sliding_logmel_equals_the_logmel_of_each_window_bit_for_bit(n_fft, hop, length, step, first, samples,
                                                                      channels):
    logmel = LogMel(n_fft=n_fft, hop=hop)
    audio = 0.1 * torch.randn(channels, samples, generator=torch.Generator().manual_seed(0))
    count = -(-samples // step)
    cut = windows(audio, first, step, length, count)
    batches = list(logmel.sliding(audio, first, step, length, count, batch=8))
    assert [len(b) for b in batches] == [8] * (count // 8) + ([count % 8] if count % 8 else [])
    for start, batch in zip(range(0, count, 8), batches):
        assert torch.equal(batch, logmel(cut[start:start + 8]))  # as the encoder computed it per context


def test_sliding_logmel_checks_its_input():
    with pytest.raises(AudioFormatError, match="channels, samples"):
        next(LogMel().sliding(torch.zeros(1, 1, 4096), 0, 1024, 4096, 1, 1))
    with pytest.raises(AudioFormatError, match=r"512 samples \(a window\) is shorter than one frame"):
        next(LogMel().sliding(torch.zeros(1, 4096), 0, 1024, 512, 1, 1))
    nan = torch.zeros(1, 4096)
    nan[0, 7] = float("nan")
    with pytest.raises(AudioFormatError, match="NaN"):
        next(LogMel().sliding(nan, 0, 1024, 2048, 1, 1))


def test_encoder_is_its_front_end_then_from_logmel():
    encoder = Encoder(5, "small", pooling="centre").eval()
    audio = tone(440.0, 8192).expand(3, 1, -1) * torch.tensor([0.2, 0.5, 1.0])[:, None, None]
    with torch.no_grad():
        assert torch.equal(encoder(audio), encoder.from_logmel(encoder.logmel(audio)))


# -- backbones --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_encoder_forward_backward_per_backbone(name):
    torch.manual_seed(0)
    enc = Encoder(5, name)
    out = enc(torch.randn(2, 1, CONTEXT))
    assert out.shape == (2, 5)
    assert ((out > 0) & (out < 1)).all()
    out.sum().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert enc.head.weight.grad.abs().sum() > 0 and enc.input_norm.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_map_a_logmel_image_to_features(name):
    backbone = BACKBONES[name]()
    out = backbone(torch.randn(2, 1, 128, 161))
    assert out.shape == (2, backbone.out_features)


def test_mobilenetv2_parameter_count():
    n = num_parameters(MobileNetV2Backbone(1.0))
    assert abs(n - 2.2e6) < 0.1 * 2.2e6, n
    assert MobileNetV2Backbone(1.0).out_features == 1280
    assert num_parameters(MobileNetV2Backbone(0.5)) < n


def test_small_cnn_is_small():
    assert num_parameters(SmallCNN()) < 100_000
    assert SmallCNN((8, 16)).out_features == 16


def test_inception_width_and_depth_scale():
    full = InceptionBackbone()
    assert 1e6 < num_parameters(full) < 5e6
    assert num_parameters(InceptionBackbone(num_stages=3, width_mult=0.5, features=64)) < num_parameters(full) / 5


# -- encoder ----------------------------------------------------------------------------------------
def test_config_round_trip_through_json():
    enc = Encoder(7, "small", n_mels=64, channels=(8, 16, 32))
    config = enc.to_config()
    assert config == json.loads(json.dumps(config))
    rebuilt = Encoder.from_config(json.loads(json.dumps(config)))
    assert rebuilt.to_config() == config
    rebuilt.load_state_dict(enc.state_dict())
    enc.eval(), rebuilt.eval()
    x = torch.randn(2, 2, 8192)
    torch.testing.assert_close(enc(x), rebuilt(x))


def test_config_keeps_backbone_options():
    config = Encoder(3, "mobilenetv2", width_mult=0.5).to_config()
    assert config["backbone"] == "mobilenetv2" and config["width_mult"] == 0.5 and config["pooling"] == "global"
    assert Encoder.from_config(config).backbone.width_mult == 0.5
    config = Encoder(3, "small", pooling="centre", channels=(8, 16)).to_config()
    rebuilt = Encoder.from_config(json.loads(json.dumps(config)))
    assert rebuilt.pooling == "centre" and rebuilt.backbone.channels == (8, 16)


def test_centre_pool_takes_the_middle_time_cells_band_by_band():
    cells = torch.arange(5.0).view(1, 1, 1, 5) + 10 * torch.arange(4.0).view(1, 1, 4, 1)  # 10 h + w
    cells = cells.expand(2, 3, 4, 5)
    torch.testing.assert_close(centre_pool(cells, bands=True),
                               torch.tensor([2.0, 12.0, 22.0, 32.0]).repeat(3).expand(2, 12))
    torch.testing.assert_close(centre_pool(cells[..., :4], bands=True)[0, :4],
                               torch.tensor([1.5, 11.5, 21.5, 31.5]))  # time cells 1 and 2
    torch.testing.assert_close(centre_pool(cells), torch.full((2, 3), 17.0))  # and the mean over bands


def test_centre_pooling_sees_where_in_the_context_a_sound_is():
    """With global pooling a burst at the start or at the centre of the context looks alike to
    the head (up to edge effects); centre pooling tells them apart."""
    torch.manual_seed(0)
    burst = 0.5 * torch.randn(1, 1, 2048)
    early, centred = torch.zeros(1, 1, CONTEXT), torch.zeros(1, 1, CONTEXT)
    early[..., 4096:6144] = burst
    centred[..., CONTEXT // 2 - 1024:CONTEXT // 2 + 1024] = burst
    enc = Encoder(3, "small", pooling="centre-bands").eval()
    fmap = {name: enc.backbone.feature_map(enc.input_norm(enc.logmel(x))) for name, x in
            (("early", early), ("centred", centred))}
    gap = (global_average_pool(fmap["early"]) - global_average_pool(fmap["centred"])).abs().max()
    for bands in (False, True):
        centre = (centre_pool(fmap["early"], bands) - centre_pool(fmap["centred"], bands)).abs().max()
        assert centre > 10 * gap
    assert enc.head.in_features == (1 + 8) * enc.backbone.out_features  # 128 mels pooled to 8 cells
    assert Encoder(3, "small", pooling="centre").head.in_features == 2 * enc.backbone.out_features


def test_knot_matrix_interpolates_linearly_between_knots():
    m = knot_matrix(5, 3)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(m @ torch.tensor([0.0, 2.0, 0.0]), torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="2 <= knots <= points"):
        knot_matrix(3, 4)


def test_curve_outputs_lie_on_a_piecewise_linear_curve():
    torch.manual_seed(0)
    enc = Encoder(12, curves=[[2, 11, 3]]).eval()  # outputs 2..10: a curve through 3 knots
    assert enc.head.out_features == 2 + 3 + 1
    logits = torch.logit(enc(torch.randn(4, 1, 8192)))
    curve = logits[:, 2:11]
    torch.testing.assert_close(curve[:, 1:] - curve[:, :-1], (curve[:, 1:] - curve[:, :-1])[:, [0, 0, 0, 0, 4, 4, 4, 4]],
                               atol=1e-4, rtol=1e-4)  # constant slope on each of the two segments
    assert Encoder.from_config(json.loads(json.dumps(enc.to_config()))).curves == [[2, 11, 3]]
    with pytest.raises(ValueError, match="start, stop, knots"):
        Encoder(12, curves=[[2, 20, 3]])
    with pytest.raises(ValueError, match="overlaps"):
        Encoder(12, curves=[[2, 8, 3], [6, 11, 3]])


def test_encoder_rejects_unknown_backbone_and_bad_input():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        Encoder(3, "resnet")
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        Encoder(3, pooling="max")
    with pytest.raises(ValueError, match="num_params"):
        Encoder(0)
    enc = Encoder(3)
    with pytest.raises(AudioFormatError, match="batch, channels, samples"):
        enc(torch.randn(2, CONTEXT))
    with pytest.raises(AudioFormatError, match="shorter than one frame"):
        enc(torch.randn(2, 1, 500))
    with pytest.raises(AudioFormatError, match="NaN"):
        enc(torch.full((2, 1, CONTEXT), float("nan")))


def test_small_encoder_overfits_a_toy_regression():
    torch.manual_seed(0)
    x = torch.randn(4, 1, CONTEXT // 4) * torch.tensor([0.01, 0.1, 0.3, 1.0]).view(4, 1, 1)
    target = torch.rand(4, 6) * 0.8 + 0.1
    enc = Encoder(6, "small")
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(enc(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
    enc.eval()  # the running BatchNorm statistics serve too
    with torch.no_grad():
        assert torch.nn.functional.mse_loss(enc(x), target).item() < losses[0] / 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encoder_runs_on_cuda():
    enc = Encoder(4, "small").cuda()
    out = enc(torch.randn(2, 2, CONTEXT, device="cuda"))
    assert out.device.type == "cuda" and out.shape == (2, 4)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_the_inference_copy_folds_batchnorm_and_gives_the_same_outputs(name):
    torch.manual_seed(0)
    encoder = Encoder(5, name, pooling="centre")
    for bn in (b for b in encoder.modules() if isinstance(b, torch.nn.BatchNorm2d)):  # trained-like statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    mel = encoder.logmel(torch.randn(3, 1, CONTEXT) * 0.1)
    copy = encoder.for_inference()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules()) == 1  # only the input norm is left
    assert not copy.training and encoder.training
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules()) == batchnorms
    with torch.no_grad():
        expected = encoder.eval().from_logmel(mel)
        got = copy.from_logmel(mel.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
