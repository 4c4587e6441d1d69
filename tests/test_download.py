"""fxlib.data.download and the amp task's download, against an HTTP server on 127.0.0.1.

The server (a thread in this process) serves in-memory files; it can honour or ignore
``Range`` requests and cut a response halfway to simulate a dropped connection.
"""
from __future__ import annotations

import hashlib
import io
import socket
import zipfile

import numpy as np
import pytest

from fxlib.data import (ChecksumError, DataError, DataNotFoundError, DownloadError, PairedDataset, download, extract,
                        read_manifest)
from fxlib.data.amp import download_paper_data, pair_files

from conftest import make_tar, wav_bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 3000  # 768 000 bytes, so a cut lands mid-stream


def test_download_verifies_and_skips_a_complete_file(server, tmp_path):
    server.state["files"]["/a.bin"] = PAYLOAD
    dest = download(server.url + "/a.bin?download=1", tmp_path / "dl" / "a.bin", sha256=sha(PAYLOAD),
                    md5=hashlib.md5(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "dl" / "a.bin.part").exists()
    download(server.url + "/a.bin", dest, sha256=sha(PAYLOAD))
    assert len(server.state["requests"]) == 1


def test_resume_with_range_after_a_cut(server, tmp_path):
    server.state["files"]["/a.bin"] = PAYLOAD
    server.state["cut"].add("/a.bin")
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url + "/a.bin", dest, sha256=sha(PAYLOAD))
    part = tmp_path / "a.bin.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    kept = part.stat().st_size
    download(server.url + "/a.bin", dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.state["requests"][-1] == ("/a.bin", f"bytes={kept}-")


def test_restart_when_the_server_ignores_range(server, tmp_path):
    server.state.update(ranges=False)
    server.state["files"]["/a.bin"] = PAYLOAD
    server.state["cut"].add("/a.bin")
    with pytest.raises(DownloadError):
        download(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD))
    assert download(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_a_bad_or_overlong_partial_file_is_fetched_again(server, tmp_path):
    server.state["files"]["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(b"\xff" * 1000)  # resumes, fails the checksum, starts over
    with pytest.warns(UserWarning, match="from the start"):
        download(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    (tmp_path / "b.bin.part").write_bytes(PAYLOAD + b"extra")  # longer than the file: HTTP 416, start over
    server.state["files"]["/b.bin"] = PAYLOAD
    assert download(server.url + "/b.bin", tmp_path / "b.bin", sha256=sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    server.state["files"]["/a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="sha256 expected 0+, got"):
        download(server.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_no_network(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download(server.url + "/missing.zip", tmp_path / "m.zip")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(DownloadError, match="cannot connect"):
        download(f"http://127.0.0.1:{port}/a.zip", tmp_path / "a.zip", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_timeout_keeps_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="no answer within 0.2 s|timed out"):
        download(server.url + "/slow", tmp_path / "slow.bin", timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_a_stale_file_with_another_checksum_is_replaced(server, tmp_path):
    server.state["files"]["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin").write_bytes(b"an older version")
    with pytest.warns(UserWarning, match="deleting it"):
        download(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


# -- extraction ----------------------------------------------------------------------------
def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("maker,name", [(make_zip, "a.zip"), (make_tar, "a.tar.gz")])
def test_extract_is_atomic_and_idempotent(tmp_path, maker, name):
    archive = tmp_path / name
    archive.write_bytes(maker({"top/x.txt": b"x", "top/sub/y.txt": b"y"}))
    out = extract(archive, tmp_path / "out")
    assert (out / "top" / "sub" / "y.txt").read_bytes() == b"y"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "out"]
    (out / "top" / "x.txt").write_bytes(b"changed")
    extract(archive, tmp_path / "out")  # already done: nothing is touched
    assert (out / "top" / "x.txt").read_bytes() == b"changed"
    archive.write_bytes(maker({"other.txt": b"zz"}))
    with pytest.raises(DataError, match="not extracted from"):
        extract(archive, tmp_path / "out")


@pytest.mark.parametrize("archive_bytes,name", [
    (make_zip({"ok.txt": b"1", "../evil.txt": b"2"}), "a.zip"),
    (make_zip({"/abs/evil.txt": b"2"}), "a.zip"),
    (make_tar({"ok.txt": b"1", "a/../../evil.txt": b"2"}), "a.tar.gz"),
    (make_tar({"ok.txt": b"1"}, symlink="link"), "a.tar.gz"),
])
def test_extract_refuses_unsafe_members(tmp_path, archive_bytes, name):
    (tmp_path / "in").mkdir()
    archive = tmp_path / "in" / name
    archive.write_bytes(archive_bytes)
    with pytest.raises(DataError, match="unsafe member|link"):
        extract(archive, tmp_path / "in" / "out")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["in", f"in/{name}"]


def test_extract_errors(tmp_path):
    with pytest.raises(DataNotFoundError):
        extract(tmp_path / "none.zip", tmp_path / "out")
    (tmp_path / "x.zip").write_bytes(b"plain text, not an archive")
    with pytest.raises(DataError, match="neither a zip nor a tar"):
        extract(tmp_path / "x.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.extracting").exists()


# -- the amp task's download -----------------------------------------------------------------
FREQS = [110.0, 220.0, 330.0, 440.0, 550.0]


def audiomdpi_zip(n_targets: int = len(FREQS)) -> bytes:
    """A small archive laid out like AudioMDPI.zip: dry and preamp recordings at 44.1 kHz."""
    t = np.arange(int(0.3 * 44100)) / 44100
    members = {}
    for i, f in enumerate(FREQS):
        dry = 0.5 * np.sin(2 * np.pi * f * t)
        members[f"AudioMDPI/6176ChannelStrip/dry/take{i}.wav"] = wav_bytes(dry, 44100)
        if i < n_targets:
            members[f"AudioMDPI/6176ChannelStrip/preamp/take{i}.wav"] = wav_bytes(np.tanh(3 * dry) / 1.2, 44100)
    members["AudioMDPI/LeslieWoofer/dry/other.wav"] = wav_bytes(0.1 * np.sin(t), 44100)
    return make_zip(members)


def peak_hz(x: np.ndarray, sr: int) -> float:
    return float(np.fft.rfftfreq(x.shape[1], 1 / sr)[np.argmax(np.abs(np.fft.rfft(x[0])))])


def test_amp_download_pairs_resamples_and_splits(server, tmp_path):
    data = audiomdpi_zip()
    server.state["files"]["/records/3562442/files/AudioMDPI.zip"] = data
    url = server.url + "/records/3562442/files/AudioMDPI.zip?download=1"
    lines = []
    download_paper_data(tmp_path / "amp", url, md5=hashlib.md5(data).hexdigest(), command="test", log=lines.append)
    manifest = read_manifest(tmp_path / "amp")
    assert manifest.sample_rate == 22050 and manifest.source["md5_verified"]
    assert sorted(p.split for p in manifest.pairs) == ["test", "train", "train", "train", "valid"]
    for split in ("train", "valid", "test"):
        ds = PairedDataset(tmp_path / "amp", split, resample=False)
        for pair, (x, y) in zip(ds.pairs, ds):
            assert x.shape == y.shape == (1, 6615)
            assert pair.info["input_file"].replace("dry", "preamp") == pair.info["target_file"]
            assert abs(peak_hz(x, 22050) - peak_hz(y, 22050)) < 5  # the same take
            assert np.abs(y - x).max() > 0.05  # and processed
    requests = len(server.state["requests"])
    download_paper_data(tmp_path / "amp", url, md5=hashlib.md5(data).hexdigest(), command="test", log=lines.append)
    assert len(server.state["requests"]) == requests  # archive and pairs reused


def test_amp_download_without_checksum_records_it(server, tmp_path):
    data = audiomdpi_zip()
    server.state["files"]["/AudioMDPI.zip"] = data
    with pytest.warns(UserWarning, match="MD5 is computed and recorded"):
        download_paper_data(tmp_path, server.url + "/AudioMDPI.zip", log=lambda line: None)
    source = read_manifest(tmp_path).source
    assert source["md5"] == hashlib.md5(data).hexdigest() and not source["md5_verified"]


def test_amp_download_layout_errors(server, tmp_path):
    server.state["files"]["/AudioMDPI.zip"] = audiomdpi_zip(n_targets=4)
    with pytest.raises(DataError, match="5 WAV files but .*preamp holds 4"), pytest.warns(UserWarning, match="MD5"):
        download_paper_data(tmp_path / "a", server.url + "/AudioMDPI.zip", log=lambda line: None)
    base = tmp_path / "a" / "raw" / "extracted" / "AudioMDPI" / "6176ChannelStrip"
    with pytest.raises(DataError, match="no partner"):
        pair_files(base / "dry", base / "preamp", "name")
    with pytest.raises(DataNotFoundError, match="expected folder .*wet.*holds \\['dry', 'preamp'\\]"):
        pair_files(base / "dry", base / "wet")
