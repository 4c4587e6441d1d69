#!/usr/bin/env python
"""Make the tube-amp emulation data set.

    python data_scripts/amp.py build --root data/amp [--seconds 240] [--seed 0]   offline, ~20 s
    python data_scripts/amp.py download --root data/amp [--url URL] [--md5 MD5]   the paper's recordings

See :mod:`fxlib.data.amp` for what each makes.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fxlib.data.amp import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
