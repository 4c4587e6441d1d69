"""fxlib.rundir: the run folder's record, its format, and checkpoints that cannot run code."""
from __future__ import annotations

import json
import pickle
import subprocess

import numpy as np
import pytest
import torch

from fxlib.errors import SpecError
from fxlib.model import DeepAFx
from fxlib.presets import chain_spec
from fxlib.rundir import FORMAT, RunDir, RunFormatError, RunRecord, git_commit


def record(seed: int = 0, **changes) -> RunRecord:
    model = DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024)
    fields = dict(task="amp", profile="smoke", settings={"batch_size": 4}, chain="amp-builtin", model=model.config(),
                  data_root="data/amp", seed=seed, commit="abc")
    return RunRecord(**{**fields, **changes})


def test_a_record_is_written_once_and_read_back(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start(record())
    again = RunDir(tmp_path / "run")
    assert again.record == record() and json.loads(again.record_path.read_text())["format"] == FORMAT
    again.start(record(commit="def", created="later"))  # provenance may differ: the same run resumes


def test_another_run_in_the_folder_is_refused_naming_what_differs(tmp_path):
    RunDir(tmp_path).start(record())
    with pytest.raises(SpecError, match="belongs to another run.*seed"):
        RunDir(tmp_path).start(record(seed=1))


def test_a_folder_of_an_older_fxlib_or_format_gets_a_clear_message(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"encoder": {}, "run": {"task": "amp"}}, old / "best.pt")
    with pytest.raises(RunFormatError, match="older fxlib.*no run.json"):
        RunDir(old).record
    with pytest.raises(RunFormatError, match="older fxlib"):
        RunDir(old).start(record())
    other = tmp_path / "other"
    RunDir(other).start(record())
    data = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**data, "format": 1}))
    with pytest.raises(RunFormatError, match="format 1.*reads format 2"):
        RunDir(other).model()
    with pytest.raises(RunFormatError, match="holds no training run"):
        RunDir(tmp_path / "empty").record


class Payload:
    """Unpickling this calls ``exec``: what a hostile checkpoint could do."""

    def __reduce__(self):
        return exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",)


def test_a_checkpoint_carrying_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "run")
    run.start(record())
    with run.best_path.open("wb") as f:
        torch.save({"encoder": Payload()}, f, pickle_module=pickle)
    with pytest.raises(RunFormatError, match="best.pt is not a readable fxlib checkpoint"):
        run.model()
    assert not (tmp_path / "PWNED").exists()


def test_a_truncated_checkpoint_is_named(tmp_path):
    run = RunDir(tmp_path)
    run.start(record())
    model = DeepAFx.from_config(record().model)
    run.save_best(model.encoder.state_dict(), epoch=1)
    run.best_path.write_bytes(run.best_path.read_bytes()[:200])
    with pytest.raises(RunFormatError, match="best.pt is not a readable fxlib checkpoint"):
        run.load_best()


def test_the_trained_model_comes_back_with_its_weights_and_gain(tmp_path):
    run = RunDir(tmp_path)
    run.start(record())
    torch.manual_seed(3)
    model = DeepAFx.from_config(record().model)
    run.save_best(model.encoder.state_dict(), epoch=2, valid_loss=1.5)
    run.save_trims({"deepafx": -2.0, "chain-best-fixed": 1.0})
    run.save_fixed(np.full(model.num_params, 0.5), steps=3)
    loaded = RunDir(tmp_path)
    x = torch.randn(2, 1, 4096) * 0.1
    with torch.no_grad():
        assert torch.equal(loaded.model()(x), model.eval()(x))
    assert loaded.model().trim_db == -2.0 and loaded.model(calibrated=False).trim_db == 0.0
    assert loaded.fixed().trim_db == 1.0 and loaded.fixed().unit.shape == (model.num_params,)
    assert loaded.load_best()["valid_loss"] == 1.5


def test_the_commit_is_dirty_for_changed_code_but_not_for_the_reproductions_outputs(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "paper").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "paper" / "REPORT.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "paper" / "REPORT.md").write_text("rewritten by fxlib reproduce\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == head + "-dirty"
