"""Soak: SPSA steps over the paper's three LV2 chains, in both modes, with renders that crash or hang.

For each of ``amp-lv2``, ``breath-lv2`` and ``mastering-lv2`` and each mode (``clip``: 0.5 s
items, every render from a reset; ``stream``: 1024-sample frames, the state carried from step to
step), a :class:`~fxlib.layer.BlackBoxFx` with 2 workers runs forward and backward (SPSA, one
draw) on seeded noise and random parameters. The chain carries one more effect,
``soak_faults:maybe_fail``, which passes the audio through but makes ``--fault-rate`` of the
renders in the workers abort their process or hang (half each; the engine's timeout is
``--timeout`` s). A failed step raises :class:`~fxlib.engine.EngineError`; the soak counts it,
restarts the streams (``BlackBoxFx.reset``) as training does, and goes on.

Checks, each recorded with its figures:

* every output returned equals an inline render of the same input and parameters (the float32
  values the layer received), by the chain without the fault effect in this process (one
  instance per batch slot in stream mode, reset with the engine's streams): bit for bit;
* no step is lost or misordered: steps returned + steps failed = steps asked, and each returned
  output matches its own step's inline render;
* resident memory (this process and its workers) grows by less than 5 % from the end of the
  warm-up (the first tenth of the steps) to the end;
* after ``close()``, and after a SIGKILL of a process holding an engine, no shared-memory segment
  it made is left in ``/dev/shm`` and none of its workers is left.

Writes ``benchmarks/results/soak.json``; exits 1 when a check fails.

Usage::

    python benchmarks/soak.py                      # 10000 steps in all (tens of minutes on 2 cores)
    python benchmarks/soak.py --steps 600          # a shorter soak
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

import soak_faults  # noqa: E402 (benchmarks/soak_faults.py; the workers import it too)
from fxlib.chain import FxChain  # noqa: E402
from fxlib.engine import EngineError  # noqa: E402
from fxlib.layer import BlackBoxFx  # noqa: E402
from fxlib.presets import chain_spec  # noqa: E402
from report import Run  # noqa: E402 (benchmarks/report.py)

CHAINS = ("amp-lv2", "breath-lv2", "mastering-lv2")
MODES = {"clip": 11025, "stream": 1024}  # samples per item
BATCH, WORKERS = 2, 2
ATOL = 0.0  # the engine renders exactly what the chain renders inline, given the same parameter values
GROWTH_LIMIT = 0.05


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10000, help="steps in all, shared by the chains and modes")
    p.add_argument("--fault-rate", type=float, default=0.01, help="share of renders that crash or hang")
    p.add_argument("--timeout", type=float, default=2.0, help="the engine's render timeout, s")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    return p.parse_args(argv)


def shm_names() -> set[str]:
    return set(os.listdir("/dev/shm"))


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the processes ``pids`` (those still alive), KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            continue
    return total


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def soak(name: str, mode: str, steps: int, args: argparse.Namespace) -> dict:
    """``steps`` SPSA steps of one chain in one mode; the figures and checks (module docstring)."""
    spec = chain_spec(name)
    faulty = {**spec, "effects": [*spec["effects"], soak_faults.effect()]}
    n = MODES[mode]
    rng = np.random.default_rng(0)
    before = shm_names()
    os.environ[soak_faults.RATE_ENV] = str(args.fault_rate)
    fx = BlackBoxFx(faulty, workers=WORKERS, mode=mode, draws=1, seed=0, timeout=args.timeout)
    references = [FxChain.from_spec(spec) for _ in range(BATCH)]
    del os.environ[soak_faults.RATE_ENV]  # the inline references render without faults
    returned = failed = mismatched = 0
    worst = 0.0
    rss_warm = None
    warm_up = max(1, steps // 10)
    started = time.perf_counter()
    try:
        for step in range(steps):
            audio = (0.1 * rng.standard_normal((BATCH, spec["channels"], n))).astype(np.float32)
            params = torch.tensor(rng.uniform(0.05, 0.95, (BATCH, fx.num_params)), dtype=torch.float32,
                                  requires_grad=True)
            u = params.detach().double().numpy()  # the values the layer renders with
            try:
                out = fx(torch.from_numpy(audio), params)
                (out ** 2).mean().backward()
            except EngineError:
                failed += 1
                fx.reset()
                for chain in references:
                    chain.reset()
                continue
            returned += 1
            for b, chain in enumerate(references):
                if mode == "clip":
                    chain.reset()
                    expected = chain.process(audio[b], u[b])
                else:
                    expected = chain.stream(audio[b], u[b])
                error = float(np.abs(out[b].detach().numpy() - expected).max())
                worst = max(worst, error)
                mismatched += error > ATOL
            if rss_warm is None and step + 1 >= warm_up:
                rss_warm = rss_kib([os.getpid(), *fx.engine.worker_pids])
        rss_end = rss_kib([os.getpid(), *fx.engine.worker_pids])
        workers = fx.engine.worker_pids
    finally:
        fx.close()
        for chain in references:
            chain.close()
    left = sorted(shm_names() - before)
    growth = (rss_end - rss_warm) / rss_warm if rss_warm else None
    return {"chain": name, "mode": mode, "steps": steps, "returned": returned, "failed": failed,
            "lost": steps - returned - failed, "outputs_checked": returned * BATCH, "mismatched": mismatched,
            "worst_abs_difference": worst, "rss_kib_after_warm_up": rss_warm, "rss_kib_at_end": rss_end,
            "rss_growth": None if growth is None else round(growth, 4),
            "segments_left_after_close": left, "workers_left_after_close": [p for p in workers if alive(p)],
            "seconds": round(time.perf_counter() - started, 1)}


#: Holds an engine on amp-lv2 (with 2 workers), prints its worker pids and the shared-memory segments
#: it made, then waits to be killed.
HOLDER = r"""
import os, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from fxlib.layer import BlackBoxFx
from fxlib.presets import chain_spec
before = set(os.listdir("/dev/shm"))
fx = BlackBoxFx(chain_spec("amp-lv2"), workers=2, mode="stream")
fx(torch.zeros(2, 1, 1024), torch.full((2, fx.num_params), 0.5))
made = sorted(set(os.listdir("/dev/shm")) - before)
print(" ".join(map(str, fx.engine.worker_pids)), "|", " ".join(made), flush=True)
time.sleep(3600)
"""


def killed_parent(wait: float = 15.0) -> dict:
    """A process holding an engine, killed with SIGKILL: its workers and segments, ``wait`` s later."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT)], stdout=subprocess.PIPE, text=True)
    pids, _, made = holder.stdout.readline().partition("|")
    workers, segments = [int(p) for p in pids.split()], made.split()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (any(alive(p) for p in workers) or set(segments) & shm_names()):
        time.sleep(0.2)
    return {"workers": len(workers), "segments_made": len(segments),
            "workers_left": [p for p in workers if alive(p)], "segments_left": sorted(set(segments) & shm_names()),
            "waited_at_most_s": wait}


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    run = Run("soak")
    combos = [(c, m) for c in CHAINS for m in MODES]
    share = [args.steps // len(combos) + (i < args.steps % len(combos)) for i in range(len(combos))]
    results = []
    for (name, mode), steps in zip(combos, share):
        row = soak(name, mode, steps, args)
        print(f"{name:14} {mode:6} {row['returned']} returned, {row['failed']} failed, {row['mismatched']} "
              f"mismatched, rss growth {row['rss_growth']}, {row['seconds']} s", flush=True)
        results.append(row)
    kill = killed_parent()
    checks = {"outputs_equal_inline_renders": all(r["mismatched"] == 0 for r in results),
              "no_step_lost": all(r["lost"] == 0 for r in results),
              "rss_growth_under_5_percent": all(r["rss_growth"] is not None and r["rss_growth"] < GROWTH_LIMIT
                                                for r in results),
              "nothing_left_after_close": all(not r["segments_left_after_close"] and not r["workers_left_after_close"]
                                              for r in results),
              "nothing_left_after_a_sigkill": not kill["workers_left"] and not kill["segments_left"]}
    run.write(args.out, {"steps": args.steps, "fault_rate": args.fault_rate, "faults": "half abort, half hang",
                         "timeout_s": args.timeout, "batch": BATCH, "workers": WORKERS, "draws": 1,
                         "samples_per_item": MODES, "tolerance": ATOL},
              runs=results, sigkill=kill, checks=checks,
              totals={"steps": sum(r["steps"] for r in results), "failed": sum(r["failed"] for r in results),
                      "outputs_checked": sum(r["outputs_checked"] for r in results)})
    failing = [k for k, ok in checks.items() if not ok]
    print("checks: " + ("all passed" if not failing else "FAILED " + ", ".join(failing)))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
