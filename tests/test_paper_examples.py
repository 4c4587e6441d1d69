"""fxlib.data.paper_examples: the table of the paper's listening-test files, its downloader (against an
HTTP server on 127.0.0.1, see conftest), the local source, and the examples found in a folder."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import ROOT
from fxlib.cli import main as cli_main
from fxlib.data import ChecksumError, DataError, DataNotFoundError, DownloadError
from fxlib.data import paper_examples as pe

SHARED = ROOT.parent / "shared" / "paper-listening-test"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the paper's stimuli, a local copy) is absent")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mp3_bytes(seconds: float = 0.5, seed: int = 0, sr: int = 44100) -> bytes:
    """A small real MP3 file (libsndfile's encoder) of seeded noise."""
    x = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, x, sr, format="MP3")
    return buffer.getvalue()


# a small table of the real layout: one known checksum, one unknown
A = mp3_bytes(seed=1)
B = mp3_bytes(seed=2)
TABLE = (pe.PaperFile("amp", 2, "input", "distortion", "full_model_61_2_x.mp3", sha(A)),
         pe.PaperFile("amp", 2, "cafx", "distortion", "CAFx_2.mp3", None))


def serve(server, files=((TABLE[0], A), (TABLE[1], B))):
    for f, data in files:
        server.state["files"][f"/audio/{f.path}"] = data
    return server.url + "/audio"


def test_the_table_lists_every_file_of_the_page():
    assert len(pe.FILES) == 160
    per_task = {t: sum(f.task == t for f in pe.FILES) for t in pe.FOLDERS}
    assert per_task == {"amp": 50, "breath": 40, "mastering": 70}
    assert len({f.path for f in pe.FILES}) == 160
    assert sum(f.sha256 is not None for f in pe.FILES) == 80
    names = {f.path for f in pe.FILES}
    assert {"distortion/CAFx_101.mp3", "nonspeech/full_model_57_9_x_mid.mp3",
            "mastering/full_model_92_13_x_landr.mp3", "mastering/full_model_92_0_x_mid_peak.mp3"} <= names
    assert pe.BASE_URL == f"https://raw.githubusercontent.com/mchijmma/DeepAFx/{pe.COMMIT}/audio"


def test_download_fetches_into_the_page_layout_and_records_unknown_checksums(server, tmp_path):
    base = serve(server)
    with pytest.warns(UserWarning, match="1 file.*no published checksum"):
        paths = pe.download(tmp_path, base_url=base, files=TABLE, log=lambda s: None)
    assert paths == [tmp_path / "distortion" / "full_model_61_2_x.mp3", tmp_path / "distortion" / "CAFx_2.mp3"]
    assert paths[0].read_bytes() == A and paths[1].read_bytes() == B
    recorded = json.loads((tmp_path / pe.CHECKSUMS).read_text())["sha256"]
    assert recorded == {"distortion/CAFx_2.mp3": sha(B)}
    requests = len(server.state["requests"])
    pe.download(tmp_path, base_url=base, files=TABLE, log=lambda s: None)  # complete and verified: nothing fetched
    assert len(server.state["requests"]) == requests


def test_a_recorded_checksum_is_checked_at_the_next_download(server, tmp_path):
    base = serve(server)
    with pytest.warns(UserWarning):
        pe.download(tmp_path, base_url=base, files=TABLE, log=lambda s: None)
    (tmp_path / "distortion" / "CAFx_2.mp3").unlink()
    server.state["files"]["/audio/distortion/CAFx_2.mp3"] = b"changed"
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        pe.download(tmp_path, base_url=base, files=TABLE, log=lambda s: None)
    assert not (tmp_path / "distortion" / "CAFx_2.mp3").exists()


