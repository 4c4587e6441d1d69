"""Benchmark: a BlackBoxFx training step (forward + backward, SPSA) against the plugins' own compute.

For each chain, frame length, batch size B and number of workers W, time one training step
of :class:`~fxlib.layer.BlackBoxFx` (forward, then backward of a squared-output loss: the
``B (1 + 2 K)`` renders, K = 1 draw, epsilon 0.01), as the paper trains: 1024-sample frames
in ``"stream"`` mode (the state carries from step to step), 1 s frames in ``"clip"`` mode
(every render from a reset). Each step gets new audio and new parameters, as in training.

The bound (``bound_s``) is the plugins' own compute for the same renders, on one thread,
divided by the number of cores the step may use (W): :class:`raw.RawChain` calls pedalboard's
``process`` for built-ins and VST3 and ``lilv_instance_run`` for LV2, with nothing of fxlib
around it (the render's native values written raw, mapped beforehand; no checks, no
processes), one plugin instance per stream as in the step. ``ratio = time / bound``. Beside it, the old figure:
``ratio_vs_fxlib_single``, against fxlib's own single-thread rendering of the same renders
(``FxChain.stream`` / ``FxChain.process`` in this process), which contains fxlib's per-render
overhead and so cannot see it.

In the same run, on the same steps, the peer engine (``benchmarks/peer_engine.py``: one process
per batch item over pipes, the original DeepAFx design) is timed: ``peer_s``,
``peer_over_fxlib = peer_s / time_s`` and ``peer_ratio = peer_s / bound_s``. Since no engine
beats the bound, ``peer_ratio`` caps what ``peer_over_fxlib`` can reach on that row.

Per repeat the timings of one step (raw, fxlib single thread, BlackBoxFx) are taken one after
the other, so that a change in the machine's load affects them alike; the peer's steps come
after all of them (for tens of milliseconds after a peer step, with its B processes, the raw
calls in the main process ran 2-4x slower, which made the bound meaningless). The minimum of
each over the repeats is kept. Writes ``benchmarks/results/spsa.json`` with the load average;
a chain that fails to build (a missing LV2 or VST3 plugin) is skipped with the reason.

Usage::

    python benchmarks/spsa.py                 # the full grid (tens of minutes on 2 cores)
    python benchmarks/spsa.py --quick         # a small subset (a few minutes)
    python benchmarks/spsa.py --chains builtin-3 --batches 8 --frames 1024 --workers 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # fxlib from this checkout; raw and peer_engine

from fxlib import FxChain, presets  # noqa: E402
from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.layer import BlackBoxFx  # noqa: E402

from peer_engine import PeerEngine, PeerFunction  # noqa: E402
from raw import RawChain  # noqa: E402

BUILTIN_3 = {"name": "builtin-3", "sample_rate": 22050, "channels": 1, "effects": [
    {"kind": "builtin", "id": "Compressor", "learn": "all"},
    {"kind": "builtin", "id": "PeakFilter", "learn": ["cutoff_frequency_hz", "gain_db"]},
    {"kind": "builtin", "id": "Gain", "learn": ["gain_db"]}]}
"""The issue's chain: pedalboard Compressor, PeakFilter and Gain, 7 learned controls."""
CHAINS = ("builtin-3", "amp-builtin", "amp-lv2", "breath-lv2", "mastering-lv2")
MODES = {1024: "stream"}
"""Mode by frame length; other lengths render in clip mode."""
TARGETS = {"builtin": {1024: {8: 2.5, 32: 1.5, 100: 1.5}, 22050: 1.2}, "lv2": 1.1, "peer_over_fxlib": 2.0}
"""Ratio targets on 2 cores (issue 22): built-in chains by frame and batch, LV2 chains at any frame."""
QUICK = {"chains": ["builtin-3", "amp-lv2"], "batches": [8, 32], "frames": [1024, 22050], "repeats": 3}
EPSILON, DRAWS = 0.01, 1


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chains", nargs="+", default=list(CHAINS), help="preset chain names (fxlib.presets), or builtin-3")
    p.add_argument("--batches", nargs="+", type=int, default=[8, 32, 100], help="batch sizes B")
    p.add_argument("--frames", nargs="+", type=int, default=[1024, 22050], help="frame lengths in samples")
    p.add_argument("--workers", nargs="+", type=int, default=[cores], help="worker counts (default: the cores)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per setting (the minimum is kept)")
    p.add_argument("--no-peer", action="store_true", help="leave the peer engine out")
    p.add_argument("--quick", action="store_true", help=f"a small subset: {QUICK}")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spsa.json")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def chain_spec(name: str) -> dict:
    return BUILTIN_3 if name == "builtin-3" else presets.chain_spec(name)


