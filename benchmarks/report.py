"""The frame every benchmark writes its figures in: when, by which command, on which machine,
under which load (the 1, 5 and 15 minute load averages at the start and at the end).

Usage::

    run = Run("encoder")            # at the start: the clock and the load
    figures = ...                   # the measurements
    run.write(out, settings, backbones=figures)
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pedalboard
import torch

from fxlib.atomic import write_json


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


class Run:
    """One benchmark run: its name, its start time and the load at its start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.load_at_start = load_average()

    def machine(self) -> dict[str, Any]:
        """The machine, the versions that matter to the figures, and the load at the start and now."""
        return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                "numpy": np.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "pedalboard": pedalboard.__version__, "load_average": self.load_at_start,
                "load_average_at_end": load_average()}

    def write(self, out: Path, settings: Mapping[str, Any], **figures: Any) -> dict[str, Any]:
        """Write ``{"benchmark", "created", "command", "machine", "settings", "wall_seconds", **figures}``
        to ``out`` atomically, say so, and return it."""
        report = {"benchmark": self.name,
                  "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": shlex.join([sys.executable, *sys.argv]), "machine": self.machine(),
                  "settings": dict(settings), "wall_seconds": round(time.perf_counter() - self.started, 1),
                  **figures}
        write_json(out, report)
        print(f"wrote {out} in {report['wall_seconds']} s")
        return report
