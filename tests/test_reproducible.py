"""A seeded run gives the same results in another process, with another number of render workers,
on a loaded machine: the smoke profile trained twice in separate processes.

Tolerance: float rounding (rel 1e-6). The engine gives each batch item the same render whatever
worker holds it, and the seed fixes every draw, so nothing else may differ on one machine. Across
machines (other CPUs, other math kernels) this is not claimed here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fxlib.tasks import get_task

#: Trains the amp smoke profile on the built-in chain with the worker count of argv[1] into argv[3],
#: on the data set argv[2], and writes the results there.
TRAIN = r"""
import sys
from fxlib.experiment import run_task
from fxlib.tasks import get_task

profile = get_task("amp").profile("smoke").override(workers=int(sys.argv[1]))
run_task("amp", profile, data=sys.argv[2], chain="amp-builtin", out=sys.argv[3], progress=False)
"""

#: Keeps one core busy until killed.
BUSY = "while True: pass"


def train(workers: int, data: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN, str(workers), str(data), str(out)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results" / "amp.json").read_text())["systems"]


def test_a_seeded_run_repeats_in_another_process_with_other_workers_under_load(tmp_path):
    data = tmp_path / "data"
    get_task("amp").build_data(data, get_task("amp").profile("smoke").data_seconds, 0)
    first = train(1, data, tmp_path / "one-worker")
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        second = train(2, data, tmp_path / "two-workers-loaded")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert first.keys() == second.keys()
    for system, row in first.items():
        for metric, value in row.items():
            assert second[system][metric] == pytest.approx(value, rel=1e-6, abs=1e-12), \
                f"{system} {metric}"
