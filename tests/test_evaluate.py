"""fxlib.evaluate on a tiny hand-made test split: task metrics, errors that name the system, the table."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SR, noise

from fxlib.data.audio import save_audio
from fxlib.data.paired import Manifest, PairedDataset, PairWriter
from fxlib.errors import FxError
from fxlib.evaluate import evaluate_systems, kept_transfer, markdown_table


@pytest.fixture
def test_split(tmp_path) -> PairedDataset:
    writer = PairWriter(tmp_path, Manifest("amp", {"kind": "test"}, SR, 1, 0, "test", {}))
    for i in range(2):
        target = noise(2.0, seed=i)
        inp, tgt = writer.paths(f"p{i}", "test")
        save_audio(inp, 0.5 * target, SR)
        save_audio(tgt, target, SR)
        writer.add(writer.pair(f"p{i}", "test", 2.0, {"index": i}))
    writer.finish()
    return PairedDataset(tmp_path, "test", SR, 1)


def test_task_metrics_see_each_pair_and_are_averaged(test_split):
    seen = []

    def metrics(output, target, inp, pair, sample_rate):
        seen.append(pair.info["index"])
        return {"gain_db": 20 * np.log10(np.std(output) / np.std(inp))}

    results = evaluate_systems({"input": lambda x: x, "double": lambda x: 2 * x}, test_split, metrics=metrics)
    assert seen == [0, 1, 0, 1]
    assert results["input"]["gain_db"] == pytest.approx(0.0, abs=1e-6)
    assert results["double"]["gain_db"] == pytest.approx(6.0206, abs=1e-3)
    assert results["double"]["loss"] < results["input"]["loss"]  # doubling the half-level input restores the target


def test_a_failing_system_is_named_with_its_pair(test_split):
    with pytest.raises(FxError, match=r"system 'mute' on test pair 'p0'.*silent"):
        evaluate_systems({"mute": lambda x: np.zeros_like(x)}, test_split)
    with pytest.raises(ValueError, match=r"system 'short' returned shape"):
        evaluate_systems({"short": lambda x: x[:, :100]}, test_split)


def test_the_table_bolds_the_best_in_each_direction():
    results = {"a": {"loss": 1.0, "stoi": 0.9, "loudness_difference_lufs": -3.0},
               "b": {"loss": 2.0, "stoi": 0.95, "loudness_difference_lufs": 1.0}}
    rows = {line.split("|")[1].strip(): line for line in markdown_table(results, "t", higher=("stoi",)).splitlines()
            if line.startswith("| a") or line.startswith("| b")}
    assert "**1**" in rows["a"] and "**0.95**" in rows["b"] and "**1**" in rows["b"].split("|")[-2]
    assert "**0.9**" not in rows["a"] and "**-3**" not in rows["a"]


def test_a_results_file_being_replaced_gives_up_its_transfer_record_or_is_named(tmp_path):
    path = tmp_path / "amp.json"
    assert kept_transfer(path) is None
    path.write_text(json.dumps({"systems": {}, "paper_comparison": {"passing": []}}))
    assert kept_transfer(path) is None
    path.write_text(json.dumps({"paper_comparison": {"transfer": {"medians": {"lsd_db": {"after": 9.4}}}}}))
    assert kept_transfer(path) == {"medians": {"lsd_db": {"after": 9.4}}}
    for broken in ('{"systems": ', "[1, 2]"):
        path.write_text(broken)
        with pytest.raises(FxError, match="amp.json"):
            kept_transfer(path)
