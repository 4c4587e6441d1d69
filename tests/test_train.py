"""Training end to end on the smoke profile: results, resume after a kill, torchrun, bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fxlib import plots
from fxlib.atomic import write_json
from fxlib.calibrate import calibrate, level_trim
from fxlib.data.audio import DataError
from fxlib.data.paired import PairedDataset
from fxlib.errors import FxError, SpecError
from fxlib.metrics import loudness_lufs
from fxlib.model import DeepAFx, curve_ranges, render_curve
from fxlib.presets import chain_spec
from fxlib.rundir import RunDir, RunFormatError, standard_systems
from fxlib.tasks import get_task
from fxlib.train import StreamTargets, Trainer, anchor_loss, endless

CHAIN = "amp-builtin"  # deterministic and quick everywhere; the LV2 chain is exercised by `make reproduce`


def fxlib_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fxlib", *args]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("amp-data")
    get_task("amp").build_data(root, get_task("amp").profile("smoke").data_seconds, 0)
    return root


def encoder_weights(run: Path) -> torch.Tensor:
    state = RunDir(run).load_best()
    return torch.cat([v.flatten().double() for v in state["encoder"].values() if v.is_floating_point()])


def test_train_cli_writes_results_table(data_root, tmp_path):
    results = tmp_path / "results"
    transfer = {"runs": {"before": {"run": "amp-quick-before"}}, "medians": {"lsd_db": {"before": 14.7}}}
    write_json(results / "amp.json", {"task": "amp", "systems": {}, "paper_comparison": {"transfer": transfer}})
    subprocess.run(fxlib_cmd("train", "--task", "amp", "--profile", "smoke", "--chain", CHAIN, "--out",
                             str(tmp_path / "run"), "--data", str(data_root), "--results", str(results),
                             "--no-progress"), check=True, capture_output=True)
    out = json.loads((results / "amp.json").read_text())
    assert set(out["systems"]) == {"input", "chain-default", "chain-best-fixed", "deepafx", "neural-amp"}
    assert out["chain"] == CHAIN and out["profile"] == "smoke" and "fxlib" in out["command"]
    assert out["paper_comparison"] == {"transfer": transfer}, "the before/after record measured apart was lost"
    for row in out["systems"].values():
        assert {"loss", "mfcc_cosine", "ms_mse", "esr"} <= set(row) and all(np.isfinite(list(row.values())))
    assert "| deepafx |" in (results / "amp.md").read_text()
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("phase,epoch") and any(line.startswith("stage2-1") for line in log)

    model = RunDir(tmp_path / "run").model()
    x = np.random.default_rng(0).uniform(-0.2, 0.2, (1, 5000)).astype(np.float32)
    y, u = model.process(x)
    assert y.shape == x.shape and u.shape == (5, model.num_params)
    assert ((u >= 0) & (u <= 1)).all()


def test_train_cli_with_its_defaults_writes_into_the_run_folder_and_leaves_paper_untouched(data_root, tmp_path):
    import shutil

    project = tmp_path / "project"
    (project / "paper").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")  # the project root that the default paths resolve in
    shutil.copytree(data_root, project / "data" / "amp-smoke")
    done = subprocess.run(fxlib_cmd("train", "--task", "amp", "--profile", "smoke", "--chain", CHAIN, "--no-progress"),
                          capture_output=True, text=True, cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (project / "runs" / "amp-smoke" / "results" / "amp.json").is_file()
    assert not any((project / "paper").iterdir())


def test_process_cli_writes_audio_and_curves_after_epochs_reported(data_root, tmp_path):
    run = tmp_path / "run"
    reports = []
    Trainer("amp", get_task("amp").profile("smoke"), run, data_root=data_root, chain=CHAIN, progress=False,
            on_epoch=reports.append).fit()
    assert [(r.phase, r.epoch, r.epochs, r.later_epochs) for r in reports] == [("stage1", 1, 1, 1), ("stage2-1", 1, 1, 0)]
    assert reports[0].phases == ("stage1", "stage2-1") and reports[1].seconds > reports[0].seconds > 0
    assert reports[1].valid_loss == pytest.approx(float(RunDir(run).log_path.read_text().splitlines()[-1].split(",")[5]), rel=1e-5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(RunDir(run).tensorboard_dir), size_guidance={"audio": 0}).Reload()
    assert set(events.Tags()["audio"]) == {"valid_audio/input", "valid_audio/target", "valid_audio/output"}
    live = plots.LiveTraining()
    assert live.status(reports[0]).startswith("stage 1 (regressing the defaults), epoch 1/1: valid loss")
    assert "stage 2, phase 1 of 1 (through the effects), epoch 1/1" in live.status(reports[1])
    wav, out, curves = data_root / "test", tmp_path / "out.wav", tmp_path / "curves.csv"
    source = sorted(wav.glob("*_input.wav"))
    subprocess.run(fxlib_cmd("process", "--run", str(run), str(source[0]), str(out),
                             "--curves", str(curves)), check=True, capture_output=True)
    assert out.exists()
    header = curves.read_text().splitlines()[0].split(",")
    assert header[0] == "time_s" and "mbc.threshold_db_0" in header


def test_resume_after_kill_matches_uninterrupted_run(data_root, tmp_path):
    args = ["train", "--task", "amp", "--profile", "smoke", "--chain", CHAIN, "--data", str(data_root),
            "--results", str(tmp_path / "results"), "--checkpoint-every", "1", "--no-progress"]
    whole = tmp_path / "whole"
    subprocess.run(fxlib_cmd(*args, "--out", str(whole)), check=True, capture_output=True)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(fxlib_cmd(*args, "--out", str(cut)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        ckpt = cut / "checkpoint.pt"
        if ckpt.exists():
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
            except RuntimeError:  # replaced while being read
                continue
            if state["phase"] == 1 and state["step"] >= 2:  # mid-epoch in stage 2
                proc.send_signal(signal.SIGKILL)
                killed_at = (state["phase"], state["epoch"], state["step"])
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert not (cut / "fixed.json").exists()
    subprocess.run(fxlib_cmd(*args, "--out", str(cut)), check=True, capture_output=True)

    a, b = encoder_weights(whole), encoder_weights(cut)
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), float((a - b).abs().max())
    assert json.loads((cut / "fixed.json").read_text())["steps"] == get_task("amp").profile("smoke").fixed_steps


def test_torchrun_two_ranks_on_cpu(data_root, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fxlib.cli",
           "train", "--task", "amp", "--profile", "smoke", "--chain", CHAIN, "--out", str(tmp_path / "run"),
           "--data", str(data_root), "--results", str(tmp_path / "results"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results" / "amp.json").exists()
    rows = [line.split(",")[:2] for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert rows and len(rows) == len({tuple(r) for r in rows})  # one row per epoch: only rank 0 writes


def test_offline_data_of_another_size_is_refused(data_root, tmp_path):
    bigger = get_task("amp").profile("smoke").override(data_seconds=600)
    with pytest.raises(FxError, match=r"offline amp build of 50 s, but this profile asks for 600 s"):
        Trainer("amp", bigger, tmp_path / "run", data_root=data_root, chain=CHAIN, progress=False)


def test_offline_data_of_another_builder_is_refused(data_root, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["params"]["generator"] = "fxlib.data.amp.build/1"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FxError, match=r"build by fxlib.data.amp.build/1, not by today's builder"):
        Trainer("amp", "smoke", tmp_path / "run", data_root=copy, chain=CHAIN, progress=False)


def test_missing_data_folder_for_downloaded_data(tmp_path):
    paper = get_task("amp").profile("paper")
    with pytest.raises(FileNotFoundError, match="fxlib data amp download"):
        Trainer("amp", paper, tmp_path / "run", data_root=tmp_path / "nowhere", chain=CHAIN, progress=False)


def test_corrupt_wav_is_named(data_root, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    victim = sorted((copy / "train").glob("*.wav"))[0]
    victim.write_bytes(b"RIFF not really a wav")
    with pytest.raises(FxError, match=victim.name):
        Trainer("amp", "smoke", tmp_path / "run", data_root=copy, chain=CHAIN, progress=False)


def test_resuming_another_run_is_refused(data_root, tmp_path):
    run = tmp_path / "run"
    Trainer("amp", "smoke", run, data_root=data_root, chain=CHAIN, progress=False).fit()
    with pytest.raises(SpecError, match="another run"):
        Trainer("amp", "smoke", run, data_root=data_root, chain=CHAIN, seed=1, progress=False).fit()


def test_unknown_profile_and_setting():
    with pytest.raises(SpecError, match="quick"):
        get_task("amp").profile("quik")
    with pytest.raises(SpecError, match="batch_size"):
        get_task("amp").profile("smoke").override(batch_sise=3)
    with pytest.raises(SpecError, match="stage1_margin"):
        get_task("amp").profile("smoke").override(stage1_margin=0.5)


def test_stream_targets_delay_by_latency():
    delay = StreamTargets(latency=3, frame=8)
    t = torch.arange(16, dtype=torch.float32).reshape(1, 1, 16)
    first = delay(t[..., :8], torch.tensor([True]))
    second = delay(t[..., 8:], torch.tensor([False]))
    assert first.flatten().tolist() == [0, 0, 0, 0, 1, 2, 3, 4]
    assert second.flatten().tolist() == [5, 6, 7, 8, 9, 10, 11, 12]
    with pytest.raises(SpecError, match="clip"):
        StreamTargets(latency=9, frame=8)


def test_endless_skip_resumes_the_same_batches(data_root):
    from fxlib.data.paired import PairedDataset
    from fxlib.data.windows import StreamingWindows

    ds = PairedDataset(data_root, "train")
    windows = StreamingWindows(ds, 2, 4096, 1024, seed=3)
    full = [b for _, b in zip(range(len(windows) + 5), endless(windows))]
    tail = [b for _, b in zip(range(7), endless(windows, skip=len(windows) - 2))]
    for a, b in zip(full[len(windows) - 2:], tail):
        assert torch.equal(a["context"], b["context"])
    assert bool(tail[0]["reset"][tail[0]["valid"]].all())  # a resumed stream starts from a reset


def test_render_curve_constant_equals_chain_process():
    from fxlib import FxChain

    spec = chain_spec("amp-builtin")
    x = np.random.default_rng(1).uniform(-0.3, 0.3, (1, 3000)).astype(np.float32)
    with FxChain.from_spec(spec) as chain:
        u = np.full(chain.num_params, 0.3)
        expected = chain.process(x, u)
    np.testing.assert_allclose(render_curve(spec, x, u, 1024), expected, atol=1e-6)


def test_song_inference_runs_the_chain_at_the_mean_of_the_hop_predictions():
    torch.manual_seed(0)
    hop = DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024).eval()
    song = DeepAFx.from_config({**hop.config(), "inference": "song"}).eval()
    song.encoder.load_state_dict(hop.encoder.state_dict())
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (1, 9000)).astype(np.float32)
    per_hop = hop.predict(x)
    y, u = song.process(x)
    assert u.shape == per_hop.shape == (9, song.num_params)
    np.testing.assert_allclose(u, np.repeat(per_hop.mean(axis=0, keepdims=True), 9, axis=0))
    np.testing.assert_allclose(y, render_curve(song.chain_spec, x, per_hop.mean(axis=0), 1024), atol=1e-6)
    assert not np.allclose(y, hop.process(x)[0], atol=1e-6)  # per hop, the chain's settings change
    with pytest.raises(SpecError, match="model config lacks inference"):
        DeepAFx.from_config({k: v for k, v in hop.config().items() if k != "inference"})
    with pytest.raises(SpecError, match="inference"):
        DeepAFx.from_config({**hop.config(), "inference": "file"})
    with pytest.raises(SpecError, match="inference"):
        get_task("amp").profile("smoke").override(inference="file")


def test_render_curve_gain_scales_the_output():
    spec = chain_spec("amp-builtin")
    x = np.random.default_rng(1).uniform(-0.3, 0.3, (1, 3000)).astype(np.float32)
    u = np.full(DeepAFx(spec, {"backbone": "small"}, 4096, 1024).num_params, 0.3)
    plain, quieter = render_curve(spec, x, u, 1024), render_curve(spec, x, u, 1024, gain_db=-6.0)
    assert quieter.dtype == np.float32 and np.abs(plain).max() > 0.01
    np.testing.assert_allclose(quieter, plain * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)


def test_level_trim_is_the_mean_loudness_difference_reversed(data_root):
    dataset = PairedDataset(data_root, "train", 22050, 1)
    rate = dataset.sample_rate
    expected = -np.mean([loudness_lufs(2 * x, rate) - loudness_lufs(y, rate) for x, y in dataset])
    trim = level_trim(lambda x: 2 * x, dataset)
    assert trim == pytest.approx(expected)
    trimmed = [loudness_lufs(2 * x * 10 ** (trim / 20), rate) - loudness_lufs(y, rate) for x, y in dataset]
    assert abs(np.mean(trimmed)) < 0.01  # the trimmed system is as loud as the targets on average
    with pytest.raises(DataError, match="silent output"):
        level_trim(lambda x: 0 * x, dataset)


def test_level_trim_profile_trims_the_model_and_the_fixed_vector_once(data_root, tmp_path):
    profile = get_task("amp").profile("smoke").override(level_trim=True)
    trainer = Trainer("amp", profile, tmp_path, data_root=data_root, chain=CHAIN, progress=False)
    run = trainer.fit()
    best = run.best_path.read_bytes()
    untrimmed = run.model(calibrated=False)
    assert untrimmed.trim_db == 0.0
    expected = level_trim(lambda x: untrimmed.process(x)[0], trainer.train_set)
    calibrate(run)
    assert run.best_path.read_bytes() == best  # calibration never rewrites the trained model
    assert run.trims()["deepafx"] == pytest.approx(expected) and expected != 0.0
    model = RunDir(tmp_path).model()
    assert model.trim_db == pytest.approx(expected)
    x = trainer.train_set[0][0][:, :6000]
    np.testing.assert_allclose(model.process(x)[0], untrimmed.process(x)[0] * 10 ** (expected / 20), rtol=1e-5, atol=1e-6)
    written = run.trim_path.stat().st_mtime_ns
    calibrate(run)  # measured once: a calibrated run is not calibrated again
    assert run.trim_path.stat().st_mtime_ns == written

    fixed = run.fixed()
    assert fixed.trim_db == pytest.approx(level_trim(lambda x: render_curve(trainer.spec, x, fixed.unit, 1024),
                                                     trainer.train_set))
    run.fixed_path.unlink()  # a refitted vector gets its gain measured again
    calibrate(run)
    np.testing.assert_array_equal(run.fixed().unit, fixed.unit)
    assert run.fixed().trim_db == pytest.approx(fixed.trim_db)
    systems = standard_systems(model, fixed)
    np.testing.assert_allclose(systems["chain-best-fixed"](x), render_curve(trainer.spec, x, fixed.unit, 1024) *
                               10 ** (fixed.trim_db / 20), rtol=1e-5, atol=1e-6)


def test_calibration_files_are_checked_and_a_broken_one_named(data_root, tmp_path):
    run = Trainer("amp", "smoke", tmp_path, data_root=data_root, chain=CHAIN, progress=False).fit()
    assert run.fixed() is None and run.trims() == {}
    run.save_fixed(np.array([0.5, 0.25]))
    assert run.fixed().trim_db == 0.0 and run.fixed().unit.tolist() == [0.5, 0.25]
    run.fixed_path.write_text(json.dumps({"native": {}}))
    with pytest.raises(RunFormatError, match="fixed.json holds no parameter vector"):
        run.fixed()
    run.fixed_path.write_text('{"unit": [0.5,')  # cut short
    with pytest.raises(RunFormatError, match="fixed.json is not valid JSON"):
        run.fixed()
    run.trim_path.write_text(json.dumps({"trim_db": {"deepafx": float("nan")}}))
    with pytest.raises(RunFormatError, match="trim.json holds no finite gains"):
        run.trims()


def test_a_model_gain_must_be_finite_and_is_not_part_of_its_config():
    model = DeepAFx(chain_spec("amp-builtin"), {"backbone": "small"}, 4096, 1024, trim_db=-1.5)
    assert "trim_db" not in model.config() and DeepAFx.from_config(model.config()).trim_db == 0.0
    assert DeepAFx.from_config(model.config(), -1.5).trim_db == -1.5
    with pytest.raises(SpecError, match="trim_db"):
        DeepAFx.from_config(model.config(), float("nan"))


def test_anchor_loss_holds_only_the_untrained_parameters_at_their_defaults():
    default = torch.full((2, 5), 0.5)
    params = default.clone()
    params[:, :3] = 0.9  # trained effects may move freely
    assert float(anchor_loss(params, default, 3, 1.0)) == 0.0
    params[:, 3:] = 0.7
    assert float(anchor_loss(params, default, 3, 2.0)) == pytest.approx(2.0 * 0.2 ** 2)
    assert float(anchor_loss(params, default, 5, 2.0)) == 0.0  # the last phase: everything trains
    assert float(anchor_loss(params, default, 3, 0.0)) == 0.0  # turned off


def logged_lr(run: Path) -> dict[str, float]:
    """The learning rate of each phase's first logged epoch."""
    rows = [line.split(",") for line in (run / "log.csv").read_text().splitlines()[1:]]
    first: dict[str, float] = {}
    for phase, *_, lr, _seconds in rows:
        first.setdefault(phase, float(lr))
    return first


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_stage1_keeps_defaults_at_a_bound_off_the_saturated_sigmoid(data_root, tmp_path, margin):
    """amp-builtin's compressors default to off: threshold at the top of its range, ratio and makeup
    at the bottom. Regressed as they are, those outputs end near 0 or 1, where the sigmoid's slope
    u (1 - u), and so every stage-2 step on them, nearly vanishes; with a margin they end near it."""
    profile = get_task("amp").profile("smoke").override(stage1_margin=margin, stage1_steps=200, stage1_lr=5e-3)
    trainer = Trainer("amp", profile, tmp_path, data_root=data_root, chain=CHAIN, progress=False)
    default = trainer.model.default_unit
    at_bound = (default == 0) | (default == 1)
    assert at_bound.sum() == 12 and torch.equal(trainer.start_unit, default.clamp(margin, 1 - margin))
    trainer.run.start(trainer.record)
    trainer._phase(0, None, 0, None, None)  # stage 1 alone
    u = torch.from_numpy(trainer.run.model().predict(trainer.train_set[0][0])).float()
    slope = (u * (1 - u))[:, at_bound].mean()
    if margin:
        assert (u[:, at_bound].mean(0) - trainer.start_unit[at_bound]).abs().max() < margin / 2
        assert slope > 0.07
    else:
        assert slope < 0.04


