"""SPSA maths and BlackBoxFx gradients, checked against torch autograd of the reference twins."""
from __future__ import annotations

import math

import pytest
import torch

from fxlib import reference_fx as ref
from fxlib import spsa
from fxlib.layer import BlackBoxFx

MEMORYLESS = ("gain", "soft_clip")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def problem(batch: int, samples: int, seed: int = 0, effects=ref.EFFECTS) -> tuple[torch.Tensor, ...]:
    """Audio ``(B, 1, T)``, params ``(B, P)`` away from the bounds, and an upstream gradient ``(B, 1, T)``."""
    gen = torch.Generator().manual_seed(seed)
    audio = (0.2 * torch.randn(batch, 1, samples, generator=gen, dtype=torch.float64)).float()
    params = 0.2 + 0.5 * torch.rand(batch, len(effects), generator=gen, dtype=torch.float64)
    weight = torch.randn(batch, 1, samples, generator=gen, dtype=torch.float64)
    return audio, params, weight


def autograd(audio, params, weight, effects=tuple(ref.EFFECTS)):
    """Exact ``dL/daudio`` and ``dL/dparams`` of ``L = <weight, twin(audio, params)>``."""
    a = audio.detach().double().clone().requires_grad_()
    p = params.detach().double().clone().requires_grad_()
    (ref.render_torch(a, p, effects) * weight).sum().backward()
    return a.grad, p.grad


def blackbox(layer, audio, params, weight, want_audio=False):
    """``dL/daudio`` (or None) and ``dL/dparams`` through ``layer``."""
    a = audio.detach().clone().requires_grad_(want_audio)
    p = params.detach().float().clone().requires_grad_()
    (layer(a, p).double() * weight).sum().backward()
    return a.grad, p.grad


# -- the maths ----------------------------------------------------------------------------------
def test_rademacher_is_seeded_and_balanced():
    draw = spsa.rademacher((4, 1000), torch.Generator().manual_seed(3))
    again = spsa.rademacher((4, 1000), torch.Generator().manual_seed(3))
    assert torch.equal(draw, again)
    assert set(draw.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(draw.mean())) < 0.05


def test_perturb_clips_at_the_bounds_and_reports_the_applied_step():
    u = torch.tensor([[0.0, 1.0, 0.5, 0.005]])
    d = torch.tensor([[[1.0, 1.0, -1.0, -1.0]]])
    plus, minus, applied = spsa.perturb(u, d, 0.01)
    assert torch.allclose(plus, torch.tensor([[[0.01, 1.0, 0.49, 0.0]]], dtype=torch.float64))
    assert torch.allclose(minus, torch.tensor([[[0.0, 0.99, 0.51, 0.015]]], dtype=torch.float64))
    assert torch.allclose(applied, torch.tensor([[[0.01, 0.01, -0.02, -0.015]]], dtype=torch.float64))
    with pytest.raises(ValueError, match="epsilon"):
        spsa.perturb(u, d, 0.0)


def test_estimate_with_basis_directions_is_exact_for_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=gen, dtype=torch.float64)  # y = a @ x
    x = torch.full((1, 3), 0.5, dtype=torch.float64)
    g = torch.randn(1, 5, generator=gen, dtype=torch.float64)
    d = spsa.basis(1, torch.tensor([True, False, True]))
    plus, minus, applied = spsa.perturb(x, d, 0.1)
    grad = spsa.estimate(g, plus @ a.T, minus @ a.T, d, applied)
    expected = g @ a
    assert torch.allclose(grad[0, [0, 2]], expected[0, [0, 2]])
    assert grad[0, 1] == 0


def test_epsilon_schedule_decays_to_its_floor():
    schedule = spsa.epsilon_schedule(0.1, gamma=0.5, final=0.02)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(3) == pytest.approx(0.05)
    assert schedule(10_000) == 0.02


# -- BlackBoxFx against autograd ------------------------------------------------------------
def test_forward_matches_the_twin():
    audio, params, _ = problem(3, 1000)
    with BlackBoxFx(ref.chain_spec(), workers=1) as fx:
        out = fx(audio, params.float())
    assert out.shape == audio.shape and out.dtype == torch.float32
    assert torch.allclose(out.double(), ref.render_torch(audio.double(), params.float().double()), atol=1e-6)


