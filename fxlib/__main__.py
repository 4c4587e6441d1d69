"""``python -m fxlib``: the same as the ``fxlib`` command (:mod:`fxlib.cli`)."""
import sys

from .cli import main

sys.exit(main())
