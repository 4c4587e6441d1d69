"""The batch runner (fxlib.reproduce) on tiny fake notebooks, and the report from fake results."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from fxlib import reproduce
from fxlib.atomic import write_json
from fxlib.cli import main
from fxlib.paths import data_dir, reproduction_dir
from fxlib.report import Outcome, at_a_glance, paper_comparison, write_report
from fxlib.reproduce import Job, run_jobs, task_parameters

KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def fake_notebook(path: Path, body: str) -> Path:
    """A notebook with a ``parameters`` cell (``out``, ``value``) and one code cell ``body``."""
    params = new_code_cell('out = ""\nvalue = 0')
    params.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[params, new_code_cell(body)], metadata=KERNEL), path)
    return path


WRITES = "from pathlib import Path\nPath(out).write_text(str(value * 2))"


def test_a_failing_notebook_stops_the_run_naming_itself_and_its_cell(tmp_path):
    first = fake_notebook(tmp_path / "first.ipynb", WRITES)
    second = fake_notebook(tmp_path / "second.ipynb", "x = 1\nraise ValueError('the fake fails here')")
    third = fake_notebook(tmp_path / "third.ipynb", WRITES)
    executed = tmp_path / "executed"
    jobs = [Job("first", first, executed / "first.ipynb", {"out": str(tmp_path / "first.txt"), "value": 21}),
            Job("second", second, executed / "second.ipynb", {"out": str(tmp_path / "second.txt")}),
            Job("third", third, executed / "third.ipynb", {"out": str(tmp_path / "third.txt"), "value": 1})]
    log = tmp_path / "run.json"
    outcomes = run_jobs(jobs, log, {"command": "test"})

    assert [o.status for o in outcomes] == ["done", "failed", "not run"]
    error = outcomes[1].error
    assert "second.ipynb" in error and "cell 2" in error and "ValueError" in error and "the fake fails here" in error
    assert (tmp_path / "first.txt").read_text() == "42"  # the injected parameter reached the notebook
    assert (executed / "first.ipynb").exists()  # what finished is kept
    assert not (tmp_path / "third.txt").exists() and not (executed / "third.ipynb").exists()
    failed = nbformat.read(executed / "second.ipynb", as_version=4)  # the partly executed notebook shows the error
    assert any(o.get("ename") == "ValueError" for c in failed.cells if c.cell_type == "code" for o in c.outputs)
    assert not list(executed.glob(".*partial*"))  # no temporary file left
    header, logged = reproduce.read_run_log(log)
    assert header == {"command": "test"} and [o.status for o in logged] == ["done", "failed", "not run"]
    assert {o.command for o in logged} == {"test"}


def test_a_rerun_of_some_tasks_keeps_the_other_tasks_outcomes_and_commands(tmp_path):
    log = tmp_path / "paper" / "run.json"
    first = [Outcome("mastering", "03_mastering.ipynb", "z", "done", 900.0, command="python -m fxlib.reproduce"),
             Outcome("amp", "01_amp_emulation.ipynb", "x", "done", 600.0, command="python -m fxlib.reproduce")]
    write_json(log, {"command": "python -m fxlib.reproduce", "profile": "quick",  # a log without commands
                     "notebooks": [{k: v for k, v in asdict(o).items() if k != "command"} for o in first]})
    assert reproduce.earlier_outcomes(log, "smoke") == []  # another profile: a new log
    earlier = reproduce.earlier_outcomes(log, "quick")
    job = Job("mastering", fake_notebook(tmp_path / "m.ipynb", WRITES), tmp_path / "out" / "m.ipynb",
              {"out": str(tmp_path / "m.txt"), "value": 1})
    [outcome] = run_jobs([job], log, {"command": "rerun --tasks mastering", "profile": "quick"}, earlier)
    assert outcome.status == "done" and outcome.command == "rerun --tasks mastering"

    header, logged = reproduce.read_run_log(log)
    assert header == {"command": "rerun --tasks mastering", "profile": "quick"}
    assert [o.name for o in logged] == ["amp", "mastering"]  # the notebooks' order
    assert logged[0] == first[1]  # amp's outcome as it was
    assert logged[1].command == "rerun --tasks mastering" and logged[1].wall_seconds != 900.0
    text = write_report(tmp_path / "paper", [o.name for o in logged], logged, header["command"], "quick").read_text()
    assert "`01_amp_emulation.ipynb` done in 600 s (by `python -m fxlib.reproduce`)" in text
    assert text.count("(by `") == 1 and "## amp:" in text and "## mastering:" in text


def test_a_cell_that_never_ends_fails_the_run_naming_the_cell(tmp_path):
    stuck = fake_notebook(tmp_path / "stuck.ipynb", "import time\ntime.sleep(60)")
    job = Job("stuck", stuck, tmp_path / "executed" / "stuck.ipynb", {"out": "x"}, cell_timeout=2)
    [outcome] = run_jobs([job])
    assert outcome.status == "failed"
    assert "stuck.ipynb stopped in cell 2" in outcome.error and "CellTimeoutError" in outcome.error
    assert job.output.exists()  # the partly executed notebook is kept


def test_the_limit_on_waits_outside_cells_leaves_a_cell_its_own_limit(tmp_path, monkeypatch):
    """papermill's waits that belong to no cell (its closing kernel_info request) are bounded by
    HANDSHAKE_TIMEOUT_S; a cell that runs longer than that still runs to its own limit."""
    monkeypatch.setattr(reproduce, "HANDSHAKE_TIMEOUT_S", 1)
    slow = fake_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(4)\n" + WRITES)
    job = Job("slow", slow, tmp_path / "executed" / "slow.ipynb", {"out": str(tmp_path / "x.txt"), "value": 2},
              cell_timeout=120)
    [outcome] = run_jobs([job])
    assert outcome.status == "done", outcome.error
    assert (tmp_path / "x.txt").read_text() == "4"


def test_every_notebook_runs_when_none_fails(tmp_path):
    jobs = [Job(name, fake_notebook(tmp_path / f"{name}.ipynb", WRITES), tmp_path / "out" / f"{name}.ipynb",
                {"out": str(tmp_path / f"{name}.txt"), "value": i}) for i, name in enumerate(["a", "b"])]
    outcomes = run_jobs(jobs)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert all(o.wall_seconds is not None and o.wall_seconds > 0 for o in outcomes)
    assert (tmp_path / "b.txt").read_text() == "2"


def test_a_missing_notebook_is_named(tmp_path):
    outcomes = run_jobs([Job("gone", tmp_path / "gone.ipynb", tmp_path / "out.ipynb")])
    assert outcomes[0].status == "failed" and "gone.ipynb" in outcomes[0].error


def test_task_parameters_train_and_stay_under_the_output_folder():
    params = task_parameters("breath", "quick", 3, "paper")
    assert params == {"train": True, "profile": "quick", "data": "data/breath", "chain": "", "seed": 3,
                      "out": "runs/breath-quick",
                      "results": "paper/results", "figures": "paper/figures", "audio": "paper/audio/breath"}


def test_a_smoke_reproduction_keeps_off_the_quick_data_and_the_committed_results():
    params = task_parameters("amp", "smoke", 0, reproduction_dir("smoke"))
    assert params["data"] == "data/amp-smoke" and params["out"] == "runs/amp-smoke"
    assert params["results"] == "runs/reproduce-smoke/results"
    assert str(reproduction_dir("quick")) == "paper" and str(data_dir("amp", "paper")) == "data/amp"


SYSTEMS = {"input": {"loss": 3.0, "mfcc_cosine": 0.03}, "chain-best-fixed": {"loss": 2.0, "mfcc_cosine": 0.02},
           "deepafx": {"loss": 1.5, "mfcc_cosine": 0.01}}


def fake_results(task: str) -> dict:
    return {"command": f"fxlib train --task {task} --profile quick", "task": task, "profile": "quick",
            "chain": f"{task}-lv2", "seed": 0, "wall_seconds": 600.0,
            "machine": {"python": "3.11", "platform": "Linux-test", "cpus": 2, "torch": "2.13.0", "cuda": None},
            "data": {"test_files": 6, "test_seconds": 60.0, "source": {"kind": "offline"}}, "systems": SYSTEMS}


def test_the_report_shows_every_task_and_says_the_paper_gives_no_figures(tmp_path):
    paper = tmp_path / "paper"
    for task in ("amp", "mastering"):
        write_json(paper / "results" / f"{task}.json", fake_results(task))
    outcomes = [Outcome("amp", "01_amp_emulation.ipynb", "x", "done", 650.0),
                Outcome("breath", "02_breath_removal.ipynb", "y", "failed", None,
                        "notebook 02_breath_removal.ipynb failed in cell 5"),
                Outcome("mastering", "03_mastering.ipynb", "z", "done", 700.0)]
    report = write_report(paper, ["amp", "breath", "mastering"], outcomes, "python -m fxlib.reproduce", "quick")
    text = report.read_text()

    assert "## amp:" in text and "## breath:" in text and "## mastering:" in text
    assert "| deepafx | **1.5** | **0.01** |" in text  # our table, best values in bold
    assert "failed in cell 5" in text  # the failed task says why it has no results
    assert text.count("No comparison with the paper's stimuli was run for this task") == 2  # nothing invented
    assert "python -m fxlib.reproduce" in text and "22.5 min" in text and "2 CPUs" in text


def test_the_glance_compares_the_model_with_baselines_not_with_its_hop_by_hop_row():
    results = fake_results("mastering")
    results["systems"] = {**SYSTEMS, "deepafx-hop": {"loss": 1.7, "mfcc_cosine": 0.01}}
    text = at_a_glance(["mastering"], {"mastering": results})
    assert "| 1.5 | chain-best-fixed (2) |" in text


def fake_comparison(order: list[str], medians: dict[str, float], passes: bool = True) -> dict:
    measure = {"higher_is_better": True, "anchors_right": 7, "examples": 7, "tau_mean": 0.9, "tau_of_medians": 1.0,
               "passes": passes, "why": "passes" if passes else "anchors wrong in 7 of 7 examples"}
    comparison = {"validation": {"examples": ["0"] * 7, "rule": "the rule", "measures": {"m": measure}},
                  "passing": ["m"] if passes else [], "note": "no measure passes"}
    if passes:
        comparison["virtual_listening"] = {
            "protocol": {"excerpts": 5, "seconds": 4.0, "mid_anchor": "gain"},
            "measures": {"m": {"order": order, "medians": medians,
                               "tests": [{"condition": "input", "better": False, "p_bonferroni": 0.01}]}}}
    return comparison


def test_the_report_sets_the_paper_order_beside_the_virtual_test_and_says_whether_they_agree():
    agree = fake_comparison(["deepafx", "matchering", "mid-anchor", "input"],
                            {"deepafx": 4.0, "matchering": 3.0, "mid-anchor": 2.0, "input": 1.0})
    text = paper_comparison("mastering", agree)
    assert "`reference` > `deepafx` > `matchering` > `mid-anchor` > `input`" in text  # the listeners' order
    assert "reference 0.95" in text and "secondary account" in text  # medians, labelled secondary
    assert "| m | deepafx 4 > matchering 3 > mid-anchor 2 > input 1 | yes | better than input (p 0.01) |" in text
    disagree = fake_comparison(["matchering", "deepafx", "mid-anchor", "input"],
                               {"deepafx": 3.0, "matchering": 4.0, "mid-anchor": 2.0, "input": 1.0})
    assert "no (Kendall tau +0.67)" in paper_comparison("mastering", disagree)
    none = paper_comparison("breath", fake_comparison([], {}, passes=False))
    assert "**No measure passes for breath**" in none and "Virtual listening" not in none


def test_the_report_shows_the_before_and_after_transfer_on_the_papers_inputs():
    comparison = fake_comparison(["deepafx", "input"], {"deepafx": 4.0, "input": 1.0})
    assert "Before and after" not in paper_comparison("amp", comparison)
    comparison["transfer"] = {
        "runs": {"before": {"run": "amp-quick-before", "commit": "cf0ce8d2e6", "generator": "fxlib.data.amp.build/1"},
                 "after": {"run": "amp-quick", "commit": "bacf9d1ce7", "generator": "fxlib.data.amp.build/3"}},
        "measures": {"lsd_db": {"higher_is_better": False}},
        "medians": {"lsd_db": {"input": 22.0, "paper-deepafx": 6.84, "before": 14.4, "after": 9.44}}}
    text = paper_comparison("amp", comparison)
    assert "`before` is run `amp-quick-before` (commit `cf0ce8d`) on data built by fxlib.data.amp.build/1" in text
    assert "| lsd_db | lower | 22 | 6.84 | 14.4 | 9.44 |" in text
    assert "examples; `fxlib transfer`, measured apart" in text  # a record without its command
    comparison["transfer"]["command"] = "fxlib transfer --before runs/b --after runs/a"
    assert "examples; `fxlib transfer --before runs/b --after runs/a`, measured apart" in paper_comparison("amp", comparison)


def test_report_only_rewrites_the_report_from_results(tmp_path):
    paper = tmp_path / "paper"
    write_json(paper / "results" / "amp.json", fake_results("amp"))
    assert main(["reproduce", "--report-only", "--paper", str(paper), "--tasks", "amp"]) == 0
    text = (paper / "REPORT.md").read_text()
    assert "## amp:" in text and "report regenerated from results" in text
    assert json.loads((paper / "results" / "amp.json").read_text())["task"] == "amp"


def test_the_report_shows_a_cross_machine_check_only_beside_the_tables_it_measured(tmp_path):
    from fxlib.report import CROSS_MACHINE, NUMPY_ISA

    paper = tmp_path / "paper"
    write_json(tmp_path / NUMPY_ISA, {"tasks": {"amp": {"files": 10, "files_differing": 0, "max_abs_diff": 0.0},
                                                "breath": {"files": 10, "files_differing": 8, "max_abs_diff": 3.6e-12}}})
    results = {**fake_results("amp"), "created": "2026-12-05T10:00:00+00:00"}
    write_json(paper / "results" / "amp.json", results)
    measured = {"created": "2026-12-05T12:00:00+00:00", "committed_created": {"amp": results["created"]},
                "other_machine": {"amp": {"platform": "Linux-other", "cpus": 2, "python": "3.11", "torch": "2.13"}},
                "differences": {"amp": ["deepafx loss: 1.0 != 1.1"]}, "within_tolerance": False,
                "spread": {"amp": {"values": 12, "largest_rel_diff": 0.1}}}
    write_json(tmp_path / CROSS_MACHINE, measured)
    text = write_report(paper, ["amp"]).read_text()
    assert "## Reproducibility" in text and "Linux-other" in text and "NOT within the tolerance" in text
    assert "- amp: 1 values differ, e.g. deepafx loss: 1.0 != 1.1 (12 values, largest relative difference 0.1)" in text
    assert "without that code: amp 0 of 10 files differ; breath 8 of 10 files differ, by up to 3.6e-12;" in text
    write_json(paper / "results" / "amp.json", {**results, "created": "2026-12-06T10:00:00+00:00"})
    (tmp_path / NUMPY_ISA).unlink()
    text = write_report(paper, ["amp"]).read_text()
    assert "Across machines: not measured since these tables were made." in text and "Linux-other" not in text
    assert "builders use it. The same tolerance" in text, "a numpy measurement that is not there was described"


def test_the_cross_machine_check_passes_equal_tables_and_names_a_difference(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    committed, same, other = (tmp_path / name for name in ("committed", "same", "other"))
    write_json(committed / "amp.json", fake_results("amp"))
    write_json(same / "amp.json", fake_results("amp"))
    changed = fake_results("amp")
    changed["systems"] = {s: {**row, "loss": row["loss"] * (1 + 1e-4)} if s == "deepafx" else row
                          for s, row in changed["systems"].items()}
    write_json(other / "amp.json", changed)

    def check(folder: Path) -> tuple[int, dict]:
        out = tmp_path / f"{folder.name}.json"
        done = subprocess.run([sys.executable, str(root / "benchmarks" / "cross_machine.py"), str(folder),
                               "--committed", str(committed), "--out", str(out)], capture_output=True, text=True)
        return done.returncode, json.loads(out.read_text())

    code, measured = check(same)
    assert code == 0 and measured["within_tolerance"] and measured["differences"] == {"amp": []}
    assert measured["spread"]["amp"]["largest_rel_diff"] == 0 and measured["spread"]["amp"]["values"] > 1
    code, measured = check(other)
    assert code == 1 and not measured["within_tolerance"]
    assert measured["spread"]["amp"]["largest_rel_diff"] == pytest.approx(1e-4)
    assert [d.split(":")[0] for d in measured["differences"]["amp"]] == ["deepafx loss"]


def test_the_notebook_client_waits_on_the_kernel_in_short_polls(tmp_path, monkeypatch):
    """A long wait is made of polls of at most POLL_S, so a message that a long poll would miss
    is read within POLL_S (docs/experiments/reliability.md, the notebook stall)."""
    import jupyter_client.channels as channels

    polls = []
    poll = channels.AsyncZMQSocketChannel.get_msg

    async def recording(self, timeout=None):
        polls.append(timeout)
        return await poll(self, timeout)

    monkeypatch.setattr(channels.AsyncZMQSocketChannel, "get_msg", recording)
    slow = fake_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(3)\n" + WRITES)
    reproduce.execute_notebook(slow, tmp_path / "out.ipynb", {"out": str(tmp_path / "x.txt"), "value": 1},
                               cell_timeout=900)
    assert (tmp_path / "x.txt").read_text() == "2"
    assert polls and None not in polls and max(polls) <= reproduce.POLL_S