def test_later_phases_start_at_a_lower_learning_rate(data_root, tmp_path):
    profile = get_task("amp").profile("smoke").override(lr=1e-3, phase_lr_factor=0.25)
    Trainer("amp", profile, tmp_path, data_root=data_root, chain="mastering-builtin", progress=False).fit()
    lrs = logged_lr(tmp_path)  # mastering-builtin: a compressor, then an EQ (two stage-2 phases)
    assert lrs["stage2-1"] == pytest.approx(1e-3) and lrs["stage2-2"] == pytest.approx(2.5e-4)


def test_a_run_resumed_at_a_phase_boundary_starts_that_phase_afresh(data_root, tmp_path):
    """A kill just after a phase ends leaves a checkpoint of the next phase with no optimizer yet;
    the resumed phase gets its own optimizer and learning rate, not the finished phase's."""
    profile = get_task("amp").profile("smoke").override(stage1_lr=3e-3, lr=2e-4)
    trainer = Trainer("amp", profile, tmp_path, data_root=data_root, chain=CHAIN, progress=False)
    trainer.run.start(trainer.record)
    trainer._phase(0, None, 0, None, None)  # stage 1 alone, as if the process died right after it
    state = trainer.run.load_checkpoint()
    assert state["phase"] == 1 and state["optimizer"] is None and state["scheduler"] is None
    Trainer("amp", profile, tmp_path, data_root=data_root, chain=CHAIN, progress=False).fit()
    assert logged_lr(tmp_path)["stage2-1"] == pytest.approx(2e-4)


