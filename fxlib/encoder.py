"""The encoder: audio context in, effect parameters in (0, 1) out.

::

    audio (B, C, T) ─► LogMel ─► BatchNorm2d(1) ─► backbone ─► pooling ─► Linear ─► sigmoid ─► (B, P)

:class:`LogMel` is the paper's front end (FFT 1024, hop 256, 128 mels, 0 Hz to sr/2 at
22050 Hz). Three backbones map the log-mel image ``(B, 1, n_mels, frames)`` to a feature
map ``(B, features, H, W)`` (``feature_map``) and, averaged over it, a feature vector
``(B, features)`` (``forward``):

- ``"small"``: :class:`SmallCNN`, four conv-BN-ReLU-max-pool blocks, ~60k parameters; for CPU.
- ``"mobilenetv2"``: :class:`MobileNetV2Backbone`, MobileNetV2 (alpha 1.0 in the paper),
  trained from scratch, ~2.2M parameters.
- ``"inception"``: :class:`InceptionBackbone`, a stem and six reduction + Inception stages
  (the layout of the original's Inception encoder), ~3.3M parameters.

The BatchNorm at the CNN input standardises the log-mel values (there is no per-item
normalisation).

Pooling (:data:`POOLINGS`): ``"global"``, the paper's, averages the feature map over frequency
and time, so the head sees the context as a whole and cannot tell *where* in it something
sounds. The effect renders only the frame at the context's centre, so a task whose controls
must follow short events (a breath of 0.2 s in a 1.86 s context) needs to know what sounds
there: ``"centre"`` gives the head the global average and, beside it, the time cell(s) at the
middle of the map averaged over frequency; ``"centre-bands"`` keeps that middle cell's
frequency cells apart (:func:`centre_pool`), so that a low thump and a broadband hiss at the
centre look different to the head. Breath and pop removal needs the bands; for mastering,
whose controls follow the music slowly, the larger head of ``"centre-bands"`` learned worse
than ``"centre"``.

Curves: some outputs are points of one curve, such as the 32 band gains of a graphic EQ.
Predicted one by one, each wanders on its own under the noise of SPSA gradients, and the
curve comes out jagged. ``curves=[[start, stop, knots], ...]`` makes outputs ``start`` to
``stop - 1`` a piecewise-linear curve through ``knots`` evenly spaced knots
(:func:`knot_matrix`): the head predicts the knots, and the part of a gradient that would
make the curve jagged is projected away. :meth:`Encoder.to_config` and :meth:`Encoder.from_config` turn an encoder
into plain data and back, so a checkpoint can rebuild the module before loading weights.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any, Iterator, Mapping, Sequence

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .errors import AudioFormatError


# -- front end ---------------------------------------------------------------------------------
class LogMel(nn.Module):
    """Log-mel spectrogram of multichannel audio, computed in torch (CPU or CUDA).

    Channels are mixed to mono by their mean before the STFT. The STFT uses a periodic Hann
    window of ``n_fft`` samples and centre padding (reflection), so frame ``k`` is centred on
    sample ``k * hop`` and there are ``1 + T // hop`` frames. The power spectrum ``|X|^2`` goes
    through Slaney-scale, area-normalised triangular mel filters: ``librosa.filters.mel``
    (``htk=False, norm="slaney"``) built in float64 and stored as float32; their centre
    frequencies are ``librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max)[1:-1]``.
    The output is ``log(mel_power + eps)`` (natural log).

    The window and the filterbank are buffers (they follow ``.to(device)``) rebuilt from the
    hyper-parameters, not saved in the ``state_dict``.

    Args:
        sample_rate: in Hz.
        n_fft: FFT and window size in samples.
        hop: hop between frames in samples.
        n_mels: number of mel bands.
        f_min: lowest filter edge in Hz.
        f_max: highest filter edge in Hz; ``None`` means ``sample_rate / 2``.
        eps: floor added to the mel power before the log.

    Shape:
        input ``(B, C, T)`` float audio, ``T >= n_fft`` samples;
        output ``(B, 1, n_mels, 1 + T // hop)``, log power (mel band ``0`` lowest).

    Raises:
        AudioFormatError: input not 3-D, not floating point, shorter than ``n_fft`` samples,
            or holding NaN/Inf (the finiteness check synchronises a CUDA stream).
    """

    def __init__(self, sample_rate: float = 22050, n_fft: int = 1024, hop: int = 256,
                 n_mels: int = 128, f_min: float = 0.0, f_max: float | None = None,
                 eps: float = 1e-6) -> None:
        super().__init__()
        f_max = sample_rate / 2.0 if f_max is None else f_max
        if not sample_rate > 0:
            raise ValueError(f"LogMel: sample_rate must be positive, got {sample_rate!r}")
        if n_fft < 2 or hop < 1 or n_mels < 1:
            raise ValueError(f"LogMel: need n_fft >= 2, hop >= 1, n_mels >= 1; "
                             f"got n_fft={n_fft}, hop={hop}, n_mels={n_mels}")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"LogMel: need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}; "
                             f"got f_min={f_min}, f_max={f_max}")
        if not eps > 0:
            raise ValueError(f"LogMel: eps must be positive, got {eps!r}")
        self.sample_rate = float(sample_rate)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = float(f_max)
        self.eps = float(eps)
        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.f_min,
                                 fmax=self.f_max, htk=False, norm="slaney", dtype=np.float64)
        self.register_buffer("filterbank", torch.tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate:g}, n_fft={self.n_fft}, hop={self.hop}, n_mels={self.n_mels}, "
                f"f_min={self.f_min:g}, f_max={self.f_max:g}, eps={self.eps:g}")

    def num_frames(self, num_samples: int) -> int:
        """Frames the output has for ``num_samples`` input samples."""
        return 1 + num_samples // self.hop

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        self._check(audio, 3, "(batch, channels, samples)")
        return self._log_mel(self._power(audio.to(self.window.dtype).mean(dim=1), center=True)).unsqueeze(1)

    def sliding(self, audio: torch.Tensor, first: int, step: int, length: int, count: int,
                batch: int) -> Iterator[torch.Tensor]:
        """The log-mel of ``count`` windows of a long signal, in batches, each frame's FFT computed once.

        Window i is ``audio[:, first + i * step : first + i * step + length]``, zero where it
        leaves the signal (as :func:`fxlib.framing.window` cuts it); each batch equals, bit for
        bit, ``self`` applied to that batch of windows. Windows ``step`` samples apart share
        most of their frames, so when ``step`` is a multiple of ``hop`` (and ``n_fft`` even) the
        power spectra are computed once over the whole signal; only the frames of each window
        whose FFT reaches past its ends (reflect padding, two at each end with the defaults)
        are computed per window. The mel projection and the log then run on each batch laid
        out as :meth:`forward` lays it out, so that they round alike. Otherwise each window is
        computed whole.

        Args:
            audio: ``(C, T)`` float audio, mixed to mono like :meth:`forward`.
            first: start of window 0, in samples (negative: zero padding before the signal).
            step, length, count: windows ``step`` samples apart, ``length`` samples long, and how many.
            batch: windows per yielded batch.

        Yields:
            ``(b, 1, n_mels, 1 + length // hop)`` with ``b = batch`` (fewer in the last batch).
        """
        self._check(audio, 2, "(channels, samples)", samples=length)
        if step < 1 or count < 1 or batch < 1:
            raise ValueError(f"LogMel.sliding: need step, count and batch >= 1; got {step}, {count}, {batch}")
        mono = audio.to(self.window.dtype).mean(dim=0)
        # frame k of a window covers its samples [k * hop - half, k * hop - half + n_fft)
        frames, half = 1 + length // self.hop, self.n_fft // 2
        left = -(-half // self.hop)  # frames 0 .. left - 1 reach before the window's start
        right = (length + half - self.n_fft) // self.hop + 1  # frames right .. frames - 1 reach past its end
        # the edge frames come from the first and the last `edge` samples of each window, alone:
        # long enough to hold them without touching the other end, the tail aligned on the hop
        need = max(self.n_fft, half + 1, (left - 1) * self.hop - half + self.n_fft, length - (right - left) * self.hop)
        edge = length - self.hop * ((length - need) // self.hop)
        if step % self.hop or self.n_fft % 2 or need > length or right < left:
            for start in range(0, count, batch):
                windows = [_span(mono, first + i * step, length) for i in range(start, min(count, start + batch))]
                yield self._log_mel(self._power(torch.stack(windows), center=True)).unsqueeze(1)
            return
        # global frame m starts at sample first - half + m * hop: window i's frame k is frame i * r + k;
        # spectra are kept frames first, (frames, bins), the layout torch.stft computes them in
        r = step // self.hop
        span = _span(mono, first - half, ((count - 1) * r + frames - 1) * self.hop + self.n_fft)
        shared = self._power(span, center=False).transpose(0, 1)
        tail = frames - (length - edge) // self.hop  # frames of the tail segment up to the window's last
        for start in range(0, count, batch):
            stop = min(count, start + batch)
            power = torch.stack([shared[i * r:i * r + frames] for i in range(start, stop)])
            heads = torch.stack([_span(mono, first + i * step, edge) for i in range(start, stop)])
            tails = torch.stack([_span(mono, first + i * step + length - edge, edge) for i in range(start, stop)])
            power[:, :left] = self._power(heads, center=True).transpose(1, 2)[:, :left]
            power[:, right:] = self._power(tails, center=True).transpose(1, 2)[:, tail - (frames - right):tail]
            yield self._log_mel(power.transpose(1, 2)).unsqueeze(1)

    def _check(self, audio: torch.Tensor, ndim: int, layout: str, samples: int | None = None) -> None:
        """Raise :class:`AudioFormatError` unless ``audio`` is finite float audio shaped ``layout``
        whose windows (of ``samples``, default the whole input) hold at least one frame."""
        if audio.ndim != ndim:
            raise AudioFormatError(f"LogMel: expected audio shaped {layout}, got {audio.ndim}-D shape "
                                   f"{tuple(audio.shape)}")
        if not audio.is_floating_point():
            raise AudioFormatError(f"LogMel: expected floating-point audio, got {audio.dtype}")
        if audio.shape[-2] < 1:
            raise AudioFormatError(f"LogMel: audio has no channels, shape {tuple(audio.shape)}")
        samples = audio.shape[-1] if samples is None else samples
        if samples < self.n_fft:
            what = "samples" if samples == audio.shape[-1] else "samples (a window)"
            raise AudioFormatError(f"LogMel: {samples} {what} is shorter than one frame (n_fft = {self.n_fft} samples)")
        if not torch.isfinite(audio).all():
            raise AudioFormatError("LogMel: audio contains NaN or Inf")

    def _power(self, mono: torch.Tensor, center: bool) -> torch.Tensor:
        """``(B, T)`` or ``(T,)`` mono -> the power spectra ``(B, bins, frames)`` or ``(bins, frames)``;
        ``center``: frames centred on ``k * hop`` (reflect padding), else starting there."""
        spec = torch.stft(mono, self.n_fft, hop_length=self.hop, window=self.window, center=center,
                          pad_mode="reflect", return_complex=True)
        return spec.real.square() + spec.imag.square()

    def _log_mel(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectra ``(B, bins, frames)`` -> the log mel power ``(B, n_mels, frames)``."""
        return torch.log(torch.matmul(self.filterbank, power) + self.eps)


def _span(mono: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``mono[start:start + length]``, zero where the range leaves the signal (``(T,)`` -> ``(length,)``)."""
    lo, hi = max(start, 0), min(start + length, mono.shape[0])
    if lo == start and hi == start + length:
        return mono[lo:hi]
    out = mono.new_zeros(length)
    if hi > lo:
        out[lo - start:hi - start] = mono[lo:hi]
    return out


# -- building blocks -----------------------------------------------------------------------------
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


class ConvBN(nn.Sequential):
    """Conv2d (no bias, 'same'-style padding) + BatchNorm2d + optional activation.

    Args:
        in_channels, out_channels: feature maps in and out.
        kernel_size: square kernel size (odd).
        stride: stride over both axes.
        groups: convolution groups (``in_channels`` for a depthwise conv).
        activation: ``"relu"``, ``"relu6"`` or ``None`` (linear).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: str | None = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C)``, the mean over frequency and time."""
    return x.mean(dim=(2, 3))


def centre_pool(x: torch.Tensor, bands: bool = False) -> torch.Tensor:
    """What the features say about the centre of the context: the middle time cell (the mean of
    the two middle ones when ``W`` is even), averaged over frequency, or band by band.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C)``, or ``(B, C * H)`` with ``bands``.
    """
    width = x.shape[-1]
    middle = x[..., (width - 1) // 2:width // 2 + 1].mean(dim=-1)
    return middle.flatten(1) if bands else middle.mean(dim=-1)


def knot_matrix(points: int, knots: int) -> torch.Tensor:
    """Linear interpolation of ``knots`` evenly spaced knots to ``points`` points: ``(points, knots)``.

    Point ``i`` sits at ``i * (knots - 1) / (points - 1)`` on the knot axis; each row holds the
    weights of the two knots around it (summing to 1), so knot values ``k (knots,)`` give the
    curve ``M @ k``.
    """
    if not 2 <= knots <= points:
        raise ValueError(f"knot_matrix: need 2 <= knots <= points, got {knots} knots for {points} points")
    position = torch.linspace(0, knots - 1, points, dtype=torch.float64)
    left = position.floor().clamp(max=knots - 2).long()
    frac = position - left
    matrix = torch.zeros(points, knots, dtype=torch.float64)
    matrix[torch.arange(points), left] = 1 - frac
    matrix[torch.arange(points), left + 1] = frac
    return matrix.float()


POOLINGS = ("global", "centre", "centre-bands")
"""How the encoder turns the backbone's feature map into the head's input (see the module docstring)."""


# -- small CNN ------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """A small, fast CNN for CPU runs: per entry of ``channels`` a 3x3 conv-BN-ReLU block
    followed by 2x2 max pooling, then global average pooling.

    With the default ``(16, 32, 64, 64)``: 60,400 parameters.

    Args:
        channels: feature maps of each block, in order.

    Shape:
        input ``(B, 1, n_mels, frames)``; output ``(B, channels[-1])``.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        if len(channels) < 1:
            raise ValueError("SmallCNN: channels must name at least one block")
        self.channels = tuple(int(c) for c in channels)
        blocks = []
        for c_in, c_out in zip((1,) + self.channels[:-1], self.channels):
            blocks += [ConvBN(c_in, c_out, 3), nn.MaxPool2d(2, ceil_mode=True)]
        self.blocks = nn.Sequential(*blocks)
        self.out_features = self.channels[-1]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, frames)`` -> ``(B, out_features, H, W)``."""
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_average_pool(self.feature_map(x))


# -- MobileNetV2 ----------------------------------------------------------------------------------
MOBILENETV2_BLOCKS = (  # expansion t, output channels c, repeats n, first stride s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below 90 % of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection,
    plus the input when shapes match (stride 1, same channels).

    Args:
        in_channels, out_channels: feature maps in and out.
        stride: stride of the depthwise conv.
        expansion: hidden channels = ``expansion * in_channels`` (no expansion conv when 1).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBN(in_channels, hidden, 1, activation="relu6"))
        layers += [ConvBN(hidden, hidden, 3, stride, groups=hidden, activation="relu6"),
                   ConvBN(hidden, out_channels, 1, activation=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 (Sandler et al., 2018) for a 1-channel log-mel image, trained from scratch.

    Stem 3x3 conv stride 2 (32 channels), the inverted-residual stages of
    :data:`MOBILENETV2_BLOCKS` (expansion t, channels c, repeats n, stride s), a 1x1 head conv
    to 1280 channels, global average pooling. Every channel count is scaled by ``width_mult``
    and rounded to a multiple of 8 (the head only grows: ``1280 * max(1, width_mult)``).
    Total stride 32. Weights: He (fan-out) for convs, BatchNorm at 1 / 0.

    With ``width_mult=1.0``: 2,223,296 parameters, 1280 features.

    Args:
        width_mult: the width multiplier alpha (1.0 in the paper).

    Shape:
        input ``(B, 1, n_mels, frames)``; output ``(B, out_features)``.
    """

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"MobileNetV2Backbone: width_mult must be positive, got {width_mult!r}")
        self.width_mult = float(width_mult)
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBN(1, channels, 3, 2, activation="relu6")]
        for t, c, n, s in MOBILENETV2_BLOCKS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        self.out_features = make_divisible(1280 * max(1.0, width_mult))
        layers.append(ConvBN(channels, self.out_features, 1, activation="relu6"))
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, frames)`` -> ``(B, out_features, H, W)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_average_pool(self.feature_map(x))


