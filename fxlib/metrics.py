"""Objective evaluation metrics: how far an effect's output is from its target.

Every metric takes numpy audio, 1-D ``(T,)`` or channel-first ``(C, T)`` (amplitude in
full-scale units, 1.0 = 0 dBFS), and the sample rate in Hz, and returns a Python float.
Paired metrics are called ``metric(output, target, sample_rate)``; output and target must
have one shape. Two level measurements take one signal: :func:`loudness_lufs` and
:func:`true_peak_dbtp`.

Paired metrics, all 0 for identical signals:

==============================  ================================================================
``mfcc_cosine``                 timbre: cosine distance of MFCCs (Applied Sciences 2020, 4.3)
``ms_mse``                      dynamics: MSE of log modulation spectra (same paper)
``esr``                         error-to-signal ratio, sum (y - t)^2 / sum t^2
``mrstft_distance``             multi-resolution STFT distance (the ``"mrstft"`` loss)
``loudness_difference_lufs``    integrated loudness of output minus target (BS.1770)
``spectral_balance_distance``   mean |dB| difference of 1/3-octave long-term spectra
==============================  ================================================================

:data:`METRICS` maps these names to the functions; :func:`compute_all` runs them.
Speech and event measures (higher is better), for labelled breath and pop events
(``Pair.info["events"]`` of the breath data) and the speech around them:

==============================  ================================================================
``event_attenuation_db``        dB by which the output's energy inside the events (per kind and
                                overall) is below the input's; takes the input, not the target
``si_sdr``                      scale-invariant SDR in dB, optionally over a sample mask
``stoi``                        short-time objective intelligibility (pystoi), optionally masked
``pesq``                        wide-band PESQ (ITU-T P.862.2, the ``pesq`` package), optionally masked
==============================  ================================================================

:func:`event_mask` turns event labels into a sample mask. (The ``pesq`` package ships as a
source distribution: pip builds it with the machine's C compiler.)
Bad input (mismatched shapes, NaN, silence where a metric must divide by the level, audio
too short, a sample rate a metric cannot use) raises :class:`~fxlib.errors.AudioFormatError`
with the metric's name and what is wrong.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

import librosa
import numpy as np
import pyloudnorm
import scipy.fft
import scipy.signal
import torch

from .errors import AudioFormatError, require
from .losses import MultiResolutionSTFTLoss

SPEECH_EXTRA = "pip install 'deepafx-fxlib[speech]'"  # pystoi and pesq, for the speech measures

# mfcc_cosine (Applied Sciences 2020, section 4.3, and the authors' code)
MFCC_FFT = 4096
MFCC_HOP = 2048
MFCC_MELS = 40
MFCC_COEFFICIENTS = 13
MFCC_RANGE_DB = 80.0
MFCC_POWER_FLOOR = 1e-10

# ms_mse
MS_AUDIO_BANDS = (26.0, 6950.0, 12)
MS_MODULATION_BANDS = (0.5, 100.0, 12)
MS_ENVELOPE_RATE = 400
MS_MIN_ENVELOPE_SAMPLES = 64
MS_LOG_FLOOR = 1e-10
GAMMATONE_ORDER = 4

# loudness (ITU-R BS.1770-4)
LOUDNESS_BLOCK_SECONDS = 0.4
LOUDNESS_MAX_CHANNELS = 5

TRUE_PEAK_OVERSAMPLING = 4

# spectral_balance_distance
BALANCE_LOWEST_CENTRE_HZ = 25.0
BALANCE_MAX_BIN_HZ = 5.0
BALANCE_FLOOR_DB = -80.0

# stoi, pesq
STOI_MIN_SECONDS = 0.4
PESQ_RATE = 16000  # wide-band PESQ works at 16 kHz
PESQ_MIN_SECONDS = 0.25


# ---------------------------------------------------------------------------- input checks

def _check_rate(sample_rate: float, metric: str) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise AudioFormatError(f"{metric}: sample_rate must be a number of Hz, got {sample_rate!r}")
    if not (sample_rate > 0 and float(sample_rate).is_integer()):
        raise AudioFormatError(f"{metric}: sample_rate must be a positive whole number of Hz, got {sample_rate}")
    return int(sample_rate)


def _check_signal(x: np.ndarray, name: str, metric: str) -> np.ndarray:
    """Return ``x`` as float64 ``(C, T)`` or raise AudioFormatError naming what is wrong."""
    if isinstance(x, torch.Tensor):
        raise AudioFormatError(f"{metric}: {name} must be a numpy array, got a torch.Tensor "
                               "(use .detach().cpu().numpy())")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioFormatError(f"{metric}: {name} must be floating-point audio in full-scale units, "
                               f"got dtype {x.dtype} (scale integer PCM to [-1, 1] first)")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AudioFormatError(f"{metric}: {name} must have shape (T,) or (C, T), got {x.shape}")
    if x.shape[1] == 0:
        raise AudioFormatError(f"{metric}: {name} is empty (shape {x.shape})")
    if x.shape[0] > x.shape[1]:
        raise AudioFormatError(f"{metric}: {name} has shape {x.shape}, more channels than samples; "
                               "pass channel-first (C, T) audio (transpose (T, C) arrays)")
    if not np.isfinite(x).all():
        raise AudioFormatError(f"{metric}: {name} contains NaN or Inf")
    return x.astype(np.float64)


def _check_pair(output: np.ndarray, target: np.ndarray, sample_rate: float,
                metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    out = _check_signal(output, "output", metric)
    tgt = _check_signal(target, "target", metric)
    if out.shape != tgt.shape:
        raise AudioFormatError(f"{metric}: output shape {np.shape(output)} differs from "
                               f"target shape {np.shape(target)}")
    return out, tgt, _check_rate(sample_rate, metric)


def _require_samples(x: np.ndarray, min_samples: int, sample_rate: int, metric: str) -> None:
    if x.shape[-1] < min_samples:
        raise AudioFormatError(
            f"{metric}: audio has {x.shape[-1]} samples ({x.shape[-1] / sample_rate:.3f} s); "
            f"this metric needs at least {min_samples} ({min_samples / sample_rate:.3f} s) "
            f"at {sample_rate} Hz")


def _require_sound(x: np.ndarray, name: str, metric: str) -> None:
    silent = [c for c, channel in enumerate(x) if not np.any(channel)]
    if silent:
        raise AudioFormatError(f"{metric}: {name} channel(s) {silent} are silent (all zeros); "
                               "this metric divides by their level")


def _match_mean_amplitude(output: np.ndarray, target: np.ndarray, metric: str) -> np.ndarray:
    """Scale each output channel so its mean absolute amplitude equals the target's."""
    _require_sound(output, "output", metric)
    _require_sound(target, "target", metric)
    return output * (np.mean(np.abs(target), axis=-1, keepdims=True)
                     / np.mean(np.abs(output), axis=-1, keepdims=True))