def test_curve_ranges_find_the_consecutive_parameters_of_a_pattern():
    names = ["mbc.ratio", "geq.g_0", "geq.g_1", "geq.g_2", "geq.g_out"]
    assert curve_ranges(names, {r"geq\.g_\d+": 2}) == [[1, 4, 2]]
    with pytest.warns(UserWarning, match="matches no learned parameter"):
        assert curve_ranges(names, {r"eq\.band\d+": 2}) == []
    with pytest.raises(SpecError, match="at least 4 consecutive"):
        curve_ranges(names, {r"geq\.g_\d+": 4})
    with pytest.raises(SpecError, match="consecutive"):
        curve_ranges(["geq.g_0", "mbc.ratio", "geq.g_1"], {r"geq\.g_\d+": 2})


def test_the_mastering_eq_curve_fits_the_papers_chain():
    from fxlib.tasks.mastering import EQ_CURVE
    names = list(DeepAFx(chain_spec("mastering-lv2"), {}, 4096, 1024).names)
    assert curve_ranges(names, EQ_CURVE) == [[16, 48, 6]]  # g_0 .. g_31, not g_out


def test_a_failed_render_skips_its_step_and_too_many_in_a_row_stop_the_run(data_root, tmp_path, monkeypatch, caplog):
    """A plugin that crashes or hangs costs a step, not the run; a plugin that keeps failing stops it."""
    from fxlib import train
    from fxlib.engine import EngineError

    step = Trainer._step
    calls = {"n": 0}

    def failing(fail_on):
        def _step(self, model, batch, fx, n_params, targets):
            calls["n"] += 1
            if fx is not None and calls["n"] in fail_on:
                raise EngineError(f"worker 0 crashed on call {calls['n']}")
            return step(self, model, batch, fx, n_params, targets)
        return _step

    profile = get_task("amp").profile("smoke")
    stage1 = profile.stage1_steps * profile.stage1_epochs
    monkeypatch.setattr(Trainer, "_step", failing({stage1 + 2}))
    with caplog.at_level("WARNING", logger=train.log.name):
        Trainer("amp", profile, tmp_path / "once", data_root=data_root, chain=CHAIN, progress=False).fit()
    assert "stage2-1 epoch 1 step 2 skipped (1 in a row)" in caplog.text and "crashed on call" in caplog.text
    assert RunDir(tmp_path / "once").best_path.is_file()
    calls["n"] = 0
    monkeypatch.setattr(Trainer, "_step", failing(set(range(stage1 + 1, stage1 + 10))))
    with pytest.raises(EngineError, match="crashed on call"):
        Trainer("amp", profile, tmp_path / "always", data_root=data_root, chain=CHAIN, progress=False).fit()
    assert RunDir(tmp_path / "always").checkpoint_path.is_file()  # it can resume
