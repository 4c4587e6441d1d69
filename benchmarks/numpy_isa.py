"""Benchmark: do the offline data sets depend on the instruction set numpy dispatches to?

fxlib pins torch's kernels to AVX2 (``benchmarks/isa.py``), but numpy picks its own SIMD code at
import: on a processor with AVX-512 its ``exp``, ``log1p`` and ``power`` (float64) take the
``X86_V4`` and ``AVX512_ICL`` paths and round differently from the ``X86_V3`` (AVX2) path that
a processor without AVX-512 takes. ``NPY_DISABLE_CPU_FEATURES`` turns those paths off, so one
machine can build each task's smoke-sized offline set under both and compare them file by file:
the inputs and targets that differ, and by how much (sample values in [-1, 1]).

The two builds run in child processes with the same seed. Writes
``benchmarks/results/numpy_isa.json``: the features numpy used in each, and per task the files
compared, the files that differ and the largest absolute difference. Timing plays no part, so the
figures hold under load.

Usage::

    python benchmarks/numpy_isa.py
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

#: numpy's dispatch targets above AVX2 (numpy 2.4 names); disabling them is the "avx2" setting.
ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"
SETTINGS = {"native": {}, "avx2": {"NPY_DISABLE_CPU_FEATURES": ABOVE_AVX2}}
TASKS = ("amp", "breath", "mastering")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "numpy_isa.json")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one setting's builds go under this folder
    return p.parse_args(argv)


def child(folder: Path, seed: int) -> None:
    """Build every task's smoke set under ``folder`` and record the numpy features in use."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    from fxlib.tasks import get_task

    for name in TASKS:
        task = get_task(name)
        task.build_data(folder / name, task.profile("smoke").data_seconds, seed)
    used = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    (folder / "features.json").write_text(json.dumps(used))


def compare(a: Path, b: Path) -> dict[str, float | int]:
    """Every WAV under ``a`` against its namesake under ``b``."""
    import numpy as np

    from fxlib.data.audio import load_audio

    files, differ, largest = 0, 0, 0.0
    for path in sorted(a.rglob("*.wav")):
        x, _ = load_audio(path)
        y, _ = load_audio(b / path.relative_to(a))
        diff = float(np.abs(x - y).max()) if x.shape == y.shape else float("inf")
        files, differ, largest = files + 1, differ + (diff > 0), max(largest, diff)
    return {"files": files, "files_differing": differ, "max_abs_diff": largest}


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.child:
        return child(args.child, args.seed)
    from report import Run  # benchmarks/report.py

    run = Run("numpy_isa")
    with tempfile.TemporaryDirectory() as tmp:
        for setting, env in SETTINGS.items():
            subprocess.run([sys.executable, __file__, "--child", str(Path(tmp) / setting), "--seed", str(args.seed)],
                           env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
        features = {s: json.loads((Path(tmp) / s / "features.json").read_text()) for s in SETTINGS}
        tasks = {name: compare(Path(tmp) / "native" / name, Path(tmp) / "avx2" / name) for name in TASKS}
    for name, row in tasks.items():
        print(f"{name:10} {row}", flush=True)
    run.write(args.out, {"settings": SETTINGS, "seed": args.seed, "profile": "smoke"}, features=features, tasks=tasks)


if __name__ == "__main__":
    main()
