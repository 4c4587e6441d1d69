"""A seeded run gives the same results in another process, with another number of render workers,
on a loaded machine: the smoke profile trained twice in separate processes.

Tolerance: float rounding (:data:`fxlib.report.REPEAT_REL`). The engine gives each batch item the
same render whatever worker holds it (for LV2, whatever that worker rendered before), and the seed
fixes every draw, so nothing else may differ on one machine. Across machines:
``benchmarks/cross_machine.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fxlib.report import table_differences
from fxlib.tasks import get_task

#: Trains the amp smoke profile on the chain argv[4] with the worker count of argv[1] into argv[3],
#: on the data set argv[2], and writes the results there.
TRAIN = r"""
import sys
from fxlib.experiment import run_task
from fxlib.report import table_differences
from fxlib.tasks import get_task

profile = get_task("amp").profile("smoke").override(workers=int(sys.argv[1]))
run_task("amp", profile, data=sys.argv[2], chain=sys.argv[4], out=sys.argv[3], progress=False)
"""

#: Keeps one core busy until killed.
BUSY = "while True: pass"


def train(workers: int, data: Path, out: Path, chain: str) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN, str(workers), str(data), str(out), chain],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results" / "amp.json").read_text())["systems"]


@pytest.mark.parametrize("chain", ["amp-builtin", "amp-lv2"])
def test_a_seeded_run_repeats_in_another_process_with_other_workers_under_load(chain, tmp_path):
    data = tmp_path / "data"
    get_task("amp").build_data(data, get_task("amp").profile("smoke").data_seconds, 0)
    first = train(1, data, tmp_path / "one-worker", chain)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        second = train(2, data, tmp_path / "two-workers-loaded", chain)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert first.keys() == second.keys()
    assert not table_differences(first, second)
