"""Benchmark: the encoder under the instruction set fxlib pins (AVX2) and under the processor's own.

Importing fxlib sets ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` on x86-64
(see ``fxlib/__init__.py``), so that a seeded run gives the same numbers on processors with and
without AVX-512. This script runs, for each setting, one process that builds each backbone with
seed 0 and times a training step (forward and backward, the quick profiles' batch of 16 on the
40960-sample context, fastest of the repeats), and reports:

- ``capability``: what torch used (``torch.backends.cpu.get_cpu_capability()``);
- ``train_step_s``: the step's time under each setting, and their ratio (the pin's cost);
- ``max_abs_diff``: the largest difference between the settings in the encoder's output
  (parameters in (0, 1)) and in its first layer's gradient: what a machine with the other
  instruction set would see at the first step, before training grows it.

Writes ``benchmarks/results/isa.json`` with the load average.

Usage::

    python benchmarks/isa.py
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

#: The environment of each setting; "pinned" is what importing fxlib sets.
SETTINGS = {"pinned": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
            "native": {"ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx512"}}
CONTEXT, SR, P, BATCH = 40960, 22050, 21, 16


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the fastest is kept)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "isa.json")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one setting's process writes here
    return p.parse_args(argv)


def child(out: Path, repeats: int) -> None:
    """Time and record each backbone in this process's setting; ``torch.save`` to ``out``."""
    import torch

    from fxlib.encoder import BACKBONES, Encoder

    record = {"capability": torch.backends.cpu.get_cpu_capability(), "backbones": {}}
    for name in sorted(BACKBONES):
        torch.manual_seed(0)
        encoder = Encoder(P, name, sample_rate=SR)
        audio = 0.1 * torch.randn(BATCH, 1, CONTEXT, generator=torch.Generator().manual_seed(0))
        output = encoder(audio)
        output.square().mean().backward()
        first = next(p for p in encoder.parameters() if p.grad is not None)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            encoder(audio).square().mean().backward()
            times.append(time.perf_counter() - started)
        record["backbones"][name] = {"output": output.detach(), "gradient": first.grad.clone(),
                                     "train_step_s": min(times)}
    torch.save(record, out)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.child:
        return child(args.child, args.repeats)
    import torch

    from report import Run  # benchmarks/report.py

    run = Run("isa")
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting, env in SETTINGS.items():
            out = Path(tmp) / f"{setting}.pt"
            subprocess.run([sys.executable, __file__, "--child", str(out), "--repeats", str(args.repeats)],
                           env={**os.environ, **env}, check=True)
            records[setting] = torch.load(out)
    pinned, native = records["pinned"], records["native"]
    backbones = {}
    for name, row in pinned["backbones"].items():
        other = native["backbones"][name]
        backbones[name] = {
            "train_step_s": {"pinned": round(row["train_step_s"], 4), "native": round(other["train_step_s"], 4),
                             "pinned_over_native": round(row["train_step_s"] / other["train_step_s"], 3)},
            "max_abs_diff": {"output": float((row["output"] - other["output"]).abs().max()),
                             "first_layer_gradient": float((row["gradient"] - other["gradient"]).abs().max())}}
        print(f"{name:12} {backbones[name]}", flush=True)
    run.write(args.out, {"settings": SETTINGS, "batch": BATCH, "context": CONTEXT, "repeats": args.repeats},
              capability={s: r["capability"] for s, r in records.items()}, backbones=backbones)


if __name__ == "__main__":
    main()
