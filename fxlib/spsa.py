"""Simultaneous perturbation stochastic approximation (SPSA): the estimator maths only.

For one batch item with upstream gradient ``g = dL/dy``, a direction ``d`` (one entry per
perturbed coordinate, in {-1, 0, +1}) and a step ``eps``::

    x+ = clip(x + eps d),  x- = clip(x - eps d),  applied = x+ - x-
    s  = <g, f(x+) - f(x-)>                       (one number per draw)
    estimate_j = mean over the draws with d_j != 0 of  s / applied_j

Inside the bounds ``applied = 2 eps d`` and this is the textbook two-sided estimate
``s d / (2 eps)``. At a bound the step is cut (``u = 0`` with ``d = +1`` gives ``x- = 0``,
``applied = eps``), so dividing by the perturbation actually applied keeps the estimate
right; its magnitude does not depend on the sign of ``d``, so the cross terms still average
out. ``d = 0`` marks a coordinate that is not perturbed: its estimate is exactly 0.

Three kinds of directions share that formula:

* :func:`rademacher` draws (SPSA, any number K of draws averaged: variance falls as 1/K);
* :func:`basis` directions, one coordinate at a time (exact central finite differences,
  ``2 N`` renders), the check;
* either of them with some coordinates masked to 0 (frozen parameters).

:func:`diagonal_estimate` is the cheaper approximation of ``dL/dx`` for the input signal
that treats the effect as memoryless (each output sample depends on its own input sample
only); it is exact to first order for memoryless effects and biased for effects with memory.

All tensors are float64 on the CPU; perturbations come from a caller's ``torch.Generator``.
"""
from __future__ import annotations

from typing import Callable

import torch


def rademacher(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Independent +1/-1 entries with probability 1/2 each.

    Args:
        shape: the shape to draw, usually ``(B, K, N)``.
        generator: a CPU ``torch.Generator``; the only source of randomness.

    Shape:
        ``shape``, float64.
    """
    bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64)
    return (2 * bits - 1).to(torch.float64)


def basis(batch: int, mask: torch.Tensor) -> torch.Tensor:
    """One direction per coordinate that ``mask`` lets through, for central finite differences.

    Args:
        batch: B, the number of batch items (every item gets the same directions).
        mask: ``(N,)`` bool, True for the coordinates to differentiate.

    Shape:
        ``(B, M, N)`` float64 where M = ``mask.sum()``: row m is the unit vector of the
        m-th coordinate let through.
    """
    eye = torch.eye(mask.numel(), dtype=torch.float64)[mask]
    return eye.expand(batch, -1, -1).clone()


def perturb(x: torch.Tensor, directions: torch.Tensor, eps: float,
            bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two perturbed points of each draw, clipped to ``bounds``, and the step actually applied.

    Args:
        x: the nominal points ``(B, N)`` (inside ``bounds``).
        directions: ``(B, K, N)`` with entries in {-1, 0, +1}.
        eps: the step, > 0, in the units of ``x``.
        bounds: ``(low, high)`` to clip to, or None for none (audio samples).

    Returns:
        ``(x_plus, x_minus, applied)``, each ``(B, K, N)`` float64, ``applied = x_plus - x_minus``.
    """
    if not eps > 0:
        raise ValueError(f"the SPSA step epsilon must be > 0, got {eps!r}")
    x = x.to(torch.float64)[:, None, :]
    x_plus, x_minus = x + eps * directions, x - eps * directions
    if bounds is not None:
        x_plus, x_minus = x_plus.clamp(*bounds), x_minus.clamp(*bounds)
    return x_plus, x_minus, x_plus - x_minus


def estimate(grad_output: torch.Tensor, y_plus: torch.Tensor, y_minus: torch.Tensor, directions: torch.Tensor,
             applied: torch.Tensor) -> torch.Tensor:
    """The two-sided estimate of ``dL/dx``, averaged over the draws.

    Args:
        grad_output: ``g = dL/dy``, ``(B, *Y)``.
        y_plus, y_minus: the renders at ``x_plus`` and ``x_minus``, ``(B, K, *Y)``.
        directions: ``(B, K, N)`` as given to :func:`perturb`.
        applied: ``(B, K, N)`` from :func:`perturb`.

    Shape:
        ``(B, N)`` float64; exactly 0 where every draw has ``d = 0``.
    """
    # y+ and y- are close, so their difference is exact (or nearly) in their own dtype
    diff = (y_plus - y_minus).flatten(2).to(torch.float64)
    g = grad_output.reshape(grad_output.shape[0], -1, 1).to(torch.float64)
    s = torch.bmm(diff, g)[..., 0]  # (B, K)
    touched = directions != 0
    weights = torch.where(touched, 1.0 / torch.where(touched, applied, 1.0), 0.0)
    count = touched.sum(1).clamp(min=1)
    return (s[..., None] * weights).sum(1) / count


def diagonal_estimate(grad_output: torch.Tensor, y_plus: torch.Tensor, y_minus: torch.Tensor,
                      applied: torch.Tensor) -> torch.Tensor:
    """The memoryless (diagonal-Jacobian) approximation of ``dL/dx`` for an input signal.

    Each output sample is taken to depend on its own input sample only:
    ``dL/dx_t = g_t * mean_k (y+_kt - y-_kt) / applied_kt``.

    Args:
        grad_output: ``g = dL/dy``, ``(B, *Y)``.
        y_plus, y_minus: the renders at ``x + eps d`` and ``x - eps d``, ``(B, K, *Y)``.
        applied: ``(B, K, *Y)``, the input perturbation ``2 eps d`` aligned with the output.

    Shape:
        ``(B, *Y)`` float64.
    """
    diff = (y_plus - y_minus).to(torch.float64)
    return grad_output.to(torch.float64) * (diff / applied).mean(1)


def epsilon_schedule(initial: float = 0.01, gamma: float = 0.101, final: float = 0.0) -> Callable[[int], float]:
    """Spall's decaying step ``eps_k = max(initial / (k + 1) ** gamma, final)``.

    Args:
        initial: the step at step 0, in normalised parameter units.
        gamma: the decay exponent (Spall recommends 0.101; 1/6 is the asymptotic optimum).
        final: a floor under the step.

    Returns:
        A callable ``step -> eps`` for ``BlackBoxFx(epsilon=...)``.
    """
    if not initial > 0 or gamma < 0 or final < 0:
        raise ValueError(f"epsilon_schedule needs initial > 0, gamma >= 0 and final >= 0; "
                         f"got {initial}, {gamma}, {final}")

    def schedule(step: int) -> float:
        return max(initial / (step + 1) ** gamma, final)
    return schedule