def test_spsa_parameter_gradient_matches_autograd():
    audio, params, weight = problem(4, 1024)
    _, exact = autograd(audio, params.float(), weight)
    with BlackBoxFx(ref.chain_spec(), workers=1, draws=256, seed=1) as fx:
        _, estimate = blackbox(fx, audio, params, weight)
    for b in range(4):
        assert cosine(estimate[b], exact[b]) >= 0.95, b


@pytest.mark.parametrize("effects", [tuple(ref.EFFECTS), MEMORYLESS])
def test_spsa_input_gradient_matches_autograd(effects):
    audio, params, weight = problem(2, 16, effects=effects)
    exact, _ = autograd(audio, params.float(), weight, effects)
    with BlackBoxFx(ref.chain_spec(effects), workers=1, input_grad="spsa", input_draws=1000, seed=2) as fx:
        estimate, _ = blackbox(fx, audio, params, weight, want_audio=True)
    assert cosine(estimate, exact) >= 0.95


def test_diagonal_input_gradient_is_exact_for_memoryless_effects_only():
    audio, params, weight = problem(2, 256, effects=MEMORYLESS)
    exact, _ = autograd(audio, params.float(), weight, MEMORYLESS)
    with BlackBoxFx(ref.chain_spec(MEMORYLESS), workers=1, input_grad="diagonal", epsilon=1e-3, seed=3) as fx:
        estimate, _ = blackbox(fx, audio, params, weight, want_audio=True)
    assert cosine(estimate, exact) >= 0.999
    audio, params, weight = problem(2, 256)
    exact, _ = autograd(audio, params.float(), weight)
    with BlackBoxFx(ref.chain_spec(), workers=1, input_grad="diagonal", epsilon=1e-3, draws=8, seed=3) as fx:
        estimate, _ = blackbox(fx, audio, params, weight, want_audio=True)
    assert cosine(estimate, exact) < 0.99  # the one-pole filter has memory: biased


def test_finite_differences_match_autograd():
    audio, params, weight = problem(2, 32)
    exact_audio, exact_params = autograd(audio, params.float(), weight)
    with BlackBoxFx(ref.chain_spec(), workers=1, method="fd", input_grad="spsa", epsilon=1e-3) as fx:
        fd_audio, fd_params = blackbox(fx, audio, params, weight, want_audio=True)
    assert (fd_params.double() - exact_params).abs().max() <= 1e-3 * exact_params.abs().max()
    assert (fd_audio.double() - exact_audio).abs().max() <= 1e-3 * exact_audio.abs().max()


def test_frozen_and_pinned_parameters_get_no_gradient():
    audio, params, weight = problem(2, 256)
    with BlackBoxFx(ref.chain_spec(), workers=1, draws=4, frozen=["lowpass.cutoff_hz"]) as fx:
        _, grad = blackbox(fx, audio, params, weight)
    assert torch.all(grad[:, 1] == 0) and torch.all(grad[:, [0, 2]] != 0)
    spec = ref.chain_spec()
    spec["effects"][1].update(learn=[], fixed={"cutoff_hz": 2000.0})
    with BlackBoxFx(spec, workers=1, method="fd") as fx:
        assert fx.chain.names == ["gain.gain_db", "soft_clip.drive_db"]
        _, grad = blackbox(fx, audio, params[:, [0, 2]], weight)
    assert grad.shape == (2, 2) and torch.isfinite(grad).all()


@pytest.mark.parametrize("bound", [0.0, 1.0])
def test_parameters_at_the_bounds_get_finite_correctly_signed_gradients(bound):
    audio, _, weight = problem(2, 512)
    params = torch.full((2, 3), bound, dtype=torch.float64)
    _, exact = autograd(audio, params, weight)
    for method, draws in (("fd", 1), ("spsa", 256)):
        with BlackBoxFx(ref.chain_spec(), workers=1, method=method, draws=draws) as fx:
            _, grad = blackbox(fx, audio, params, weight)
        assert torch.isfinite(grad).all()
        significant = exact.abs() > 0.05 * exact.abs().max()
        assert torch.equal(torch.sign(grad.double())[significant], torch.sign(exact)[significant]), method