# -- Inception -------------------------------------------------------------------------------------
class InceptionModule(nn.Module):
    """Inception module at constant resolution, four branches concatenated (Inception-v3's
    first module type, widths in units of ``unit`` feature maps):

    - 1x1 conv, 4 units;
    - 1x1 conv 3 units -> 5x5 conv 4 units;
    - 1x1 conv 4 units -> 3x3 conv 6 units -> 3x3 conv 6 units;
    - 3x3 average pool (stride 1) -> 1x1 conv 2 units.

    Every conv is conv-BN-ReLU.

    Args:
        in_channels: feature maps in.
        unit: feature maps per width unit (16 gives 64 / 48-64 / 64-96-96 / 32).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, 16 * unit, H, W)``.
    """

    def __init__(self, in_channels: int, unit: int = 16) -> None:
        super().__init__()
        self.branch1 = ConvBN(in_channels, 4 * unit, 1)
        self.branch5 = nn.Sequential(ConvBN(in_channels, 3 * unit, 1), ConvBN(3 * unit, 4 * unit, 5))
        self.branch3 = nn.Sequential(ConvBN(in_channels, 4 * unit, 1), ConvBN(4 * unit, 6 * unit, 3),
                                     ConvBN(6 * unit, 6 * unit, 3))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                                         ConvBN(in_channels, 2 * unit, 1))
        self.out_channels = 16 * unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch5(x), self.branch3(x), self.branch_pool(x)], dim=1)


