"""Exceptions raised by fxlib, and :func:`require` for optional packages.

Every error names the plugin (and, where it applies, the parameter) it is about, so
that a message read in a notebook or a worker log points at the thing to fix.
"""
import importlib
from types import ModuleType


class FxError(Exception):
    """Base class of every fxlib error."""


class PluginNotFoundError(FxError, LookupError):
    """A plugin id, path or URI that no backend can find."""


class BackendUnavailableError(FxError, RuntimeError):
    """A backend whose system library is missing (for example liblilv-0 for LV2)."""


class UnsupportedPluginError(FxError, RuntimeError):
    """A plugin that exists but cannot be hosted (a required port or feature fxlib lacks)."""


class ParameterError(FxError, ValueError):
    """A misspelt parameter name, an out-of-range value or a bad parameter declaration."""


class AudioFormatError(FxError, ValueError):
    """Audio of the wrong dtype, shape, channel count or sample rate, or with NaN/Inf."""


class SpecError(FxError, ValueError):
    """A chain or effect spec that is malformed."""


class PluginOutputError(FxError, RuntimeError):
    """A plugin that produced NaN or Inf from finite input (often a setting it cannot handle)."""


class MissingPackageError(FxError, ImportError):
    """An optional package (one of fxlib's extras) that is not installed; the message gives the install line."""


def require(module: str, purpose: str, install: str) -> ModuleType:
    """Import ``module`` for ``purpose``, or raise :class:`MissingPackageError` saying how to install it.

    Args:
        module: the import name; purpose: what needs it (a metric, a baseline, a measure);
        install: the command that installs it (an extra of fxlib, or a pinned pip line).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingPackageError(f"{purpose} needs the package that provides '{module}' ({e}); install it with "
                                  f"`{install}` (make setup installs every extra)") from e