# ---------------------------------------------------------------------------- mfcc_cosine

def _mfcc(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """MFCCs of one channel, ``(MFCC_COEFFICIENTS, frames)``, by librosa.

    ``librosa.feature.melspectrogram``: centred frames (``pad_mode="constant"``, zeros at both
    ends), periodic Hann window, power spectrum, 40 Slaney mel filters (``htk=False``,
    ``norm="slaney"``, built in float64) from 0 Hz to ``sample_rate / 2``;
    ``librosa.power_to_db`` relative to the maximum (``ref=np.max``) with an 80 dB range and a
    1e-10 power floor; ``librosa.feature.mfcc``: orthonormal DCT-II, no liftering.
    """
    mel = librosa.feature.melspectrogram(y=x, sr=sample_rate, n_fft=MFCC_FFT, hop_length=MFCC_HOP,
                                         window="hann", center=True, pad_mode="constant", power=2.0,
                                         n_mels=MFCC_MELS, fmin=0.0, fmax=sample_rate / 2, htk=False,
                                         norm="slaney", dtype=np.float64)
    mel_db = librosa.power_to_db(mel, ref=np.max, amin=MFCC_POWER_FLOOR, top_db=MFCC_RANGE_DB)
    return librosa.feature.mfcc(S=mel_db, n_mfcc=MFCC_COEFFICIENTS, dct_type=2, norm="ortho", lifter=0)


def _mean_cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of ``1 - cos`` between the rows of ``a`` and the rows of ``b``."""
    cosine = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(np.mean(np.clip(1.0 - cosine, 0.0, 2.0)))


def mfcc_cosine(output: np.ndarray, target: np.ndarray, sample_rate: float,
                pair_by: str = "frame") -> float:
    """Timbre distance: mean cosine distance between output and target MFCCs.

    As in Martínez Ramírez, Benetos and Reiss (Applied Sciences 2020, section 4.3) and the
    authors' code: the output is first scaled so that its mean absolute amplitude equals the
    target's ("energy-normalised"); each signal gives a power mel spectrogram (FFT and frame
    of 4096 samples, hop 2048, Hann window, centred frames padded with zeros, 40 Slaney mel
    bands from 0 Hz to ``sample_rate / 2``), converted to dB relative to its own maximum
    (80 dB range, 1e-10 power floor), and 13 MFCCs by an orthonormal DCT-II, all computed
    with librosa (``melspectrogram``, ``power_to_db(ref=np.max)``, ``mfcc``; see ``_mfcc``). The
    distance is ``1 - cos`` averaged over pairs of vectors. The paper's text takes "the mean
    cosine distance across the MFCC vectors": by default (``pair_by="frame"``) the per-frame
    13-coefficient vectors are paired. The authors' code instead pairs the 13 coefficient
    trajectories (a row of the ``(13, frames)`` MFCC matrix against the same row of the
    target's): ``pair_by="coefficient"``, reported as ``mfcc_cosine_trajectory``. Channels
    are measured separately and the distances averaged.

    Args:
        output: effect output, ``(T,)`` or ``(C, T)``.
        target: target audio, same shape.
        sample_rate: in Hz.
        pair_by: ``"frame"`` (the paper's text) or ``"coefficient"`` (the authors' code).

    Shape:
        - output, target: ``(T,)`` or ``(C, T)`` with ``T >= 4096`` samples.
        - returns: float in [0, 2], 0 for identical signals.
    """
    out, tgt, sr = _check_pair(output, target, sample_rate, "mfcc_cosine")
    if pair_by not in ("coefficient", "frame"):
        raise ValueError(f"mfcc_cosine: pair_by must be 'coefficient' or 'frame', got {pair_by!r}")
    _require_samples(out, MFCC_FFT, sr, "mfcc_cosine")
    out = _match_mean_amplitude(out, tgt, "mfcc_cosine")
    distances = []
    for out_channel, tgt_channel in zip(out, tgt):
        a, b = _mfcc(out_channel, sr), _mfcc(tgt_channel, sr)
        distances.append(_mean_cosine_distance(a, b) if pair_by == "coefficient"
                         else _mean_cosine_distance(a.T, b.T))
    return float(np.mean(distances))


# ---------------------------------------------------------------------------- ms_mse

def _gammatone_bank(x: np.ndarray, sample_rate: int, centres: np.ndarray,
                    bandwidths: np.ndarray) -> np.ndarray:
    """Filter ``x`` (..., T) through 4th-order gammatone filters; returns ``(bands, ..., T)``.

    Each filter is a cascade of four identical complex one-pole filters with pole
    ``exp((-2 pi b + 2 pi i f) / sample_rate)`` (Hohmann 2002); the real part of its output,
    scaled to unit gain at the centre ``f``, is the band signal. ``b`` is the gammatone's
    bandwidth parameter in Hz.
    """
    bands = []
    for centre, bandwidth in zip(centres, bandwidths):
        pole = np.exp((-2 * np.pi * bandwidth + 2j * np.pi * centre) / sample_rate)

        def response(z_inverse: complex) -> complex:  # the complex filter's H at z^-1
            return ((1 - abs(pole)) / (1 - pole * z_inverse)) ** GAMMATONE_ORDER

        # the real part's response at the centre w: (H(w) + conj(H(-w))) / 2
        z_inverse = np.exp(-2j * np.pi * centre / sample_rate)
        gain = abs(response(z_inverse) + np.conj(response(np.conj(z_inverse)))) / 2
        y = x.astype(np.complex128)
        for _ in range(GAMMATONE_ORDER):
            y = scipy.signal.lfilter([1 - abs(pole)], [1, -pole], y, axis=-1)
        bands.append(y.real / gain)
    return np.stack(bands)


def _modulation_spectrum(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Modulation power spectrum of one channel, ``(n_envelope // 2 + 1,)`` bins."""
    low, high, count = MS_AUDIO_BANDS
    centres = np.geomspace(low, high, count)
    erb = 24.7 + centres / 9.26449  # Glasberg and Moore (1990), Hz
    bands = _gammatone_bank(x, sample_rate, centres, 1.019 * erb)
    n_fft = scipy.fft.next_fast_len(x.shape[-1])
    envelopes = np.abs(scipy.signal.hilbert(bands, N=n_fft, axis=-1))[..., :x.shape[-1]]
    ratio = Fraction(MS_ENVELOPE_RATE, sample_rate)
    envelopes = scipy.signal.resample_poly(envelopes, ratio.numerator, ratio.denominator, axis=-1)

    low, high, count = MS_MODULATION_BANDS
    centres = np.geomspace(low, high, count)
    # constant Q = 1: a 4th-order gammatone's 3 dB bandwidth is 2 b sqrt(2**(1/4) - 1) = 0.887 b
    bandwidth_factor = 2 * math.sqrt(2 ** (1 / GAMMATONE_ORDER) - 1)
    modulations = _gammatone_bank(envelopes, MS_ENVELOPE_RATE, centres, centres / bandwidth_factor)
    n = modulations.shape[-1]
    spectra = np.fft.rfft(modulations * scipy.signal.get_window("hann", n), axis=-1) / n
    return np.sum(np.abs(spectra) ** 2, axis=(0, 1))


def ms_mse(output: np.ndarray, target: np.ndarray, sample_rate: float) -> float:
    """Dynamics distance: MSE between the log modulation spectra of output and target.

    The recipe of Martínez Ramírez, Benetos and Reiss (Applied Sciences 2020, section 4.3),
    with the details their text leaves open chosen as follows:

    1. acoustic bank: 12 gammatone filters of order 4, centres geometrically spaced from
       26 Hz to 6950 Hz, bandwidth parameter ``b = 1.019 ERB(f)`` with
       ``ERB(f) = 24.7 + f / 9.26449`` Hz (Glasberg and Moore 1990), unit gain at the
       centre; implemented as four cascaded complex one-pole filters (Hohmann 2002);
    2. each band's envelope: magnitude of the analytic signal (Hilbert transform),
       resampled to 400 Hz by a polyphase filter (``scipy.signal.resample_poly``,
       Kaiser-windowed anti-aliasing);
    3. modulation bank per envelope: 12 gammatone filters of order 4 at 400 Hz, centres
       geometrically spaced from 0.5 Hz to 100 Hz, constant Q = 1 (3 dB bandwidth equal
       to the centre frequency, as the modulation filters of Ewert and Dau 2000);
    4. the FFT of each of the 12 x 12 modulation outputs over its whole length (Hann
       window, scaled by 1/length); the power ``|X_k|^2`` of every bin ``k`` summed over
       all 144 outputs gives ``S[k]``;
    5. ``mean_k (ln(S_out[k] + e) - ln(S_tgt[k] + e))^2`` with
       ``e = 1e-10 * max_k S_tgt[k]`` (a floor 100 dB below the target's strongest bin).

    Before step 1 the output is energy-normalised as in :func:`mfcc_cosine` (scaled so its
    mean absolute amplitude equals the target's), so that the distance measures dynamics
    rather than level, which :func:`loudness_difference_lufs` reports. Channels are
    measured separately and the distances averaged. (The authors' code used ERB-rate
    spaced centres and ERB bandwidths for both banks; the text says log-spaced, which this
    follows.)

    Args:
        output: effect output, ``(T,)`` or ``(C, T)``.
        target: target audio, same shape.
        sample_rate: in Hz, above 13900 Hz (twice the highest gammatone centre).

    Shape:
        - output, target: ``(T,)`` or ``(C, T)``, at least 0.16 s
          (64 envelope samples at 400 Hz).
        - returns: float >= 0, 0 for identical signals.
    """
    out, tgt, sr = _check_pair(output, target, sample_rate, "ms_mse")
    if sr <= 2 * MS_AUDIO_BANDS[1]:
        raise AudioFormatError(f"ms_mse: sample_rate {sr} Hz is too low for the gammatone bank up to "
                               f"{MS_AUDIO_BANDS[1]:g} Hz; need more than {2 * MS_AUDIO_BANDS[1]:g} Hz")
    _require_samples(out, math.ceil(MS_MIN_ENVELOPE_SAMPLES * sr / MS_ENVELOPE_RATE), sr, "ms_mse")
    out = _match_mean_amplitude(out, tgt, "ms_mse")
    errors = []
    for out_channel, tgt_channel in zip(out, tgt):
        s_out, s_tgt = _modulation_spectrum(out_channel, sr), _modulation_spectrum(tgt_channel, sr)
        floor = MS_LOG_FLOOR * s_tgt.max()
        errors.append(np.mean((np.log(s_out + floor) - np.log(s_tgt + floor)) ** 2))
    return float(np.mean(errors))


# ---------------------------------------------------------------------------- waveform, STFT

def esr(output: np.ndarray, target: np.ndarray, sample_rate: float,
        pre_emphasis: float | None = None) -> float:
    """Error-to-signal ratio ``sum (y - t)^2 / sum t^2`` over all channels and samples.

    With ``pre_emphasis = a`` both signals first go through the first-order high-pass
    ``H(z) = 1 - a z^-1`` (Wright and Välimäki use ``a = 0.95``); off by default.

    Args:
        output: effect output ``y``, ``(T,)`` or ``(C, T)``.
        target: target ``t``, same shape.
        sample_rate: in Hz (checked, for the common metric signature; unused).
        pre_emphasis: the coefficient ``a``, or None for none.

    Shape:
        - output, target: ``(T,)`` or ``(C, T)``, ``T >= 1``.
        - returns: float >= 0, 0 for identical signals, ``(g - 1)^2`` for ``y = g t``.
    """
    out, tgt, _ = _check_pair(output, target, sample_rate, "esr")
    if pre_emphasis is not None:
        out = scipy.signal.lfilter([1.0, -pre_emphasis], [1.0], out, axis=-1)
        tgt = scipy.signal.lfilter([1.0, -pre_emphasis], [1.0], tgt, axis=-1)
    energy = np.sum(tgt ** 2)
    if energy == 0:
        raise AudioFormatError("esr: target is silent (all zeros after any pre-emphasis); "
                               "the ratio divides by its energy")
    return float(np.sum((out - tgt) ** 2) / energy)


def mrstft_distance(output: np.ndarray, target: np.ndarray, sample_rate: float) -> float:
    """Multi-resolution STFT distance: the ``"mrstft"`` training loss with its defaults.

    :class:`fxlib.losses.MultiResolutionSTFTLoss` (FFT sizes 2048, 1024, 512; hops 512, 256,
    128; spectral convergence plus L1 log magnitude) evaluated without gradient in float32,
    with the channels of the signal as the loss's channel axis.

    Args:
        output: effect output, ``(T,)`` or ``(C, T)``.
        target: target audio, same shape.
        sample_rate: in Hz (checked, for the common metric signature; unused).

    Shape:
        - output, target: ``(T,)`` or ``(C, T)`` with ``T > 1024``.
        - returns: float >= 0, 0 for identical signals.
    """
    out, tgt, _ = _check_pair(output, target, sample_rate, "mrstft_distance")
    with torch.no_grad():
        distance = MultiResolutionSTFTLoss()(torch.from_numpy(out[None]).float(),
                                             torch.from_numpy(tgt[None]).float())
    return float(distance)


# ---------------------------------------------------------------------------- level

def _loudness(x: np.ndarray, sample_rate: int, metric: str) -> float:
    """Integrated loudness (LUFS) of checked ``(C, T)`` audio; -inf when all blocks are gated."""
    if x.shape[0] > LOUDNESS_MAX_CHANNELS:
        raise AudioFormatError(f"{metric}: BS.1770 weights at most {LOUDNESS_MAX_CHANNELS} channels "
                               f"(L, R, C, Ls, Rs), got {x.shape[0]}")
    _require_samples(x, math.ceil(LOUDNESS_BLOCK_SECONDS * sample_rate), sample_rate, metric)
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sample_rate, block_size=LOUDNESS_BLOCK_SECONDS).integrated_loudness(x.T))


