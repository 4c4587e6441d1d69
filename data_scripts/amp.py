#!/usr/bin/env python
"""Make the amp data set: the same as `fxlib data amp ...` (`fxlib data amp --help`).

See :mod:`fxlib.data.amp` for what `download` and `build` make. Needs fxlib installed
(`make setup` installs it into .venv).
"""
import sys

from fxlib.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "amp", *sys.argv[1:]]))
