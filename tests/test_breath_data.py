"""The breath task's data: the offline builder (labels, determinism, resuming) and the DAPS download.

The download runs against the HTTP server of test_download.py on 127.0.0.1, serving a tiny
archive laid out like ``daps.tar.gz``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import make_tar, wav_bytes

from fxlib.cli import main
from fxlib.data import (ChecksumError, DataError, DataNotFoundError, PairedDataset, breath, read_manifest)
from fxlib.data.breath import ALSA_DIR, ASTERISK_DIR, download_paper_data, pair_recordings

SR = 22050
needs_speech = pytest.mark.skipif(not (ASTERISK_DIR.is_dir() and ALSA_DIR.is_dir()),
                                  reason="needs asterisk-core-sounds-en-wav and alsa-utils")
TINY = dict(seconds=12.0, file_seconds=4.0, command="pytest")  # three pairs of 4 s


def quiet(line: str) -> None:
    pass


def all_wav_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("breath") / "a"
    breath.build(root, seed=5, log=quiet, **TINY)
    return root


# -- offline build -------------------------------------------------------------------------------
@needs_speech
def test_labels_line_up_with_the_inserted_events(built):
    ds = PairedDataset(built, None, resample=False)
    kinds = set()
    for pair, (x, y) in zip(ds.pairs, ds):
        assert x.shape == y.shape == (1, 4 * SR)
        events = pair.info["events"]
        assert events, f"pair {pair.id} has no events"
        inside = np.zeros(x.shape[1], bool)
        for e in events:
            a, b = round(e["start"] * SR), round(e["end"] * SR)
            assert 0 <= a < b <= x.shape[1] and not inside[a:b].any(), "events overlap or leave the pair"
            inside[a:b] = True
            removed = (x - y)[0, a:b].astype(np.float64)
            assert 20 * np.log10(np.sqrt(np.mean(removed ** 2))) == pytest.approx(e["level_dbfs"], abs=0.01)
            assert np.sqrt(np.mean(y[0, a:b].astype(np.float64) ** 2)) < 10 ** (-60 / 20), "speech under an event"
            spectrum = np.abs(np.fft.rfft(removed)) ** 2
            freqs = np.fft.rfftfreq(len(removed), 1 / SR)
            kinds.add(e["kind"])
            if e["kind"] == "breath":
                assert 0.2 <= e["end"] - e["start"] <= 0.8 and -35 <= e["level_dbfs"] <= -20
                assert spectrum[(freqs > 300) & (freqs < 8000)].sum() > 0.8 * spectrum.sum()
            else:
                assert e["kind"] == "pop" and 0.01 <= e["end"] - e["start"] <= 0.04
                assert spectrum[freqs < 250].sum() > 0.8 * spectrum.sum()
        assert not np.any((x - y)[:, ~inside]), "input and target differ outside the labelled events"
        assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) > 10 ** (-35 / 20), "no speech in the target"
    assert kinds == {"breath", "pop"}


@needs_speech
def test_build_is_deterministic(built, tmp_path):
    breath.build(tmp_path / "b", seed=5, log=quiet, **TINY)
    assert all_wav_bytes(built) == all_wav_bytes(tmp_path / "b")
    assert (built / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    breath.build(tmp_path / "c", seed=6, log=quiet, **TINY)
    assert all_wav_bytes(tmp_path / "c") != all_wav_bytes(built)


@needs_speech
@pytest.mark.slow
def test_interrupted_build_resumes(tmp_path, monkeypatch):
    real_save, calls = breath.save_audio, []

    def failing_save(*args):
        calls.append(args[0])
        if len(calls) == 4:  # the second pair's target
            raise KeyboardInterrupt
        return real_save(*args)

    monkeypatch.setattr(breath, "save_audio", failing_save)
    with pytest.raises(KeyboardInterrupt):
        breath.build(tmp_path / "a", log=quiet, **TINY)
    assert not (tmp_path / "a" / "manifest.json").exists()
    monkeypatch.setattr(breath, "save_audio", real_save)
    lines = []
    breath.build(tmp_path / "a", log=lines.append, **TINY)
    assert len(lines) == 3  # two pairs built, one reused, and the summary
    breath.build(tmp_path / "b", log=quiet, **TINY)
    assert all_wav_bytes(tmp_path / "a") == all_wav_bytes(tmp_path / "b")


def test_missing_speech_packages_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install asterisk-core-sounds-en-wav"):
        breath.speech_clips(asterisk_dir=tmp_path / "none")
    (tmp_path / "alsa").mkdir()
    (tmp_path / "alsa" / "Noise.wav").write_bytes(wav_bytes(np.zeros(100), 48000))
    if ASTERISK_DIR.is_dir():
        with pytest.raises(DataNotFoundError, match="apt-get install alsa-utils"):
            breath.speech_clips(alsa_dir=tmp_path / "alsa")  # Noise.wav alone is skipped


def test_bad_build_settings(tmp_path):
    with pytest.raises(DataError, match="file_seconds"):
        breath.build(tmp_path, seconds=10, file_seconds=0.5, log=quiet)


@needs_speech
def test_cli_build_and_settings_conflict(tmp_path, capsys):
    args = ["build", "--root", str(tmp_path), "--seconds", "6", "--file-seconds", "2"]
    assert main(["data", "breath", *args]) == 0
    assert read_manifest(tmp_path).command.startswith("fxlib data breath build")
    assert main(["data", "breath", *args, "--seed", "9"]) == 2
    assert "other settings" in capsys.readouterr().err


# -- the DAPS download ------------------------------------------------------------------------------
SPEAKERS = ["f1", "f2", "f10", "m3"]


def daps_tar(speakers=SPEAKERS, scripts=("script1", "script2"), drop: str | None = None,
             extra: dict[str, bytes] | None = None) -> bytes:
    """A tiny archive laid out like daps.tar.gz: 0.5 s recordings at 44.1 kHz, raw and edited."""
    t = np.arange(int(0.5 * 44100)) / 44100
    members = {}
    for i, speaker in enumerate(speakers):
        for j, script in enumerate(scripts):
            voice = 0.3 * np.sin(2 * np.pi * (150 + 40 * i + 10 * j) * t)
            raw = voice + 0.1 * (np.abs(t - 0.25) < 0.05) * np.sin(2 * np.pi * 60 * t)  # a "pop"
            members[f"daps/clean_raw/{speaker}_{script}_clean_raw.wav"] = wav_bytes(raw, 44100)
            members[f"daps/clean/{speaker}_{script}_clean.wav"] = wav_bytes(voice, 44100)
    members.pop(drop, None)
    members.update(extra or {})
    members["daps/produced/f1_script1_produced.wav"] = wav_bytes(np.zeros(100), 44100)
    return make_tar(members)


def serve(server, data: bytes) -> str:  # noqa: F811
    server.state["files"]["/records/4660670/files/daps.tar.gz"] = data
    return server.url + "/records/4660670/files/daps.tar.gz?download=1"


def test_daps_download_pairs_segments_and_splits_by_speaker(server, tmp_path):  # noqa: F811
    data = daps_tar()
    url = serve(server, data)
    md5 = hashlib.md5(data).hexdigest()
    download_paper_data(tmp_path, url, md5=md5, segment_seconds=0.2, min_segment_seconds=0.1, log=quiet)
    manifest = read_manifest(tmp_path)
    assert manifest.sample_rate == SR and manifest.source["md5_verified"]
    # 0.5 s recordings in 0.2 s segments: 0.2, 0.2 and a last 0.1 s piece (kept: not shorter than 0.1 s)
    assert len(manifest.pairs) == len(SPEAKERS) * 2 * 3
    split_of = {}
    for pair in manifest.pairs:
        assert split_of.setdefault(pair.info["speaker"], pair.split) == pair.split, "a speaker in two splits"
        assert "events" not in pair.info and pair.id.startswith(pair.info["speaker"] + "_script")
    assert sorted(split_of.values()) == ["test", "train", "train", "valid"]
    assert manifest.source["split"] == {s: [k for k in ("f1", "f2", "f10", "m3") if split_of[k] == s]
                                        for s in ("train", "valid", "test")}
    ds = PairedDataset(tmp_path, None, resample=False)
    for pair, (x, y) in zip(ds.pairs, ds):
        assert x.shape == y.shape and x.shape[1] in (round(0.2 * SR), round(0.1 * SR))
        assert pair.info["input_file"].replace("clean_raw", "clean") == pair.info["target_file"]
    removed = {pair.id: float(np.sum((x - y) ** 2)) for pair, (x, y) in zip(ds.pairs, ds)
               if pair.id.startswith("f1_script1_")}
    assert list(removed) == ["f1_script1_000", "f1_script1_001", "f1_script1_002"]
    assert removed["f1_script1_001"] > 100 * max(removed["f1_script1_000"], removed["f1_script1_002"])  # the pop
    requests = len(server.state["requests"])
    download_paper_data(tmp_path, url, md5=md5, segment_seconds=0.2, min_segment_seconds=0.1, log=quiet)
    assert len(server.state["requests"]) == requests  # archive and segments reused


def test_daps_short_last_segments_are_dropped(server, tmp_path):  # noqa: F811
    url = serve(server, daps_tar())
    with pytest.warns(UserWarning, match="MD5 is computed"):
        download_paper_data(tmp_path, url, segment_seconds=0.2, min_segment_seconds=0.15, log=quiet)
    assert len(read_manifest(tmp_path).pairs) == len(SPEAKERS) * 2 * 2


def test_daps_checksum_mismatch_keeps_nothing(server, tmp_path):  # noqa: F811
    url = serve(server, daps_tar())
    with pytest.raises(ChecksumError):
        download_paper_data(tmp_path, url, md5="0" * 32, log=quiet)
    assert not (tmp_path / "raw" / "daps.tar.gz").exists() and not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("archive,error,message", [
    (dict(drop="daps/clean/f2_script2_clean.wav"), DataError, "lack their partner.*f2_script2"),
    (dict(extra={"daps/clean/notes.wav": b""}), DataError, "notes.wav: name does not fit"),
    (dict(speakers=["f1", "m1"]), DataError, "2 speaker.*at least 3"),
])
def test_daps_wrong_layout(server, tmp_path, archive, error, message):  # noqa: F811
    url = serve(server, daps_tar(**archive))
    with pytest.raises(error, match=message), pytest.warns(UserWarning, match="MD5"):
        download_paper_data(tmp_path, url, log=quiet)
    assert not (tmp_path / "manifest.json").exists()


def test_daps_missing_folder_names_what_is_there(server, tmp_path):  # noqa: F811
    url = serve(server, daps_tar())
    with pytest.raises(DataNotFoundError, match=r"cleanraw.*holds \['clean', 'clean_raw', 'produced'\]"), \
            pytest.warns(UserWarning, match="MD5"):
        download_paper_data(tmp_path, url, layout={"input": "cleanraw"}, log=quiet)
    base = tmp_path / "raw" / "extracted" / "daps"
    pairs = pair_recordings(base / "clean_raw", base / "clean")
    assert list(pairs)[:3] == [("f1", "script1"), ("f1", "script2"), ("f2", "script1")]
    assert list(pairs)[4:6] == [("f10", "script1"), ("f10", "script2")]  # f10 after f2
