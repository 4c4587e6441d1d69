"""fxlib.comparisons: mid anchors, paired tests, and the comparison with the paper's stimuli."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, noise, sine

from fxlib import comparisons
from fxlib.atomic import write_json
from fxlib.errors import FxError
from fxlib.metrics import loudness_lufs
from fxlib.model import DeepAFx
from fxlib.presets import chain_spec
from fxlib.rundir import RunDir, RunRecord

SHARED = Path(__file__).resolve().parents[2] / "shared" / "paper-listening-test"


def test_a_mix_anchor_is_half_the_level_matched_input_and_half_the_target():
    x, y = 0.1 * sine(440.0, seconds=1.0), noise(1.0, dbfs=-12.0)
    mid = comparisons.mid_anchor("mix", x, y, SR)
    gap = loudness_lufs(y, SR) - loudness_lufs(x, SR)
    np.testing.assert_allclose(mid, 0.5 * x * 10 ** (gap / 20) + 0.5 * y, rtol=1e-5, atol=1e-7)


def test_a_gain_anchor_moves_the_input_part_of_the_way_to_the_target_loudness():
    x, y = noise(1.0, dbfs=-30.0), noise(1.0, dbfs=-15.0, seed=1)
    mid = comparisons.mid_anchor("gain", x, y, SR)
    moved = loudness_lufs(mid, SR) - loudness_lufs(x, SR)
    assert moved == pytest.approx(comparisons.MID_ANCHOR_SHARE * (loudness_lufs(y, SR) - loudness_lufs(x, SR)), abs=0.01)
    with pytest.raises(FxError, match="unknown mid anchor kind"):
        comparisons.mid_anchor("half", x, y, SR)
    with pytest.raises(FxError, match="silent"):
        comparisons.mid_anchor("gain", 0 * x, y, SR)


def test_paired_tests_compare_every_condition_with_one_and_correct_for_their_number():
    rng = np.random.default_rng(0)
    base = rng.normal(3.0, 0.3, 6)
    scores = {str(i): {"deepafx": base[i], "better": base[i] + 1.0 + 0.05 * rng.normal(),
                       "same": base[i] + 0.05 * rng.normal(), "reference": None} for i in range(6)}
    tests = {t["condition"]: t for t in comparisons.paired_tests(scores, "deepafx", higher_is_better=True)}
    assert set(tests) == {"better", "same"}  # a condition the measure does not score is left out
    assert tests["better"]["better"] and tests["better"]["mean_difference"] == pytest.approx(1.0, abs=0.1)
    assert tests["better"]["p_bonferroni"] == pytest.approx(min(1.0, 2 * tests["better"]["p"]))
    assert tests["better"]["p_bonferroni"] < 0.001 < tests["same"]["p"]
    lower = {t["condition"]: t for t in comparisons.paired_tests(scores, "deepafx", higher_is_better=False)}
    assert not lower["better"]["better"]  # a higher value is worse for a lower-is-better measure


def test_without_the_paper_stimuli_the_comparison_says_so(tmp_path, monkeypatch):
    model = DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024)
    run = RunDir(tmp_path / "run")
    run.start(RunRecord("amp", "smoke", {}, "amp-builtin", model.config(), "data/amp", 0))
    with pytest.raises(FileNotFoundError, match="evaluate the run first"):
        comparisons.compare_with_paper(run, tmp_path / "results")
    write_json(tmp_path / "results" / "amp.json", {"task": "amp", "systems": {}})
    monkeypatch.setattr(comparisons, "paper_examples_folder", lambda task: None)
    comparison = comparisons.compare_with_paper(run, tmp_path / "results")
    assert "not here" in comparison["note"] and "virtual_listening" not in comparison
    written = json.loads((tmp_path / "results" / "amp.json").read_text())
    assert written["paper_comparison"] == comparison and written["task"] == "amp"  # the results are kept


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the paper's stimuli are not at {SHARED}")
def test_a_trained_run_is_compared_with_the_paper(tmp_path):
    pytest.importorskip("visqol", reason="the listeners extra is not installed (make setup installs it)")
    from fxlib.experiment import run_task

    results = run_task("amp", "smoke", chain="amp-builtin", data=tmp_path / "data", out=tmp_path / "run",
                       progress=False)
    comparison = comparisons.compare_with_paper(results["run_dir"], results["results_dir"])
    inputs = comparison["on_paper_inputs"]
    assert comparison["passing"] and set(inputs["gap"]) == set(comparison["passing"])
    assert {"deepafx", "paper-deepafx", "paper-cafx", "chain-dev-fixed", "input", "mid-anchor"} <= set(inputs["conditions"])
    virtual = comparison["virtual_listening"]
    assert len(virtual["excerpts"]) == comparisons.EXCERPTS
    assert set(virtual["conditions"]) == {"reference", "mid-anchor", "input", "deepafx", "neural-amp"}
    for measure, result in virtual["measures"].items():
        assert measure in comparison["passing"] and len(result["scores"]) == comparisons.EXCERPTS
        assert {t["condition"] for t in result["tests"]} == {"mid-anchor", "input", "neural-amp"}


def untrained_run(folder: Path, task: str = "amp", seed: int = 0) -> RunDir:
    import torch

    torch.manual_seed(seed)
    model = DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024)
    run = RunDir(folder)
    run.start(RunRecord(task, "smoke", {}, "amp-builtin", model.config(), "data/amp", seed))
    run.save_best(model.encoder.state_dict(), epoch=1)
    return run


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the paper's stimuli are not at {SHARED}")
def test_transfer_scores_two_runs_on_the_papers_inputs_and_keeps_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(comparisons, "paper_examples_folder", lambda task: SHARED)
    before, after = untrained_run(tmp_path / "before", seed=1), untrained_run(tmp_path / "after", seed=2)
    write_json(tmp_path / "results" / "amp.json", {"task": "amp", "systems": {"deepafx": {"loss": 1.0}},
                                                   "paper_comparison": {"passing": ["lsd"]}})
    result = comparisons.transfer(before, after, tmp_path / "results", command="fxlib transfer --before b --after a")
    assert set(result["runs"]) == {"before", "after"} and result["runs"]["after"]["run"] == "after"
    assert result["command"] == "fxlib transfer --before b --after a" and result["created"] and result["machine"]
    for measure, medians in result["medians"].items():
        assert set(medians) == {"input", "paper-deepafx", "before", "after"} and medians["before"] != medians["after"]
        assert len(result["scores"][measure]) == 5
    written = json.loads((tmp_path / "results" / "amp.json").read_text())
    assert written["paper_comparison"] == {"passing": ["lsd"], "transfer": result} and written["systems"]
    monkeypatch.setattr(comparisons, "paper_examples_folder", lambda task: None)
    comparison = comparisons.compare_with_paper(after, tmp_path / "results")  # a new comparison keeps it
    assert json.loads((tmp_path / "results" / "amp.json").read_text())["paper_comparison"] == {**comparison,
                                                                                                 "transfer": result}
    with pytest.raises(FxError, match="tasks 'breath' and 'amp'"):
        comparisons.transfer(untrained_run(tmp_path / "breath", task="breath"), after, tmp_path / "results")
