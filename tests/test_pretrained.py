"""Shipped models: DeepAFx.save/load/pretrained, export with excerpts, experiment.shipped, `fxlib process --pretrained`."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import noise
from fxlib.errors import SpecError
from fxlib.model import MODELS_DIR, DeepAFx, pretrained_names
from fxlib.presets import chain_spec
from fxlib.rundir import RunDir, RunFormatError, RunRecord
from fxlib.tasks import get_task

SHIPPED = {"amp": "amp-lv2", "amp-builtin": "amp-builtin", "breath": "breath-lv2", "mastering": "mastering-lv2"}


def small_model() -> DeepAFx:
    torch.manual_seed(0)
    return DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024).eval()


def test_the_shipped_models_are_the_papers_chains_and_a_portable_amp():
    assert pretrained_names() == sorted(SHIPPED)
    total = sum(p.stat().st_size for p in MODELS_DIR.rglob("*") if p.is_file())
    assert total < 20 * 2**20


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_loads_by_name_and_processes_a_clip(name):
    record = json.loads((MODELS_DIR / name / "record.json").read_text())
    assert record["chain"] == SHIPPED[name] and record["profile"] == "quick" and record["commit"]
    assert set(record["test_metrics"]) >= {"input", "chain-best-fixed", "deepafx"}
    model = DeepAFx.pretrained(name)
    task = get_task(record["task"])
    assert (int(model.sample_rate), model.channels) == (task.sample_rate, task.channels)
    x = noise(2.0, sr=int(model.sample_rate), channels=model.channels, dbfs=-18.0).astype(np.float32)
    y, u = model.process(x)
    assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y - x).max() > 1e-3
    assert u.shape[1] == model.num_params and ((u >= 0) & (u <= 1)).all()


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(SpecError, match="no shipped model named 'ampp'; shipped: amp, amp-builtin"):
        DeepAFx.pretrained("ampp")


def test_a_saved_model_loads_back_identically(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.pt")
    again = DeepAFx.load(tmp_path / "m.pt")
    x = noise(0.5, channels=1)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))
    assert again.config() == model.config() and again.trim_db == model.trim_db


class Payload:
    """Unpickling this calls ``exec``: what a hostile model file could do."""

    def __reduce__(self):
        return exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",)


def test_a_model_file_carrying_code_or_of_another_kind_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"format": 1, "encoder": Payload()}, f, pickle_module=pickle)
    with pytest.raises(SpecError, match="evil.pt is not a readable fxlib model"):
        DeepAFx.load(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    torch.save({"encoder": {}}, tmp_path / "best.pt")
    with pytest.raises(SpecError, match="not an fxlib model of format 1 .*RunDir"):
        DeepAFx.load(tmp_path / "best.pt")


def run_with_model(tmp_path) -> RunDir:
    model = small_model()
    run = RunDir(tmp_path / "run")
    run.start(RunRecord(task="amp", profile="smoke", settings={}, chain="amp-builtin", model=model.config(),
                        data_root="data/amp", seed=3, commit="abc"))
    run.save_best(model.encoder.state_dict(), epoch=1)
    return run


def test_export_writes_the_model_and_its_record_with_test_metrics(tmp_path):
    run = run_with_model(tmp_path)
    results = {"task": "amp", "systems": {"input": {"loss": 2.0}, "deepafx": {"loss": 1.0}}}
    folder = run.export_model(tmp_path / "shipped", results)
    record = json.loads((folder / "record.json").read_text())
    assert record["seed"] == 3 and record["chain"] == "amp-builtin" and record["test_metrics"]["deepafx"] == {"loss": 1.0}
    x = noise(0.5)
    np.testing.assert_array_equal(DeepAFx.load(folder / "model.pt").predict(x), run.model().predict(x))
    with pytest.raises(RunFormatError, match="task 'breath'"):
        run.export_model(tmp_path / "other", {**results, "task": "breath"})
    with pytest.raises(RunFormatError, match="no 'systems' table"):
        run.export_model(tmp_path / "other", {"task": "amp"})


def test_process_with_a_shipped_model_on_the_command_line(tmp_path):
    from fxlib.data.audio import load_audio, save_audio

    save_audio(tmp_path / "in.wav", noise(1.0, sr=22050, dbfs=-18.0), 22050)
    done = subprocess.run([sys.executable, "-m", "fxlib", "process", "--pretrained", "amp-builtin",
                           str(tmp_path / "in.wav"), str(tmp_path / "out.wav")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out, sr = load_audio(tmp_path / "out.wav", 22050, 1)
    assert out.shape == (1, 22050) and sr == 22050
    done = subprocess.run([sys.executable, "-m", "fxlib", "process", "--pretrained", "nope",
                           str(tmp_path / "in.wav"), str(tmp_path / "out.wav")], capture_output=True, text=True)
    assert done.returncode == 2 and "no shipped model named 'nope'" in done.stderr


def test_the_tour_plays_a_shipped_model_on_a_demo_phrase():
    from fxlib import tour

    example = tour.shipped_example("amp-builtin", seconds=1.0)
    assert list(example.systems()) == ["input", "deepafx"] and example.u.shape == (22, 17)  # 22 hops of 1024 samples, 17 controls
    assert example.audio["deepafx"].shape == example.audio["input"].shape == (1, 22050)
    section = tour.model_section("", seconds=1.0)
    assert isinstance(section, tour.ModelAB) and "'amp'" in section.examples[0].id


def test_the_tour_explains_a_run_folder_without_a_model(tmp_path):
    from fxlib import tour

    section = tour.model_section(str(tmp_path / "nothing-here"))
    assert "No model to play" in section.data and "leave `run` empty" in section.data


BASELINES = {"amp": "neural-amp", "breath": "energy-gate", "mastering": "matchering"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_holds_its_results_curve_fixed_vector_and_excerpts(name):
    folder = MODELS_DIR / name
    record = json.loads((folder / "record.json").read_text())
    task = record["task"]
    results = json.loads((folder / f"{task}.json").read_text())
    assert results["systems"] == record["test_metrics"] and results["chain"] == record["chain"]
    assert "| deepafx |" in (folder / f"{task}.md").read_text()
    assert (folder / "log.csv").read_text().startswith("phase,epoch") and "stage2-1" in (folder / "log.csv").read_text()
    assert len(json.loads((folder / "fixed.json").read_text())["unit"]) == DeepAFx.pretrained(name).num_params
    listing = json.loads((folder / "excerpts" / "excerpts.json").read_text())
    assert len(listing["excerpts"]) == 2
    for entry in listing["excerpts"]:
        assert set(entry["files"]) == {"input", "target", BASELINES[task]}
        assert all((folder / "excerpts" / f).is_file() for f in entry["files"].values())


def test_shipped_copies_the_model_into_a_folder_that_plays_like_a_run(tmp_path):
    from fxlib import experiment, plots

    run = experiment.shipped("amp", "amp-builtin", tmp_path / "shipped")
    assert run["shipped"] == "amp-builtin" and run["run_dir"] == str(tmp_path / "shipped")
    assert experiment.is_exported(run["run_dir"]) and run["systems"]["deepafx"]["loss"] > 0
    assert "the shipped model 'amp-builtin', not trained here" in experiment.describe(run)
    found = experiment.examples(run["run_dir"], count=5, seconds=2.0)
    assert len(found) == 2  # what the model ships, even when more are asked for
    ex = found[0]
    assert list(ex.audio) == ["input", "chain-default", "chain-best-fixed", "deepafx", "neural-amp", "target"]
    assert all(a.shape == (1, 44100) for a in ex.audio.values())
    model = DeepAFx.pretrained("amp-builtin")
    np.testing.assert_allclose(ex.audio["deepafx"], model.process(ex.audio["input"])[0], atol=1e-6)
    assert ex.u.shape == (44, model.num_params)
    fig = plots.plot_training(run["run_dir"])
    assert "amp, amp-builtin, quick profile, seed 0" in fig._suptitle.get_text()
    with pytest.raises(SpecError, match="exported model: it holds excerpts of the test split only"):
        experiment.examples(run["run_dir"], split="valid")


def test_shipped_names_the_choices_when_none_fits():
    from fxlib import experiment

    assert experiment.shipped_name("amp", "amp-builtin") == "amp-builtin"
    with pytest.raises(SpecError, match=r"no shipped amp model on chain 'amp-vst3'; shipped amp models: "
                                        r"amp \(amp-lv2\), amp-builtin \(amp-builtin\)"):
        experiment.shipped_name("amp", "amp-vst3")


def test_export_keeps_excerpts_that_play_back_like_the_run(tmp_path):
    from dataclasses import asdict

    from fxlib import experiment

    task = get_task("amp")
    data = tmp_path / "data"
    task.build_data(data, task.profile("smoke").data_seconds, 0)
    model = small_model()
    run = RunDir(tmp_path / "run")
    run.start(RunRecord(task="amp", profile="smoke", settings=asdict(task.profile("smoke")), chain="amp-builtin",
                        model=model.config(), data_root=str(data), seed=0, commit="abc"))
    run.save_best(model.encoder.state_dict(), epoch=1)
    run.save_fixed(model.default_unit.numpy())
    results = {"task": "amp", "systems": {"input": {"loss": 2.0}, "deepafx": {"loss": 1.0}}}
    (tmp_path / "amp.json").write_text(json.dumps(results))
    with pytest.raises(SpecError, match="its markdown table amp.md is missing"):
        experiment.export(run, tmp_path / "shipped", tmp_path / "amp.json")
    (tmp_path / "amp.md").write_text("| deepafx |")
    folder = experiment.export(run, tmp_path / "shipped", tmp_path / "amp.json", count=1, seconds=1.0)
    assert json.loads((folder / "amp.json").read_text()) == results and (folder / "fixed.json").is_file()
    assert not (folder / "log.csv").exists()  # the run logged no epoch
    played, = experiment.examples(folder, count=1, seconds=1.0)
    direct, = experiment.examples(run, count=1, seconds=1.0)
    assert list(played.audio) == list(direct.audio)
    for name in ("input", "target", "neural-amp"):  # stored as 24-bit FLAC
        np.testing.assert_allclose(played.audio[name], direct.audio[name], atol=2 ** -22)
    for name in ("chain-best-fixed", "deepafx"):  # rendered again from the 24-bit input
        np.testing.assert_allclose(played.audio[name], direct.audio[name], atol=1e-4)
    (folder / "excerpts" / f"{played.id}_target.flac").unlink()
    with pytest.raises(RunFormatError, match="excerpt file missing"):
        experiment.examples(folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_scores_its_recorded_metrics_on_a_rebuilt_test_split(name, tmp_path):
    """Nothing is retrained: the offline data set is built again from the record's seed and profile,
    and the model and its fixed vector are scored on its test split. The builders and the LV2
    plugins are deterministic; the tolerance (1e-3 relative) leaves room for the VST3 plugins of
    the mastering builder, whose output can differ by about 1e-4 between processes."""
    from fxlib.data.paired import PairedDataset
    from fxlib.evaluate import evaluate_systems
    from fxlib.rundir import standard_systems

    record = json.loads((MODELS_DIR / name / "record.json").read_text())
    task = get_task(record["task"])
    profile = task.profile(record["profile"])
    data = task.ensure_data(tmp_path / "data", profile, record["seed"])
    model = DeepAFx.pretrained(name)
    systems = standard_systems(model, RunDir(MODELS_DIR / name).fixed())
    test = PairedDataset(data, "test", task.sample_rate, task.channels)
    scored = evaluate_systems({k: systems[k] for k in ("chain-best-fixed", "deepafx")}, test, profile.loss,
                              task.metrics, profile.loss_options)
    for system, row in scored.items():
        for metric, value in row.items():
            assert value == pytest.approx(record["test_metrics"][system][metric], rel=1e-3, abs=1e-6), \
                f"{name}: {system} {metric}"
