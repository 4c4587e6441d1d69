"""deepafx-fxlib: differentiable signal processing with black-box audio effects.

A PyTorch reproduction of Martínez Ramírez, Wang, Smaragdis and Bryan, "Differentiable
signal processing with black-box audio effects", ICASSP 2021.
"""
from .chain import FxChain
from .errors import (AudioFormatError, BackendUnavailableError, FxError, ParameterError, PluginNotFoundError,
                     PluginOutputError, SpecError, UnsupportedPluginError)
from .hosts import Effect, load_effect
from .params import Param

__version__ = "0.1.0"

__all__ = ["AudioFormatError", "BackendUnavailableError", "Effect", "FxChain", "FxError", "Param",
           "ParameterError", "PluginNotFoundError", "PluginOutputError", "SpecError", "UnsupportedPluginError", "load_effect"]
