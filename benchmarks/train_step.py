"""Benchmark: a stage-2 training step of each task's quick profile against its bound.

The step is what :meth:`fxlib.train.Trainer._phase` runs per batch, with the same functions:
the encoder predicts the parameters from the contexts, :func:`fxlib.train.render_loss` renders
the frames through :class:`~fxlib.layer.BlackBoxFx` (stream mode, the profile's draws and
render workers) and takes the loss to the targets, plus :func:`fxlib.train.anchor_loss`;
backward; Adam. The whole chain is trained (the last phase of a progressive chain), on
seeded noise batches of the profile's shapes (speed does not depend on the audio). Torch uses
its default threads; the workers one thread each.

The bound is ``(torch_1t + renders_1t) / cores``:

- ``torch_1t``: the step's torch work on one thread: encoder forward and backward, the loss
  forward and backward, Adam, with the rendered outputs and the SPSA gradient given (no
  rendering);
- ``renders_1t``: the step's ``B (1 + 2 K)`` renders by the plugins alone (``benchmarks/raw.py``),
  one thread, one plugin instance per stream, each at new parameter values (written raw).

``ratio = step / bound``; the target is 1.25 on 2 cores. Each timing is the median of the
repeats (the step's parts differ in length, so a minimum would mix good moments of each).
``torch_1t`` is timed twice: in turn with the step on each batch (so that a change in the
machine's speed moves both; timed only after all the steps, the same encoder's ``torch_1t``
came out 0.16 s in one process and 0.22 s in another, which moved the ratio by a third), and
then on its own in a block; the bound takes the smaller of the two medians.

Each task runs twice, in a fresh process each: with the environment as it is, and with
``OMP_WAIT_POLICY=PASSIVE``, which makes torch's idle OpenMP threads sleep at once instead of
spinning (libgomp reads it when torch is imported, so it cannot be set from inside a running
process): spinning threads take cores from the render workers and from other processes, and
a thread that is descheduled stalls the others at every barrier. Neither changes a number the
step computes. Writes ``benchmarks/results/train_step.json`` with the load average.

Usage::

    python benchmarks/train_step.py                    # amp, breath, mastering (quick profiles)
    python benchmarks/train_step.py --tasks amp --steps 10
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # fxlib from this checkout; raw

from fxlib import FxChain  # noqa: E402
from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.layer import BlackBoxFx  # noqa: E402
from fxlib.losses import get_loss  # noqa: E402
from fxlib.model import DeepAFx, curve_ranges  # noqa: E402
from fxlib.tasks import get_task  # noqa: E402
from fxlib.train import StreamTargets, anchor_loss, render_loss, render_workers  # noqa: E402

from raw import RawChain  # noqa: E402

TASKS = ("amp", "breath", "mastering")
TARGET = 1.25


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="tasks (their quick profile, first chain)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per task (after 3 warm-up steps)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_step.json")
    p.add_argument("--child", metavar="TASK", help=argparse.SUPPRESS)  # one task, its row as JSON on stdout
    return p.parse_args(argv)


class Setup:
    """A task's quick-profile model, optimiser, loss and seeded batches (as the trainer builds them)."""

    def __init__(self, task_name: str, steps: int) -> None:
        task = get_task(task_name)
        self.profile = p = task.profile("quick")
        self.chain_name, self.spec = task.select_chain()
        with FxChain.from_spec(self.spec) as chain:
            curves = curve_ranges(chain.names, p.curves)
            self.channels, self.n_params = chain.channels, chain.num_params
        torch.manual_seed(0)
        encoder = {"backbone": p.backbone, "pooling": p.pooling, "curves": curves, "sample_rate": task.sample_rate}
        self.model = DeepAFx(self.spec, encoder, p.context, p.frame, p.inference)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=p.lr)
        self.loss_fn = get_loss(p.loss, task.sample_rate, **p.loss_options)
        self.start = self.model.default_unit.clamp(p.stage1_margin, 1 - p.stage1_margin)
        gen = torch.Generator().manual_seed(0)
        b, c = p.batch_size, self.channels
        self.batches = [{"context": 0.1 * torch.randn(b, c, p.context, generator=gen),
                         "input": 0.1 * torch.randn(b, c, p.frame, generator=gen),
                         "target": 0.1 * torch.randn(b, c, p.frame, generator=gen),
                         "reset": torch.zeros(b, dtype=torch.bool), "valid": torch.ones(b, dtype=torch.bool)}
                        for _ in range(steps)]

    def step(self, fx: Any, batch: dict, targets: StreamTargets | None) -> None:
        """One training step, as :meth:`fxlib.train.Trainer._phase` runs it."""
        params = self.model(batch["context"])
        loss = render_loss(fx, batch, params[:, :self.n_params], targets, self.loss_fn)
        loss = loss + anchor_loss(params, self.start.expand_as(params), self.n_params, self.profile.anchor)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