def loudness_lufs(x: np.ndarray, sample_rate: float) -> float:
    """Integrated loudness by ITU-R BS.1770-4 (pyloudnorm), in LUFS.

    K-weighting, 400 ms blocks overlapping by 75 %, absolute gate at -70 LUFS and relative
    gate 10 LU below the ungated level; channel weights 1 (L, R, C) and 1.41 (Ls, Rs) in that
    order. A 0 dBFS sine near 1 kHz on one channel reads -3.01 LUFS.

    Args:
        x: audio, ``(T,)`` or ``(C, T)`` with at most 5 channels.
        sample_rate: in Hz.

    Shape:
        - x: ``(T,)`` or ``(C, T)``, at least 0.4 s.
        - returns: float in LUFS; ``-inf`` when every block is below the absolute gate.
    """
    return _loudness(_check_signal(x, "x", "loudness_lufs"), _check_rate(sample_rate, "loudness_lufs"),
                     "loudness_lufs")


def true_peak_dbtp(x: np.ndarray, sample_rate: float) -> float:
    """True-peak level in dBTP, in the manner of ITU-R BS.1770-4 annex 2.

    The signal is oversampled 4 times (``scipy.signal.resample_poly``: polyphase FIR,
    Kaiser-windowed sinc) and the largest absolute value over all channels is taken in dB
    relative to full scale. No headroom attenuation is applied (the audio is floating point).

    Args:
        x: audio, ``(T,)`` or ``(C, T)``.
        sample_rate: in Hz (checked; the oversampling factor does not depend on it).

    Shape:
        - x: ``(T,)`` or ``(C, T)``, ``T >= 1``.
        - returns: float in dBTP; ``-inf`` for silence.
    """
    x = _check_signal(x, "x", "true_peak_dbtp")
    _check_rate(sample_rate, "true_peak_dbtp")
    peak = np.max(np.abs(scipy.signal.resample_poly(x, TRUE_PEAK_OVERSAMPLING, 1, axis=-1)))
    with np.errstate(divide="ignore"):
        return float(20 * np.log10(peak))


