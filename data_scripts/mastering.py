#!/usr/bin/env python
"""Make the automatic-mastering data set.

    python data_scripts/mastering.py build --root data/mastering [--seconds 360] [--seed 0]   offline, ~90 s
    python data_scripts/mastering.py download --root data/mastering --manifest songs.json   your song list

See :mod:`fxlib.data.mastering` for what each makes and for the song manifest's format.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fxlib.data.mastering import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