class _Given(torch.autograd.Function):
    """The chain's place in the graph with its outputs and SPSA gradient given: no rendering."""

    @staticmethod
    def forward(ctx: Any, audio: torch.Tensor, params: torch.Tensor, out: torch.Tensor,
                grad: torch.Tensor) -> torch.Tensor:
        ctx.grad = grad
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        return None, ctx.grad, None, None


class GivenFx:
    """Stands in for BlackBoxFx in :func:`render_loss`: the outputs of a real step, no renders."""

    def __init__(self, out: torch.Tensor, grad: torch.Tensor) -> None:
        self.out, self.grad = out, grad

    def reset(self, slots: Any) -> None:
        """Nothing to reset."""

    def __call__(self, audio: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return _Given.apply(audio, params, self.out, self.grad)


def seconds(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block, its thread count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def median_time(fn: Any, items: list) -> float:
    return statistics.median([seconds(lambda: fn(item)) for item in items])


def bench_task(name: str, args: argparse.Namespace) -> dict:
    try:
        setup = Setup(name, 3 + args.steps)
    except Exception as exc:  # a missing plugin: record why and go on
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    p, cores = setup.profile, os.cpu_count() or 1
    warm, timed = setup.batches[:3], setup.batches[3:]
    threads = torch.get_num_threads()
    workers = render_workers(p)
    with BlackBoxFx(setup.spec, workers=workers, mode=p.mode, epsilon=p.epsilon, draws=p.draws, seed=0) as fx:
        targets = StreamTargets(fx.latency, p.frame)
        for batch in warm:
            setup.step(fx, batch, targets)
        with torch.no_grad():
            params = setup.model(timed[0]["context"])[:, :setup.n_params]
        given = GivenFx(fx(timed[0]["input"], params), torch.zeros_like(params))
        renders = fx.renders_per_item * p.batch_size
        step_times, torch_times = [], []
        for batch in timed:  # interleaved, so that a change in the machine's speed affects both alike
            step_times.append(seconds(lambda: setup.step(fx, batch, targets)))
            with one_thread():
                torch_times.append(seconds(lambda: setup.step(given, batch, None)))
        with one_thread():  # and on their own, in a block: the smaller median makes the stricter bound
            torch_apart = median_time(lambda batch: setup.step(given, batch, None), timed)
    step_s, torch_between = statistics.median(step_times), statistics.median(torch_times)
    torch_1t = min(torch_between, torch_apart)
    chains = [FxChain.from_spec(setup.spec) for _ in range(renders)]
    try:
        raws = [RawChain(chain) for chain in chains]
        # render k of a step: item k % B at the item's predicted parameters moved by +-epsilon
        signs = np.random.default_rng(0).choice((-1.0, 1.0), size=(renders, setup.n_params))
        steps = []
        for batch in timed:
            with torch.no_grad():
                u = setup.model(batch["context"])[:, :setup.n_params].double().numpy()
            moved = np.clip(u[np.arange(renders) % len(u)] + p.epsilon * signs, 0.0, 1.0)
            steps.append((batch["input"].numpy(), [list(chains[0].to_native(row).values()) for row in moved]))

        def render_all(step: tuple) -> None:
            x, native = step
            for k, raw in enumerate(raws):
                raw.stream(x[k % len(x)], native[k])
        renders_1t = median_time(render_all, steps)
    finally:
        for chain in chains:
            chain.close()
    bound = (torch_1t + renders_1t) / cores
    row = {"status": "ok", "chain": setup.chain_name, "profile": "quick", "batch": p.batch_size, "draws": p.draws,
           "context": p.context, "frame": p.frame, "backbone": p.backbone, "renders": renders,
           "workers": workers, "torch_threads": threads, "step_s": round(step_s, 5),
           "torch_1t_s": round(torch_1t, 5), "torch_1t_between_steps_s": round(torch_between, 5),
           "torch_1t_apart_s": round(torch_apart, 5), "renders_1t_s": round(renders_1t, 5), "bound_s": round(bound, 5),
           "ratio": round(step_s / bound, 3), "target": TARGET}
    return row


POLICIES = {"as_is": {}, "omp_passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
"""The environments each task runs in (see the module docstring)."""


def run_child(task: str, policy: str, args: argparse.Namespace) -> dict:
    """:func:`bench_task` in a fresh process with the environment of ``policy``."""
    command = [sys.executable, __file__, "--child", task, "--steps", str(args.steps)]
    env = {**os.environ, **POLICIES[policy]}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"status": "failed", "reason": done.stderr.strip().splitlines()[-1:]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{task:10} {policy:12} " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.child:
        print(json.dumps(bench_task(args.child, args)))
        return
    run = Run("train_step")
    results = {name: {policy: run_child(name, policy, args) for policy in POLICIES} for name in args.tasks}
    run.write(args.out, {"steps": args.steps, "data": "seeded noise batches of the profile's shapes",
                         "bound": "(torch work on one thread + the plugins' own renders on one thread) / cores",
                         "environments": POLICIES}, tasks=results)


if __name__ == "__main__":
    main()