def loudness_difference_lufs(output: np.ndarray, target: np.ndarray, sample_rate: float) -> float:
    """Integrated loudness of the output minus that of the target, in LU (BS.1770-4).

    See :func:`loudness_lufs`. An output that is the target with a gain of ``g`` dB gives ``g``.

    Args:
        output: effect output, ``(T,)`` or ``(C, T)`` with at most 5 channels.
        target: target audio, same shape.
        sample_rate: in Hz.

    Shape:
        - output, target: ``(T,)`` or ``(C, T)``, at least 0.4 s.
        - returns: float in LU (positive: the output is louder), 0 for identical signals.
    """
    out, tgt, sr = _check_pair(output, target, sample_rate, "loudness_difference_lufs")
    levels = {name: _loudness(x, sr, "loudness_difference_lufs") for name, x in (("output", out), ("target", tgt))}
    for name, level in levels.items():
        if not math.isfinite(level):
            raise AudioFormatError(f"loudness_difference_lufs: {name} is silent (below the -70 LUFS "
                                   "absolute gate); its loudness is -inf")
    return levels["output"] - levels["target"]


def _third_octave_powers(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Long-term average power in 1/3-octave bands, channels averaged; ``(bands,)``."""
    segment = 2 ** math.ceil(math.log2(sample_rate / BALANCE_MAX_BIN_HZ))
    freqs, psd = scipy.signal.welch(x, fs=sample_rate, window="hann", nperseg=segment, axis=-1)
    psd = psd.mean(axis=0)
    lowest = math.ceil(3 * math.log2(BALANCE_LOWEST_CENTRE_HZ / 1000))
    highest = math.floor(3 * math.log2(sample_rate / 2 / 2 ** (1 / 6) / 1000))
    powers = []
    for k in range(lowest, highest + 1):
        centre = 1000 * 2 ** (k / 3)
        in_band = (freqs >= centre * 2 ** (-1 / 6)) & (freqs < centre * 2 ** (1 / 6))
        if in_band.any():
            powers.append(psd[in_band].sum())
    return np.asarray(powers)


def spectral_balance_distance(output: np.ndarray, target: np.ndarray, sample_rate: float) -> float:
    """Tonal-balance distance: mean absolute dB difference of 1/3-octave long-term spectra.

    1. the output is scaled to the target's integrated loudness (:func:`loudness_lufs`),
       so a pure gain change reads 0;
    2. each signal's long-term average spectrum: Welch power spectral density (Hann
       segments of the power of two giving bins at most 5 Hz apart, 50 % overlap, mean),
       averaged over channels;
    3. the power summed in 1/3-octave bands (base-2, centres ``1000 * 2^(k/3)`` Hz from
       25 Hz up to the last band whose upper edge ``centre * 2^(1/6)`` is within
       ``sample_rate / 2``; bands that hold no bin are skipped);
    4. band powers floored at 80 dB below the target's strongest band, in dB;
       the mean over bands of ``|dB_out - dB_tgt|``.

    Args:
        output: effect output, ``(T,)`` or ``(C, T)`` with at most 5 channels.
        target: target audio, same shape.
        sample_rate: in Hz.

    Shape:
        - output, target: ``(T,)`` or ``(C, T)``, at least 0.4 s.
        - returns: float in dB >= 0, 0 for identical signals.
    """
    out, tgt, sr = _check_pair(output, target, sample_rate, "spectral_balance_distance")
    gain_db = -loudness_difference_lufs(out, tgt, sr)
    out_powers = _third_octave_powers(out * 10 ** (gain_db / 20), sr)
    tgt_powers = _third_octave_powers(tgt, sr)
    floor = tgt_powers.max() * 10 ** (BALANCE_FLOOR_DB / 10)
    difference = 10 * np.log10(np.maximum(out_powers, floor)) - 10 * np.log10(np.maximum(tgt_powers, floor))
    return float(np.mean(np.abs(difference)))


# ---------------------------------------------------------------------------- labelled events

def event_mask(events: Iterable[Mapping[str, Any]], num_samples: int, sample_rate: float,
               kinds: Iterable[str] | None = None) -> np.ndarray:
    """Which samples lie inside labelled events.

    Args:
        events: labels ``{"kind": str, "start": s, "end": s, ...}`` (the breath data's
            ``Pair.info["events"]``), times in seconds from the start of the audio.
        num_samples: the audio's length ``T``.
        sample_rate: in Hz.
        kinds: only events of these kinds; all when None.

    Shape:
        - returns: bool ``(T,)``, True inside ``[start, end)`` of a selected event.
    """
    sr = _check_rate(sample_rate, "event_mask")
    wanted = None if kinds is None else set(kinds)
    mask = np.zeros(int(num_samples), bool)
    for i, event in enumerate(events):
        try:
            kind, start, end = event["kind"], float(event["start"]), float(event["end"])
        except (KeyError, TypeError, ValueError) as e:
            raise AudioFormatError(f"event_mask: event #{i} {event!r} lacks a kind, start or end ({e})") from e
        if not 0 <= start < end:
            raise AudioFormatError(f"event_mask: event #{i} has start {start} s and end {end} s; "
                                   "need 0 <= start < end")
        if wanted is None or kind in wanted:
            mask[round(start * sr):round(end * sr)] = True
    return mask


def event_attenuation_db(output: np.ndarray, input: np.ndarray, events: Iterable[Mapping[str, Any]],
                         sample_rate: float) -> dict[str, float]:
    """How far below the input's the output's energy lies inside labelled events, in dB.

    For each kind of event, ``10 log10(E_input / E_output)`` where ``E`` sums the squared
    samples of every channel over all events of that kind; ``"all"`` sums over every event.
    Higher is better for removal: 0 dB leaves the events as they were, 20 dB removes 99 %
    of their energy, a negative value makes them louder. An output that is silent inside
    the events reads ``inf``. (This includes any overall gain of the output; compare with
    the gain outside the events to tell them apart.)

    Args:
        output: processed audio, ``(T,)`` or ``(C, T)``.
        input: the unprocessed audio, same shape.
        events: labels as for :func:`event_mask`.
        sample_rate: in Hz.

    Shape:
        - returns: ``{kind: dB for each kind present, "all": dB}``; ``{}`` when no event covers a
          sample of the audio.

    Raises:
        AudioFormatError: mismatched shapes, or the input is silent inside the events.
    """
    out, inp, sr = _check_pair(output, input, sample_rate, "event_attenuation_db")
    events = list(events)
    if not event_mask(events, inp.shape[1], sr).any():  # also checks every label
        return {}
    result = {}
    for name, kinds in [(k, [k]) for k in dict.fromkeys(e["kind"] for e in events)] + [("all", None)]:
        mask = event_mask(events, inp.shape[1], sr, kinds)
        before, after = np.sum(inp[:, mask] ** 2), np.sum(out[:, mask] ** 2)
        if before == 0:
            raise AudioFormatError(f"event_attenuation_db: the input is silent inside the {name} events")
        with np.errstate(divide="ignore"):
            result[name] = float(10 * np.log10(before / after))
    return result


def si_sdr(output: np.ndarray, target: np.ndarray, sample_rate: float, mask: np.ndarray | None = None) -> float:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), in dB.

    ``s = a t`` with ``a = <y, t> / <t, t>`` (the target scaled to fit the output best),
    ``SI-SDR = 10 log10(|s|^2 / |y - s|^2)``, over the samples where ``mask`` is True (all
    when None), every channel's samples taken together. Higher is better; a gain change of
    the output does not change it; identical signals read ``inf``.

    Args:
        output: processed audio ``y``, ``(T,)`` or ``(C, T)``.
        target: reference ``t``, same shape.
        sample_rate: in Hz (checked, for the common metric signature; unused).
        mask: bool ``(T,)``: the samples to measure (e.g. outside labelled events).

    Shape:
        - returns: float in dB.
    """
    out, tgt, _ = _check_pair(output, target, sample_rate, "si_sdr")
    out, tgt = _masked(out, tgt, mask, "si_sdr")
    _require_sound(tgt, "target (where measured)", "si_sdr")
    scaled = np.sum(out * tgt) / np.sum(tgt ** 2) * tgt
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(np.sum(scaled ** 2) / np.sum((out - scaled) ** 2)))


