"""How a model frames audio: the context window around each rendered frame, and whole files.

The paper's encoder listens to a context window and the effects render the frame at its
centre::

    context (40960 samples)  |------------------[== frame (1024) ==]------------------|
                              <- context_lead(context, frame) ->

Training cuts such windows from the data (:mod:`fxlib.data.windows`) and inference on a whole
file cuts one around every hop of ``frame`` samples (:meth:`fxlib.model.DeepAFx.contexts`); both
use the two functions here, so the geometry is defined once.

Over a whole file a model sets the chain per hop or once per file (:data:`INFERENCE`).
"""
from __future__ import annotations

import numpy as np

#: How a model sets the chain over a whole file: ``"hop"``, the parameter vector predicted for each
#: hop (time-varying, the paper's); ``"song"``, the mean over the file's hops of those vectors (in
#: [0, 1]), one setting for the whole file, as the targets of a task whose chain was set once per
#: file (a mastering engineer's) were made.
INFERENCE = ("hop", "song")


def context_lead(context: int, frame: int) -> int:
    """Samples of a context window before its centred frame: ``(context - frame) // 2``."""
    return (context - frame) // 2


def window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """``audio[:, start:start + length]`` as float32, zero-padded where the range leaves ``[0, T)``.

    Shape:
        audio ``(C, T)`` -> ``(C, length)``.
    """
    out = np.zeros((audio.shape[0], length), np.float32)
    lo, hi = max(start, 0), min(start + length, audio.shape[1])
    if hi > lo:
        out[:, lo - start:hi - start] = audio[:, lo:hi]
    return out
