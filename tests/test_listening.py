"""The MUSHRA listening-test kit: stimuli export, sessions, the widget's logic and the analysis."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas
import pytest

from conftest import band_db
from fxlib import atomic
from fxlib.data.audio import DataError, DataNotFoundError, load_audio, save_audio
from fxlib.data.paired import Manifest, PairWriter
from fxlib.errors import SpecError
from fxlib.listening import (ANCHOR, CARELESS, HIDDEN_REFERENCE, ListeningSession, MushraWidget, RatingError,
                             StimuliMismatchError, box_plot, demo_stimuli, export_stimuli, holm, load_ratings,
                             post_screen, read_stimuli, simulate_ratings, wilcoxon_tests)
from fxlib.metrics import loudness_lufs, true_peak_dbtp
from fxlib.presets import load_chain
from fxlib.rundir import RunFormatError

SR = 22050
DEMO_SYSTEMS = {HIDDEN_REFERENCE, "input", "chain-default", "chain-halfway", ANCHOR}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A demo stimuli set (4 trials of 3 s), shared read-only by the tests of this module."""
    root = tmp_path_factory.mktemp("demo") / "stimuli"
    demo_stimuli(root, seed=0)
    return root


@pytest.fixture(scope="module")
def simulated(demo, tmp_path_factory) -> Path:
    """Simulated ratings of the demo set: 8 attentive listeners and a careless one."""
    ratings = tmp_path_factory.mktemp("simulated")
    simulate_ratings(demo, ratings, listeners=8, seed=0)
    return ratings


# ------------------------------------------------------------------------------------ stimuli

def test_demo_stimuli_hold_references_anchor_and_matched_loudness(demo):
    manifest = read_stimuli(demo)
    assert len(manifest["trials"]) == 4 and manifest["sample_rate"] == SR
    for trial in manifest["trials"]:
        audio = {s["system"]: load_audio(demo / s["file"])[0] for s in trial["stimuli"]}
        assert set(audio) == DEMO_SYSTEMS
        reference = load_audio(demo / trial["reference"])[0]
        np.testing.assert_array_equal(reference, audio[HIDDEN_REFERENCE])
        ref_lufs = loudness_lufs(reference, SR)
        for name, x in audio.items():
            assert abs(loudness_lufs(x, SR) - ref_lufs) < 0.1, (trial["id"], name)
            assert true_peak_dbtp(x, SR) <= -1.0 + 0.05
        # the anchor keeps the band below 3.5 kHz and loses (most of) the band above
        assert band_db(audio[ANCHOR], 100, 2000) == pytest.approx(band_db(reference, 100, 2000), abs=1.0)
        assert band_db(audio[ANCHOR], 6000, 11000) < band_db(reference, 6000, 11000) - 40


def _damaged_copy(demo: Path, tmp_path: Path, change) -> Path:
    import shutil

    copy = tmp_path / "stimuli"
    shutil.copytree(demo, copy)
    manifest = json.loads((copy / "stimuli.json").read_text())
    change(manifest, copy)
    (copy / "stimuli.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("change, error, message", [
    (lambda m, root: m.pop("trials"), DataError, "'trials' must be a non-empty list"),
    (lambda m, root: m["trials"][1].pop("reference"), DataError, "trial 1 needs an 'id', a 'reference' file"),
    (lambda m, root: m["trials"][0]["stimuli"][2].pop("sha256"), DataError,
     "trial 'trial00': each stimulus needs a 'system', a 'file' and its 'sha256'"),
    (lambda m, root: m["trials"][0].update(reference="../../secret.wav"), DataError,
     "trial 'trial00' lists ../../secret.wav, outside the stimuli folder"),
    (lambda m, root: (root / m["trials"][0]["stimuli"][0]["file"]).unlink(), DataNotFoundError, "which does not exist"),
    (lambda m, root: (root / m["trials"][0]["stimuli"][0]["file"]).write_bytes(b"RIFF"), DataError,
     "is not the file the set was made with"),
], ids=["no-trials", "no-reference", "no-checksum", "escapes", "missing-file", "other-file"])
def test_a_malformed_stimuli_set_is_named_not_half_loaded(demo, tmp_path, change, error, message):
    copy = _damaged_copy(demo, tmp_path, change)
    with pytest.raises(error, match=message):
        read_stimuli(copy)