def stoi(output: np.ndarray, target: np.ndarray, sample_rate: float, mask: np.ndarray | None = None) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) by pystoi, in [0, 1] (higher is better).

    The samples where ``mask`` is True (all when None) are joined and measured with
    ``pystoi.stoi(target, output, sample_rate)`` (resampled to 10 kHz inside; its silent
    frames, 40 dB below the loudest, are skipped); channels are measured separately and
    averaged.

    Args:
        output: processed audio, ``(T,)`` or ``(C, T)``.
        target: clean reference, same shape.
        sample_rate: in Hz.
        mask: bool ``(T,)``: the samples to measure.

    Shape:
        - returns: float, about 1 for identical signals; needs more than 30 frames of 25.6 ms
          (about 0.4 s of sound) where measured.
    """
    pystoi_stoi = require("pystoi", "stoi", SPEECH_EXTRA).stoi

    out, tgt, sr = _check_pair(output, target, sample_rate, "stoi")
    out, tgt = _masked(out, tgt, mask, "stoi")
    _require_samples(out, math.ceil(STOI_MIN_SECONDS * sr), sr, "stoi")
    return float(np.mean([pystoi_stoi(t, o, sr) for o, t in zip(out, tgt)]))


def pesq(output: np.ndarray, target: np.ndarray, sample_rate: float, mask: np.ndarray | None = None) -> float:
    """Wide-band PESQ (ITU-T P.862.2) by the ``pesq`` package: MOS-LQO from about 1.0 to 4.64 (higher is better).

    The samples where ``mask`` is True (all when None) are joined, resampled to 16 kHz
    (``scipy.signal.resample_poly``) and measured with ``pesq.pesq(16000, target, output, "wb")``;
    channels are measured separately and averaged. PESQ aligns the two signals in time and
    compares their loudness spectra, so a pure delay or a phase change matters far less to
    it than to :func:`si_sdr`.

    Args:
        output: processed audio, ``(T,)`` or ``(C, T)``.
        target: clean reference, same shape.
        sample_rate: in Hz.
        mask: bool ``(T,)``: the samples to measure.

    Shape:
        - returns: float, 4.64 for identical speech; needs at least 0.25 s where measured.

    Raises:
        AudioFormatError: as the other metrics, or when PESQ finds no speech in the target.
    """
    pesq_package = require("pesq", "pesq", SPEECH_EXTRA)
    PesqError, pesq_wb = pesq_package.PesqError, pesq_package.pesq

    out, tgt, sr = _check_pair(output, target, sample_rate, "pesq")
    out, tgt = _masked(out, tgt, mask, "pesq")
    _require_samples(out, math.ceil(PESQ_MIN_SECONDS * sr), sr, "pesq")
    _require_sound(tgt, "target (where measured)", "pesq")
    ratio = Fraction(PESQ_RATE, sr)
    scores = []
    for o, t in zip(out, tgt):
        o16, t16 = (scipy.signal.resample_poly(v.astype(np.float64), ratio.numerator, ratio.denominator)
                    for v in (o, t))
        try:
            scores.append(pesq_wb(PESQ_RATE, t16, o16, "wb"))
        except PesqError as e:
            raise AudioFormatError(f"pesq: {type(e).__name__}: {e}") from e
    return float(np.mean(scores))


def _masked(out: np.ndarray, tgt: np.ndarray, mask: np.ndarray | None, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(out, tgt)`` restricted to the samples where ``mask (T,)`` is True."""
    if mask is None:
        return out, tgt
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (out.shape[1],):
        raise AudioFormatError(f"{metric}: mask must be bool of shape ({out.shape[1]},), got {mask.dtype} {mask.shape}")
    if not mask.any():
        raise AudioFormatError(f"{metric}: the mask selects no samples")
    return out[:, mask], tgt[:, mask]


