#!/usr/bin/env python
"""Make the breath data set: the same as `fxlib data breath ...` (`fxlib data breath --help`).

See :mod:`fxlib.data.breath` for what `download` and `build` make. Needs fxlib installed
(`make setup` installs it into .venv).
"""
import sys

from fxlib.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "breath", *sys.argv[1:]]))