def test_stimuli_export_resumes_and_refuses_other_settings(tmp_path):
    root = tmp_path / "stimuli"
    first = demo_stimuli(root, seed=3, trials=3, seconds=1.0)
    files = sorted(root.glob("trial*/*.wav"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    # an interrupted export: the manifest was not written yet and trial01 never finished
    (root / "stimuli.json").unlink()
    (root / "trial01" / "trial.json").unlink()
    again = demo_stimuli(root, seed=3, trials=3, seconds=1.0)
    assert again["fingerprint"] == first["fingerprint"]
    rewritten = {f.parent.name for f in files if f.stat().st_mtime_ns != stamps[f]}
    assert rewritten == {"trial01"}
    assert not list(root.rglob("*.tmp"))
    with pytest.raises(DataError, match="other settings"):
        demo_stimuli(root, seed=4, trials=3, seconds=1.0)


def test_export_needs_a_source_and_a_trained_run(tmp_path):
    with pytest.raises(SpecError, match="needs trained runs"):
        export_stimuli(tmp_path / "s")
    with pytest.raises(RunFormatError, match="no-run holds no training run"):
        export_stimuli(tmp_path / "s", runs=[tmp_path / "no-run"])


def _tiny_dataset(root: Path) -> Path:
    """Five 6 s pairs (3 train, 1 valid, 1 test): synthetic phrases through amp-builtin at one setting."""
    from fxlib.reference_fx import demo_phrase

    writer = PairWriter(root, Manifest("amp", {"synthetic": "test_listening"}, SR, 1, 0, "test", {"pairs": 5}))
    with load_chain("amp-builtin") as chain:
        u = np.random.default_rng(0).uniform(0.2, 0.8, chain.num_params)
        for k, split in enumerate(["train", "train", "train", "valid", "test"]):
            x = demo_phrase(6.0, SR, k)
            inp, tgt = writer.paths(f"{k:04d}", split)
            save_audio(inp, x, SR)
            save_audio(tgt, chain.process(x, u), SR)
            writer.add(writer.pair(f"{k:04d}", split, 6.0))
    writer.finish()
    return root


def test_export_from_a_trained_run(tmp_path, one_torch_thread):
    from fxlib.calibrate import calibrate
    from fxlib.tasks import get_task
    from fxlib.train import Trainer

    data = _tiny_dataset(tmp_path / "data")
    profile = get_task("amp").profile("smoke").override(context=4096, fixed_steps=2)
    trainer = Trainer("amp", profile, tmp_path / "run", data_root=data, chain="amp-builtin", progress=False)
    calibrate(trainer.fit())
    manifest = export_stimuli(tmp_path / "stimuli", runs=[tmp_path / "run"], trials=3, seconds=2.0, seed=1)
    systems = {HIDDEN_REFERENCE, ANCHOR, "input", "chain-default", "chain-best-fixed", "deepafx", "neural-amp"}
    target, _ = load_audio(data / "test" / "0004_target.wav")
    for trial in manifest["trials"]:
        assert {s["system"] for s in trial["stimuli"]} == systems
        assert trial["info"]["pair"] == "0004" and trial["info"]["seconds"] == 2.0
        # the hidden reference is the target excerpt, faded and scaled by its recorded gain
        ref = next(s for s in trial["stimuli"] if s["system"] == HIDDEN_REFERENCE)
        start = round(trial["info"]["start_s"] * SR)
        excerpt = target[:, start:start + 2 * SR] * 10 ** (ref["gain_db"] / 20)
        got, _ = load_audio(tmp_path / "stimuli" / ref["file"])
        middle = slice(SR // 10, -SR // 10)  # away from the fades
        np.testing.assert_allclose(got[:, middle], excerpt[:, middle], atol=1e-4)
    # a second export with the same settings keeps everything
    assert export_stimuli(tmp_path / "stimuli", runs=[tmp_path / "run"], trials=3, seconds=2.0,
                          seed=1)["fingerprint"] == manifest["fingerprint"]
    # the paper's protocol: the input is the low anchor, a mid anchor, every stimulus at its own level
    paper = export_stimuli(tmp_path / "paper", runs=[tmp_path / "run"], trials=2, seconds=2.0, seed=1,
                           protocol="paper")
    assert paper["anchor"] == "input" and paper["protocol"] == "paper"
    for trial in paper["trials"]:
        assert {s["system"] for s in trial["stimuli"]} == {HIDDEN_REFERENCE, "input", "mid-anchor", "deepafx",
                                                          "neural-amp"}
        assert len({s["gain_db"] for s in trial["stimuli"]}) == 1  # one common gain: levels kept
    with pytest.raises(SpecError, match="unknown protocol"):
        export_stimuli(tmp_path / "other", runs=[tmp_path / "run"], protocol="mushra")


# ------------------------------------------------------------------------------------ sessions

def _orders(session: ListeningSession) -> list:
    return session.state["order"]


def test_session_order_is_seeded_and_differs_between_listeners(demo, tmp_path):
    ann = ListeningSession(demo, "ann", tmp_path / "a", seed=0)
    ann_again = ListeningSession(demo, "ann", tmp_path / "b", seed=0)
    bob = ListeningSession(demo, "bob", tmp_path / "a", seed=0)
    assert _orders(ann) == _orders(ann_again)
    assert _orders(ann) != _orders(bob)
    assert _orders(ann) != _orders(ListeningSession(demo, "ann", tmp_path / "c", seed=1))
    trial = ann.current
    assert trial.number == 1 and trial.total == 4 and trial.labels == ["A", "B", "C", "D", "E"]
    assert {s.system for s in trial.stimuli} == DEMO_SYSTEMS  # the hidden reference is among them
    assert trial.reference.is_file() and all(s.path.is_file() for s in trial.stimuli)
    with pytest.raises(SpecError, match="listener id"):
        ListeningSession(demo, "../evil", tmp_path / "a")


def test_each_trial_is_saved_and_a_new_session_resumes(demo, tmp_path):
    session = ListeningSession(demo, "ann", tmp_path, seed=5)
    order = [item["trial"] for item in _orders(session)]
    first = session.current
    session.rate({s.label: 50 + i for i, s in enumerate(first.stimuli)})
    saved = json.loads((tmp_path / "ann.json").read_text())
    assert list(saved["ratings"]) == [order[0]] and saved["seed"] == 5
    assert saved["ratings"][order[0]]["ratings"][first.stimuli[2].system] == 52.0
    resumed = ListeningSession(demo, "ann", tmp_path, seed=99)  # the stored seed and order win
    assert resumed.current.id == order[1] and resumed.rated == 1
    assert [item["trial"] for item in _orders(resumed)] == order


def test_a_save_that_fails_leaves_the_previous_file(demo, tmp_path, monkeypatch):
    session = ListeningSession(demo, "ann", tmp_path)
    session.rate({label: 70 for label in session.current.labels})
    before = (tmp_path / "ann.json").read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        session.rate({label: 60 for label in session.current.labels})
    monkeypatch.undo()
    assert (tmp_path / "ann.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ann.json"]  # no temporary file left
    assert ListeningSession(demo, "ann", tmp_path).rated == 1


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("C"), "stimulus C has no rating"),
    (lambda r: r.update(C="80"), "stimulus C must be a number"),
    (lambda r: r.update(C=None), "stimulus C has no rating"),
    (lambda r: r.update(C=True), "stimulus C must be a number"),
    (lambda r: r.update(C=math.nan), "stimulus C is nan, outside 0 to 100"),
    (lambda r: r.update(C=100.5), "stimulus C is 100.5, outside 0 to 100"),
    (lambda r: r.update(C=-1), "stimulus C is -1, outside 0 to 100"),
    (lambda r: r.update(Z=10), "no stimulus 'Z'"),
])
def test_bad_ratings_raise_naming_stimulus_and_trial(demo, tmp_path, change, message):
    session = ListeningSession(demo, "ann", tmp_path)
    trial = session.current
    ratings = {label: 50 for label in trial.labels}
    change(ratings)
    with pytest.raises(RatingError, match=message) as error:
        session.rate(ratings)
    assert trial.id in str(error.value)
    assert ListeningSession(demo, "ann", tmp_path).rated == 0  # nothing saved


