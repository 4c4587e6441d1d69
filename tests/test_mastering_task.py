"""The mastering task: its configuration, its metrics, and the matchering baseline."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, noise
from fxlib.baselines import matchering
from fxlib.data import DataError, Manifest, PairWriter, save_audio
from fxlib.errors import AudioFormatError, FxError
from fxlib.metrics import loudness_lufs
from fxlib.rundir import RunDir
from fxlib.tasks import get_task

SR = 22050


def music_like(seconds: float, seed: int, channels: int = 2, tilt: float = 1.0, dbfs: float = -30.0) -> np.ndarray:
    """Seeded noise bursts with a spectral tilt (``tilt`` > 1: darker), float32 ``(channels, T)``."""
    x = noise(seconds, SR, channels, dbfs, seed).astype(np.float64)
    spectrum = np.fft.rfft(x, axis=1)
    freqs = np.fft.rfftfreq(x.shape[1], 1 / SR)
    spectrum /= np.maximum(freqs, 50.0) ** (0.5 * tilt) / 50 ** (0.5 * tilt)
    x = np.fft.irfft(spectrum, n=x.shape[1], axis=1)
    envelope = 0.3 + 0.7 * (np.sin(2 * np.pi * 2 * np.arange(x.shape[1]) / SR) > 0)  # 2 Hz bursts
    return (x * envelope * 10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def test_task_configuration():
    task = get_task("mastering")
    assert task.chains == ("mastering-lv2", "mastering-vst3", "mastering-builtin")
    assert task.sample_rate == 22050 and task.channels == 1
    assert {"smoke", "quick", "paper"} <= set(task.profiles)
    assert task.metrics is not None and task.baselines is not None


def test_metrics_read_level_and_peak_errors():
    metrics = get_task("mastering").metrics
    y = music_like(2.0, 0, channels=1, dbfs=-20.0)
    same = metrics(y, y, y, None, SR)
    assert same == {"loudness_error_lufs": pytest.approx(0, abs=1e-9), "true_peak_error_db": pytest.approx(0, abs=1e-9)}
    half = metrics(0.5 * y, y, y, None, SR)  # -6.02 dB: both errors read it, unsigned
    assert half["loudness_error_lufs"] == pytest.approx(6.02, abs=0.01)
    assert half["true_peak_error_db"] == pytest.approx(6.02, abs=0.01)
    assert metrics(2 * y, y, y, None, SR)["loudness_error_lufs"] == pytest.approx(6.02, abs=0.01)


@pytest.mark.parametrize("channels", [1, 2])
def test_matchering_masters_towards_the_reference(channels):
    track = music_like(3.0, 1, channels, tilt=2.0, dbfs=-32.0)  # quiet and dark
    reference = music_like(4.0, 2, 2, tilt=1.0, dbfs=-14.0)  # loud and brighter
    out = matchering.master(track, SR, reference, SR)
    assert out.shape == track.shape and out.dtype == np.float32 and np.isfinite(out).all()
    gap_before = abs(loudness_lufs(track, SR) - loudness_lufs(reference, SR))
    assert abs(loudness_lufs(out, SR) - loudness_lufs(reference, SR)) < gap_before / 3
    assert np.abs(out).max() <= 1.0


def test_matchering_refuses_bad_inputs():
    ok = music_like(1.0, 3)
    with pytest.raises(AudioFormatError, match="audio lasts 0.100 s"):
        matchering.master(ok[:, :2205], SR, ok, SR)
    with pytest.raises(AudioFormatError, match="reference must be .* 1 or 2 channels"):
        matchering.master(ok, SR, np.zeros((3, SR), np.float32), SR)
    with pytest.raises(AudioFormatError, match="NaN"):
        matchering.master(np.full_like(ok, np.nan), SR, ok, SR)
    with pytest.raises(FxError, match="matchering failed: .*same"):
        matchering.master(ok, SR, ok, SR)


def write_dataset(root, levels: dict[str, tuple[str, float]]) -> None:
    """A paired data set with one 1 s pair per id: ``{id: (split, target level in dBFS)}``."""
    writer = PairWriter(root, Manifest("mastering", {"kind": "test"}, SR, 2, 0, "pytest", {}))
    for i, (pair_id, (split, dbfs)) in enumerate(levels.items()):
        inp, tgt = writer.paths(pair_id, split)
        save_audio(inp, music_like(1.0, 10 + i, dbfs=-30.0), SR)
        save_audio(tgt, music_like(1.0, 20 + i, dbfs=dbfs), SR)
        writer.add(writer.pair(pair_id, split, 1.0))
    writer.finish()


def test_the_reference_is_the_median_training_master(tmp_path):
    write_dataset(tmp_path, {"a": ("train", -10.0), "b": ("train", -20.0), "c": ("train", -14.0),
                             "d": ("test", -15.0), "e": ("valid", -14.5)})
    pair, audio = matchering.pick_reference(tmp_path, SR)
    assert pair.id == "c" and pair.split == "train" and audio.shape == (2, SR)
    systems = get_task("mastering").baselines(tmp_path, SR, 1, get_task("mastering").profile("smoke"), None)
    x = music_like(1.0, 5, channels=1)
    assert systems["matchering"](x).shape == x.shape
    write_dataset(tmp_path / "none", {"a": ("test", -10.0), "b": ("valid", -10.0), "c": ("valid", -10.0)})
    with pytest.raises(DataError, match="no training target"):
        matchering.pick_reference(tmp_path / "none", SR)


@pytest.mark.slow
def test_smoke_training_writes_the_table(tmp_path):
    """`fxlib train --task mastering --profile smoke` end to end: the results hold every system and metric."""
    done = subprocess.run([sys.executable, "-m", "fxlib", "train", "--task", "mastering", "--profile", "smoke",
                           "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                           "--results", str(tmp_path / "results"), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "results" / "mastering.json").read_text())
    assert set(results["systems"]) == {"input", "chain-default", "chain-best-fixed", "deepafx", "deepafx-hop",
                                       "matchering"}
    for row in results["systems"].values():
        assert {"loudness_error_lufs", "true_peak_error_db", "spectral_balance_distance",
                "loudness_difference_lufs"} <= set(row)
    assert "matchering" in (tmp_path / "results" / "mastering.md").read_text()
    run = RunDir(tmp_path / "run")  # no shipped profile trims the level: the chain's limiter sets it
    assert not run.trim_path.exists() and run.model().trim_db == 0.0 and run.fixed().trim_db == 0.0