class ReductionModule(nn.Module):
    """Inception reduction module: halves both axes, three branches concatenated:

    - 3x3 conv stride 2, 3 units;
    - 1x1 conv 4 units -> 3x3 conv 6 units -> 3x3 conv stride 2, 6 units;
    - 3x3 max pool stride 2 (keeps ``in_channels``).

    Args:
        in_channels: feature maps in.
        unit: feature maps per width unit.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, in_channels + 9 * unit, ceil(H / 2), ceil(W / 2))``.
    """

    def __init__(self, in_channels: int, unit: int = 16) -> None:
        super().__init__()
        self.branch3 = ConvBN(in_channels, 3 * unit, 3, 2)
        self.branch3x2 = nn.Sequential(ConvBN(in_channels, 4 * unit, 1), ConvBN(4 * unit, 6 * unit, 3),
                                       ConvBN(6 * unit, 6 * unit, 3, 2))
        self.branch_pool = nn.MaxPool2d(3, 2, 1)
        self.out_channels = in_channels + 9 * unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3(x), self.branch3x2(x), self.branch_pool(x)], dim=1)


class InceptionBackbone(nn.Module):
    """An Inception-style CNN, laid out as the original's Inception encoder (Lee et al.,
    ICASSP 2020): a 5x5 conv-BN-ReLU stem (``4 * unit`` maps) and 2x2 max pool, then
    ``num_stages`` stages of one :class:`ReductionModule` (halves both axes) and one
    :class:`InceptionModule` (``16 * unit`` maps out), then a 1x1 conv-ReLU embedding to
    ``features`` maps and global average pooling. ``unit = round(16 * width_mult)``.

    On the paper's 128 x 161 log-mel image the six stages work at 64x80, 32x40, ..., 1x2 cells.
    With the defaults: 3,322,304 parameters, 256 features.

    Args:
        num_stages: reduction + Inception stages.
        width_mult: scales every branch width (1.0: Inception-v3 widths, 256 maps per stage).
        features: feature maps of the embedding conv, the output size.

    Shape:
        input ``(B, 1, n_mels, frames)``; output ``(B, features)``.
    """

    def __init__(self, num_stages: int = 6, width_mult: float = 1.0, features: int = 256) -> None:
        super().__init__()
        unit = round(16 * width_mult)
        if num_stages < 1 or features < 1:
            raise ValueError(f"InceptionBackbone: need num_stages >= 1 and features >= 1; "
                             f"got num_stages={num_stages}, features={features}")
        if unit < 1:
            raise ValueError(f"InceptionBackbone: width_mult={width_mult!r} leaves no feature maps "
                             f"(16 * width_mult rounds to {unit})")
        self.num_stages = int(num_stages)
        self.width_mult = float(width_mult)
        layers: list[nn.Module] = [ConvBN(1, 4 * unit, 5), nn.MaxPool2d(2, ceil_mode=True)]
        channels = 4 * unit
        for _ in range(self.num_stages):
            reduction = ReductionModule(channels, unit)
            inception = InceptionModule(reduction.out_channels, unit)
            layers += [reduction, inception]
            channels = inception.out_channels
        layers += [nn.Conv2d(channels, features, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.out_features = int(features)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, frames)`` -> ``(B, out_features, H, W)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_average_pool(self.feature_map(x))


# -- the encoder ----------------------------------------------------------------------------------
BACKBONES: dict[str, type[nn.Module]] = {
    "small": SmallCNN,
    "mobilenetv2": MobileNetV2Backbone,
    "inception": InceptionBackbone,
}
"""Backbone name -> class; each maps ``(B, 1, n_mels, frames)`` to ``(B, out_features)``."""


class Encoder(nn.Module):
    """Audio context to ``num_params`` effect controls in (0, 1): log-mel, BatchNorm2d(1) at
    the CNN input, a backbone, pooling, a linear layer and a sigmoid.

    Args:
        num_params: number of outputs (the chain's learned parameters).
        backbone: a key of :data:`BACKBONES`: ``"small"``, ``"mobilenetv2"`` or ``"inception"``.
        pooling: ``"global"`` (the paper's: the head gets ``out_features`` values), ``"centre"``
            (the global average and :func:`centre_pool`: ``2 * out_features`` values) or
            ``"centre-bands"`` (``out_features * (1 + H)`` values for a feature map ``H``
            frequency cells high); see the module docstring.
        sample_rate, n_fft, hop, n_mels: the :class:`LogMel` front end (0 Hz to sr/2).
        curves: ``[[start, stop, knots], ...]``: outputs ``start`` to ``stop - 1`` follow a
            piecewise-linear curve through ``knots`` knots that the head predicts (before the
            sigmoid); disjoint ranges; see the module docstring. None: every output on its own.
        **backbone_kw: hyper-parameters of the backbone class (e.g. ``width_mult``,
            ``channels``); plain data, kept by :meth:`to_config`.

    Shape:
        input ``(B, C, T)`` float audio (channels mixed to mono), ``T >= n_fft`` samples;
        output ``(B, num_params)`` in (0, 1).
    """

    def __init__(self, num_params: int, backbone: str = "small", sample_rate: float = 22050,
                 n_fft: int = 1024, hop: int = 256, n_mels: int = 128, pooling: str = "global",
                 curves: Sequence[Sequence[int]] | None = None, **backbone_kw: Any) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"Encoder: unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        if pooling not in POOLINGS:
            raise ValueError(f"Encoder: unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if int(num_params) < 1:
            raise ValueError(f"Encoder: num_params must be at least 1, got {num_params!r}")
        self.num_params = int(num_params)
        self.backbone_name = backbone
        self.backbone_kw = dict(backbone_kw)
        self.logmel = LogMel(sample_rate, n_fft, hop, n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        self.pooling = pooling
        self.backbone = BACKBONES[backbone](**backbone_kw)
        self.curves = [[int(v) for v in curve] for curve in curves or []]
        expand = self._expansion()
        self.register_buffer("expand", expand, persistent=False)
        self.head = nn.Linear(self._pooled_size(n_mels), expand.shape[1])

    def _pooled_size(self, n_mels: int) -> int:
        """Features the head gets: ``out_features`` times 1, 2 or ``1 + H`` (see ``pooling``)."""
        if self.pooling != "centre-bands":
            return self.backbone.out_features * (2 if self.pooling == "centre" else 1)
        self.backbone.eval()  # a shape probe: leaves BatchNorm statistics as they are
        with torch.no_grad():
            height = self.backbone.feature_map(torch.zeros(1, 1, n_mels, 64)).shape[2]
        self.backbone.train()
        return self.backbone.out_features * (1 + height)

    def _expansion(self) -> torch.Tensor:
        """``(num_params, head outputs)``: the identity, with :func:`knot_matrix` blocks for the curves."""
        columns, taken = [], set()
        for curve in self.curves:
            if len(curve) != 3 or not 0 <= curve[0] < curve[1] <= self.num_params:
                raise ValueError(f"Encoder: a curve is [start, stop, knots] with 0 <= start < stop <= "
                                 f"num_params ({self.num_params}); got {curve}")
            if taken & set(range(curve[0], curve[1])):
                raise ValueError(f"Encoder: curve {curve} overlaps another curve")
            taken |= set(range(curve[0], curve[1]))
        blocks = {curve[0]: curve for curve in self.curves}
        i = 0
        while i < self.num_params:
            if i in blocks:
                start, stop, knots = blocks[i]
                block = torch.zeros(self.num_params, knots)
                block[start:stop] = knot_matrix(stop - start, knots)
                columns.append(block)
                i = stop
            else:
                column = torch.zeros(self.num_params, 1)
                column[i] = 1.0
                columns.append(column)
                i += 1
        return torch.cat(columns, dim=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.from_logmel(self.logmel(audio))

    def from_logmel(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder after its front end: ``(B, 1, n_mels, frames)`` log-mel -> ``(B, num_params)``.

        Whole-file inference computes the log-mel of many overlapping contexts at once
        (:meth:`LogMel.sliding`) and gives them here.
        """
        fmap = self.backbone.feature_map(self.input_norm(mel))
        features = global_average_pool(fmap)
        if self.pooling != "global":
            features = torch.cat([features, centre_pool(fmap, bands=self.pooling == "centre-bands")], dim=1)
        return torch.sigmoid(self.head(features) @ self.expand.T)

    def for_inference(self) -> "Encoder":
        """A copy for inference only: in eval mode, each :class:`ConvBN`'s BatchNorm folded into its
        convolution, and its weights in channels-last memory, which oneDNN's CPU convolutions run
        fastest on. It gives :meth:`from_logmel`'s outputs within float rounding (about 1e-7 on
        the quick profiles' encoders) in a third to a half of the time on CPU
        (``benchmarks/inference.py``). This encoder is left as it is; train this one, not the copy.
        """
        copy = deepcopy(self).eval()
        for block in copy.modules():
            if isinstance(block, ConvBN):
                block[0] = fuse_conv_bn_eval(block[0], block[1])
                block[1] = nn.Identity()
        return copy.to(memory_format=torch.channels_last)

    def to_config(self) -> dict[str, Any]:
        """The constructor's arguments as plain data (tuples become lists), for checkpoints."""
        config: dict[str, Any] = {
            "num_params": self.num_params,
            "backbone": self.backbone_name,
            "sample_rate": self.logmel.sample_rate,
            "n_fft": self.logmel.n_fft,
            "hop": self.logmel.hop,
            "n_mels": self.logmel.n_mels,
            "pooling": self.pooling,
            "curves": [list(curve) for curve in self.curves],
        }
        for key, value in self.backbone_kw.items():
            config[key] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Encoder":
        """A fresh (untrained) encoder from :meth:`to_config`'s dict."""
        return cls(**config)

    def extra_repr(self) -> str:
        return f"num_params={self.num_params}, backbone={self.backbone_name!r}, pooling={self.pooling!r}"
