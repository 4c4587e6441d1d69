"""Does a fresh machine's reproduction give the committed tables? Compares two results folders.

Run ``make reproduce`` in a fresh clone on a fresh machine, then, in this checkout::

    python benchmarks/cross_machine.py /path/to/fresh/clone/paper/results

Every value of every task's results table (``systems``) is compared with the committed one
(``paper/results``) at the tolerance the report states (:data:`fxlib.report.REPEAT_REL`).
Writes ``benchmarks/results/cross_machine.json`` (both machines, the differences per task, the
number of values compared and the largest relative difference among them, and
the committed tables' ``created`` stamps, so the report shows it only beside those tables);
``fxlib reproduce --report-only`` then puts it in ``paper/REPORT.md``. Exits 1 when a value
differs beyond the tolerance.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.report import CROSS_MACHINE, REPEAT_REL, table_differences  # noqa: E402


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("other", type=Path, help="the fresh run's results folder (<clone>/paper/results)")
    p.add_argument("--committed", type=Path, default=ROOT / "paper" / "results")
    p.add_argument("--out", type=Path, default=ROOT / CROSS_MACHINE)
    return p.parse_args(argv)


def read(folder: Path) -> dict[str, dict]:
    tables = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    if not tables:
        raise SystemExit(f"{folder} holds no results files (<task>.json)")
    return tables


def spread(first: dict, second: dict) -> dict[str, float | int]:
    """How many values two results tables (``{system: {metric: value}}``) share, and the largest
    relative difference among them (relative to the first's value; absolute where it is 0)."""
    shared = [(row[m], second[s][m]) for s, row in first.items() for m in row if m in second.get(s, {})]
    largest = max((abs(a - b) / (abs(a) or 1.0) for a, b in shared), default=0.0)
    return {"values": len(shared), "largest_rel_diff": largest}


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    run = Run("cross_machine")
    committed, other = read(args.committed), read(args.other)
    missing = sorted(set(committed) - set(other))
    if missing:
        raise SystemExit(f"{args.other} lacks the results of {', '.join(missing)}")
    differences = {task: table_differences(committed[task]["systems"], other[task]["systems"])
                   for task in committed}
    within = not any(differences.values())
    run.write(args.out, {"tolerance_rel": REPEAT_REL}, committed=str(args.committed), other=str(args.other),
              committed_created={t: r.get("created") for t, r in committed.items()},
              committed_machine={t: r["machine"] for t, r in committed.items()},
              other_machine={t: other[t]["machine"] for t in committed},
              differences=differences, within_tolerance=within,
              spread={task: spread(committed[task]["systems"], other[task]["systems"]) for task in committed})
    for task, found in differences.items():
        print(f"{task}: {'every value within' if not found else f'{len(found)} values differ: ' + '; '.join(found[:5])}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
