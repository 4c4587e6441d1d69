"""The listening kit's file formats and names: what stimuli sets and ratings files hold.

See :mod:`fxlib.listening` for the layout of a stimuli folder and of a ratings file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..data.audio import DataError
from ..errors import FxError

FORMAT = 1
STIMULI_KIND = "fxlib-mushra-stimuli"
RATINGS_KIND = "fxlib-mushra-ratings"
MANIFEST = "stimuli.json"
TRIAL_RECORD = "trial.json"
OPEN_REFERENCE = "open-reference.wav"
HIDDEN_REFERENCE = "reference"
"""System name of the hidden reference (the reference itself, rated blind)."""
ANCHOR = "anchor"
"""System name of the low anchor (the reference low-passed at :data:`LOW_ANCHOR_HZ`)."""
SCALE = (("excellent", 80, 100), ("good", 60, 80), ("fair", 40, 60), ("poor", 20, 40), ("bad", 0, 20))
"""The MUSHRA continuous quality scale: ``(category, low, high)`` scores."""
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SIMULATED_PREFIX = "sim-"
CARELESS = "sim-careless"


class RatingError(FxError, ValueError):
    """A rating that is missing, duplicated, not a number or outside 0-100 (names the stimulus and trial)."""


class StimuliMismatchError(DataError):
    """A ratings file made on another stimuli set than the one given."""


def read_kit_file(path: Path, kind: str, what: str) -> dict[str, Any]:
    """A JSON file of the kit (``what``: "stimuli" or "ratings"), checked for its ``kind`` and format."""
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(content, dict) or content.get("kind") != kind:
        raise DataError(f"{path}: not a listening-test {what} file (kind {kind!r})")
    if content.get("format") != FORMAT:
        raise DataError(f"{path}: {what} format {content.get('format')!r}, this fxlib reads format {FORMAT}")
    return content