def test_a_cut_download_resumes(server, tmp_path):
    base = serve(server, [(TABLE[0], A)])
    server.state["cut"].add(f"/audio/{TABLE[0].path}")
    with pytest.raises(DownloadError, match="run again to resume"):
        pe.download(tmp_path, base_url=base, files=TABLE[:1], log=lambda s: None)
    part = tmp_path / "distortion" / "full_model_61_2_x.mp3.part"
    kept = part.stat().st_size
    assert 0 < kept < len(A)
    pe.download(tmp_path, base_url=base, files=TABLE[:1], log=lambda s: None)
    assert (tmp_path / TABLE[0].path).read_bytes() == A
    assert server.state["requests"][-1] == (f"/audio/{TABLE[0].path}", f"bytes={kept}-")


def test_a_wrong_file_fails_its_checksum_and_is_not_kept(server, tmp_path):
    base = serve(server, [(TABLE[0], B)])
    with pytest.raises(ChecksumError):
        pe.download(tmp_path, base_url=base, files=TABLE[:1], log=lambda s: None)
    assert not (tmp_path / TABLE[0].path).exists()


def test_a_local_source_is_used_instead_of_the_network(server, tmp_path):
    base = serve(server)
    source = tmp_path / "source"
    (source / "distortion").mkdir(parents=True)
    (source / TABLE[0].path).write_bytes(A)
    lines = []
    with pytest.warns(UserWarning):
        pe.download(tmp_path / "root", source=source, base_url=base, files=TABLE, log=lines.append)
    assert (tmp_path / "root" / TABLE[0].path).read_bytes() == A
    assert [path for path, _ in server.state["requests"]] == [f"/audio/{TABLE[1].path}"]  # only the file it lacks
    assert f"copied {source / TABLE[0].path}" in lines


def test_a_corrupt_local_copy_is_refused(server, tmp_path):
    source = tmp_path / "source"
    (source / "distortion").mkdir(parents=True)
    (source / TABLE[0].path).write_bytes(B)
    with pytest.raises(ChecksumError, match="local copy differs"):
        pe.download(tmp_path / "root", source=source, base_url=serve(server), files=TABLE[:1], log=lambda s: None)
    assert not (tmp_path / "root" / TABLE[0].path).exists()


def test_offline_takes_only_what_the_source_holds(server, tmp_path):
    source = tmp_path / "source"
    (source / "distortion").mkdir(parents=True)
    (source / TABLE[0].path).write_bytes(A)
    lines = []
    paths = pe.download(tmp_path / "root", source=source, base_url=serve(server), files=TABLE, offline=True,
                        log=lines.append)
    assert paths == [tmp_path / "root" / TABLE[0].path]
    assert server.state["requests"] == []
    assert "1 not held by" in lines[-1]


def test_an_unknown_task_or_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="unknown task.*'drums'"):
        pe.download(tmp_path, tasks=["drums"], log=lambda s: None)
    with pytest.raises(DataNotFoundError, match="paper-examples download"):
        pe.examples(tmp_path / "nowhere")


def write_example(folder: Path, task: str, example: int, conditions, make) -> None:
    for condition in conditions:
        path = folder / pe.FOLDERS[task] / pe.FILE_NAMES[task][condition].format(id=example)
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, make(condition), 44100, format="WAV", subtype="FLOAT")


def test_examples_lists_what_a_folder_holds(tmp_path):
    noise = np.random.default_rng(0).standard_normal(4410).astype(np.float32) * 0.1
    write_example(tmp_path, "amp", 2, pe.FILE_NAMES["amp"], lambda c: noise)
    write_example(tmp_path, "breath", 0, ["input", "target"], lambda c: noise)
    found = pe.examples(tmp_path)
    assert [(e.task, e.id, e.complete) for e in found] == [("amp", 2, True), ("breath", 0, False)]
    assert list(found[0].files) == ["input", "mid_anchor", "target", "deepafx", "cafx"]
    assert found[1].to_dict() == {"task": "breath", "id": 0, "files": {
        "input": str(tmp_path / "nonspeech" / "full_model_57_0_x.mp3"),
        "target": str(tmp_path / "nonspeech" / "full_model_57_0_y.mp3")}}
    assert pe.examples(tmp_path, ["mastering"]) == []