# ---------------------------------------------------------------------------- registry

METRICS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "mfcc_cosine": mfcc_cosine,
    "mfcc_cosine_trajectory": functools.partial(mfcc_cosine, pair_by="coefficient"),
    "ms_mse": ms_mse,
    "esr": esr,
    "mrstft_distance": mrstft_distance,
    "loudness_difference_lufs": loudness_difference_lufs,
    "spectral_balance_distance": spectral_balance_distance,
}
"""Paired metrics by name, each ``metric(output, target, sample_rate) -> float``."""


def compute_all(output: np.ndarray, target: np.ndarray, sample_rate: float,
                names: Iterable[str] | None = None) -> dict[str, float]:
    """Run paired metrics on one output/target pair.

    Args:
        output: effect output, ``(T,)`` or ``(C, T)``.
        target: target audio, same shape.
        sample_rate: in Hz.
        names: keys of :data:`METRICS` to run; all of them when None.

    Shape:
        - output, target: ``(T,)`` or ``(C, T)``, long enough for every metric run
          (0.4 s and 4096 samples cover all).
        - returns: ``{name: value}`` in the order of ``names`` (or of :data:`METRICS`).
    """
    names = list(METRICS if names is None else names)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; use some of {list(METRICS)}")
    return {name: METRICS[name](output, target, sample_rate) for name in names}
