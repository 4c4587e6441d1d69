"""BlackBoxFx: a chain of black-box audio effects as a PyTorch layer, with SPSA gradients.

The forward pass renders the chain (on the :class:`~fxlib.engine.Engine`'s worker
processes); the backward pass estimates ``dL/dparams`` (and, on request, ``dL/daudio``) with
:mod:`fxlib.spsa` from renders at perturbed points. Per batch item and step:

============================  ===============================================================
render                        what
============================  ===============================================================
nominal                       ``f(x, u)``, the layer's output
K parameter pairs             ``f(x, clip(u ± eps d_k))``, ``d_k`` Rademacher over the free
                              parameters (``method="fd"``: one pair per free parameter)
K_x input pairs (optional)    ``f(x ± eps_x e_k, u)``, ``e_k`` Rademacher over the samples
============================  ===============================================================

so ``1 + 2 K (+ 2 K_x)`` renders an item. Perturbations are drawn in this process from a
generator seeded with ``seed``, so results do not depend on the engine's workers.

Clip mode (``mode="clip"``)
    Every render starts from a reset (with optional pre-roll). The forward pass returns as
    soon as the nominal outputs are rendered; the perturbed renders (drawn in the forward
    pass) are queued on the workers behind the nominal ones and collected by the backward
    pass, so one round trip serves both (inline, the backward pass renders them). Only the
    inputs that need a gradient get perturbed renders; without gradients (``torch.no_grad``,
    inputs that do not require grad) only the nominal outputs are rendered.

Stream mode (``mode="stream"``), as in the paper
    Batch slot b is a stream: consecutive calls feed it consecutive frames, and its plugin state
    carries over. Each slot owns ``1 + 2 K (+ 2 K_x)`` chain instances (nominal, and the + and -
    instance of every pair), each pinned to one worker. Every call advances *every* instance of
    the slot by exactly one frame: the nominal one at ``u``, the pair instances at their
    perturbed points, whose outputs are kept for the backward pass. The forward pass returns
    once the nominal renders are done; when a gradient is wanted, the perturbed ones go on in
    the workers while the loss is computed, and the backward pass (or, at the latest, the next
    call or reset) waits for them. So the +/- instances have seen the same frames as the nominal
    one, each rendered at the perturbation of its own step, whether or not (and whenever)
    backward runs; a call without gradients advances them at the nominal point. Their state
    therefore stays within O(eps) of the nominal state, and the difference from earlier steps'
    perturbations, independent of this step's draw, adds zero-mean noise, not bias. The output
    lags the input by ``latency`` samples (no look-ahead exists in a stream). Call
    :meth:`BlackBoxFx.reset` at stream boundaries; batch slot b always continues slot b.

Boundaries: parameters are clipped to [0, 1] and each estimate divides by the perturbation
actually applied, so parameters at 0 or 1 get finite, correctly signed gradients.

Pinned parameters (the chain's ``fixed`` values) are not in the parameter vector at all;
``frozen`` names learned parameters that stay in the vector but get exactly zero gradient
(they are not perturbed).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import spsa
from .chain import FxChain
from .engine import Engine, EngineError

INPUT_GRADS = (None, "spsa", "diagonal")
METHODS = ("spsa", "fd")
Schedule = float | Callable[[int], float]


class BlackBoxFx(nn.Module):
    """A chain of black-box effects as a differentiable layer.

    Args:
        chain: an :class:`FxChain` or its spec; the layer renders copies built from the spec.
        workers: worker processes of the engine (default: the number of cores; 1: inline).
        mode: ``"clip"`` or ``"stream"`` (see the module docstring).
        epsilon: the parameter perturbation step in normalised units, or a schedule
            ``step -> eps`` (e.g. :func:`fxlib.spsa.epsilon_schedule`).
        draws: K, the number of perturbation draws averaged per item.
        seed: seeds the generator of the perturbations.
        input_grad: None (no ``dL/daudio``), ``"spsa"`` (full SPSA in signal space, needs many
            draws: its variance grows with C * T) or ``"diagonal"`` (the memoryless
            approximation: cheap, biased for effects with memory).
        input_epsilon: the input-sample perturbation step (default: ``epsilon``), or a schedule.
        input_draws: K_x, the draws for the input gradient (default: ``draws``).
        preroll: clip mode: input samples that warm the state and are not returned.
        method: ``"spsa"``, or ``"fd"`` for exact central finite differences (one pair of
            renders per parameter, and per input sample with ``input_grad="spsa"``), as a check.
        frozen: names of learned parameters (``chain.names``) that get exactly zero gradient.
        timeout, retries, inline: passed to :class:`~fxlib.engine.Engine`.

    Shape:
        audio ``(B, C, T)`` float, params ``(B, P)`` in [0, 1] -> ``(B, C, T - preroll)``, on
        the audio's device and dtype. Rendering happens on the CPU.

    Attributes:
        engine: the :class:`~fxlib.engine.Engine`.
        chain: the chain in this process (metadata: ``names``, ``latency``, ``to_native``).
        step: the number of forward passes that needed a gradient; the schedules' argument.
        renders_per_item: renders per batch item in stream mode (one instance each).
    """

    def __init__(self, chain: FxChain | Mapping, workers: int | None = None, mode: str = "clip",
                 epsilon: Schedule = 0.01, draws: int = 1, seed: int = 0, input_grad: str | None = None,
                 input_epsilon: Schedule | None = None, input_draws: int | None = None, preroll: int = 0,
                 method: str = "spsa", frozen: Sequence[str] = (), timeout: float = 60.0, retries: int = 0,
                 inline: bool | None = None) -> None:
        super().__init__()
        if input_grad not in INPUT_GRADS:
            raise ValueError(f"input_grad must be one of {INPUT_GRADS}, got {input_grad!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if method == "fd" and input_grad == "diagonal":
            raise ValueError("input_grad='diagonal' is an SPSA approximation; with method='fd' use input_grad='spsa'")
        if mode == "stream" and method == "fd" and input_grad is not None:
            raise ValueError("finite differences over input samples need clip mode (one instance per sample)")
        input_draws = draws if input_draws is None else input_draws
        if draws < 1 or input_draws < 1:
            raise ValueError(f"draws and input_draws must be >= 1, got {draws} and {input_draws}")
        self.engine = Engine(chain, workers=workers, mode=mode, preroll=preroll, timeout=timeout,
                             retries=retries, inline=inline)
        self.chain = self.engine.chain
        unknown = [n for n in frozen if n not in self.chain.names]
        if unknown:
            self.engine.close()
            raise ValueError(f"frozen names {unknown} are not learned parameters of the chain: {self.chain.names}")
        self.mode, self.method, self.input_grad, self.preroll = mode, method, input_grad, int(preroll)
        self.epsilon, self.input_epsilon = epsilon, epsilon if input_epsilon is None else input_epsilon
        self.draws, self.input_draws, self.seed = int(draws), int(input_draws), int(seed)
        self.free = torch.tensor([n not in frozen for n in self.chain.names], dtype=torch.bool)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.step = 0
        param_pairs = int(self.free.sum()) if method == "fd" else self.draws
        self._pairs = (param_pairs, self.input_draws if input_grad is not None else 0)
        self.renders_per_item = 1 + 2 * sum(self._pairs)

    @property
    def num_params(self) -> int:
        """P, the length of the parameter vector."""
        return self.chain.num_params

    @property
    def latency(self) -> int:
        """Stream mode: samples by which the output lags the input (0 in clip mode, compensated)."""
        return self.chain.latency if self.mode == "stream" else 0

    def forward(self, audio: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Render the chain for each batch item.

        Args:
            audio: ``(B, C, T)`` float, C = ``chain.channels``.
            params: ``(B, P)`` unit parameter vectors (clipped to [0, 1]), in ``chain.names`` order.

        Shape:
            ``(B, C, T - preroll)`` on ``audio``'s device and dtype.
        """
        if audio.dim() != 3 or audio.shape[1] != self.chain.channels:
            raise ValueError(f"{self._name()}: audio must be shaped (B, {self.chain.channels}, T), "
                             f"got {tuple(audio.shape)}")
        if params.shape != (audio.shape[0], self.num_params):
            raise ValueError(f"{self._name()}: params must be shaped (B={audio.shape[0]}, P={self.num_params}) "
                             f"for {self.chain.names}, got {tuple(params.shape)}")
        if not torch.isfinite(params).all():
            raise ValueError(f"{self._name()}: params hold NaN or Inf")
        return _BlackBoxFunction.apply(audio, params, self)

    def reset(self, slots: Sequence[int] | None = None) -> None:
        """Stream mode: start new streams in batch slots ``slots`` (None: all of them)."""
        r = self.renders_per_item
        keys = None if slots is None else [s * r + i for s in slots for i in range(r)]
        self.engine.reset(keys)

    def close(self) -> None:
        """Stop the engine's workers."""
        self.engine.close()

    def __enter__(self) -> "BlackBoxFx":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def extra_repr(self) -> str:
        where = "inline" if self.engine.inline else f"workers={self.engine.workers}"
        return (f"{self.chain!r}, mode={self.mode!r}, {where}, method={self.method!r}, draws={self.draws}, "
                f"input_grad={self.input_grad!r}")

    def _name(self) -> str:
        return f"BlackBoxFx({self.chain.name or ' -> '.join(s.name for s in self.chain.stages)})"

    # -- perturbations ---------------------------------------------------------------------
    def _perturb_params(self, u: torch.Tensor, active: bool) -> tuple[torch.Tensor, ...]:
        """Directions and points of the parameter pairs, ``(B, K, P)`` each; zero steps when inactive."""
        b, k = u.shape[0], self._pairs[0]
        if not active:
            zeros = torch.zeros(b, k, self.num_params, dtype=torch.float64)
            return zeros, u[:, None].expand(-1, k, -1), u[:, None].expand(-1, k, -1), zeros
        if self.method == "fd":
            directions = spsa.basis(b, self.free)
        else:
            directions = spsa.rademacher((b, k, self.num_params), self.generator) * self.free
        return (directions, *spsa.perturb(u, directions, _at(self.epsilon, self.step)))

    def _perturb_audio(self, x: torch.Tensor, active: bool) -> tuple[torch.Tensor, ...]:
        """Directions and points of the input pairs, ``(B, K_x, C * T)`` each."""
        b, k, n = x.shape[0], self._pairs[1], x[0].numel()
        if k == 0:  # no input gradient: no input pairs (and no float64 copy of the audio)
            return _empty_pairs(b, n)
        flat = x.reshape(b, n).to(torch.float64)
        if not active:
            zeros = torch.zeros(b, k, n, dtype=torch.float64)
            return zeros, flat[:, None].expand(-1, k, -1), flat[:, None].expand(-1, k, -1), zeros
        if self.method == "fd":
            directions = spsa.basis(b, torch.ones(n, dtype=torch.bool))
        else:
            directions = spsa.rademacher((b, k, n), self.generator)
        plus, minus, _ = spsa.perturb(flat, directions, _at(self.input_epsilon, self.step), bounds=None)
        plus, minus = plus.float().double(), minus.float().double()  # the float32 audio actually rendered
        return directions, plus, minus, plus - minus


