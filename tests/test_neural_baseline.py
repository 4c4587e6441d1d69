"""The end-to-end neural amp baseline (:mod:`fxlib.baselines.neural`): it learns, it is deterministic,
its cache round-trips, and bad inputs raise clear errors. A tiny model on seconds of synthetic pairs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import SR
from fxlib.baselines import neural
from fxlib.data import DataError, Manifest, PairWriter, save_audio
from fxlib.errors import AudioFormatError, SpecError
from fxlib.metrics import esr

TINY = neural.NeuralAmpSettings(taps=8, features=4, hidden=8, steps=120, batch_size=8, warmup=64, chunk=512, chunks=2,
                                lr=1e-2)


def guitar_like(seconds: float, seed: int) -> np.ndarray:
    """Seeded decaying plucks of random pitch, peak 0.5, float32 ``(1, T)``."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for start in np.arange(0, seconds, 0.25):
        on = t >= start
        x[on] += np.sin(2 * np.pi * rng.uniform(80, 400) * (t[on] - start)) * np.exp(-6 * (t[on] - start))
    return (0.5 * x / np.abs(x).max())[None].astype(np.float32)


def amp_like(x: np.ndarray, delay: int = 0) -> np.ndarray:
    """The synthetic amp: ``tanh(3 x)``, ``delay`` samples late (zeros first)."""
    return np.pad(np.tanh(3 * x), ((0, 0), (delay, 0)))[:, :x.shape[1]].astype(np.float32)


def make_pairs(root, splits=("train",) * 4 + ("test",), seconds=1.0, delay=0):
    """A data set of ``guitar_like`` inputs and ``amp_like`` targets, one pair per entry of ``splits``."""
    writer = PairWriter(root, Manifest("amp", {"kind": "test"}, SR, 1, 0, "pytest", {}))
    for i, split in enumerate(splits):
        pair_id = f"{i:02d}"
        inp, tgt = writer.paths(pair_id, split)
        x = guitar_like(seconds, i)
        save_audio(inp, x, SR)
        save_audio(tgt, amp_like(x, delay), SR)
        writer.add(writer.pair(pair_id, split, seconds))
    writer.finish()
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("amp"))


@pytest.fixture(scope="module")
def trained(data, one_torch_thread):
    return neural.train(data, SR, 1, TINY, seed=3)


def test_it_learns_the_synthetic_amp(trained):
    x = guitar_like(1.0, 99)  # not a training file
    y = trained(x)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    before = esr(x, amp_like(x), SR)
    assert esr(y, amp_like(x), SR) < 0.25 * before
    # convolution (4 x 8 taps + 4 biases), LSTM (4 gates x 8 units x (4 inputs + 8 + 2 biases)), read-out, linear path
    assert trained.parameters == (4 * 8 + 4) + 4 * 8 * (4 + 8 + 2) + (8 + 1) + (8 + 1)


def test_it_learns_a_target_that_lags_the_input(tmp_path, one_torch_thread):
    delay = 5  # within TINY.taps: the convolutions can hold it
    amp = neural.train(make_pairs(tmp_path, delay=delay), SR, 1, TINY, seed=3)
    x = guitar_like(1.0, 99)
    assert esr(amp(x), amp_like(x, delay), SR) < 0.25 * esr(x, amp_like(x, delay), SR)


def test_it_is_causal_and_processes_long_files_in_blocks(trained):
    x = guitar_like(2 * neural.BLOCK / SR + 0.1, 5)
    y = trained(x)
    cut = neural.BLOCK + 1000
    np.testing.assert_allclose(trained(x[:, :cut]), y[:, :cut], atol=1e-6)  # the future does not matter
    with torch.no_grad():  # blocks carrying the state give one pass's output
        whole, _ = trained.net(torch.nn.functional.pad(torch.from_numpy(x), (TINY.taps - 1, 0)))
    np.testing.assert_allclose(y, whole.numpy(), atol=1e-5)


def test_each_channel_is_processed_on_its_own(data, one_torch_thread):
    stereo = neural.train(data, SR, 2, TINY, seed=3)
    x = np.concatenate([guitar_like(0.5, 7), guitar_like(0.5, 8)])
    y = stereo(x)
    np.testing.assert_allclose(y[1], stereo(x[[1, 1]])[0], atol=1e-6)


def test_the_same_seed_gives_the_same_weights(data, trained, one_torch_thread):
    again = neural.train(data, SR, 1, TINY, seed=3)
    for (name, a), b in zip(trained.net.state_dict().items(), again.net.state_dict().values()):
        assert torch.equal(a, b), name
    other = neural.train(data, SR, 1, TINY, seed=4)
    assert not torch.equal(trained.net.out.weight, other.net.out.weight)


def test_cache_round_trip(data, trained, tmp_path, one_torch_thread):
    neural.save(trained, tmp_path)
    weights, record = neural.cache_paths(tmp_path)
    assert json.loads(record.read_text())["settings"] == json.loads(json.dumps(trained.record["settings"]))
    loaded = neural.fitted(data, SR, 1, tmp_path, TINY, seed=3)  # the cache matches: no training
    assert loaded.record["wall_s"] == trained.record["wall_s"]
    x = guitar_like(0.5, 11)
    np.testing.assert_array_equal(loaded(x), trained(x))
    stamp = weights.stat().st_mtime_ns
    retrained = neural.fitted(data, SR, 1, tmp_path, TINY, seed=4)  # another request: trained again
    assert retrained.record["seed"] == 4 and weights.stat().st_mtime_ns != stamp
    assert neural.load(tmp_path).record["seed"] == 4


def test_a_damaged_cache_is_named(data, trained, tmp_path):
    neural.save(trained, tmp_path)
    weights, record = neural.cache_paths(tmp_path)
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(neural.CacheError, match="neural-amp.pt"):
        neural.load(tmp_path)
    record.write_text("{")
    with pytest.raises(neural.CacheError, match="neural-amp.json"):
        neural.fitted(data, SR, 1, tmp_path, TINY, seed=3)
    with pytest.raises(FileNotFoundError, match="no cached"):
        neural.load(tmp_path / "empty")


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 100), np.float32), r"shape \(1, T\)"),
    (np.zeros((1, 0), np.float32), "empty"),
    (np.zeros((1, 100), np.int16), "float"),
    (np.full((1, 100), np.nan, np.float32), "NaN"),
])
def test_bad_audio_is_refused(trained, bad, match):
    with pytest.raises(AudioFormatError, match=match):
        trained(bad)


def test_bad_requests_are_refused(data, tmp_path):
    with pytest.raises(SpecError, match="sample_rate"):
        neural.train(data, 22050.5, 1, TINY)
    with pytest.raises(SpecError, match="sample_rate"):
        neural.fitted(data, 0, 1, None, TINY)
    with pytest.raises(SpecError, match="channels"):
        neural.train(data, SR, 3, TINY)
    with pytest.raises(SpecError, match="steps"):
        neural.NeuralAmpSettings(steps=5, chunks=2)
    with pytest.raises(SpecError, match="lr"):
        neural.NeuralAmpSettings(lr=0)
    with pytest.raises(DataError, match="no pairs in split 'train'"):
        neural.train(make_pairs(tmp_path / "no-train", splits=("test",)), SR, 1, TINY)
    with pytest.raises(DataError, match="as long as one excerpt"):
        neural.train(make_pairs(tmp_path / "short", seconds=0.04), SR, 1, TINY)
