"""The breath task: its metrics on signals with known answers, the energy-gate baseline, the task hooks."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import noise, rms_db, sine

from fxlib.baselines.gate import EnergyGate, fit_threshold
from fxlib.data.paired import Pair
from fxlib.errors import AudioFormatError, ParameterError
from fxlib.metrics import event_attenuation_db, event_mask, pesq, si_sdr, stoi
from fxlib.tasks import get_task

SR = 22050
EVENTS = [{"kind": "breath", "start": 0.5, "end": 1.0, "level_dbfs": -26.0},
          {"kind": "pop", "start": 1.5, "end": 1.52, "level_dbfs": -20.0},
          {"kind": "breath", "start": 2.0, "end": 2.25, "level_dbfs": -30.0}]


# -- metrics ----------------------------------------------------------------------------------------
def test_event_mask_selects_the_labelled_samples():
    mask = event_mask(EVENTS, 3 * SR, SR)
    assert mask.sum() == round(0.5 * SR) + round(0.02 * SR) + round(0.25 * SR)
    assert mask[round(0.5 * SR)] and not mask[round(0.5 * SR) - 1] and not mask[SR]
    assert event_mask(EVENTS, 3 * SR, SR, kinds=["pop"]).sum() == round(0.02 * SR)
    with pytest.raises(AudioFormatError, match="event #0 .*lacks"):
        event_mask([{"kind": "breath", "start": 0.1}], SR, SR)
    with pytest.raises(AudioFormatError, match="start 0.5 s and end 0.2 s"):
        event_mask([{"kind": "pop", "start": 0.5, "end": 0.2}], SR, SR)


def test_event_attenuation_per_kind_and_overall():
    x = noise(3.0, dbfs=-30.0)
    y = x.copy()
    breaths, pops = event_mask(EVENTS, y.shape[1], SR, ["breath"]), event_mask(EVENTS, y.shape[1], SR, ["pop"])
    y[:, breaths] *= 0.1  # -20 dB
    y[:, pops] *= 0.01  # -40 dB
    y[:, ~(breaths | pops)] *= 3.0  # outside the events: ignored
    result = event_attenuation_db(y, x, EVENTS, SR)
    assert result["breath"] == pytest.approx(20.0, abs=1e-6) and result["pop"] == pytest.approx(40.0, abs=1e-6)
    assert 20.0 < result["all"] < 40.0
    assert event_attenuation_db(x, x, EVENTS, SR) == {"breath": 0.0, "pop": 0.0, "all": 0.0}
    assert event_attenuation_db(2 * x, x, EVENTS, SR)["all"] == pytest.approx(-6.0206, abs=1e-3)
    assert event_attenuation_db(y, x, [], SR) == {}
    with pytest.raises(AudioFormatError, match="silent inside the pop events"):
        event_attenuation_db(x, np.zeros_like(x), EVENTS[1:2], SR)


def test_si_sdr_known_values_and_mask():
    t = sine(440.0, -10.0, 1.0)
    e = noise(1.0, dbfs=-30.0, seed=3).astype(np.float64)
    e -= (e @ t[0]) / (t[0] @ t[0]) * t  # orthogonal to the target: SI-SDR = 10 log10 |t|^2 / |e|^2
    expected = 10 * np.log10(np.sum(t.astype(np.float64) ** 2) / np.sum(e ** 2))
    assert si_sdr(t + e, t, SR) == pytest.approx(expected, abs=1e-3)
    assert si_sdr(0.3 * (t + e), t, SR) == pytest.approx(expected, abs=1e-3)  # scale-invariant
    assert si_sdr(2 * t, t, SR) == math.inf
    damaged = t.copy()
    damaged[:, :SR // 2] = 0.0
    mask = np.arange(SR) >= SR // 2
    assert si_sdr(damaged, t, SR, mask) == math.inf and si_sdr(damaged, t, SR) < 5
    with pytest.raises(AudioFormatError, match="mask must be bool"):
        si_sdr(t, t, SR, np.ones(10, bool))
    with pytest.raises(AudioFormatError, match="selects no samples"):
        si_sdr(t, t, SR, np.zeros(SR, bool))


def test_stoi_orders_clean_and_noisy_speech_like_signals():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    speechy = (np.sin(2 * np.pi * 3 * t) > 0) * (sine(300.0, -12.0, 2.0) + noise(2.0, dbfs=-30.0, seed=1))
    assert stoi(speechy, speechy, SR) == pytest.approx(1.0, abs=1e-3)
    noisy = speechy + 0.3 * rng.standard_normal(speechy.shape).astype(np.float32)
    assert stoi(noisy, speechy, SR) < 0.9
    with pytest.raises(AudioFormatError, match="at least"):
        stoi(speechy[:, :1000], speechy[:, :1000], SR)


def test_pesq_orders_clean_and_noisy_speech_like_signals_and_takes_a_mask():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    speechy = ((np.sin(2 * np.pi * 3 * t) > 0) * (sine(300.0, -12.0, 3.0) + noise(3.0, dbfs=-30.0, seed=1))
               ).astype(np.float32)
    assert pesq(speechy, speechy, SR) > 4.5  # 4.64 is the top of the wide-band scale
    noisy = speechy + 0.05 * rng.standard_normal(speechy.shape).astype(np.float32)
    assert pesq(noisy, speechy, SR) < 3.0
    damaged = speechy.copy()
    damaged[:, :SR] = 0.0
    mask = np.arange(speechy.shape[1]) >= SR
    assert pesq(damaged, speechy, SR, mask) > 4.5 > pesq(damaged, speechy, SR)
    with pytest.raises(AudioFormatError, match="at least"):
        pesq(speechy[:, :1000], speechy[:, :1000], SR)
    with pytest.raises(AudioFormatError, match="silent"):
        pesq(speechy, np.zeros_like(speechy), SR)


# -- the energy gate --------------------------------------------------------------------------------
def bursts() -> tuple[np.ndarray, np.ndarray]:
    """Speech-like bursts (a -10 dBFS sine, 0.4 s on, 0.4 s off) with -40 dBFS noise 'events' between."""
    x = sine(500.0, -10.0, 3.2)
    on = (np.arange(x.shape[1]) // round(0.4 * SR)) % 2 == 0
    target = x * on
    events = noise(3.2, dbfs=-40.0, seed=2) * ~on
    return target + events, target


def test_gate_passes_loud_and_floors_quiet_parts():
    x, target = bursts()
    gate = EnergyGate(threshold_db=-30.0, floor_db=-40.0, attack_ms=1.0, hold_ms=20.0, release_ms=10.0)
    y = gate(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    loud, quiet = slice(round(0.1 * SR), round(0.3 * SR)), slice(round(0.55 * SR), round(0.75 * SR))
    np.testing.assert_allclose(y[:, loud], x[:, loud], atol=1e-6)
    assert rms_db(y[:, quiet]) - rms_db(x[:, quiet]) == pytest.approx(-40.0, abs=0.5)
    assert np.all(EnergyGate(threshold_db=-60.0)(x, SR) == x)  # everything above threshold: untouched


def test_gate_hold_keeps_it_open():
    x = np.zeros((1, SR), np.float32)
    x[:, :round(0.1 * SR)] = 0.5
    x[:, round(0.1 * SR):] = 1e-3  # -60 dBFS tail
    at = round(0.14 * SR)  # 40 ms after the loud part
    short = EnergyGate(threshold_db=-30.0, hold_ms=0.0, release_ms=1.0).gain_db(x, SR)
    held = EnergyGate(threshold_db=-30.0, hold_ms=100.0, release_ms=1.0).gain_db(x, SR)
    assert short[0, at] < -30 and held[0, at] == pytest.approx(0.0, abs=1e-6)


def test_gate_bad_settings_and_audio():
    with pytest.raises(ParameterError, match="threshold_db=5.*attack_ms=0"):
        EnergyGate(threshold_db=5.0, attack_ms=0.0)
    with pytest.raises(AudioFormatError, match="float \\(C, T\\)"):
        EnergyGate()(np.zeros(100, np.float32), SR)
    with pytest.raises(AudioFormatError, match="sample_rate"):
        EnergyGate()(np.zeros((1, 100), np.float32), 0)


def test_fit_threshold_lands_between_events_and_speech():
    x, target = bursts()
    gate = fit_threshold([(x, target)], SR)
    assert -40.0 < gate.threshold_db < -10.0
    assert rms_db(gate(x, SR) - target) < rms_db(x - target) - 6  # most of the events are gone
    with pytest.raises(ParameterError, match="no training pairs"):
        fit_threshold([], SR)
    with pytest.raises(ParameterError, match="must match, differ"):
        fit_threshold([(target, target)], SR)


# -- the task ---------------------------------------------------------------------------------------
def test_task_configuration():
    task = get_task("breath")
    assert task.chains == ("breath-lv2", "breath-builtin") and task.sample_rate == 22050 and task.channels == 1
    assert set(task.profiles) == {"smoke", "quick", "paper"}
    assert "event_attenuation_db" in task.higher_is_better and "speech_gain_db" not in task.higher_is_better


def test_task_metrics_labelled_and_unlabelled():
    task = get_task("breath")
    x = noise(3.0, dbfs=-30.0)
    target = x * ~event_mask(EVENTS, x.shape[1], SR)
    labelled = Pair("p", "test", "i.wav", "t.wav", 3.0, info={"events": EVENTS})
    row = task.metrics(target, target, x, labelled, SR)
    assert row["event_attenuation_db"] == math.inf and row["speech_gain_db"] == pytest.approx(0.0, abs=1e-9)
    assert row["speech_si_sdr_db"] == math.inf and row["speech_stoi"] == pytest.approx(1.0, abs=1e-3)
    assert row["speech_pesq"] > 4.5
    row = task.metrics(0.5 * x, target, x, labelled, SR)
    assert row["breath_attenuation_db"] == pytest.approx(6.0206, abs=1e-3)
    assert row["speech_gain_db"] == pytest.approx(-6.0206, abs=1e-3)
    unlabelled = task.metrics(x, x, x, Pair("d", "test", "i.wav", "t.wav", 3.0, info={"speaker": "f1"}), SR)
    assert set(unlabelled) == set(row)
    assert all(math.isnan(unlabelled[k]) for k in ("event_attenuation_db", "breath_attenuation_db",
                                                   "pop_attenuation_db", "speech_gain_db"))
    assert unlabelled["speech_si_sdr_db"] == math.inf  # over the whole file


@pytest.mark.slow
def test_smoke_training_writes_the_table(tmp_path):  # builds the smoke profile's 50 s of data itself
    cmd = [sys.executable, "-m", "fxlib.cli", "train", "--task", "breath", "--profile", "smoke", "--data",
           str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
           "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    results = json.loads((tmp_path / "results" / "breath.json").read_text())
    assert set(results["systems"]) == {"input", "chain-default", "chain-best-fixed", "deepafx", "energy-gate"}
    assert results["systems"]["input"]["event_attenuation_db"] == 0.0
    assert "speech_stoi" in (tmp_path / "results" / "breath.md").read_text()
