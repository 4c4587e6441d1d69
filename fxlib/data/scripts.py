"""What the three data commands (``fxlib data <task>``, ``python data_scripts/<task>.py``) share.

Each task's data module builds its own ``download`` and ``build`` options on top of
:func:`task_parser`, which gives both the data folder (``--root``) and the seed, and ``build``
the amount of audio (``--seconds``). The defaults of those two come from the caller (the command
line takes them from :mod:`fxlib.paths` and the task's quick profile, so that ``fxlib train`` on
that profile uses what the command built): the data layer knows nothing of tasks' profiles.
:func:`command_line` is the command recorded in the data set's manifest. Errors are raised as
:class:`~fxlib.errors.FxError` and reported by :func:`fxlib.cli.main`.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence


def task_parser(task: str, doc: str, download_help: str, build_help: str, root: str,
                seconds: float) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """``(parser, download, build)`` for ``fxlib data <task>``, with the shared options added.

    Args:
        task: the task name; doc: the data module's docstring (its first paragraph describes it).
        download_help, build_help: one line each.
        root: the default data folder; seconds: the default amount of audio of ``build``.
    """
    parser = argparse.ArgumentParser(prog=f"fxlib data {task}", description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    download = sub.add_parser("download", help=download_help)
    build = sub.add_parser("build", help=build_help)
    for p, seed_help in ((download, "split seed (default 0)"), (build, "seed of the generated audio (default 0)")):
        p.add_argument("--root", default=root, help=f"data set folder (default {root})")
        p.add_argument("--seed", type=int, default=0, help=seed_help)
    build.add_argument("--seconds", type=float, default=seconds,
                       help=f"total audio in seconds (default {seconds:g}, the quick profile's)")
    return parser, download, build


def command_line(task: str, argv: Sequence[str] | None) -> str:
    """The command as typed, for the manifest: ``fxlib data <task> <argv...>``."""
    return f"fxlib data {task} " + shlex.join(sys.argv[1:] if argv is None else argv)