def test_duplicate_rating_raises(demo, tmp_path):
    session = ListeningSession(demo, "ann", tmp_path)
    pairs = [(label, 50) for label in session.current.labels] + [("B", 60)]
    with pytest.raises(RatingError, match="stimulus B is rated twice"):
        session.rate(pairs)


def test_ratings_of_another_stimuli_set_are_refused(demo, tmp_path):
    other = tmp_path / "other"
    demo_stimuli(other, seed=1, trials=2, seconds=1.0)
    ratings = tmp_path / "ratings"
    ListeningSession(other, "ann", ratings).rate({label: 40 for label in "ABCDE"})
    with pytest.raises(StimuliMismatchError, match="another stimuli set"):
        ListeningSession(demo, "ann", ratings)
    with pytest.raises(StimuliMismatchError, match="another stimuli set"):
        load_ratings(ratings, demo)
    ListeningSession(demo, "bob", ratings).rate({label: 40 for label in "ABCDE"})
    with pytest.raises(StimuliMismatchError, match="mixes ratings"):
        load_ratings(ratings)


@pytest.mark.parametrize("change, error, message", [
    (lambda r: r.pop("fingerprint"), DataError, "'fingerprint' must be a str, got None"),
    (lambda r: r.update(simulated="no"), DataError, "'simulated' must be a bool"),
    (lambda r: r["ratings"].update(trial00={"labels": {}}), DataError, "trial 'trial00' holds no 'ratings'"),
    (lambda r: next(iter(r["ratings"].values()))["ratings"].update(anchor=250), RatingError,
     "the rating of stimulus anchor is 250, outside 0 to 100"),
], ids=["no-fingerprint", "simulated-not-bool", "trial-without-ratings", "score-out-of-range"])
def test_a_malformed_ratings_file_is_named(demo, tmp_path, change, error, message):
    ratings = tmp_path / "ratings"
    ListeningSession(demo, "ann", ratings).rate({label: 40 for label in "ABCDE"})
    path = ratings / "ann.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    with pytest.raises(error, match=message) as caught:
        load_ratings(ratings, demo)
    assert str(path) in str(caught.value)