def test_epsilon_schedule_is_called_with_the_step():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.01

    audio, params, weight = problem(1, 64)
    with BlackBoxFx(ref.chain_spec(), workers=1, epsilon=schedule) as fx:
        for _ in range(3):
            blackbox(fx, audio, params, weight)
        with torch.no_grad():
            fx(audio, params.float())
    assert seen == [0, 1, 2] and fx.step == 3


def test_same_seed_same_gradient_and_draws_advance():
    audio, params, weight = problem(2, 128)
    grads = []
    for _ in range(2):
        with BlackBoxFx(ref.chain_spec(), workers=1, seed=7) as fx:
            grads.append(blackbox(fx, audio, params, weight)[1])
            grads.append(blackbox(fx, audio, params, weight)[1])
    assert torch.equal(grads[0], grads[2]) and torch.equal(grads[1], grads[3])
    assert not torch.equal(grads[0], grads[1])


def test_stream_mode_gradient_matches_autograd_on_the_first_frame():
    audio, params, weight = problem(2, 512)
    _, exact = autograd(audio, params.float(), weight)
    with BlackBoxFx(ref.chain_spec(), workers=1, mode="stream", draws=256, seed=4) as fx:
        assert fx.renders_per_item == 1 + 2 * 256
        _, estimate = blackbox(fx, audio, params, weight)
    assert cosine(estimate, exact) >= 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_in_and_gradients_out():
    audio, params, weight = problem(2, 256)
    with BlackBoxFx(ref.chain_spec(), workers=1) as fx:
        p = params.float().cuda().requires_grad_()
        out = fx(audio.cuda(), p)
        (out.double() * weight.cuda()).sum().backward()
    assert out.device.type == "cuda" and p.grad.device.type == "cuda"


# -- an encoder trained through the black box ------------------------------------------------
LEVEL_CHAIN = {"name": "level-and-tone", "sample_rate": 22050, "channels": 1, "effects": [
    {"kind": "builtin", "id": "Gain", "learn": ["gain_db"], "ranges": {"gain_db": {"low": -12, "high": 12}}},
    {"kind": "builtin", "id": "LowpassFilter", "learn": ["cutoff_frequency_hz"],
     "ranges": {"cutoff_frequency_hz": {"low": 200, "high": 8000}}}]}


def level_pairs(batch: int, samples: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """White noise at -30..-6 dBFS, and the parameters that a target was made with.

    The known rule: the gain brings the level to -18 dBFS (u = 1 - level) and the cutoff
    rises with the level (u = level).
    """
    level = torch.rand(batch, generator=gen)
    noise = torch.randn(batch, 1, samples, generator=gen)
    audio = noise / noise.pow(2).mean(-1, keepdim=True).sqrt() * 10 ** ((-30 + 24 * level[:, None, None]) / 20)
    return audio, torch.stack([1 - level, level], 1)


def log_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(256)
    return torch.log(torch.stft(audio[:, 0], 256, 128, window=window, return_complex=True).abs() + 1e-4)


def test_encoder_trained_through_the_black_box_recovers_known_parameters():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    encoder = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2), torch.nn.Sigmoid())

    def estimate(audio):  # a feature of the input: its level in dBFS, roughly centred
        return encoder((20 * torch.log10(audio.pow(2).mean(-1).sqrt()) + 18) / 12)

    held_out, truth = level_pairs(64, 2048, gen)
    with torch.no_grad():
        before = float((estimate(held_out) - truth).abs().mean())
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    with BlackBoxFx(LEVEL_CHAIN, workers=2, draws=2) as fx:
        for _ in range(200):
            audio, params = level_pairs(16, 2048, gen)
            with torch.no_grad():
                target = fx(audio, params)
            loss = (log_spectrogram(fx(audio, estimate(audio))) - log_spectrogram(target)).abs().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        after = float((estimate(held_out) - truth).abs().mean())
    assert after * 5 <= before, (before, after)
    assert math.isfinite(after)
