"""Whole-file inference (DeepAFx.predict, process, render_curve): the log-mel computed once per
file, the hops batched and BatchNorm folded give what the encoder gives on each hop's own
context, within float rounding."""
import numpy as np
import pytest
import torch

from conftest import SR, noise
from fxlib import FxChain
from fxlib.model import DeepAFx, render_curve

CHAIN = {"sample_rate": SR, "channels": 1, "effects": [
    {"name": "comp", "kind": "builtin", "id": "Compressor", "learn": ["threshold_db", "ratio"]},
    {"name": "eq", "kind": "builtin", "id": "LadderFilter", "learn": ["mode", "cutoff_hz"]}]}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(pooling: str = "global", inference: str = "hop", context: int = 8192) -> DeepAFx:
    torch.manual_seed(0)
    return DeepAFx(CHAIN, {"backbone": "small", "pooling": pooling, "sample_rate": SR}, context, 1024, inference).eval()


def per_hop(m: DeepAFx, audio: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """What predict computed before: the encoder on each hop's own context, in batches."""
    contexts = torch.from_numpy(m.contexts(audio))
    with torch.no_grad():
        return torch.cat([m(contexts[i:i + batch_size]) for i in range(0, len(contexts), batch_size)]).double().numpy()


@pytest.mark.parametrize("pooling, samples", [("global", 3 * SR + 77), ("centre-bands", 40 * 1024)])
def test_predict_equals_the_encoder_on_each_hops_context_within_float_rounding(pooling, samples):
    m = model(pooling)
    for bn in (b for b in m.encoder.modules() if isinstance(b, torch.nn.BatchNorm2d)):  # trained-like statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    audio = noise(samples / SR, dbfs=-12)
    u = m.predict(audio)
    assert u.shape == (-(-samples // 1024), m.num_params)
    expected = per_hop(m, audio)
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(m.predict(audio, batch_size=5), expected, rtol=0, atol=1e-6)


def test_a_file_shorter_than_a_context_and_one_hop_long():
    m = model()
    for samples in (1024, 300):
        audio = noise(samples / SR, dbfs=-12)
        np.testing.assert_allclose(m.predict(audio), per_hop(m, audio), rtol=0, atol=1e-6)


def test_process_renders_the_predicted_parameters_hop_by_hop_or_their_mean():
    audio = noise(2.0, dbfs=-12)
    for inference in ("hop", "song"):
        m = model("centre", inference)
        out, u = m.process(audio)
        hops = per_hop(m, audio)
        expected = hops if inference == "hop" else np.repeat(hops.mean(axis=0, keepdims=True), len(hops), axis=0)
        np.testing.assert_allclose(u, expected, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out, m.render(audio, u))


def test_render_curve_maps_every_hop_at_once_as_the_chain_maps_each():
    audio = noise(1.0, dbfs=-12)
    n = -(-audio.shape[1] // 1024)
    u = np.random.default_rng(0).random((n, 4))
    with FxChain.from_spec(CHAIN) as chain:
        padded = np.pad(audio, ((0, 0), (0, n * 1024 - audio.shape[1])))
        expected = np.concatenate([chain.stream(padded[:, i * 1024:(i + 1) * 1024], u[i]) for i in range(n)], axis=1)
    np.testing.assert_array_equal(render_curve(CHAIN, audio, u, 1024), expected[:, :audio.shape[1]])
