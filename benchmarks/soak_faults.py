"""The soak's fault: a pass-through python effect that, in the engine's worker processes, makes a
share of its renders abort the process or hang (``benchmarks/soak.py``).

The share is read from the environment (:data:`RATE_ENV`) when a render runs, so the soak sets it
for the workers it starts and renders its inline references without the effect. Worker processes
import this module by its id, ``"soak_faults:maybe_fail"``: they start with the soak's
``sys.path``, which holds this folder.
"""
from __future__ import annotations

import os
import random
import resource
import time

import numpy as np

RATE_ENV = "FXLIB_SOAK_FAULT_RATE"
HANG_SECONDS = 3600.0  # far past any engine timeout
_draws: dict[int, random.Random] = {}  # one generator per process, seeded from the OS


def maybe_fail(audio: np.ndarray, sample_rate: float, unused: float = 0.0) -> np.ndarray:
    """Pass ``audio`` through; with probability ``rate / 2`` abort the process, with ``rate / 2`` hang."""
    rate = float(os.environ.get(RATE_ENV, "0"))
    draw = _draws.setdefault(os.getpid(), random.Random()).random()
    if draw < rate / 2:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        os.abort()
    if draw < rate:
        time.sleep(HANG_SECONDS)
    return audio


def effect() -> dict:
    """The effect's spec, to append to a chain: nothing learned."""
    return {"name": "fault", "kind": "python", "id": "soak_faults:maybe_fail",
            "params": [{"name": "unused", "low": 0, "high": 1, "default": 0}]}
