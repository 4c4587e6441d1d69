"""The mastering task's data: the offline songs and their reference masters, and the manifest-driven download.

The download tests use the HTTP server of test_download (a thread on 127.0.0.1).
"""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from fxlib.cli import main
from fxlib.data import ChecksumError, DataError, DataNotFoundError, DownloadError, PairedDataset, read_manifest
from fxlib.data import mastering
from fxlib.data.midi import DEFAULT_SOUNDFONT
from fxlib.errors import BackendUnavailableError
from fxlib.metrics import loudness_lufs
from conftest import make_tar, wav_bytes

SR = 22050
needs_tools = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not DEFAULT_SOUNDFONT.is_file() or not mastering.DRUMKITS_DIR.is_dir(),
    reason="needs fluidsynth, fluid-soundfont-gm and hydrogen-drumkits")


def quiet(line: str) -> None:
    pass


def reference_chain_or_skip():
    try:
        return mastering.reference_chain(SR)
    except BackendUnavailableError as e:
        pytest.skip(f"the ZAM VST3 reference chain is unavailable: {e}")


def all_wav_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


# ---------------------------------------------------------------------------- offline build

def test_band_balance_reads_tilt():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((2, SR * 2)).astype(np.float32)
    dark = np.cumsum(white, axis=1) * 0.01  # brown noise: far more low than high
    low_w, high_w = mastering.band_balance(white, SR)
    low_d, high_d = mastering.band_balance(dark, SR)
    assert low_d > low_w + 10 and high_d < high_w - 10
    assert mastering.band_balance(white * 0.1, SR) == pytest.approx((low_w, high_w))  # level does not matter


@needs_tools
def test_a_song_is_deterministic_and_its_master_meets_the_targets():
    kits: dict = {}
    mix, info = mastering.premaster(1, 7, 2.0, SR, kits)
    again, info_again = mastering.premaster(1, 7, 2.0, SR, {})
    assert mix.shape == (2, 2 * SR) and mix.dtype == np.float32
    assert np.array_equal(mix, again) and info == info_again
    assert mastering.MIX_LUFS[0] - 0.5 < info["mix_lufs"] < mastering.MIX_LUFS[1] + 0.5
    assert np.abs(mix).max() <= 10 ** (mastering.MIX_PEAK_DBFS / 20) + 1e-6
    other, _ = mastering.premaster(2, 7, 2.0, SR, kits)
    assert not np.allclose(mix, other)
    aims = mastering.master_targets(mix, SR, 1, 7)
    assert aims == mastering.master_targets(mix, SR, 1, 7)
    assert mastering.MASTER_LUFS[0] <= aims["lufs"] <= mastering.MASTER_LUFS[1]
    assert mastering.MASTER_GAIN_LU[0] - 1e-3 <= aims["lufs"] - info["mix_lufs"] <= mastering.MASTER_GAIN_LU[1] + 1e-3 \
        or aims["lufs"] in mastering.MASTER_LUFS  # louder mixes give louder masters, within the paper's range
    assert mastering.CEILING_DBFS[0] <= aims["ceiling_db"] <= mastering.CEILING_DBFS[1]
    change = np.subtract(aims["balance_db"], info["mix_balance_db"])
    assert np.all(np.abs(change) <= mastering.BALANCE_CHANGE_DB + 1e-3)  # a small tonal correction
    assert np.all(np.sign(change) == np.sign(np.subtract(mastering.REFERENCE_BALANCE_DB, info["mix_balance_db"])))
    with reference_chain_or_skip() as chain:
        target, got = mastering.master(mix, chain, SR, aims["lufs"], aims["ceiling_db"], aims["balance_db"])
        target_again, _ = mastering.master(mix, chain, SR, aims["lufs"], aims["ceiling_db"], aims["balance_db"])
    assert target.shape == mix.shape and np.array_equal(target, target_again)
    assert abs(loudness_lufs(target, SR) - aims["lufs"]) < 0.5
    assert got["master_lufs"] == pytest.approx(loudness_lufs(target, SR), abs=1e-3)
    assert np.abs(target).max() <= 10 ** ((aims["ceiling_db"] + 0.3) / 20)  # limited at the ceiling
    assert np.abs(target).max() >= 10 ** ((aims["ceiling_db"] - 1.0) / 20)  # and the maximiser works near it
    shelves = np.array([got["settings"]["eq.boost_cut_l_db"], got["settings"]["eq.boost_cut_h_db"]])
    miss = np.abs(np.subtract(mastering.band_balance(target, SR), aims["balance_db"]))
    at_limit = np.abs(shelves) == mastering.SHELF_LIMIT_DB
    assert np.all((miss < 1.0) | at_limit)  # on target unless a shelf is at its limit
    assert set(got["settings"]) == {"eq.boost_cut_l_db", "eq.boost_cut_h_db", "eq.master_gain_db",
                                    "limiter.threshold_db", "limiter.output_ceiling_db"}