def _at(schedule: Schedule, step: int) -> float:
    return float(schedule(step) if callable(schedule) else schedule)


class _Renders:
    """Every render of one step: ``R = 1 + 2 K + 2 K_x`` per batch item, flattened ``(R, B)``.

    Render ``(r, b)`` has flat index ``r * B + b``, so the B nominal renders (``r = 0``) come
    first; ``r = 1 + 2k`` and ``2 + 2k`` are the + and - of parameter pair k, ``r = 1 + 2K + 2k``
    and ``2 + 2K + 2k`` those of input pair k. In stream mode ``b * R + r`` is its instance key.

    Attributes:
        params: ``(R * B, P)`` unit parameter vectors, float64 numpy.
        audio: input rows ``(B + 2 B K_x, C, T)``: the batch, then the perturbed inputs.
        source: ``(R * B,)`` each render's input row.
        keys: ``(R * B,)`` each render's stream instance key.
    """

    def __init__(self, x: torch.Tensor, u: torch.Tensor, param_pairs: tuple[torch.Tensor, ...],
                 audio_pairs: tuple[torch.Tensor, ...]) -> None:
        b, c, t = x.shape
        self.param_pairs, self.audio_pairs = param_pairs, audio_pairs
        self.kp, kx = param_pairs[0].shape[1], audio_pairs[0].shape[1]
        self.shape = (b, 1 + 2 * self.kp + 2 * kx)
        u_np = u.numpy()
        pairs = np.stack([param_pairs[1].numpy(), param_pairs[2].numpy()], 2)  # (B, K, +-, P)
        self.params = np.concatenate([u_np[None], pairs.transpose(1, 2, 0, 3).reshape(2 * self.kp, b, -1),
                                      np.broadcast_to(u_np, (2 * kx, *u_np.shape))]).reshape(-1, u_np.shape[1])
        self.audio = x.numpy()
        if kx:
            inputs = np.stack([audio_pairs[1].numpy(), audio_pairs[2].numpy()], 2).reshape(-1, c, t)
            self.audio = np.concatenate([self.audio, inputs.astype(np.float32)])
        self.source, self.keys = _render_indices(b, self.kp, kx)

    def split(self, out: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The nominal outputs ``(B, C, T')`` and the perturbed ones ``(B, R - 1, C, T')``."""
        b, r = self.shape
        out = torch.from_numpy(out).reshape(r, b, *out.shape[1:])
        return out[0], out[1:].transpose(0, 1)

    def label(self, i: int) -> str:
        r, b = divmod(i, self.shape[0])
        if r == 0:
            return f"batch item {b}, nominal"
        what, k = ("parameter", (r - 1) // 2) if r <= 2 * self.kp else ("input", (r - 1 - 2 * self.kp) // 2)
        return f"batch item {b}, {'+-'[(r - 1) % 2]} {what} perturbation of draw {k}"


class _BlackBoxFunction(torch.autograd.Function):
    """``(audio, params) -> output`` through the engine; SPSA (or FD) in the backward pass."""

    @staticmethod
    def forward(ctx: Any, audio: torch.Tensor, params: torch.Tensor, layer: BlackBoxFx) -> torch.Tensor:
        x = audio.detach().to("cpu", torch.float32).contiguous()
        u = params.detach().to("cpu", torch.float64).clamp(0.0, 1.0)
        want_audio = ctx.needs_input_grad[0] and layer.input_grad is not None
        want_params = ctx.needs_input_grad[1]
        engine = layer.engine
        if layer.mode == "stream":  # every instance advances by one frame: the nominal ones first
            renders = _Renders(x, u, layer._perturb_params(u, want_params), layer._perturb_audio(x, want_audio))
            ctx.job = engine.submit(renders.audio, renders.params, renders.source, renders.keys, renders.label,
                                    first=x.shape[0])
            nominal = torch.from_numpy(ctx.job.first())
            if not (want_audio or want_params):  # no backward pass will wait for the rest: finish now
                ctx.job.result()
        elif want_audio or want_params:  # the nominal renders first, the perturbed ones for backward
            renders = _Renders(x, u, layer._perturb_params(u, True) if want_params else _no_pairs(u),
                               layer._perturb_audio(x, True) if want_audio else _no_pairs(x.flatten(1)))
            ctx.job = engine.submit(renders.audio, renders.params, renders.source, label=renders.label,
                                    first=x.shape[0])
            nominal = torch.from_numpy(ctx.job.first())
        else:
            nominal = torch.from_numpy(engine.render(x.numpy(), u.numpy(), label=lambda i: f"batch item {i}, nominal"))
        if want_audio or want_params:
            layer.step += 1
            ctx.layer, ctx.renders, ctx.x_shape, ctx.want = layer, renders, x.shape, (want_audio, want_params)
            ctx.inputs = ((audio.device, audio.dtype), (params.device, params.dtype))
        return nominal.to(audio.device, audio.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        g = grad_output.detach().to("cpu", torch.float64)
        with ctx.job.consume() as out:  # read where the workers wrote them: no copy of the renders
            grad_audio, grad_params = _estimates(ctx, g, out)
        return (_like(grad_audio, ctx, 0), _like(grad_params, ctx, 1), None)


def _estimates(ctx: Any, g: torch.Tensor, out: np.ndarray) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The estimates ``(dL/daudio (B, C, T) or None, dL/dparams (B, P) or None)`` of a step
    from ``g = dL/dy`` float64 and the step's outputs ``out`` ``(R * B, C, T')``, which no
    tensor made here outlives (they may be a view of the engine's shared memory)."""
    (want_audio, want_params), layer, renders = ctx.want, ctx.layer, ctx.renders
    b, kp = renders.shape[0], renders.kp
    perturbed = renders.split(out)[1]
    grad_params = grad_audio = None
    if want_params:
        directions, _, _, applied = renders.param_pairs
        pairs = perturbed[:, : 2 * kp].reshape(b, kp, 2, *perturbed.shape[2:])
        grad_params = spsa.estimate(g, pairs[:, :, 0], pairs[:, :, 1], directions, applied)
    if want_audio:
        directions, _, _, applied = renders.audio_pairs
        pairs = perturbed[:, 2 * kp:].reshape(b, -1, 2, *perturbed.shape[2:])
        if layer.input_grad == "diagonal":
            grad_audio = _diagonal(layer, g, pairs, applied.reshape(b, -1, *ctx.x_shape[1:]))
        else:
            grad_audio = spsa.estimate(g, pairs[:, :, 0], pairs[:, :, 1], directions, applied)
        grad_audio = grad_audio.reshape(ctx.x_shape)
    return grad_audio, grad_params


@functools.lru_cache(maxsize=64)
def _render_indices(b: int, kp: int, kx: int) -> tuple[np.ndarray, np.ndarray]:
    """Each render's input row and stream instance key, ``(R * B,)`` each (see :class:`_Renders`).

    They depend only on the shape of a step, so they are made once per shape (read-only).
    """
    r = 1 + 2 * kp + 2 * kx
    items = np.arange(b)
    rows = b + items[None] * 2 * kx + np.arange(2 * kx)[:, None]  # pair row (k, sign) of item b
    source = np.concatenate([np.broadcast_to(items, (1 + 2 * kp, b)), rows]).reshape(-1)
    keys = (items[None] * r + np.arange(r)[:, None]).reshape(-1)
    for array in (source, keys):
        array.flags.writeable = False
    return source, keys


def _empty_pairs(b: int, n: int) -> tuple[torch.Tensor, ...]:
    """No pairs: directions, points and steps shaped ``(B, 0, N)``."""
    empty = torch.zeros(b, 0, n, dtype=torch.float64)
    return empty, empty, empty, empty


def _no_pairs(flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """No pairs for the rows of ``flat`` ``(B, N)``."""
    return _empty_pairs(*flat.shape)


def _diagonal(layer: BlackBoxFx, g: torch.Tensor, pairs: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
    """The diagonal estimate, with output sample j matched to input sample ``j + shift``.

    Clip mode: ``shift = preroll`` (the pre-roll samples have no output: zero gradient).
    Stream mode: ``shift = -latency`` (the last ``latency`` input samples come out in the next
    frame: zero gradient here).
    """
    t_in, t_out = applied.shape[-1], g.shape[-1]
    shift = layer.preroll if layer.mode == "clip" else -layer.latency
    lo_out, hi_out = max(0, -shift), min(t_out, t_in - shift)
    grad = torch.zeros(applied.shape[0], *applied.shape[2:], dtype=torch.float64)
    if hi_out > lo_out:
        grad[..., lo_out + shift: hi_out + shift] = spsa.diagonal_estimate(
            g[..., lo_out:hi_out], pairs[:, :, 0, ..., lo_out:hi_out], pairs[:, :, 1, ..., lo_out:hi_out],
            applied[..., lo_out + shift: hi_out + shift])
    return grad


def _like(grad: torch.Tensor | None, ctx: Any, index: int) -> torch.Tensor | None:
    """``grad`` on the device and in the dtype of forward input ``index``."""
    if grad is None:
        return None
    device, dtype = ctx.inputs[index]
    return grad.to(device, dtype)


__all__ = ["BlackBoxFx", "EngineError", "INPUT_GRADS", "METHODS"]
