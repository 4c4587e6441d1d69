"""Gradient checks on the reference effects: SPSA and finite differences against autodiff.

The numpy effects of :mod:`fxlib.reference_fx` run as black boxes through
:class:`~fxlib.layer.BlackBoxFx` (SPSA or central finite differences), and their torch twins give
the exact gradient by autograd, so the estimators can be measured: :func:`black_box_gradient`
against :func:`autodiff_gradient` on :func:`reference_problem`, and :func:`spsa_error` over the
number of draws K and the step epsilon. On a real plugin chain (:func:`chain_problem`) there is
no exact gradient: :func:`spsa_cosine` measures SPSA against central finite differences, the
direction that matters to a gradient step. The tour notebook and the amp notebook show them.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .chain import FxChain
from .layer import BlackBoxFx
from .presets import chain_spec as preset_spec
from .reference_fx import EFFECTS, chain_spec as reference_spec, demo_phrase, render_torch

REFERENCE_EFFECTS = ("gain", "lowpass", "soft_clip")


def reference_problem(seconds: float = 0.25, sample_rate: int = 22050, seed: int = 0) -> dict[str, Any]:
    """A small regression problem through the reference chain (gain, one-pole low-pass, soft clip).

    The target is seeded noise through the chain at ``target`` parameters; the gradients are
    taken at ``u``, away from the target. The loss is the mean squared error.

    Returns:
        ``{"audio": (1, 1, T) float64 tensor, "target": (1, 1, T), "u": (1, 3), "u_target": (1, 3),
        "sample_rate": Hz, "names": [...], "params": [Param, ...]}``.
    """
    rng = np.random.default_rng(seed)
    audio = torch.from_numpy(0.3 * rng.standard_normal((1, 1, int(seconds * sample_rate))))
    u_target = torch.tensor([[0.6, 0.4, 0.5]], dtype=torch.float64)
    u = torch.tensor([[0.45, 0.6, 0.3]], dtype=torch.float64)
    target = render_torch(audio, u_target, REFERENCE_EFFECTS, sample_rate)
    return {"audio": audio, "target": target, "u": u, "u_target": u_target, "sample_rate": sample_rate,
            "names": [f"{n}.{EFFECTS[n][1].name}" for n in REFERENCE_EFFECTS],
            "params": [EFFECTS[n][1] for n in REFERENCE_EFFECTS]}


def chain_problem(chain: str = "amp-builtin", seconds: float = 0.5, seed: int = 0,
                  spread: float = 0.25) -> dict[str, Any]:
    """The regression problem of :func:`reference_problem` through a preset chain of real plugins.

    The audio is a seeded plucked-string phrase (:func:`fxlib.reference_fx.demo_phrase`) at the
    chain's rate, on each of its channels; ``u_target`` and ``u`` are the chain's defaults moved
    by seeded offsets of up to ``spread`` (clipped to [0.05, 0.95]); the target is the chain's
    render at ``u_target``. The loss is the mean squared error.

    Returns:
        :func:`reference_problem`'s keys, and ``"spec"``: the chain's spec.
    """
    spec = preset_spec(chain)
    rng = np.random.default_rng(seed)
    with FxChain.from_spec(spec) as fx:
        default, sr, channels, names = fx.default_unit(), int(fx.sample_rate), fx.channels, list(fx.names)
        params = list(fx.params)
        phrase = np.repeat(demo_phrase(seconds, sr, seed, peak_dbfs=-10.0), channels, axis=0)
        moved = [np.clip(default + rng.uniform(-spread, spread, default.shape), 0.05, 0.95) for _ in range(2)]
        target = fx.process(phrase, moved[0])
    return {"audio": torch.from_numpy(phrase.astype(np.float64))[None],
            "target": torch.from_numpy(target.astype(np.float64))[None],
            "u": torch.from_numpy(moved[1])[None], "u_target": torch.from_numpy(moved[0])[None],
            "sample_rate": sr, "names": names, "params": params, "spec": spec}


def autodiff_gradient(problem: dict[str, Any]) -> np.ndarray:
    """The exact gradient ``dL/du`` ``(P,)`` by torch autograd through the torch twins."""
    u = problem["u"].clone().requires_grad_(True)
    out = render_torch(problem["audio"], u, REFERENCE_EFFECTS, problem["sample_rate"])
    torch.mean((out - problem["target"]) ** 2).backward()
    return u.grad[0].numpy()


def black_box_gradient(problem: dict[str, Any], method: str = "spsa", draws: int = 1, epsilon: float = 0.01,
                       seed: int = 0, layer: BlackBoxFx | None = None) -> np.ndarray:
    """``dL/du`` ``(P,)`` through :class:`~fxlib.layer.BlackBoxFx` rendering the numpy effects.

    Args:
        method: "spsa" (``draws`` Rademacher draws) or "fd" (central finite differences).
        epsilon: the perturbation step in normalised units.
        layer: a layer to reuse (its own method, draws and epsilon apply); else one is built.
    """
    own = layer is None
    if own:
        layer = BlackBoxFx(_spec(problem), workers=1, mode="clip", method=method, draws=draws, epsilon=epsilon, seed=seed,
                           inline=True)
    try:
        u = problem["u"].clone().requires_grad_(True)
        out = layer(problem["audio"].float(), u)
        torch.mean((out.double() - problem["target"]) ** 2).backward()
        return u.grad[0].numpy()
    finally:
        if own:
            layer.close()


def _spec(problem: dict[str, Any]) -> dict:
    """The chain a problem renders through: its own spec, or the reference effects."""
    return problem.get("spec") or reference_spec(REFERENCE_EFFECTS, problem["sample_rate"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of the angle between two gradient vectors (1: the same direction)."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def spsa_cosine(problem: dict[str, Any], draws: Sequence[int] = (1, 2, 4, 8, 16, 32),
                epsilons: Sequence[float] = (0.001, 0.01, 0.1), trials: int = 5,
                fd_epsilon: float = 0.01) -> np.ndarray:
    """Mean cosine between SPSA estimates and central finite differences (step ``fd_epsilon``).

    For chains of real plugins, where no exact gradient exists (:func:`chain_problem`).

    Returns:
        ``(len(epsilons), len(draws))``, each the mean over ``trials`` estimates.
    """
    reference = black_box_gradient(problem, method="fd", epsilon=fd_epsilon)
    return _sweep(problem, draws, epsilons, trials, lambda estimate: cosine(estimate, reference))


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    """``|estimate - exact| / |exact|`` (Euclidean norms)."""
    return float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact))


def spsa_error(problem: dict[str, Any], draws: Sequence[int] = (1, 2, 4, 8, 16, 32),
               epsilons: Sequence[float] = (0.001, 0.01, 0.1), trials: int = 5) -> np.ndarray:
    """Mean relative error of SPSA against autodiff over ``trials`` estimates.

    Returns:
        ``(len(epsilons), len(draws))``.
    """
    exact = autodiff_gradient(problem)
    return _sweep(problem, draws, epsilons, trials, lambda estimate: relative_error(estimate, exact))


def _sweep(problem: dict[str, Any], draws: Sequence[int], epsilons: Sequence[float], trials: int,
           score: Callable[[np.ndarray], float]) -> np.ndarray:
    """The mean ``score`` of ``trials`` SPSA estimates per (epsilon, K): ``(len(epsilons), len(draws))``."""
    spec = _spec(problem)
    out = np.zeros((len(epsilons), len(draws)))
    for i, eps in enumerate(epsilons):
        for j, k in enumerate(draws):
            with BlackBoxFx(spec, workers=1, mode="clip", draws=k, epsilon=eps, seed=1000 * i + j,
                            inline=True) as layer:
                out[i, j] = np.mean([score(black_box_gradient(problem, layer=layer)) for _ in range(trials)])
    return out
