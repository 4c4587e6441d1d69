#!/usr/bin/env python
"""Make the mastering data set: the same as `fxlib data mastering ...` (`fxlib data mastering --help`).

See :mod:`fxlib.data.mastering` for what `download` and `build` make. Needs fxlib installed
(`make setup` installs it into .venv).
"""
import sys

from fxlib.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "mastering", *sys.argv[1:]]))
