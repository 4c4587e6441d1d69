"""Pair statistics: how a task's target differs from its input, measured from the audio itself.

Every function takes numpy audio, 1-D ``(T,)`` or channel-first ``(C, T)`` in full-scale units
(1.0 = 0 dBFS; channels are averaged to mono first), and the sample rate in Hz. Levels in dB are
relative to full scale: a power level ``10 log10(mean x^2)`` reads -3.01 dB for a full-scale sine
(dBFS in the sense of ITU-T P.56's "dBov"). Nothing here is fitted to any data set: these are the
measurements the offline stand-ins are calibrated against (the paper's own examples, see
:mod:`fxlib.data.paper_examples`).

=============================  ===================================================================
function                       measures (units)
=============================  ===================================================================
:func:`align`                  the lag (samples) at which a signal best matches a reference, and
                               the signal shifted by it
:func:`band_levels_db`        each band's level against the integrated loudness (dB): broad bands
                               (:data:`BROAD_BANDS`: below 150 Hz, 150 Hz-2 kHz, 2-6 kHz, above
                               6 kHz) or octave bands (:data:`OCTAVE_BANDS`)
:func:`nonlinear_share_db`     the share of an output's energy that no linear time-invariant
                               filter of the input explains (dB; harmonic content added)
:func:`crest_factor_db`        peak over RMS (dB)
:func:`level_range_db`         spread of 400 ms block levels, 10th to 95th percentile (dB)
:func:`noise_floor_dbfs`       5th percentile of 1024-sample frame levels (dBFS)
:func:`bandwidth_hz`           frequency below which 99 % of the energy lies (Hz)
:func:`active_speech_level`    ITU-T P.56 method B active speech level (dB) and activity factor
:func:`locate_events`          where input and target differ in short-time magnitude (events
                               removed or added), each with its level relative to the target's
                               active speech level, duration, spectrum and closeness to speech
:func:`pair_statistics`        all of the above for one input/target pair, as plain data
:func:`summarise`              min, median and max of each statistic over several pairs
=============================  ===================================================================

Bad input (NaN, empty audio, a rate that is not a positive whole number, silence where a
statistic divides by a level) raises :class:`~fxlib.errors.AudioFormatError` naming the
statistic and what is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import scipy.ndimage
import scipy.signal

from ..errors import AudioFormatError
from ..metrics import loudness_lufs, true_peak_dbtp

#: Broad bands of :func:`band_levels_db`, ``name: (low Hz, high Hz)``; the last one
#: ends at the Nyquist frequency. Issue 20 describes the amp pairs by the two middle ones.
BROAD_BANDS: dict[str, tuple[float, float]] = {
    "below_150_hz": (0.0, 150.0), "150_hz_2_khz": (150.0, 2000.0), "2_6_khz": (2000.0, 6000.0),
    "above_6_khz": (6000.0, math.inf)}
#: Octave bands (base 2, exact centres 1000 * 2**k Hz for k = -4..4, named by their nominal
#: centres 63 Hz to 16 kHz; edges centre / sqrt 2 to centre * sqrt 2), ``name: (low Hz, high Hz)``.
OCTAVE_BANDS: dict[str, tuple[float, float]] = {
    f"{nominal}_hz": (1000 * 2.0 ** (k - 0.5), 1000 * 2.0 ** (k + 0.5))
    for k, nominal in zip(range(-4, 5), (63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000))}
#: Band shares of a located event's spectrum, ``name: (low Hz, high Hz)``.
EVENT_BANDS: dict[str, tuple[float, float]] = {
    "below_500_hz": (0.0, 500.0), "500_hz_4_khz": (500.0, 4000.0), "above_4_khz": (4000.0, math.inf)}

COHERENCE_SEGMENT = 1024  # samples per Welch segment of nonlinear_share_db
LEVEL_BLOCK_SECONDS, LEVEL_HOP_SECONDS = 0.4, 0.1  # level_range_db: BS.1770 momentary blocks
LEVEL_ABSOLUTE_GATE_DB, LEVEL_RELATIVE_GATE_DB = -70.0, -20.0  # level_range_db gates (EBU Tech 3342)
LEVEL_PERCENTILES = (10.0, 95.0)
FLOOR_FRAME, FLOOR_PERCENTILE = 1024, 5.0  # noise_floor_dbfs
BANDWIDTH_SEGMENT, BANDWIDTH_SHARE = 1024, 0.99  # bandwidth_hz
POWER_FLOOR = 1e-20  # -200 dB: the level of digital silence in frame statistics

# ITU-T P.56 (12/2011) method B
P56_TIME_CONSTANT = 0.03  # s, of each of the envelope's two exponential averages
P56_HANGOVER = 0.2  # s
P56_MARGIN_DB = 15.9
P56_THRESHOLDS = 2.0 ** np.arange(-20, 1)  # envelope thresholds (amplitude): 6.02 dB apart, -120 to 0 dB
ACTIVITY_WINDOW_SECONDS = 0.01  # speech_activity's centred mean of |x|

# locate_events
EVENT_FRAME_SECONDS, EVENT_HOP_SECONDS = 0.025, 0.00625
EVENT_RELATIVE_DB = 10.0  # a frame's magnitude difference within this of the louder signal's level
EVENT_FLOOR_MARGIN_DB = 6.0  # and this far above the input's noise floor
EVENT_MIN_FRAMES = 3  # a run of fewer flagged frames is coding noise (any real event spans 4 or more)
EVENT_MERGE_SECONDS = 0.05  # flagged runs closer than this are one event
EVENT_SPEECH_SECONDS = 0.05  # an event "touches speech" when speech is active this close to it
PHRASE_PAUSE_SECONDS = 0.1  # a phrase onset: speech activity after at least this long without


# ---------------------------------------------------------------------------- input checks

def check_rate(sample_rate: float, what: str) -> int:
    """``sample_rate`` as an int, or AudioFormatError naming ``what`` when it is not a positive whole number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not (sample_rate > 0 and float(sample_rate).is_integer()):
        raise AudioFormatError(f"{what}: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def mono(x: np.ndarray, name: str = "audio", what: str = "stats") -> np.ndarray:
    """``x`` as float64 ``(T,)``: a ``(C, T)`` array is averaged over its channels.

    Raises:
        AudioFormatError: not floating point, not ``(T,)`` or ``(C, T)``, empty, or NaN/Inf.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioFormatError(f"{what}: {name} must be floating-point audio in full-scale units, got {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=0, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise AudioFormatError(f"{what}: {name} must have shape (T,) or (C, T) with T > 0, got {np.shape(x)}")
    if not np.isfinite(x).all():
        raise AudioFormatError(f"{what}: {name} holds NaN or Inf")
    return x.astype(np.float64)


def _same_length(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise AudioFormatError(f"{what}: input has {a.shape[-1]} samples but target has {b.shape[-1]}; "
                               "align them first (fxlib.data.stats.align)")


def _power_db(power: float | np.ndarray) -> float | np.ndarray:
    """``10 log10(power)``, with power floored at :data:`POWER_FLOOR` (-200 dB)."""
    return 10 * np.log10(np.maximum(power, POWER_FLOOR))


# ---------------------------------------------------------------------------- alignment

def align(test: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[np.ndarray, int]:
    """Line ``test`` up with ``reference`` by the lag of their largest cross-correlation.

    The lag is the integer ``L`` in ``[-max_lag, max_lag]`` that maximises
    ``|sum_n test[n + L] reference[n]|`` (the absolute value, so that an inverted polarity
    still aligns; the polarity itself is left as it is). Systems such as the paper's DeepAFx
    delay their output by a few to a few hundred samples; a listener does not hear a constant
    delay, a frame-by-frame comparison does.

    Args:
        test: ``(T1,)`` or ``(C, T1)``; reference: ``(T2,)`` or ``(C, T2)`` (channels averaged
            for the search).
        max_lag: the largest lag searched, in samples.

    Returns:
        ``(shifted, L)``: ``shifted[..., n] = test[..., n + L]`` for ``0 <= n + L < T1``, zero
        elsewhere, with ``T2`` samples; ``L`` in samples (positive: ``test`` comes late).
    """
    a, b = mono(test, "test", "align"), mono(reference, "reference", "align")
    if max_lag < 0:
        raise AudioFormatError(f"align: max_lag must be >= 0, got {max_lag}")
    correlation = scipy.signal.correlate(a, b, mode="full", method="fft")
    lags = np.arange(-(b.size - 1), a.size)
    searched = np.abs(lags) <= max_lag
    lag = int(lags[searched][np.argmax(np.abs(correlation[searched]))])
    return shift(test, lag, b.size), lag


def shift(x: np.ndarray, lag: int, length: int) -> np.ndarray:
    """``y[..., n] = x[..., n + lag]`` for ``n`` in ``[0, length)``, zero where ``n + lag`` is outside ``x``."""
    x = np.asarray(x)
    out = np.zeros(x.shape[:-1] + (length,), x.dtype)
    start, stop = max(0, -lag), min(length, x.shape[-1] - lag)
    if stop > start:
        out[..., start:stop] = x[..., start + lag:stop + lag]
    return out


# ---------------------------------------------------------------------------- spectra and bands

def _band_mask(freqs: np.ndarray, band: tuple[float, float], sample_rate: int) -> np.ndarray | None:
    """Bins with ``low <= f < high`` (the top band also takes the Nyquist bin); None above Nyquist."""
    low, high = band[0], min(band[1], sample_rate / 2)
    if low >= high:
        return None
    upper = freqs <= high if high == sample_rate / 2 else freqs < high
    return (freqs >= low) & upper


def band_levels_db(x: np.ndarray, sample_rate: float,
                   bands: Mapping[str, tuple[float, float]] = BROAD_BANDS) -> dict[str, float]:
    """Each band's power level relative to the signal's integrated loudness, in dB.

    A band's level is the power of the signal's content in it, ``10 log10(sum_band |X_k|^2 w_k /
    T^2)`` from the periodogram of the whole signal (``X = rfft(x)``, ``w_k`` 2 for the bins that
    stand for a positive and a negative frequency, so the bands of a signal add up to its mean
    power ``mean x^2``), over the bins ``low <= f < high`` (the top band ends at the Nyquist
    frequency); from it the signal's integrated loudness (:func:`fxlib.metrics.loudness_lufs`)
    is subtracted. So a gain change reads the same, and the levels say how a band stands
    against what a listener hears as the overall level: an effect that adds bright harmonics
    raises the loudness, and a band it leaves alone falls against it. Band level changes
    between two signals (the difference of these) are the tonal changes "at equal loudness".

    Args:
        x: audio of at least 0.4 s; sample_rate: in Hz.
        bands: ``{name: (low Hz, high Hz)}``, e.g. :data:`BROAD_BANDS` or :data:`OCTAVE_BANDS`.

    Returns:
        ``{name: dB}`` (dB re LUFS; a band without energy reads about -200); bands above the
        Nyquist frequency are left out.

    Raises:
        AudioFormatError: the signal is silent (below the loudness meter's -70 LUFS gate).
    """
    sr = check_rate(sample_rate, "band_levels_db")
    x = mono(x, "x", "band_levels_db")
    loudness = loudness_lufs(x, sr)
    if not math.isfinite(loudness):
        raise AudioFormatError("band_levels_db: the signal is silent (below the -70 LUFS loudness gate)")
    weights = np.full(x.size // 2 + 1, 2.0)
    weights[0] = 1.0
    if x.size % 2 == 0:
        weights[-1] = 1.0
    power = weights * np.abs(np.fft.rfft(x)) ** 2 / x.size ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / sr)
    out = {}
    for name, band in bands.items():
        mask = _band_mask(freqs, band, sr)
        if mask is not None:
            out[name] = float(_power_db(power[mask].sum()) - loudness)
    return out


def nonlinear_share_db(input: np.ndarray, output: np.ndarray, sample_rate: float) -> float:
    """The share of ``output``'s energy that no linear time-invariant filter of ``input`` explains, in dB.

    ``sum_f (1 - C(f)) P_out(f) / sum_f P_out(f)`` with ``C`` the magnitude-squared coherence of
    input and output and ``P_out`` the output's power spectral density (Welch: Hann segments of
    :data:`COHERENCE_SEGMENT` samples, 50 % overlap). ``C(f) P_out(f)`` is the part of the
    output's power at ``f`` that the best linear filter of the input predicts, so the rest is
    what the effect added: harmonics and intermodulation of a distortion, but also noise and
    anything time-varying (a compressor's changing gain). This is a THD-like measure for real
    music, where no test tone is available. Lower is more linear: a pure filter reads far below
    0 dB; ``output = input + n`` with independent noise ``n`` reads ``P_n / (P_in + P_n)``.
    The estimate of ``C`` is biased up by about ``1/K`` for ``K`` segments, so the smallest
    value it can read is about ``-10 log10(K)`` dB (about -21 dB for 1.6 s at 44.1 kHz); MP3
    coding noise of two separate encodes also reads as added content, near -20 dB.

    Args:
        input, output: aligned audio of one length (:func:`align`); sample_rate: in Hz.

    Returns:
        float, dB <= 0.
    """
    sr = check_rate(sample_rate, "nonlinear_share_db")
    x, y = mono(input, "input", "nonlinear_share_db"), mono(output, "output", "nonlinear_share_db")
    _same_length(x, y, "nonlinear_share_db")
    if x.size < 2 * COHERENCE_SEGMENT:
        raise AudioFormatError(f"nonlinear_share_db: needs at least {2 * COHERENCE_SEGMENT} samples, got {x.size}")
    if not (x.any() and y.any()):
        raise AudioFormatError("nonlinear_share_db: input or output is silent")
    _, coherence = scipy.signal.coherence(x, y, fs=sr, nperseg=COHERENCE_SEGMENT)
    _, p_out = scipy.signal.welch(y, fs=sr, nperseg=COHERENCE_SEGMENT)
    return float(_power_db(np.sum((1 - coherence) * p_out) / np.sum(p_out)))


def crest_factor_db(x: np.ndarray) -> float:
    """Sample peak over RMS, ``20 log10(max|x| / rms(x))`` in dB (3.01 dB for a sine).

    Raises:
        AudioFormatError: the signal is silent.
    """
    x = mono(x, "x", "crest_factor_db")
    rms = math.sqrt(np.mean(x ** 2))
    if rms == 0:
        raise AudioFormatError("crest_factor_db: the signal is silent")
    return float(20 * math.log10(np.max(np.abs(x)) / rms))


def level_range_db(x: np.ndarray, sample_rate: float) -> float:
    """The spread of short-term levels: 95th minus 10th percentile of 400 ms block levels, in dB.

    An unweighted, momentary-block version of EBU Tech 3342's loudness range: block power
    levels (``10 log10 mean x^2`` over 400 ms blocks every 100 ms), blocks below -70 dB dropped
    (absolute gate), then blocks more than 20 dB below the power mean of the rest dropped
    (relative gate), then the percentiles. EBU's own 3 s short-term windows do not fit the
    paper's 4 s examples. A steady signal reads 0; compression narrows it.

    Args:
        x: audio of at least 0.4 s; sample_rate: in Hz.

    Returns:
        float, dB >= 0.

    Raises:
        AudioFormatError: shorter than a block, or no block above the absolute gate.
    """
    sr = check_rate(sample_rate, "level_range_db")
    x = mono(x, "x", "level_range_db")
    block, hop = round(LEVEL_BLOCK_SECONDS * sr), round(LEVEL_HOP_SECONDS * sr)
    if x.size < block:
        raise AudioFormatError(f"level_range_db: needs at least {LEVEL_BLOCK_SECONDS} s, got {x.size / sr:.3f} s")
    powers = np.mean(np.lib.stride_tricks.sliding_window_view(x ** 2, block)[::hop], axis=1)
    powers = powers[_power_db(powers) >= LEVEL_ABSOLUTE_GATE_DB]
    if powers.size == 0:
        raise AudioFormatError(f"level_range_db: every block is below {LEVEL_ABSOLUTE_GATE_DB:g} dB")
    levels = _power_db(powers)
    levels = levels[levels >= _power_db(np.mean(powers)) + LEVEL_RELATIVE_GATE_DB]
    low, high = np.percentile(levels, LEVEL_PERCENTILES)
    return float(high - low)


def noise_floor_dbfs(x: np.ndarray) -> float:
    """The 5th percentile of the power levels of non-overlapping 1024-sample frames, in dBFS.

    A trailing partial frame is left out; a frame of digital silence reads -200 dB. A room
    recording's floor sits somewhere near -80 to -60 dBFS; a run of digital silence of more
    than 5 % of the frames shows as -200.

    Raises:
        AudioFormatError: shorter than one frame.
    """
    x = mono(x, "x", "noise_floor_dbfs")
    frames = x.size // FLOOR_FRAME
    if frames == 0:
        raise AudioFormatError(f"noise_floor_dbfs: needs at least {FLOOR_FRAME} samples, got {x.size}")
    powers = np.mean(x[:frames * FLOOR_FRAME].reshape(frames, FLOOR_FRAME) ** 2, axis=1)
    return float(np.percentile(_power_db(powers), FLOOR_PERCENTILE))


def bandwidth_hz(x: np.ndarray, sample_rate: float, share: float = BANDWIDTH_SHARE) -> float:
    """The frequency below which ``share`` (99 %) of the signal's energy lies, in Hz.

    The long-term spectrum is Welch's (Hann segments of 1024 samples, 50 % overlap); the result
    is the first bin frequency at which the cumulative power reaches ``share`` of the total.

    Raises:
        AudioFormatError: silent, or ``share`` outside (0, 1].
    """
    sr = check_rate(sample_rate, "bandwidth_hz")
    x = mono(x, "x", "bandwidth_hz")
    if not 0 < share <= 1:
        raise AudioFormatError(f"bandwidth_hz: share must be in (0, 1], got {share}")
    freqs, psd = scipy.signal.welch(x, fs=sr, nperseg=min(BANDWIDTH_SEGMENT, x.size))
    if psd.sum() == 0:
        raise AudioFormatError("bandwidth_hz: the signal is silent")
    cumulative = np.cumsum(psd) / psd.sum()
    return float(freqs[np.searchsorted(cumulative, share - 1e-12)])


# ---------------------------------------------------------------------------- ITU-T P.56

@dataclass(frozen=True)
class SpeechLevel:
    """The result of :func:`active_speech_level`.

    Attributes:
        level_db: active speech level, dB relative to full scale (mean square of the active
            samples; a full-scale sine that is on all the time reads -3.01).
        activity: activity factor, the share of the time the speech is active (0 to 1).
        threshold: the envelope threshold (amplitude, full scale 1) at which the level was
            found; :func:`speech_activity` marks the samples whose envelope reaches it.
    """

    level_db: float
    activity: float
    threshold: float


def _p56_envelope(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """P.56's envelope: ``|x|`` through two cascaded one-pole averages with a 0.03 s time constant."""
    g = math.exp(-1 / (sample_rate * P56_TIME_CONSTANT))
    p = scipy.signal.lfilter([1 - g], [1, -g], np.abs(x))
    return scipy.signal.lfilter([1 - g], [1, -g], p)


def active_speech_level(x: np.ndarray, sample_rate: float) -> SpeechLevel:
    """ITU-T P.56 (12/2011) method B: the active speech level and activity factor of speech.

    The method, as the standard's reference implementation (ITU-T G.191 STL, ``sv-p56.c``):

    1. envelope ``q``: ``|x|`` through two cascaded exponential averages
       ``p[n] = g p[n-1] + (1 - g) |x[n]|``, ``q[n] = g q[n-1] + (1 - g) p[n]`` with
       ``g = exp(-1 / (0.03 s * sample_rate))``;
    2. for each threshold ``c_j`` (:data:`P56_THRESHOLDS`, a factor of 2 apart), the activity
       count ``a_j``: the samples where ``q >= c_j``, or that follow such a sample within the
       hangover of 0.2 s;
    3. ``A_j = 10 log10(sum x^2 / a_j)`` (the level of the signal's energy spread over its
       active samples) and ``C_j = 20 log10 c_j``;
    4. the first ``j`` where ``A_j - C_j <= 15.9 dB`` (the margin ``M``) and its predecessor
       bracket the crossing ``A - C = M``; it is found by linear interpolation of ``A`` and
       ``C`` between them, and the active level is ``A`` there. The activity factor is the
       long-term power over the active level's power.

    Levels are relative to full scale (the STL works in units of a 16-bit sample; here 1.0
    is full scale, and the thresholds span -120 to 0 dB instead of the 16-bit range).

    Args:
        x: speech; sample_rate: in Hz.

    Returns:
        :class:`SpeechLevel`.

    Raises:
        AudioFormatError: silent (no sample reaches the lowest threshold), or no crossing (a
            signal whose envelope never reaches 15.9 dB below its active level).
    """
    sr = check_rate(sample_rate, "active_speech_level")
    x = mono(x, "x", "active_speech_level")
    envelope = _p56_envelope(x, sr)
    hangover = math.floor(P56_HANGOVER * sr + 0.5)
    index = np.arange(x.size)
    energy = float(np.sum(x ** 2))
    counts = []
    for c in P56_THRESHOLDS:
        last_above = np.maximum.accumulate(np.where(envelope >= c, index, -hangover - 1))
        counts.append(int(np.sum(index - last_above <= hangover)))
    counts = np.asarray(counts, float)
    if counts[0] == 0 or energy == 0:
        raise AudioFormatError("active_speech_level: the signal is silent (its envelope never reaches "
                               f"{20 * math.log10(P56_THRESHOLDS[0]):.0f} dB)")
    with np.errstate(divide="ignore"):
        a_db = 10 * np.log10(energy / counts)
    c_db = 20 * np.log10(P56_THRESHOLDS)
    delta = a_db - c_db
    long_term_db = 10 * math.log10(energy / x.size)
    if delta[0] <= P56_MARGIN_DB:
        return SpeechLevel(float(a_db[0]), float(counts[0] / x.size), float(P56_THRESHOLDS[0]))
    for j in range(1, len(P56_THRESHOLDS)):
        if counts[j] > 0 and delta[j] <= P56_MARGIN_DB:
            t = (delta[j - 1] - P56_MARGIN_DB) / (delta[j - 1] - delta[j])
            level = a_db[j - 1] + t * (a_db[j] - a_db[j - 1])
            threshold_db = c_db[j - 1] + t * (c_db[j] - c_db[j - 1])
            activity = 10 ** ((long_term_db - level) / 10)
            return SpeechLevel(float(level), float(activity), float(10 ** (threshold_db / 20)))
    raise AudioFormatError("active_speech_level: no threshold gives an active level within "
                           f"{P56_MARGIN_DB} dB of it (not speech-like)")


def speech_activity(x: np.ndarray, sample_rate: float, level: SpeechLevel | None = None) -> np.ndarray:
    """Which samples hold active speech: a centred 10 ms mean of ``|x|`` at or above P.56's threshold.

    The threshold is the one :func:`active_speech_level` found (method B). It is applied to a
    short centred moving mean of ``|x|`` (:data:`ACTIVITY_WINDOW_SECONDS`) instead of P.56's own
    envelope, whose 0.03 s averages place an onset some 30 ms late; and no hangover is added
    (P.56 counts 0.2 s of it for the level; here the aim is to find where the speech is).

    Args:
        x: speech; sample_rate: in Hz; level: its :func:`active_speech_level` (computed when None).

    Returns:
        bool ``(T,)``.
    """
    sr = check_rate(sample_rate, "speech_activity")
    x = mono(x, "x", "speech_activity")
    level = level or active_speech_level(x, sr)
    window = max(1, round(ACTIVITY_WINDOW_SECONDS * sr))
    return scipy.ndimage.uniform_filter1d(np.abs(x), window, mode="constant") >= level.threshold


# ---------------------------------------------------------------------------- events

def frame_power_spectra(x: np.ndarray, sample_rate: float, frame_seconds: float = EVENT_FRAME_SECONDS,
                        hop_seconds: float = EVENT_HOP_SECONDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time power spectra scaled so that each frame's bins sum to its mean power.

    Hann frames of ``frame_seconds`` every ``hop_seconds`` (whole frames only);
    ``P[t, k] = w_k |X_t[k]|^2 / (N sum(window^2))`` with ``w_k`` 2 for the bins that stand for
    a positive and a negative frequency and 1 for DC and Nyquist, so ``sum_k P[t, k]`` is the
    frame's power (``mean x^2`` of a steady signal: 0.5 for a full-scale sine).

    Returns:
        ``(P, freqs, centres)``: ``P`` float64 ``(frames, bins)``, ``freqs`` ``(bins,)`` in Hz,
        ``centres`` ``(frames,)``, each frame's centre in seconds.
    """
    sr = check_rate(sample_rate, "frame_power_spectra")
    x = mono(x, "x", "frame_power_spectra")
    n, hop = round(frame_seconds * sr), round(hop_seconds * sr)
    if x.size < n:
        raise AudioFormatError(f"frame_power_spectra: needs at least {frame_seconds} s, got {x.size / sr:.3f} s")
    window = scipy.signal.get_window("hann", n)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * window
    weights = np.full(n // 2 + 1, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    power = weights * np.abs(np.fft.rfft(frames, axis=1)) ** 2 / (n * np.sum(window ** 2))
    centres = (np.arange(frames.shape[0]) * hop + n / 2) / sr
    return power, np.fft.rfftfreq(n, 1 / sr), centres


def magnitude_difference(test: np.ndarray, reference: np.ndarray,
                         sample_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and bin, the squared difference of two signals' short-time magnitudes.

    ``D[t, k] = (sqrt P_test[t, k] - sqrt P_ref[t, k])^2`` with :func:`frame_power_spectra`:
    the power of what one signal has and the other has not, blind to phase (two separate MP3
    encodes of one recording differ sample by sample, but little in magnitude).

    Returns:
        ``(D, P_test, P_ref, freqs, centres)``, the first three ``(frames, bins)``, then as
        :func:`frame_power_spectra`.
    """
    p_test, freqs, centres = frame_power_spectra(test, sample_rate)
    p_ref, _, _ = frame_power_spectra(reference, sample_rate)
    if p_test.shape != p_ref.shape:
        raise AudioFormatError(f"magnitude_difference: test and reference differ in length "
                               f"({np.shape(test)[-1]} and {np.shape(reference)[-1]} samples)")
    return (np.sqrt(p_test) - np.sqrt(p_ref)) ** 2, p_test, p_ref, freqs, centres


def _band_shares(spectrum: np.ndarray, freqs: np.ndarray, sample_rate: int) -> dict[str, float]:
    total = spectrum.sum()
    shares = {}
    for name, band in EVENT_BANDS.items():
        mask = _band_mask(freqs, band, sample_rate)
        shares[name] = float(spectrum[mask].sum() / total) if mask is not None and total > 0 else 0.0
    return shares


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last), ...]`` index ranges (inclusive) of the True runs of a bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def locate_events(input: np.ndarray, target: np.ndarray, sample_rate: float) -> list[dict[str, Any]]:
    """The regions where input and target differ in short-time magnitude: the events an edit removed.

    Compare magnitudes, not waveforms: two separate MP3 encodes of the same recording differ
    sample by sample by coding noise about 20 dB below the speech everywhere, but their
    short-time magnitudes agree far more closely. A frame (25 ms Hann, every 6.25 ms) is
    flagged when the power of its magnitude difference ``sum_k D[t, k]``
    (:func:`magnitude_difference`)

    - is within 10 dB (:data:`EVENT_RELATIVE_DB`) of the louder of the two frames: what differs
      is a large part of the frame, not coding noise 20 dB down; and
    - lies 6 dB (:data:`EVENT_FLOOR_MARGIN_DB`) above the target's noise floor
      (:func:`noise_floor_dbfs`): two encodes of the room's floor differ by as much as the
      floor itself. The target's floor, not the input's: in short takes whose pauses the
      breaths fill (the paper's 4 s excerpts), the input's quietest frames are the breaths, and
      a floor read there drops most of each breath (on the paper's five examples: 15 fragments,
      median 0.09 s, against 12 events of 0.2-0.7 s with the target's floor).

    A run of fewer than 3 flagged frames (:data:`EVENT_MIN_FRAMES`) is dropped: a sound however
    short shows in every frame that overlaps it, four at this hop, so a difference that one or
    two frames see is the coder's (MP3 drops and restores its top bands from frame to frame).
    Runs closer than 50 ms are merged into one event, spanning from half a hop before its first
    frame's centre to half a hop after its last.

    Args:
        input: the unprocessed take; target: the edited take, aligned, of one length.
        sample_rate: in Hz.

    Returns:
        One dict per event, in time order, JSON-able and usable as an event label
        (:func:`fxlib.metrics.event_mask`):

        - ``kind``: ``"located"``; ``start``, ``end``, ``duration``: seconds;
        - ``level_db``: the power of the magnitude difference over the event (what was
          removed), dB relative to the target's active speech level (:func:`active_speech_level`);
        - ``louder_in``: ``"input"`` when the input holds more energy there (an event removed),
          else ``"target"``;
        - ``centroid_hz``: spectral centroid of the difference; ``band_shares``: its energy
          share below 500 Hz, 500 Hz-4 kHz and above 4 kHz;
        - ``touches_speech``: whether the target's speech (:func:`speech_activity`) is active
          within 50 ms of the event; ``distance_to_speech``: seconds from the event to the
          nearest active speech sample (0 when they overlap; None without speech);
        - ``onset_gap``: seconds from the event's end to the first phrase onset (speech
          activity after 0.1 s without) after the event's start, negative when the event
          overlaps that onset; None when no onset follows.
    """
    sr = check_rate(sample_rate, "locate_events")
    x, y = mono(input, "input", "locate_events"), mono(target, "target", "locate_events")
    _same_length(x, y, "locate_events")
    difference, p_in, p_target, freqs, centres = magnitude_difference(x, y, sr)
    d = difference.sum(axis=1)
    louder = np.maximum(p_in.sum(axis=1), p_target.sum(axis=1))
    floor = 10 ** (noise_floor_dbfs(y) / 10)
    flags = (d >= louder * 10 ** (-EVENT_RELATIVE_DB / 10)) & (d >= floor * 10 ** (EVENT_FLOOR_MARGIN_DB / 10))
    hop = EVENT_HOP_SECONDS
    merged: list[list[int]] = []
    for first, last in _runs(flags):
        if last - first + 1 < EVENT_MIN_FRAMES:
            continue
        if merged and centres[first] - centres[merged[-1][1]] - hop < EVENT_MERGE_SECONDS:
            merged[-1][1] = last
        else:
            merged.append([first, last])
    level = active_speech_level(y, sr)
    active = speech_activity(y, sr, level)
    onsets = _phrase_onsets(active, sr)
    active_times = np.flatnonzero(active) / sr
    events = []
    for first, last in merged:
        start = max(0.0, float(centres[first] - hop / 2))
        end = min(x.size / sr, float(centres[last] + hop / 2))
        spectrum = difference[first:last + 1].sum(axis=0)
        power = float(np.mean(d[first:last + 1]))
        nearest = _distance(active_times, start, end)
        following = onsets[onsets >= start]
        events.append({
            "kind": "located", "start": round(start, 5), "end": round(end, 5), "duration": round(end - start, 5),
            "level_db": float(_power_db(power) - level.level_db),
            "louder_in": "input" if p_in[first:last + 1].sum() >= p_target[first:last + 1].sum() else "target",
            "centroid_hz": float(np.sum(freqs * spectrum) / spectrum.sum()) if spectrum.sum() > 0 else 0.0,
            "band_shares": _band_shares(spectrum, freqs, sr),
            "touches_speech": nearest is not None and nearest <= EVENT_SPEECH_SECONDS,
            "distance_to_speech": nearest,
            "onset_gap": float(following[0] - end) if following.size else None,
        })
    return events


def _phrase_onsets(active: np.ndarray, sample_rate: int) -> np.ndarray:
    """Times (s) where speech activity starts after at least :data:`PHRASE_PAUSE_SECONDS` without."""
    pause = round(PHRASE_PAUSE_SECONDS * sample_rate)
    onsets = []
    last_active = -pause - 1
    for first, last in _runs(active):
        if first - last_active > pause:
            onsets.append(first / sample_rate)
        last_active = last
    return np.asarray(onsets, float)


def _distance(times: np.ndarray, start: float, end: float) -> float | None:
    """Seconds from ``[start, end]`` to the nearest of ``times`` (0 inside); None when there are none."""
    if times.size == 0:
        return None
    outside = np.maximum(start - times, times - end)
    return float(max(0.0, outside.min()))


# ---------------------------------------------------------------------------- all together

def pair_statistics(input: np.ndarray, target: np.ndarray, sample_rate: float,
                    events: bool = False) -> dict[str, Any]:
    """Every statistic of one input/target pair, as plain data (JSON-able).

    Args:
        input, target: aligned audio of one length (:func:`align`), at least 0.4 s.
        sample_rate: in Hz.
        events: also measure the speech side (bandwidth, noise floor, active speech level) and
            :func:`locate_events` (for speech tasks; the target must hold speech).

    Returns:
        ``{"loudness_lufs": {"input", "target", "change"}, "true_peak_dbtp": {...},
        "sample_peak_dbfs": {...}, "crest_factor_db": {...}, "level_range_db": {...},
        "broad_bands_db": {"input", "target", "change"}, "octave_bands_db": {...},
        "nonlinear_share_db": float}``; with ``events``, also ``"bandwidth_hz"``,
        ``"noise_floor_dbfs"`` (each ``{"input", "target"}``), ``"active_speech_level_db"`` and
        ``"activity"`` (of the target) and ``"events"`` (:func:`locate_events`). Every
        ``change`` is target minus input (LU or dB).
    """
    sr = check_rate(sample_rate, "pair_statistics")
    x, y = mono(input, "input", "pair_statistics"), mono(target, "target", "pair_statistics")
    _same_length(x, y, "pair_statistics")

    def both(measure) -> dict[str, float]:
        a, b = measure(x), measure(y)
        return {"input": a, "target": b, "change": b - a}

    def bands(table: Mapping[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
        a, b = band_levels_db(x, sr, table), band_levels_db(y, sr, table)
        return {"input": a, "target": b, "change": {k: b[k] - a[k] for k in a}}

    stats: dict[str, Any] = {
        "loudness_lufs": both(lambda s: loudness_lufs(s, sr)),
        "true_peak_dbtp": both(lambda s: true_peak_dbtp(s, sr)),
        "sample_peak_dbfs": both(lambda s: float(20 * np.log10(np.max(np.abs(s))))),
        "crest_factor_db": both(crest_factor_db),
        "level_range_db": both(lambda s: level_range_db(s, sr)),
        "broad_bands_db": bands(BROAD_BANDS),
        "octave_bands_db": bands(OCTAVE_BANDS),
        "nonlinear_share_db": nonlinear_share_db(x, y, sr),
    }
    if events:
        level = active_speech_level(y, sr)
        stats.update({
            "bandwidth_hz": {"input": bandwidth_hz(x, sr), "target": bandwidth_hz(y, sr)},
            "noise_floor_dbfs": {"input": noise_floor_dbfs(x), "target": noise_floor_dbfs(y)},
            "active_speech_level_db": level.level_db, "activity": level.activity,
            "events": locate_events(x, y, sr),
        })
    return stats


def summarise(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"min", "median", "max", "n"}`` of every number in a set of like records, by the same keys.

    Nested dicts are summarised key by key; lists (the events) and None are left out. For the
    events, summarise :func:`event_summary` records instead.
    """
    records = list(records)
    if not records:
        return {}
    out: dict[str, Any] = {}
    for key, value in records[0].items():
        if isinstance(value, Mapping):
            out[key] = summarise(r[key] for r in records)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values = np.asarray([r[key] for r in records], float)
            out[key] = {"min": float(values.min()), "median": float(np.median(values)),
                        "max": float(values.max()), "n": int(values.size)}
    return out


def event_summary(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The distributions of located events (:func:`locate_events`) that describe a breath set.

    Returns:
        ``{"count", "touching_speech_share", "level_db", "duration", "centroid_hz",
        "share_500_hz_4_khz", "onset_gap"}``: the count, the share of events touching speech,
        and ``{"min", "median", "max", "n"}`` of the rest (onset gaps where an onset follows).
    """
    events = list(events)
    summary: dict[str, Any] = {"count": len(events),
                               "touching_speech_share": float(np.mean([e["touches_speech"] for e in events]))
                               if events else None}
    columns = {"level_db": [e["level_db"] for e in events], "duration": [e["duration"] for e in events],
               "centroid_hz": [e["centroid_hz"] for e in events],
               "share_500_hz_4_khz": [e["band_shares"]["500_hz_4_khz"] for e in events],
               "onset_gap": [e["onset_gap"] for e in events if e["onset_gap"] is not None]}
    for name, values in columns.items():
        values = np.asarray(values, float)
        summary[name] = ({"min": float(values.min()), "median": float(np.median(values)),
                          "max": float(values.max()), "n": int(values.size)} if values.size else None)
    return summary


def set_statistics(pairs: Iterable[tuple[np.ndarray, np.ndarray]], sample_rate: float) -> dict[str, Any]:
    """What describes a music task's pairs (amp, mastering): :func:`pair_statistics` summarised.

    Args:
        pairs: ``(input, target)`` audio, aligned, of one length each.
        sample_rate: in Hz.

    Returns:
        ``{"pairs": n, "loudness_lufs", "true_peak_dbtp"}`` (each ``{"input", "target",
        "change"}``), ``{"crest_factor_db", "level_range_db"}`` (each ``{"change"}``),
        ``"broad_bands_db": {"change": {band: ...}}`` and ``"nonlinear_share_db"``; every number
        as its ``{"min", "median", "max", "n"}`` over the pairs (:func:`summarise`).
    """
    records = []
    for x, y in pairs:
        s = pair_statistics(x, y, sample_rate)
        records.append({"loudness_lufs": s["loudness_lufs"], "true_peak_dbtp": s["true_peak_dbtp"],
                        "crest_factor_db": {"change": s["crest_factor_db"]["change"]},
                        "level_range_db": {"change": s["level_range_db"]["change"]},
                        "broad_bands_db": {"change": s["broad_bands_db"]["change"]},
                        "nonlinear_share_db": s["nonlinear_share_db"]})
    return {"pairs": len(records), **summarise(records)}


def rounded(value: Any, digits: int = 3) -> Any:
    """``value`` with every float rounded to ``digits`` decimals (for constants written in code)."""
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    return round(value, digits) if isinstance(value, float) else value