def test_load_example_aligns_every_condition_to_the_target(tmp_path):
    rng = np.random.default_rng(1)
    target = (0.1 * rng.standard_normal(44100)).astype(np.float32)
    late = np.concatenate([np.zeros(300, np.float32), target])  # 300 samples late
    early = target[120:]  # 120 samples early and shorter
    longer = np.concatenate([target, 0.1 * np.ones(5000, np.float32)])
    audio = {"target": target, "deepafx": late, "input": early, "mid_anchor": -target, "cafx": longer}
    write_example(tmp_path, "amp", 2, pe.FILE_NAMES["amp"], audio.get)
    loaded = pe.load_example(pe.examples(tmp_path)[0])
    assert loaded.lags == {"input": -120, "mid_anchor": 0, "target": 0, "deepafx": 300, "cafx": 0}
    lengths = {a.shape for a in loaded.audio.values()}
    assert lengths == {(1, 44100 - 120)}  # cut to the span every condition covers
    np.testing.assert_allclose(loaded.audio["deepafx"], loaded.audio["target"], atol=1e-6)
    np.testing.assert_allclose(loaded.audio["input"], loaded.audio["target"], atol=1e-6)
    np.testing.assert_allclose(loaded.audio["mid_anchor"], -loaded.audio["target"], atol=1e-6)  # polarity kept
    resampled = pe.load_example(pe.examples(tmp_path)[0], sample_rate=22050)
    assert resampled.sample_rate == 22050 and resampled.audio["target"].shape == (1, (44100 - 120) // 2)


def test_load_example_needs_the_target(tmp_path):
    write_example(tmp_path, "breath", 0, ["input"], lambda c: np.ones(100, np.float32) * 0.1)
    with pytest.raises(DataError, match="no target file"):
        pe.load_example(pe.examples(tmp_path)[0])


def test_the_command_line_copies_from_a_source_and_lists(tmp_path, capsys):
    source = tmp_path / "source"
    # example 1 is not in the shared copy, so its checksums are unknown: recorded at this first copy
    write_example(source, "breath", 1, pe.FILE_NAMES["breath"], lambda c: np.full(100, 0.1, np.float32))
    root = tmp_path / "root"
    with pytest.warns(UserWarning, match="4 file.*no published checksum"):
        assert cli_main(["data", "paper-examples", "download", "--root", str(root), "--source", str(source),
                         "--tasks", "breath", "--offline"]) == 0
    assert cli_main(["data", "paper-examples", "list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "breath       1  input, mid_anchor, target, deepafx\n" in out
    assert len(json.loads((root / pe.CHECKSUMS).read_text())["sha256"]) == 4


@needs_shared
def test_the_shared_copy_matches_the_table():
    present = sorted(p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*.mp3"))
    assert len(present) == 80
    table = {f.path: f.sha256 for f in pe.FILES}
    for path in present:
        assert table[path] == hashlib.sha256((SHARED / path).read_bytes()).hexdigest(), path
    found = pe.examples(SHARED)
    assert [(e.task, e.id) for e in found if e.complete] == [
        ("amp", i) for i in (99, 69, 35, 6, 2)] + [("breath", i) for i in (0, 2, 4, 6, 8)] + [
        ("mastering", i) for i in (0, 2, 4, 6, 8, 10, 12)]


@needs_shared
def test_download_from_the_shared_copy_offline(tmp_path):
    paths = pe.download(tmp_path, source=SHARED, tasks=["amp"], offline=True, log=lambda s: None)
    assert len(paths) == 25
    loaded = pe.load_example(pe.examples(tmp_path, ["amp"])[0])
    assert set(loaded.audio) == set(pe.FILE_NAMES["amp"]) and loaded.sample_rate == 44100
    assert abs(loaded.lags["deepafx"]) < 0.05 * 44100
