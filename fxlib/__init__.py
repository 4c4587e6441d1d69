"""deepafx-fxlib: differentiable signal processing with black-box audio effects.

A PyTorch reproduction of Martínez Ramírez, Wang, Smaragdis and Bryan, "Differentiable
signal processing with black-box audio effects", ICASSP 2021.

Importing fxlib sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is already set: torch's idle
OpenMP threads then sleep instead of spinning, and so leave the cores to the render workers
between the encoder's passes (``benchmarks/train_step.py`` times a step both ways). libgomp
reads the variable when torch is first imported, so import fxlib before torch.

On x86-64 it also sets ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` unless they
are set: torch's CPU kernels (oneDNN's convolutions above all) otherwise pick AVX-512 where the
processor has it, and their results differ in the last bits from the AVX2 ones; SPSA training
grows such differences into different models, so a seeded run would give other tables on a
machine with another instruction set. Both are read at torch's first computation, so this holds
when fxlib is imported before any tensor is computed (``benchmarks/isa.py`` shows the
difference and what the pin costs).
"""
import os
import platform

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

from .chain import FxChain
from .errors import (AudioFormatError, BackendUnavailableError, FxError, ParameterError, PluginNotFoundError,
                     PluginOutputError, SpecError, UnsupportedPluginError)
from .hosts import Effect, load_effect
from .params import Param

__version__ = "0.1.0"

_LAZY = {"BlackBoxFx": "layer", "Engine": "engine", "EngineError": "engine", "DeepAFx": "model"}


def __getattr__(name: str):
    """``BlackBoxFx``, ``Engine``, ``EngineError`` and ``DeepAFx`` import torch: load them on
    first use, so worker processes that only host effects start without it."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fxlib' has no attribute {name!r}")

__all__ = ["BlackBoxFx", "DeepAFx", "Engine", "EngineError", "AudioFormatError", "BackendUnavailableError", "Effect", "FxChain", "FxError", "Param",
           "ParameterError", "PluginNotFoundError", "PluginOutputError", "SpecError", "UnsupportedPluginError", "load_effect"]
