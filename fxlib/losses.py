"""Training losses: differentiable distances between an output and a target waveform.

Both losses take ``(output, target)`` tensors of shape ``(B, C, T)`` (batch, channels,
samples; amplitude in full-scale units, 1.0 = 0 dBFS) on any device and return a scalar
tensor. They check their input and raise :class:`~fxlib.errors.AudioFormatError` naming what
is wrong (a shape, a NaN, a length too short for the transform).

``get_loss(name, **hyper_parameters)`` builds one by the name a task config uses:
``"spectral"`` (the paper's training loss) or ``"mrstft"`` (multi-resolution STFT).
"""
from __future__ import annotations

import inspect

import auraloss
import numpy as np
import pyloudnorm
import scipy.signal
import torch

from .errors import AudioFormatError


def _check_pair(output: torch.Tensor, target: torch.Tensor, min_samples: int, loss: str) -> None:
    """Raise AudioFormatError unless output and target are finite float (B, C, T) tensors alike."""
    for name, x in (("output", output), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise AudioFormatError(f"{loss}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 3:
            raise AudioFormatError(f"{loss}: {name} must have shape (B, C, T), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise AudioFormatError(f"{loss}: {name} must be a floating-point tensor, got {x.dtype}")
    if output.shape != target.shape:
        raise AudioFormatError(
            f"{loss}: output shape {tuple(output.shape)} differs from target shape {tuple(target.shape)}")
    if output.shape[-1] < min_samples:
        raise AudioFormatError(
            f"{loss}: audio has {output.shape[-1]} samples; this loss needs at least {min_samples}")
    for name, x in (("output", output), ("target", target)):
        if not bool(torch.isfinite(x).all()):
            raise AudioFormatError(f"{loss}: {name} contains NaN or Inf")


class SpectralLoss(torch.nn.Module):
    """The paper's training loss: L2 on STFT magnitude and log magnitude, plus L1 in time.

    With ``Y`` and ``X`` the STFT magnitudes of target ``y`` and output ``x``::

        loss = w_mag     * mean((|X| - |Y|) ** 2)
             + w_log_mag * mean((log(|X| + eps) - log(|Y| + eps)) ** 2)
             + w_time    * mean(|x - y|)

    each mean taken over every element (batch, channels, frames and bins, or samples).
    Three optional level terms (off by default; not in the paper) compare per-frame levels in
    dB, each as the mean squared difference between output and target::

             + w_loudness * mean((L_X - L_Y) ** 2),   L = 10 log10(sum_f K(f) |X_f|^2 + eps^2)
             + w_bands    * mean((B_X - B_Y) ** 2),   B_b = 10 log10(sum_{f in b} |X_f|^2 + eps^2)
             + w_peak     * mean((P_x - P_y) ** 2),   P = 20 log10(max_t |x_t| + eps)

    ``L`` is the frame's K-weighted level, with ``K`` the power response of the BS.1770
    K-weighting filters (pyloudnorm's, at ``sample_rate``): a short-term loudness. ``B`` holds
    the frame's octave-band levels (:func:`octave_bands`: centres 62.5 Hz to 8 kHz, those
    below half the sample rate), so every band counts alike, quiet treble as much as loud bass: a tonal
    balance. ``P`` is the peak sample of each ``hop_length`` block of the waveform. The
    magnitude terms weigh none of these the way a mastering engineer does (the squared
    magnitude error is dominated by the strongest bins, usually the bass; the log-magnitude
    error of a 1 dB gain is 0.013), so a task whose targets are set to a loudness, a balance
    and a ceiling (mastering) can add them.
    The STFT follows the original TensorFlow code (``tf.signal.stft`` with ``pad_end``):
    a periodic Hann window of ``win_length`` samples centred in frames of ``n_fft`` samples,
    frames start at 0, ``hop_length`` apart; the signal is zero-padded at its end so that
    ``ceil(T / hop_length)`` frames cover it; no centring. The defaults (FFT 1024, hop 1024,
    so no overlap; weights 1, 1, 10; ``eps`` 1e-5) are the released configurations' values.

    Args:
        n_fft: FFT size in samples.
        win_length: analysis window length in samples, at most ``n_fft``.
        hop_length: distance between frame starts in samples.
        w_mag: weight of the magnitude term.
        w_log_mag: weight of the log-magnitude term.
        w_time: weight of the time-domain L1 term.
        eps: added to magnitudes before the natural logarithm.
        w_loudness: weight of the per-frame K-weighted level term (per dB squared); 0 leaves it out.
        w_bands: weight of the per-frame octave-band level term (per dB squared); 0 leaves it out.
        w_peak: weight of the per-block peak level term (per dB squared); 0 leaves it out.
        sample_rate: in Hz, for the K-weighting and the octave bands.

    Shape:
        - output: ``(B, C, T)``, any ``T >= 1``.
        - target: ``(B, C, T)``, same shape as ``output``.
        - returns: scalar tensor.
    """

    def __init__(self, n_fft: int = 1024, win_length: int = 1024, hop_length: int = 1024,
                 w_mag: float = 1.0, w_log_mag: float = 1.0, w_time: float = 10.0,
                 eps: float = 1e-5, w_loudness: float = 0.0, w_bands: float = 0.0, w_peak: float = 0.0,
                 sample_rate: float = 22050.0) -> None:
        super().__init__()
        if not 0 < win_length <= n_fft:
            raise ValueError(f"SpectralLoss: need 0 < win_length <= n_fft, got {win_length} and {n_fft}")
        if hop_length < 1:
            raise ValueError(f"SpectralLoss: hop_length must be >= 1, got {hop_length}")
        if eps <= 0:
            raise ValueError(f"SpectralLoss: eps must be > 0, got {eps}")
        for name, weight in (("w_loudness", w_loudness), ("w_bands", w_bands), ("w_peak", w_peak)):
            if weight < 0:
                raise ValueError(f"SpectralLoss: need {name} >= 0, got {weight}")
        if not sample_rate > 0:
            raise ValueError(f"SpectralLoss: need sample_rate > 0, got {sample_rate}")
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.w_mag = w_mag
        self.w_log_mag = w_log_mag
        self.w_time = w_time
        self.eps = eps
        self.w_loudness = w_loudness
        self.w_bands = w_bands
        self.w_peak = w_peak
        self.sample_rate = sample_rate
        self.register_buffer("k_weight", k_weighting(sample_rate, n_fft), persistent=False)
        self.register_buffer("bands", octave_bands(sample_rate, n_fft), persistent=False)

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """STFT magnitude as the loss sees it.

        Shape:
            - x: ``(B, C, T)``.
            - returns: ``(B, C, n_fft // 2 + 1, ceil(T / hop_length))``.
        """
        batch, channels, samples = x.shape
        frames = -(-samples // self.hop_length)
        padded = (frames - 1) * self.hop_length + self.n_fft
        x = torch.nn.functional.pad(x.reshape(batch * channels, samples), (0, padded - samples))
        window = torch.hann_window(self.win_length, periodic=True, dtype=x.dtype, device=x.device)
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=window, center=False, return_complex=True)
        return spec.abs().reshape(batch, channels, spec.shape[-2], spec.shape[-1])

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(output, target, 1, "SpectralLoss")
        out_mag, tgt_mag = self.magnitude(output), self.magnitude(target)
        mag = torch.mean((out_mag - tgt_mag) ** 2)
        log_mag = torch.mean((torch.log(out_mag + self.eps) - torch.log(tgt_mag + self.eps)) ** 2)
        time = torch.mean(torch.abs(output - target))
        loss = self.w_mag * mag + self.w_log_mag * log_mag + self.w_time * time
        if self.w_loudness:
            k = self.k_weight.to(out_mag)[None]  # (1, bins): one weighted sum per frame
            loss = loss + self.w_loudness * self._level_error(k, out_mag, tgt_mag)
        if self.w_bands:
            loss = loss + self.w_bands * self._level_error(self.bands.to(out_mag), out_mag, tgt_mag)
        if self.w_peak:
            peak_out, peak_tgt = (20 * torch.log10(self._block_peaks(x) + self.eps) for x in (output, target))
            loss = loss + self.w_peak * torch.mean((peak_out - peak_tgt) ** 2)
        return loss

    def _level_error(self, weights: torch.Tensor, out_mag: torch.Tensor, tgt_mag: torch.Tensor) -> torch.Tensor:
        """Mean squared dB difference of the weighted power sums ``weights @ |X|^2`` per frame.

        Shape:
            - weights: ``(W, bins)``; out_mag, tgt_mag: ``(B, C, bins, frames)``.
            - returns: scalar tensor.
        """
        out_db, tgt_db = (10 * torch.log10(torch.einsum("wf,bcft->bcwt", weights, m ** 2) + self.eps ** 2)
                          for m in (out_mag, tgt_mag))
        return torch.mean((out_db - tgt_db) ** 2)

    def _block_peaks(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, C, ceil(T / hop_length))``: the largest ``|x|`` of each block (zero-padded)."""
        blocks = -(-x.shape[-1] // self.hop_length)
        padded = torch.nn.functional.pad(x.abs(), (0, blocks * self.hop_length - x.shape[-1]))
        return padded.reshape(*x.shape[:-1], blocks, self.hop_length).amax(dim=-1)


def k_weighting(sample_rate: float, n_fft: int) -> torch.Tensor:
    """Power response ``|H(f)|^2`` of the BS.1770 K-weighting filters at the ``n_fft // 2 + 1`` STFT bins.

    The two biquads (high shelf and high pass) are pyloudnorm's, designed for ``sample_rate``.

    Shape:
        - returns: float32 ``(n_fft // 2 + 1,)``.
    """
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    power = np.ones_like(freqs)
    for stage in pyloudnorm.Meter(sample_rate)._filters.values():
        _, h = scipy.signal.freqz(stage.b, stage.a, worN=freqs, fs=sample_rate)
        power *= np.abs(h) ** 2 * stage.passband_gain ** 2
    return torch.tensor(power, dtype=torch.float32)


def octave_bands(sample_rate: float, n_fft: int) -> torch.Tensor:
    """Which STFT bins each octave band sums: centres ``62.5 * 2^k`` Hz (62.5 Hz to 8 kHz), edges at
    ``centre / sqrt(2)`` and ``centre * sqrt(2)`` (the top band cut at ``sample_rate / 2``); bands
    whose centre is not below ``sample_rate / 2``, or that hold no bin, are left out.

    Shape:
        - returns: float32 ``(bands, n_fft // 2 + 1)`` of 0 and 1.
    """
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    rows = []
    for centre in 62.5 * 2.0 ** np.arange(8):
        low, high = centre / np.sqrt(2), centre * np.sqrt(2)
        row = (freqs >= low) & (freqs < high)
        if centre < sample_rate / 2 and row.any():
            rows.append(row)
    if not rows:
        raise ValueError(f"octave_bands: no octave band fits {sample_rate} Hz with an FFT of {n_fft}")
    return torch.tensor(np.array(rows), dtype=torch.float32)


class MultiResolutionSTFTLoss(torch.nn.Module):
    """Multi-resolution STFT loss (Yamamoto et al. 2020), computed by auraloss.

    For each resolution, with magnitudes ``|X|`` (output) and ``|Y|`` (target) floored at
    ``1e-4`` (auraloss's ``sqrt(max(power, 1e-8))``)::

        term = w_sc      * ||Y - X||_F / ||Y||_F                 (spectral convergence)
             + w_log_mag * mean(|log|X| - log|Y||)                 (L1 log magnitude)
             + w_lin_mag * mean(||X| - |Y||)                       (L1 linear magnitude)

    and the loss is the mean of the terms over resolutions. The Frobenius norms run over the
    whole batch. Each STFT is auraloss's: Hann window, centred frames with reflect padding.

    Args:
        fft_sizes: FFT size of each resolution, in samples.
        hop_sizes: hop of each resolution, in samples.
        win_lengths: window length of each resolution, in samples (at most its FFT size).
        w_sc: weight of the spectral-convergence term.
        w_log_mag: weight of the log-magnitude term.
        w_lin_mag: weight of the linear-magnitude term.

    Shape:
        - output: ``(B, C, T)`` with ``T > max(fft_sizes) // 2`` (reflect padding needs it).
        - target: ``(B, C, T)``, same shape as ``output``.
        - returns: scalar tensor.
    """

    def __init__(self, fft_sizes: tuple[int, ...] = (2048, 1024, 512),
                 hop_sizes: tuple[int, ...] = (512, 256, 128),
                 win_lengths: tuple[int, ...] = (2048, 1024, 512),
                 w_sc: float = 1.0, w_log_mag: float = 1.0, w_lin_mag: float = 0.0) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
            raise ValueError("MultiResolutionSTFTLoss: fft_sizes, hop_sizes and win_lengths must be "
                             f"non-empty and of one length, got {fft_sizes}, {hop_sizes}, {win_lengths}")
        if any(w > n for w, n in zip(win_lengths, fft_sizes)):
            raise ValueError(f"MultiResolutionSTFTLoss: each win_length must be <= its FFT size, "
                             f"got {win_lengths} for {fft_sizes}")
        self.fft_sizes = tuple(fft_sizes)
        self.hop_sizes = tuple(hop_sizes)
        self.win_lengths = tuple(win_lengths)
        self.loss = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=list(fft_sizes), hop_sizes=list(hop_sizes), win_lengths=list(win_lengths),
            w_sc=w_sc, w_log_mag=w_log_mag, w_lin_mag=w_lin_mag)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(output, target, max(self.fft_sizes) // 2 + 1, "MultiResolutionSTFTLoss")
        return self.loss(output, target)


LOSSES: dict[str, type[torch.nn.Module]] = {
    "spectral": SpectralLoss,
    "mrstft": MultiResolutionSTFTLoss,
}
"""Loss classes by the name a task config gives them."""


def get_loss(name: str, sample_rate: float | None = None, **hyper_parameters) -> torch.nn.Module:
    """Build a loss by name.

    Args:
        name: a key of :data:`LOSSES` (``"spectral"`` or ``"mrstft"``).
        sample_rate: in Hz, passed on to a loss that takes one (``"spectral"``'s loudness term).
        **hyper_parameters: passed to the loss class's constructor (a profile's ``loss_options``).

    Returns:
        the loss module, called as ``loss(output, target)`` on ``(B, C, T)`` tensors.

    Raises:
        ValueError: an unknown name, or a hyper-parameter the loss does not take.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of {sorted(LOSSES)}")
    cls = LOSSES[name]
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(hyper_parameters) - set(accepted))
    if unknown:
        raise ValueError(f"loss {name!r} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options: {', '.join(accepted)}")
    if sample_rate is not None and "sample_rate" in accepted:
        hyper_parameters.setdefault("sample_rate", sample_rate)
    return cls(**hyper_parameters)
