"""Reliability figures, from the tests that try to break fxlib and from the soak.

Runs the tests of each group below (slow ones included) with pytest and a JUnit XML report, and
counts per group the test cases run, passed and failed, with their names; reads the soak's own
report (``benchmarks/results/soak.json``: run ``benchmarks/soak.py`` first) for its steps,
injected crashes and hangs, memory growth and leftovers. Writes
``benchmarks/results/reliability.json``; exits 1 when a test failed or a soak check did not pass.

Usage::

    python benchmarks/soak.py && python benchmarks/reliability.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

from report import Run  # noqa: E402 (benchmarks/report.py)

#: ``{group: [test function node ids]}``; every parametrised case of a function counts.
GROUPS = {
    "faults_injected_and_survived": [
        "tests/test_engine.py::test_a_crashing_plugin_is_named_and_the_pool_recovers",
        "tests/test_engine.py::test_a_crash_in_the_perturbed_renders_is_reported_by_backward",
        "tests/test_engine.py::test_a_crash_is_retried_once_when_asked",
        "tests/test_engine.py::test_a_hanging_plugin_times_out_and_the_pool_recovers",
        "tests/test_engine.py::test_keyboard_interrupt_kills_busy_workers_and_the_pool_recovers",
        "tests/test_engine.py::test_no_worker_outlives_close_an_exception_or_garbage_collection",
        "tests/test_train.py::test_a_failed_render_skips_its_step_and_too_many_in_a_row_stop_the_run",
        "tests/test_faults.py::test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one",
    ],
    "runs_killed_and_resumed_identically": [
        "tests/test_faults.py::test_a_run_killed_anywhere_and_rerun_equals_an_uninterrupted_run",
        "tests/test_faults.py::test_a_checkpoint_cut_short_by_a_kill_leaves_the_previous_one",
        "tests/test_train.py::test_resume_after_kill_matches_uninterrupted_run",
        "tests/test_train.py::test_a_run_resumed_at_a_phase_boundary_starts_that_phase_afresh",
        "tests/test_reproducible.py::test_a_seeded_run_repeats_in_another_process_with_other_workers_under_load",
    ],
    "bad_files_tried_and_named": [
        "tests/test_faults.py::test_a_data_file_that_goes_bad_between_runs_is_named_before_training_and_the_run_is_kept",
        "tests/test_train.py::test_corrupt_wav_is_named",
        "tests/test_train.py::test_calibration_files_are_checked_and_a_broken_one_named",
        "tests/test_data.py::test_load_corrupt_file_names_it",
        "tests/test_data.py::test_load_errors_missing_nan_and_bad_channels",
        "tests/test_pretrained.py::test_a_model_file_carrying_code_or_of_another_kind_is_refused",
        "tests/test_download.py::test_extract_refuses_unsafe_members",
        "tests/test_download.py::test_checksum_mismatch_keeps_nothing",
        "tests/test_download.py::test_a_bad_or_overlong_partial_file_is_fetched_again",
        "tests/test_listening.py::test_a_malformed_stimuli_set_is_named_not_half_loaded",
        "tests/test_listening.py::test_a_malformed_ratings_file_is_named",
    ],
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--soak", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    return p.parse_args(argv)


def run_tests(node_ids: list[str]) -> list[dict]:
    """Run ``node_ids`` (slow tests included); ``[{"test", "outcome"}]`` per test case."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider",
                               f"--junitxml={report}", *node_ids], cwd=ROOT, capture_output=True, text=True)
        if done.returncode not in (0, 1):  # 1: some test failed, counted below; others: pytest could not run them
            raise SystemExit(f"pytest could not run the reliability tests (exit {done.returncode}):\n"
                             f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
        cases = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                if case.find(kind) is not None:
                    outcome = "failed" if kind != "skipped" else "skipped"
            module = case.get("classname", "").replace(".", "/")
            cases.append({"test": f"{module}.py::{case.get('name')}", "outcome": outcome})
    return cases


def group_of(test: str) -> str:
    return next(g for g, ids in GROUPS.items() if any(test.split("[")[0] == i for i in ids))


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    run = Run("reliability")
    cases = run_tests([i for ids in GROUPS.values() for i in ids])
    groups = {}
    for name in GROUPS:
        mine = [c for c in cases if group_of(c["test"]) == name]
        groups[name] = {"cases": len(mine), **{o: sum(c["outcome"] == o for c in mine)
                                               for o in ("passed", "failed", "skipped")},
                        "tests": mine}
    soak = json.loads(args.soak.read_text()) if args.soak.is_file() else None
    soak_summary = None if soak is None else {
        "steps": soak["totals"]["steps"], "failed_steps": soak["totals"]["failed"],
        "fault_rate": soak["settings"]["fault_rate"], "outputs_checked": soak["totals"]["outputs_checked"],
        "mismatched_outputs": sum(r["mismatched"] for r in soak["runs"]),
        "lost_steps": sum(r["lost"] for r in soak["runs"]),
        "rss_growth_max": max(r["rss_growth"] for r in soak["runs"]),
        "segments_left": sum(len(r["segments_left_after_close"]) for r in soak["runs"]) +
        len(soak["sigkill"]["segments_left"]),
        "workers_left": sum(len(r["workers_left_after_close"]) for r in soak["runs"]) +
        len(soak["sigkill"]["workers_left"]),
        "checks": soak["checks"], "created": soak["created"]}
    run.write(args.out, {"groups": GROUPS, "soak_report": str(args.soak.relative_to(ROOT))}, **groups,
              soak=soak_summary)
    failed = sum(g["failed"] for g in groups.values())
    print({name: f"{g['passed']}/{g['cases']} passed" for name, g in groups.items()})
    return 1 if failed or soak is None or not all(soak["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
