"""Benchmark: BlackBoxFx forward + backward (SPSA) against the bound set by the chain itself.

For each chain, frame length, batch size and number of workers, time one training step's
forward and backward pass (``B (1 + 2 K)`` renders) and compare it with the *bound*: the
chain's own single-thread time for the same renders (``FxChain.process`` in this process)
divided by the number of workers. ``ratio = time / bound``; 1 is perfect parallelism with no
overhead. Targets on 2 cores: ratio <= 1.3 for 1 s frames, <= 2 for 1024-sample frames.

Cores do not always scale perfectly on their own (shared caches and memory bandwidth,
virtual CPUs on shared physical cores, other load), so the benchmark also measures the
*hardware bound*: the same renders split over ``workers`` plain processes that render their
share at the same moment (no engine, no IPC), timed by the slowest. ``hardware_ratio =
time / hardware_bound`` is the engine's own overhead.

Writes ``benchmarks/results/spsa.json``. A chain that fails to build (a missing LV2 or VST3
plugin) is skipped and the reason recorded.

Usage::

    python benchmarks/spsa.py                 # the full grid (several minutes)
    python benchmarks/spsa.py --quick         # a small subset (about a minute)
    python benchmarks/spsa.py --chains amp-builtin --batches 8 --frames 1024 --workers 1 2
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from fxlib import FxChain, presets  # noqa: E402
from fxlib.atomic import write_json  # noqa: E402
from fxlib.layer import BlackBoxFx  # noqa: E402

CHAINS = ("amp-builtin", "amp-lv2", "breath-lv2", "mastering-lv2")
QUICK = {"chains": ["amp-builtin", "amp-lv2"], "batches": [8, 32], "frames": [1024, 22050], "repeats": 2}
TARGETS = {1024: 2.0, 22050: 1.3}
"""Ratio targets on 2 cores, by frame length in samples; other lengths use the 1 s target."""


def arguments() -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chains", nargs="+", default=list(CHAINS), help="preset chain names (fxlib.presets)")
    p.add_argument("--batches", nargs="+", type=int, default=[8, 32, 100], help="batch sizes B")
    p.add_argument("--frames", nargs="+", type=int, default=[1024, 22050], help="frame lengths in samples")
    p.add_argument("--workers", nargs="+", type=int, default=list(range(1, cores + 1)), help="worker counts")
    p.add_argument("--draws", type=int, default=1, help="K, perturbation draws per item")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per setting (the minimum is kept)")
    p.add_argument("--quick", action="store_true", help=f"a small subset: {QUICK}")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spsa.json")
    args = p.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def inputs(chain: FxChain, batch: int, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded noise at -20 dBFS ``(B, C, T)`` and parameters around the defaults ``(B, P)``."""
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch, chain.channels, frame, generator=gen)
    default = torch.from_numpy(chain.default_unit()).float()
    params = (default + 0.1 * torch.randn(batch, chain.num_params, generator=gen)).clamp(0, 1)
    return audio, params


def step_time(layer: BlackBoxFx, audio: torch.Tensor, params: torch.Tensor) -> float:
    """One forward + backward pass, in seconds."""
    p = params.clone().requires_grad_()
    start = time.perf_counter()
    layer(audio, p).square().mean().backward()
    return time.perf_counter() - start


