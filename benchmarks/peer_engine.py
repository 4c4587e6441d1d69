"""A peer engine, written from scratch for comparison: the original DeepAFx's design.

One worker process per batch item, forked when the engine starts, holds that item's nominal,
+ and - plugin instances (three :class:`~fxlib.chain.FxChain`, so both engines host the
plugins with the same code). Parameters, audio and gradients travel over one
``multiprocessing`` pipe per item, pickled:

- forward: the main process sends each item's ``(audio, params)`` to its worker, which
  renders the nominal instance and sends the output back;
- backward: the main process sends each item's upstream gradient; the worker draws one
  Rademacher perturbation (one draw, its own seeded generator), renders the + and -
  instances at the perturbed points on the forward pass's audio, and sends back the SPSA
  estimate ``<g, y+ - y-> / applied`` (at the [0, 1] bounds, divided by the perturbation
  actually applied).

In ``"stream"`` mode each instance continues from its state; in ``"clip"`` mode every render
starts from a reset (:meth:`FxChain.process`). Only the benchmarks use it
(``benchmarks/spsa.py``): it is timed on the same renders as fxlib's
:class:`~fxlib.layer.BlackBoxFx`, in the same run.
"""
from __future__ import annotations

import multiprocessing as mp
from typing import Any, Mapping

import numpy as np
import torch

from fxlib.chain import FxChain

START_METHOD = "fork"
"""The original forked its workers (Python's default start method on Linux)."""


def _item_worker(conn: Any, spec: Mapping, mode: str, epsilon: float, seed: int) -> None:
    """One batch item's process: build its three instances, say ``ready``, then serve
    ``forward``, ``backward`` and ``close`` messages."""
    nominal, plus, minus = (FxChain.from_spec(spec) for _ in range(3))
    conn.send("ready")
    rng = np.random.default_rng(seed)
    audio = params = None
    render = (lambda chain, x, u: chain.process(x, u)) if mode == "clip" else (lambda chain, x, u: chain.stream(x, u))
    while True:
        message = conn.recv()
        if message[0] == "close":
            break
        if message[0] == "forward":
            _, audio, params = message
            conn.send(render(nominal, audio, params))
        else:
            grad = message[1]
            direction = rng.choice((-1.0, 1.0), size=params.shape)
            u_plus = np.clip(params + epsilon * direction, 0.0, 1.0)
            u_minus = np.clip(params - epsilon * direction, 0.0, 1.0)
            diff = render(plus, audio, u_plus) - render(minus, audio, u_minus)
            conn.send(float(np.dot(grad.ravel(), diff.ravel())) / (u_plus - u_minus))
    for chain in (nominal, plus, minus):
        chain.close()


class PeerEngine:
    """Process-per-item rendering over pipes (see the module docstring).

    Args:
        spec: the chain spec; batch: B, one process per item; mode: ``"stream"`` or ``"clip"``;
        epsilon: the perturbation step (normalised units); seed: seeds item b's generator with
        ``seed + b``.

    The constructor returns once every item's process has built its instances, so that no
    process is still loading plugins while anything is timed.
    """

    def __init__(self, spec: Mapping, batch: int, mode: str = "stream", epsilon: float = 0.01, seed: int = 0) -> None:
        ctx = mp.get_context(START_METHOD)
        self.conns, self.processes = [], []
        for b in range(batch):
            conn, child = ctx.Pipe()
            process = ctx.Process(target=_item_worker, args=(child, spec, mode, epsilon, seed + b), daemon=True)
            process.start()
            child.close()
            self.conns.append(conn)
            self.processes.append(process)
        for b, conn in enumerate(self.conns):
            try:
                conn.recv()
            except EOFError:  # it died while building its instances: stop the others, say which
                for process in self.processes:
                    process.kill()
                    process.join()
                raise RuntimeError(f"peer item process {b} died while building its chains "
                                   f"(exit code {self.processes[b].exitcode})") from None

    def forward(self, audio: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``(B, C, T)`` float32 and ``(B, P)`` float64 -> the nominal outputs ``(B, C, T)``."""
        for conn, x, u in zip(self.conns, audio, params):
            conn.send(("forward", x, u))
        return np.stack([conn.recv() for conn in self.conns])

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """``(B, C, T)`` upstream gradients -> the SPSA estimates ``(B, P)``."""
        for conn, g in zip(self.conns, grad):
            conn.send(("backward", g))
        return np.stack([conn.recv() for conn in self.conns])

    def close(self) -> None:
        for conn in self.conns:
            conn.send(("close",))
        for process in self.processes:
            process.join()

    def __enter__(self) -> "PeerEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PeerFunction(torch.autograd.Function):
    """``(audio, params) -> output`` through a :class:`PeerEngine`, its SPSA estimate in backward."""

    @staticmethod
    def forward(ctx: Any, audio: torch.Tensor, params: torch.Tensor, engine: PeerEngine) -> torch.Tensor:
        ctx.engine, ctx.dtype = engine, params.dtype
        out = engine.forward(audio.detach().float().numpy(), params.detach().double().clamp(0, 1).numpy())
        return torch.from_numpy(out).to(audio.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        grad = ctx.engine.backward(grad_output.detach().double().numpy())
        return None, torch.from_numpy(grad).to(ctx.dtype), None