@needs_tools
@pytest.mark.slow
def test_build_is_deterministic_resumes_and_refuses_other_settings(tmp_path):
    reference_chain_or_skip().close()
    mastering.build(tmp_path / "a", seconds=6, song_seconds=2, seed=4, command="pytest", log=quiet)
    mastering.build(tmp_path / "b", seconds=6, song_seconds=2, seed=4, command="pytest", log=quiet)
    files = all_wav_bytes(tmp_path / "a")
    assert len(files) == 6 and files == all_wav_bytes(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    manifest = read_manifest(tmp_path / "a")
    assert manifest.channels == 2 and {p.split for p in manifest.pairs} == {"train", "valid", "test"}
    for pair in manifest.pairs:
        assert pair.info["master_lufs"] > pair.info["mix_lufs"] + 2  # every target is louder
    statistics = manifest.source["statistics"]  # the set measured beside the paper's pairs
    assert statistics["paper_examples"] == mastering.PAPER_STATISTICS and statistics["this_set"]["pairs"] == 3
    assert statistics["this_set"]["loudness_lufs"]["change"]["min"] > 2
    (tmp_path / "b" / manifest.pairs[1].target).unlink()  # a lost file is rebuilt identically
    mastering.build(tmp_path / "b", seconds=6, song_seconds=2, seed=4, command="pytest", log=quiet)
    assert all_wav_bytes(tmp_path / "b") == files
    with pytest.raises(DataError, match="other settings"):
        mastering.build(tmp_path / "a", seconds=6, song_seconds=2, seed=5, log=quiet)
    x, y = PairedDataset(tmp_path / "a", "test", SR, 1)[0]
    assert x.shape == y.shape == (1, 2 * SR)


def test_build_refuses_bad_lengths(tmp_path):
    with pytest.raises(DataError, match="song_seconds"):
        mastering.build(tmp_path, seconds=10, song_seconds=1, log=quiet)
    with pytest.raises(DataError, match="seconds"):
        mastering.build(tmp_path, seconds=0, log=quiet)


def test_drum_kits_missing_or_incomplete(tmp_path):
    with pytest.raises(BackendUnavailableError, match="apt-get install hydrogen-drumkits"):
        mastering.load_drumkit("NoSuchKit", SR, folder=tmp_path)
    (tmp_path / "Kit").mkdir()
    (tmp_path / "Kit" / "drumkit.xml").write_text(
        "<drumkit_info><instrumentList><instrument><name>Cowbell</name><filename>c.flac</filename>"
        "</instrument></instrumentList></drumkit_info>")
    with pytest.raises(DataError, match="kick, snare, hat"):
        mastering.load_drumkit("Kit", SR, folder=tmp_path)


@pytest.mark.skipif(not mastering.DRUMKITS_DIR.is_dir(), reason="needs hydrogen-drumkits")
def test_every_listed_drum_kit_loads():
    for name in mastering.DRUMKITS:
        kit = mastering.load_drumkit(name, SR)
        assert {"kick", "snare", "hat"} <= set(kit)
        assert all(a.shape[0] == 2 and a.shape[1] > 0 and np.abs(a).max() > 0.01 for a in kit.values())


# ---------------------------------------------------------------------------- alignment and download

def test_align_removes_an_offset_either_way():
    rng = np.random.default_rng(1)
    pre = rng.standard_normal((2, 3 * SR)).astype(np.float32)
    late = np.concatenate([np.zeros((2, 2205), np.float32), 0.5 * pre], axis=1)  # master starts 0.1 s later
    a, b, lag = mastering.align(pre, late, SR)
    assert lag == 2205 and a.shape == b.shape == (2, 3 * SR) and np.allclose(b, 0.5 * a)
    a, b, lag = mastering.align(late, pre, SR)
    assert lag == -2205 and np.allclose(a, 0.5 * b)
    with pytest.raises(DataError, match="less than 1 s"):
        mastering.align(pre[:, :SR // 2], pre[:, :SR // 2], SR)


def song_audio(i: int, delay: int) -> tuple[bytes, bytes]:
    """A 2 s stereo 44.1 kHz pre-master and its 'master' (louder, ``delay`` samples late) as WAV bytes."""
    rng = np.random.default_rng(i)
    x = 0.03 * rng.standard_normal((2 * 44100, 2))
    y = np.concatenate([np.zeros((delay, 2)), 4 * x])
    return wav_bytes(x, 44100), wav_bytes(y, 44100)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def songs(server, tmp_path):
    """Three songs on the server: plain files, a master in a tar, both in one tar; the manifest's path."""
    entries, files = [], server.state["files"]
    for i, delay in enumerate((0, 882, 1764)):
        pre, mas = song_audio(i, delay)
        files[f"/s{i}/pre.wav"], files[f"/s{i}/master.wav"] = pre, mas
        entries.append({"id": f"song-{i}", "premaster": {"url": f"{server.url}/s{i}/pre.wav", "sha256": sha(pre)},
                        "master": {"url": f"{server.url}/s{i}/master.wav", "md5": hashlib.md5(mas).hexdigest()}})
    archive = make_tar({"album/b.wav": song_audio(1, 882)[1], "album/c_pre.wav": song_audio(2, 1764)[0],
                        "album/c.wav": song_audio(2, 1764)[1]})
    files["/album.tgz"] = archive
    entries[1]["master"] = {"url": f"{server.url}/album.tgz", "sha256": sha(archive), "member": "album/b.wav"}
    entries[2] = {"id": "song-2", "premaster": {"url": f"{server.url}/album.tgz", "sha256": sha(archive),
                                                "member": "album/c_pre.wav"},
                  "master": {"url": f"{server.url}/album.tgz", "sha256": sha(archive), "member": "album/c.wav"}}
    path = tmp_path / "songs.json"
    path.write_text(json.dumps({"format": 1, "source": "test material", "songs": entries}))
    return path


def test_download_aligns_splits_and_resumes(server, songs, tmp_path):
    root = tmp_path / "data"
    mastering.download_paper_data(root, songs, log=quiet)
    manifest = read_manifest(root)
    assert [p.id for p in manifest.pairs] == ["song-0", "song-1", "song-2"]
    assert sorted(p.split for p in manifest.pairs) == ["test", "train", "valid"]
    assert [p.info["lag_samples"] for p in manifest.pairs] == [0, 441, 882]  # 0, 20 and 40 ms at 22.05 kHz
    assert manifest.channels == 2 and manifest.sample_rate == SR
    for x, y in PairedDataset(root, None, SR, 2):
        assert x.shape == y.shape and x.shape[0] == 2 and abs(x.shape[1] - 2 * SR) <= 2
        assert np.corrcoef(x[0], y[0])[0, 1] > 0.99  # aligned
    archive_requests = [r for r in server.state["requests"] if r[0] == "/album.tgz"]
    assert len(archive_requests) == 1  # one archive shared by three entries: fetched once
    count = len(server.state["requests"])
    mastering.download_paper_data(root, songs, log=quiet)  # complete: nothing fetched again
    assert len(server.state["requests"]) == count
    # a cut transfer resumes with a Range request
    server.state["cut"].add("/s0/pre.wav")
    with pytest.raises(DownloadError):
        mastering.download_paper_data(tmp_path / "again", songs, log=quiet)
    mastering.download_paper_data(tmp_path / "again", songs, log=quiet)
    assert any(path == "/s0/pre.wav" and rng is not None for path, rng in server.state["requests"])
    assert all_wav_bytes(tmp_path / "again") == all_wav_bytes(root)


def test_download_from_a_toml_manifest(server, songs, tmp_path):
    data = json.loads(songs.read_text())
    lines = ["format = 1", ""]
    for song in data["songs"]:
        lines += ["[[songs]]", f"id = \"{song['id']}\""]
        for kind in ("premaster", "master"):
            lines.append(f"{kind} = {{ " + ", ".join(f'{k} = "{v}"' for k, v in song[kind].items()) + " }")
    toml = tmp_path / "songs.toml"
    toml.write_text("\n".join(lines) + "\n")
    mastering.download_paper_data(tmp_path / "t", toml, log=quiet)
    assert len(read_manifest(tmp_path / "t").pairs) == 3


def test_download_checksum_mismatch_and_missing_files(server, songs, tmp_path):
    data = json.loads(songs.read_text())
    data["songs"][0]["premaster"]["sha256"] = "0" * 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ChecksumError, match="sha256 expected 0+"):
        mastering.download_paper_data(tmp_path / "x", bad, log=quiet)
    data = json.loads(songs.read_text())
    data["songs"][0]["master"]["url"] = server.url + "/nothing.wav"
    bad.write_text(json.dumps(data))
    with pytest.raises(DownloadError, match="HTTP error 404"):
        mastering.download_paper_data(tmp_path / "y", bad, log=quiet)
    data = json.loads(songs.read_text())
    data["songs"][1]["master"]["member"] = "album/none.wav"
    bad.write_text(json.dumps(data))
    with pytest.raises(DataNotFoundError, match="no member 'album/none.wav'"):
        mastering.download_paper_data(tmp_path / "z", bad, log=quiet)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["songs"][0].pop("master"), "song 'song-0' has no \"master\" entry"),
    (lambda d: d["songs"][1]["premaster"].pop("sha256"), "needs a \"sha256\" or \"md5\""),
    (lambda d: d["songs"][1]["premaster"].pop("url"), "premaster has no \"url\""),
    (lambda d: d["songs"][2].update(id="song-0"), "unique"),
    (lambda d: d["songs"][0]["master"].update(sha1="x"), "unknown field"),
    (lambda d: d.update(format=2), "format"),
    (lambda d: d.update(songs=[]), "non-empty list"),
])
def test_malformed_song_manifests_are_named(songs, change, message):
    data = json.loads(songs.read_text())
    change(data)
    songs.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        mastering.read_song_manifest(songs)


def test_cli_requires_a_manifest_and_reports_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "mastering", "download", "--root", str(tmp_path / "d")])
    assert main(["data", "mastering", "download", "--root", str(tmp_path / "d"), "--manifest",
                 str(tmp_path / "none.json")]) == 2
    assert "song manifest" in capsys.readouterr().err
    with pytest.raises(DataNotFoundError, match="does not exist"):
        mastering.read_song_manifest(tmp_path / "none.json")
    (tmp_path / "broken.toml").write_text("format = ")
    with pytest.raises(DataError, match="not a readable song manifest"):
        mastering.read_song_manifest(tmp_path / "broken.toml")
