#!/usr/bin/env python
"""Make the breath and pop removal data set.

    python data_scripts/breath.py build --root data/breath [--seconds 600] [--seed 0]   offline
    python data_scripts/breath.py download --root data/breath [--url URL] [--md5 MD5]   the paper's DAPS

See :mod:`fxlib.data.breath` for what each makes.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fxlib.data.breath import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
