"""Misbehaving python effects for the engine's crash, hang and retry tests.

Worker processes import this module by its id (``"fx_crashy:..."``): they are spawned with
the test process's ``sys.path``, which pytest has given the tests folder.
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np

CRASH_ONCE_ENV = "FXLIB_TEST_CRASH_ONCE"
"""A file path: :func:`abort_once` aborts if the file does not exist yet, creating it first."""


def _abort() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the working tree
    os.abort()


def abort_above(audio: np.ndarray, sample_rate: float, level: float) -> np.ndarray:
    """Pass the audio through; abort the process when ``level`` > 0.5."""
    if level > 0.5:
        _abort()
    return audio


def hang_above(audio: np.ndarray, sample_rate: float, level: float) -> np.ndarray:
    """Pass the audio through; sleep for an hour when ``level`` > 0.5."""
    if level > 0.5:
        time.sleep(3600)
    return audio


def abort_once(audio: np.ndarray, sample_rate: float, level: float) -> np.ndarray:
    """Abort the first time ``level`` > 0.5 in any process (marked by a file), then pass through."""
    marker = Path(os.environ[CRASH_ONCE_ENV])
    if level > 0.5 and not marker.exists():
        marker.touch()
        _abort()
    return audio


def spec(function: str) -> dict:
    """A chain: a reference gain, then ``function`` of this module with its ``level`` learned."""
    return {"name": "crashy-chain", "sample_rate": 22050, "channels": 1, "effects": [
        {"name": "gain", "kind": "python", "id": "fxlib.reference_fx:gain", "learn": ["gain_db"],
         "params": [{"name": "gain_db", "low": -24, "high": 24, "default": 0, "unit": "dB"}]},
        {"name": "crashy", "kind": "python", "id": f"fx_crashy:{function}", "learn": ["level"],
         "params": [{"name": "level", "low": 0, "high": 1, "default": 0}]}]}