# ------------------------------------------------------------------------------------ widget

def test_widget_drives_a_whole_session(demo, tmp_path):
    widget = MushraWidget(ListeningSession(demo, "ann", tmp_path))
    assert set(widget.sliders) == set("ABCDE")
    players = [child for row in widget.rows.children for child in row.children if type(child).__name__ == "Audio"]
    assert len(players) == 6 and all(p.value[:4] == b"RIFF" for p in players)  # reference + 5 stimuli
    assert "bad" in widget.rows.children[0].children[1].children[0].value  # the MUSHRA scale header
    widget.set_rating("A", 80)
    assert not widget.submit()  # B-E not moved
    assert "stimulus B has no rating" in widget.status.value
    with pytest.raises(RatingError, match="outside 0 to 100"):
        widget.set_rating("B", 101)
    with pytest.raises(RatingError, match="no stimulus 'F'"):
        widget.set_rating("F", 10)
    for trial in range(4):
        assert f"Trial {trial + 1} of 4" in widget.title.value
        for k, label in enumerate("ABCDE"):
            widget.set_rating(label, 10 * k + trial)
        assert widget.submit()
    assert "All 4 trials are rated" in widget.title.value and widget.next_button.disabled
    assert not widget.submit()
    table = load_ratings(tmp_path, demo)
    assert len(table) == 20 and set(table["rating"]) >= {0.0, 43.0} and not table["simulated"].any()


# ------------------------------------------------------------------------------------ analysis

def test_load_ratings_is_a_tidy_table(simulated, demo):
    table = load_ratings(simulated, demo)
    assert list(table.columns) == ["listener", "trial", "system", "rating", "simulated"]
    assert len(table) == 9 * 4 * 5 and table["simulated"].all()
    assert table["rating"].between(0, 100).all()
    with pytest.raises(DataNotFoundError, match="no ratings files"):
        load_ratings(simulated / "missing")


def test_post_screening_excludes_the_careless_listener(simulated):
    table = load_ratings(simulated)
    screening = post_screen(table, anchor=ANCHOR)
    assert list(screening.excluded) == [CARELESS] and "'reference' below 90" in screening.excluded[CARELESS]
    assert len(screening.kept) == 8
    assert set(screening.apply(table)["listener"]) == set(screening.kept)
    with pytest.raises(DataError, match="no ratings of system 'nothing'"):
        post_screen(table, anchor="nothing")


def test_wilcoxon_finds_clear_differences_and_none_between_identical_systems(simulated):
    table = post_screen(load_ratings(simulated)).apply(load_ratings(simulated))
    tests = wilcoxon_tests(table, "chain-halfway").set_index("system")
    assert tests.loc["input", "significant"] and tests.loc["input", "median_difference"] < -20
    assert tests.loc["anchor", "p_holm"] < 0.001
    twin = table[table["system"] == "chain-halfway"].assign(system="twin")
    same = wilcoxon_tests(pandas.concat([table, twin]), "chain-halfway", ["twin"]).iloc[0]
    assert same["p_value"] == 1.0 and not same["significant"] and same["median_difference"] == 0


def test_wilcoxon_between_equally_good_systems_is_not_significant(demo, tmp_path):
    # seeded, so deterministic; two systems of the same mean quality differ only by rating noise
    simulate_ratings(demo, tmp_path, listeners=8, seed=0, qualities={"input": 60.0, "chain-default": 60.0})
    table = load_ratings(tmp_path)
    tests = wilcoxon_tests(post_screen(table).apply(table), "input", ["chain-default", ANCHOR]).set_index("system")
    assert tests.loc["chain-default", "p_value"] > 0.2
    assert not tests.loc["chain-default", "significant"] and tests.loc[ANCHOR, "significant"]


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_box_plot_returns_a_figure(simulated):
    from matplotlib.figure import Figure

    fig = box_plot(load_ratings(simulated), order=["reference", "chain-halfway", "input", "anchor"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["reference", "chain-halfway", "input", "anchor"]
    assert "SIMULATED" in ax.get_title() and ax.get_ylim() == (0, 100)
