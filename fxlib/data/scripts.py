"""What the three data commands (``python data_scripts/<task>.py``, ``fxlib data <task>``) share.

Each task's data module builds its own ``download`` and ``build`` options on top of
:func:`task_parser`, which gives both the data folder (``--root``, default ``data/<task>``)
and the seed, and ``build`` the amount of audio (``--seconds``, default the task's quick
profile, so that ``fxlib train`` on that profile uses what the command built). :func:`run`
records the command line in the manifest and turns an :class:`~fxlib.errors.FxError` into
a one-line message and exit status 2.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Callable, Sequence

from ..errors import FxError


def task_parser(task: str, doc: str, download_help: str,
                build_help: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """``(parser, download, build)`` for ``data_scripts/<task>.py``, with the shared options added."""
    from ..tasks import get_task

    seconds = get_task(task).profile("quick").data_seconds
    parser = argparse.ArgumentParser(prog=f"data_scripts/{task}.py", description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    download = sub.add_parser("download", help=download_help)
    build = sub.add_parser("build", help=build_help)
    for p, seed_help in ((download, "split seed (default 0)"), (build, "seed of the generated audio (default 0)")):
        p.add_argument("--root", default=f"data/{task}", help=f"data set folder (default data/{task})")
        p.add_argument("--seed", type=int, default=0, help=seed_help)
    build.add_argument("--seconds", type=float, default=seconds,
                       help=f"total audio in seconds (default {seconds:g}, the quick profile's)")
    return parser, download, build


def run(task: str, argv: Sequence[str] | None, action: Callable[[str], object]) -> int:
    """Call ``action(command)`` with the command line as typed; the exit status (2 on an FxError)."""
    command = f"python data_scripts/{task}.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        action(command)
    except FxError as e:
        print(f"{task} data: error: {e}", file=sys.stderr)
        return 2
    return 0