def steps(chain: FxChain, batch: int, frame: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` steps of seeded noise at -20 dBFS ``(B, C, T)`` and parameters near the defaults ``(B, P)``."""
    gen = torch.Generator().manual_seed(0)
    default = torch.from_numpy(chain.default_unit()).float()
    return [(0.1 * torch.randn(batch, chain.channels, frame, generator=gen),
             (default + 0.1 * torch.randn(batch, chain.num_params, generator=gen)).clamp(0, 1))
            for _ in range(count)]


def step_renders(audio: torch.Tensor, params: torch.Tensor, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(audio (C, T), params (P,))`` of a step's ``B (1 + 2 K)`` renders, in stream-instance order."""
    gen = np.random.default_rng(step)
    x, u = audio.numpy(), params.double().numpy()
    renders = []
    for b in range(len(x)):
        renders.append((x[b], u[b]))
        for _ in range(DRAWS):
            d = EPSILON * gen.choice([-1.0, 1.0], u.shape[1])
            renders += [(x[b], np.clip(u[b] + d, 0, 1)), (x[b], np.clip(u[b] - d, 0, 1))]
    return renders


class Renderers:
    """What the single-thread timings render with: one chain per stream instance (stream mode),
    or one chain reset before each render (clip mode), and as many raw chains
    (:class:`RawChain`) on plugin instances of their own: on shared instances, the second of the
    two timings would find the step's new values already set, and skip the plugin's reaction
    to them (a Calf or LSP filter bank redesigned)."""

    def __init__(self, spec: dict, mode: str, renders: int) -> None:
        self.mode = mode
        count = renders if mode == "stream" else 1
        self.chains = [FxChain.from_spec(spec) for _ in range(count)]
        self.raw_chains = [FxChain.from_spec(spec) for _ in range(count)]
        self.raw = [RawChain(chain) for chain in self.raw_chains]

    def fxlib(self, renders: list) -> float:
        """Seconds for fxlib's own rendering (``stream``/``process`` with the unit vector)."""
        start = time.perf_counter()
        for k, (x, u) in enumerate(renders):
            if self.mode == "stream":
                self.chains[k].stream(x, u)
            else:
                self.chains[0].process(x, u)
        return time.perf_counter() - start

    def plugins(self, renders: list) -> float:
        """Seconds for the plugins' own compute: raw calls, the native values written raw (mapped
        before the clock starts)."""
        native = [list(self.chains[0].to_native(u).values()) for _, u in renders]
        start = time.perf_counter()
        for k, ((x, _), values) in enumerate(zip(renders, native)):
            if self.mode == "stream":
                self.raw[k].stream(x, values)
            else:
                self.raw[0].clip(x, values)
        return time.perf_counter() - start

    def close(self) -> None:
        for chain in [*self.chains, *self.raw_chains]:
            chain.close()


def timed_step(fn: Any, audio: torch.Tensor, params: torch.Tensor) -> float:
    """Seconds for one forward + backward pass of ``fn(audio, params)``."""
    p = params.clone().requires_grad_()
    start = time.perf_counter()
    fn(audio, p).square().mean().backward()
    return time.perf_counter() - start


def bench_chain(name: str, args: argparse.Namespace) -> dict:
    """Every (frame, batch, workers) setting of one chain; ``{"status": "skipped", ...}`` if it fails to build."""
    try:
        spec = chain_spec(name)
        chain = FxChain.from_spec(spec)
    except Exception as exc:  # a missing plugin or backend: record why and go on
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    kinds = sorted({s.spec["kind"] for s in chain.stages})
    rows = []
    with chain:
        for frame in args.frames:
            mode = MODES.get(frame, "clip")
            for batch in args.batches:
                rows += bench_setting(spec, chain, mode, frame, batch, args)
    return {"status": "ok", "kinds": kinds, "num_params": chain.num_params, "latency": chain.latency,
            "load_average_after": [round(v, 2) for v in os.getloadavg()], "results": rows}


def bench_setting(spec: dict, chain: FxChain, mode: str, frame: int, batch: int, args: argparse.Namespace) -> list:
    """The rows of one (frame, batch): one per worker count, all timed on the same steps."""
    renders_per_step = batch * (1 + 2 * DRAWS)
    warmup = 1
    data = steps(chain, batch, frame, warmup + args.repeats)
    timings: dict[str, list[float]] = {key: [] for key in ["raw", "fxlib_single", "peer", *map(str, args.workers)]}

    def keep(i: int, row: dict[str, float]) -> None:
        if i >= warmup:  # the first step sizes shared memory and warms caches
            for key, value in row.items():
                timings[key].append(value)

    single = Renderers(spec, mode, renders_per_step)
    layers = {w: BlackBoxFx(spec, workers=w, mode=mode, epsilon=EPSILON, draws=DRAWS, seed=0) for w in args.workers}
    try:
        for i, (audio, params) in enumerate(data):
            renders = step_renders(audio, params, i)
            row = {"raw": single.plugins(renders), "fxlib_single": single.fxlib(renders)}
            for w, layer in layers.items():
                row[str(w)] = timed_step(layer, audio, params)
            keep(i, row)
    finally:
        for layer in layers.values():
            layer.close()
        single.close()
    if not args.no_peer:  # last: for tens of ms after its steps, other timings in this process run 2-4x slower
        with PeerEngine(spec, batch, mode, EPSILON, seed=0) as peer:
            for i, (audio, params) in enumerate(data):
                keep(i, {"peer": timed_step(lambda a, p: PeerFunction.apply(a, p, peer), audio, params)})
    best = {key: min(values) for key, values in timings.items() if values}
    rows = []
    for w in args.workers:
        seconds, bound = best[str(w)], best["raw"] / w
        row = {"frame": frame, "mode": mode, "batch": batch, "workers": w, "renders": renders_per_step,
               "time_s": round(seconds, 6), "renders_per_s": round(renders_per_step / seconds, 1),
               "raw_single_thread_s": round(best["raw"], 6), "bound_s": round(bound, 6),
               "ratio": round(seconds / bound, 3),
               "fxlib_single_thread_s": round(best["fxlib_single"], 6),
               "ratio_vs_fxlib_single": round(seconds / (best["fxlib_single"] / w), 3),
               "raw_us_per_render": round(1e6 * best["raw"] / renders_per_step, 2),
               "fxlib_single_us_per_render": round(1e6 * best["fxlib_single"] / renders_per_step, 2)}
        if "peer" in best:
            row.update({"peer_s": round(best["peer"], 6), "peer_over_fxlib": round(best["peer"] / seconds, 3),
                        "peer_ratio": round(best["peer"] / bound, 3)})
        rows.append(row)
        print(f"{chain.name or spec.get('name', ''):14} " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    torch.set_num_threads(1)  # the main process only waits while the workers render
    run = Run("spsa")
    results = {}
    for name in args.chains:
        results[name] = bench_chain(name, args)
        if results[name]["status"] != "ok":
            print(f"{name}: skipped ({results[name]['reason']})", flush=True)
    run.write(args.out, {"draws": DRAWS, "epsilon": EPSILON, "repeats": args.repeats, "quick": args.quick,
                         "modes": {"1024": "stream", "other": "clip"}, "targets_on_2_cores": TARGETS,
                         "bound": "raw plugin calls (benchmarks/raw.py), one thread, divided by the workers",
                         "peer": "benchmarks/peer_engine.py: one forked process per batch item, pipes"},
              chains=results)


if __name__ == "__main__":
    main()