def step_renders(chain: FxChain, frame: int, batch: int, draws: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(audio (C, T), params (P,))`` of one step's ``B (1 + 2 K)`` renders."""
    audio, params = inputs(chain, batch, frame)
    x, u = audio.numpy(), params.double().numpy()
    gen = np.random.default_rng(0)
    renders = [(x[b], u[b]) for b in range(batch)]
    renders += [(x[b], np.clip(u[b] + s * 0.01 * gen.choice([-1.0, 1.0], u.shape[1]), 0, 1))
                for b in range(batch) for _ in range(draws) for s in (1, -1)]
    return renders


def render_time(chain: FxChain, renders: list) -> float:
    """One sequential pass of ``chain.process`` over ``renders``, in seconds."""
    start = time.perf_counter()
    for x, u in renders:
        chain.process(x, u)
    return time.perf_counter() - start


def _plain_worker(spec: dict, share: int, workers: int, draws: int, barrier: Any, conn: Any) -> None:
    """A process of the hardware bound: on each ``(frame, batch)`` received, time its share of the renders."""
    chain = FxChain.from_spec(spec)
    while (setting := conn.recv()) is not None:
        renders = step_renders(chain, *setting, draws)
        n = len(renders)
        barrier.wait()
        conn.send(render_time(chain, renders[share * n // workers:(share + 1) * n // workers]))


class PlainProcesses:
    """``workers`` plain processes that render their shares of a step at the same moment (no engine)."""

    def __init__(self, spec: dict, workers: int, draws: int) -> None:
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(workers)  # kept: the children attach to it after start()
        self.conns, self.processes = [], []
        for w in range(workers):
            conn, child = ctx.Pipe()
            self.processes.append(ctx.Process(target=_plain_worker,
                                              args=(spec, w, workers, draws, self.barrier, child)))
            self.processes[-1].start()
            child.close()
            self.conns.append(conn)

    def time(self, frame: int, batch: int) -> float:
        """The slowest share's time, in seconds."""
        for conn in self.conns:
            conn.send((frame, batch))
        return max(conn.recv() for conn in self.conns)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for process in self.processes:
            process.join()


def bench_chain(name: str, args: argparse.Namespace) -> dict:
    """Every (frame, batch, workers) setting of one chain; ``{"status": "skipped", ...}`` if it fails to build.

    Per repeat, the three timings (single thread, hardware bound, the layer) are taken one
    after the other, so that a change in the machine's load affects them alike; the minimum
    of each over the repeats is kept.
    """
    try:
        spec = presets.chain_spec(name)
        chain = FxChain.from_spec(spec)
    except Exception as exc:  # a missing plugin or backend: record why and go on
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    rows = []
    with chain:
        for workers in args.workers:
            plain = PlainProcesses(spec, workers, args.draws)
            with BlackBoxFx(chain, workers=workers, draws=args.draws) as layer:
                for frame in args.frames:
                    for batch in args.batches:
                        rows.append(bench_setting(chain, layer, plain, frame, batch, args))
                        print(f"{name:16} " + " ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
            plain.close()
    return {"status": "ok", "num_params": chain.num_params, "latency": chain.latency,
            "load_average_after": os.getloadavg(), "results": rows}


def bench_setting(chain: FxChain, layer: BlackBoxFx, plain: PlainProcesses, frame: int, batch: int,
                  args: argparse.Namespace) -> dict:
    """One row of the results: the fastest of ``args.repeats`` interleaved timings of each kind."""
    audio, params = inputs(chain, batch, frame)
    renders = step_renders(chain, frame, batch, args.draws)
    step_time(layer, audio, params)  # warm-up: shared memory sized, workers started
    timings = np.array([(render_time(chain, renders), plain.time(frame, batch), step_time(layer, audio, params))
                        for _ in range(args.repeats)]).min(axis=0)
    single, hardware, seconds = timings.tolist()
    workers = layer.engine.workers
    bound = single / workers
    return {"frame": frame, "batch": batch, "workers": workers, "renders": len(renders),
            "time_s": round(seconds, 6), "renders_per_s": round(len(renders) / seconds, 1),
            "single_thread_s": round(single, 6), "bound_s": round(bound, 6), "ratio": round(seconds / bound, 3),
            "hardware_bound_s": round(hardware, 6), "hardware_ratio": round(seconds / hardware, 3)}


def scaling(rows: list[dict]) -> list[dict]:
    """Speed-up of each worker count over one worker, per (frame, batch)."""
    one = {(r["frame"], r["batch"]): r["time_s"] for r in rows if r["workers"] == 1}
    return [{"frame": r["frame"], "batch": r["batch"], "workers": r["workers"],
             "speedup": round(one[r["frame"], r["batch"]] / r["time_s"], 3)}
            for r in rows if (r["frame"], r["batch"]) in one]


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)  # the main process only waits while the workers render
    results = {}
    for name in args.chains:
        results[name] = bench_chain(name, args)
        if results[name]["status"] == "ok":
            results[name]["scaling"] = scaling(results[name]["results"])
        else:
            print(f"{name}: skipped ({results[name]['reason']})", flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average": os.getloadavg()},
        "settings": {"draws": args.draws, "repeats": args.repeats, "quick": args.quick, "mode": "clip",
                     "epsilon": 0.01, "targets": {"ratio_1024": TARGETS[1024], "ratio_1s": TARGETS[22050]}},
        "chains": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
