"""Shipped models: DeepAFx.save/load/pretrained, RunDir.export_model, `fxlib process --pretrained`."""
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
