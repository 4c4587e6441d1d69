"""The breath task's data: the offline builder (speech, events, room, labels, measured properties,
determinism, resuming) and the DAPS download.

The offline checks measure each property from the built audio itself with :mod:`fxlib.data.stats`.
The download runs against the HTTP server of test_download.py on 127.0.0.1, serving a tiny
archive laid out like ``daps.tar.gz``.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, make_tar, wav_bytes

from fxlib.cli import main
from fxlib.data import ChecksumError, DataError, DataNotFoundError, PairedDataset, breath, read_manifest, stats
from fxlib.data.breath import VOICES, download_paper_data, pair_recordings

SR = 22050
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="needs ffmpeg")
needs_speech = pytest.mark.skipif(
    not (HAVE_FFMPEG and all(v.folder.is_dir() for v in VOICES)),
    reason=f"needs ffmpeg and {', '.join(v.package for v in VOICES)}")
TINY = {"seconds": 30.0, "file_seconds": 10.0, "command": "pytest"}  # three takes of 10 s: train, valid, test
SILENCE = 1e-7  # -140 dBFS: digital silence
SHARED = ROOT.parent / "shared" / "paper-listening-test"


def quiet(line: str) -> None:
    pass


def all_wav_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def band_share(x: np.ndarray, low: float, high: float) -> float:
    """The share of ``x``'s energy between ``low`` and ``high`` Hz (periodogram)."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def takes(root, split=None):
    """``[(pair, input (T,), target (T,), difference (T,))]``, float64."""
    ds = PairedDataset(root, split, resample=False)
    return [(p, x[0].astype(np.float64), y[0].astype(np.float64), x[0].astype(np.float64) - y[0].astype(np.float64))
            for p, (x, y) in zip(ds.pairs, ds)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("breath") / "a"
    breath.build(root, seed=5, log=quiet, **TINY)
    return root


# -- building blocks (no speech packages needed) --------------------------------------------------
def test_breaths_are_shaped_like_inhalations():
    rng = np.random.default_rng(0)
    shares, lows = [], {}
    for colour in (0.0, 1.0):
        for _ in range(20):
            x = breath.breath(rng, rng.uniform(*breath.BREATH_SECONDS), colour, SR)
            assert np.sqrt(np.mean(x ** 2)) == pytest.approx(1.0)
            shares.append(band_share(x, 500, 4000))
            lows.setdefault(colour, []).append(band_share(x, 0, 500))
            frames = np.sqrt(np.mean(x[:len(x) // 441 * 441].reshape(-1, 441) ** 2, axis=1))  # 20 ms frames
            assert frames[0] < 0.7 * frames.max() and frames[-1] < 0.7 * frames.max(), "no rise and fall"
    # the paper's breaths: 0.19 to 0.85 of their energy there (locate_events on its examples)
    assert np.median(shares) > 0.55 and min(shares) > 0.15, "most of a breath's energy lies in 500 Hz-4 kHz"
    assert np.median(lows[1.0]) > np.median(lows[0.0]), "a nasal breath is darker than an oral one"


def test_pops_are_low_frequency_bursts():
    rng = np.random.default_rng(1)
    for _ in range(10):
        x = breath.pop(rng, rng.uniform(*breath.POP_SECONDS), SR)
        assert band_share(x, 0, 250) > 0.8
        assert np.argmax(np.abs(x)) < len(x) / 2, "a burst decays"


def test_room_response_and_noise():
    rng = np.random.default_rng(2)
    h, room = breath.room_response(rng, SR)
    assert h[0] == 1.0 and np.all(h[1:round(0.0015 * SR)] == 0), "direct sound first, so labels stay aligned"
    assert 10 * np.log10(1 / np.sum(h[1:] ** 2)) == pytest.approx(room["drr_db"], abs=1e-3)
    assert breath.ROOM_RT60_SECONDS[0] <= room["rt60_s"] <= breath.ROOM_RT60_SECONDS[1]
    noise = breath.room_noise(rng, 10 * SR, -80.0, -3.0, SR)
    assert 10 * np.log10(np.mean(noise ** 2)) == pytest.approx(-80.0, abs=1e-6)
    assert stats.noise_floor_dbfs(noise) == pytest.approx(-80.0, abs=1.5)
    octave = band_share(noise, 1000, 2000) / band_share(noise, 2000, 4000)
    assert 10 * np.log10(octave) == pytest.approx(0.0, abs=0.5), "pink: equal power per octave"


def test_microphone_colour():
    colour, mic = breath.microphone(np.random.default_rng(3), SR)
    t = np.arange(SR) / SR
    gains = [20 * np.log10(np.std(colour(np.sin(2 * np.pi * f * t))[SR // 2:]) / np.std(np.sin(2 * np.pi * f * t)))
             for f in (20, 1000, 8000)]
    assert gains[0] < -6 and abs(gains[1]) < 1 and gains[2] == pytest.approx(mic["shelf_db"], abs=0.3)


def test_longest_silence():
    x = np.full((1, SR), 1e-3)
    x[0, 100:100 + 441] = 0.0
    assert breath.longest_silence_seconds(x, SR) == pytest.approx(441 / SR)
    assert breath.longest_silence_seconds(np.ones((1, 10)), SR) == 0.0


@needs_ffmpeg
def test_g722_decoding(tmp_path):
    path = tmp_path / "tone.g722"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-ar", "16000", "-c:a", "g722", "-f", "g722", str(path)], check=True)
    (audio,) = breath.decode_g722([path])
    assert audio.dtype == np.float32 and audio.size == path.stat().st_size * 2  # 2 samples a byte at 64 kbit/s
    spectrum = np.abs(np.fft.rfft(audio[1600:]))
    assert np.fft.rfftfreq(audio.size - 1600, 1 / 16000)[np.argmax(spectrum)] == pytest.approx(440, abs=2)


# -- the offline build, measured from its audio ------------------------------------------------------
@needs_speech
def test_splits_hold_different_voices(built):
    manifest = read_manifest(built)
    split = manifest.source["split"]
    assert {v for s in split.values() for v in s} == {v.name for v in VOICES}
    assert not set(split["train"]) & (set(split["valid"]) | set(split["test"])), "a voice in two splits"
    assert not set(split["valid"]) & set(split["test"])
    assert sorted(p.split for p in manifest.pairs) == ["test", "train", "valid"]
    for pair in manifest.pairs:
        assert pair.info["voice"] in split[pair.split]


@needs_speech
def test_labels_line_up_with_the_events(built):
    kinds = set()
    for pair, x, y, d in takes(built):
        assert x.shape == y.shape == (10 * SR,)
        events = pair.info["events"]
        asl = stats.active_speech_level(y, SR).level_db
        tail = round(1.2 * pair.info["room"]["rt60_s"] * SR)
        around = np.zeros(x.size, bool)  # each event with its reverberation, and 5 ms for the band filter
        previous_end = 0
        for e in events:
            a, b = round(e["start"] * SR), round(e["end"] * SR)
            assert previous_end <= a < b <= x.size, "events overlap or leave the pair"
            previous_end = b
            around[max(0, a - round(0.005 * SR)):b + tail] = True
            power = 10 * np.log10(np.mean(d[a:b] ** 2))
            assert power == pytest.approx(e["level_dbfs"], abs=0.01)
            assert power - asl == pytest.approx(e["level_db"], abs=0.01)
            assert np.sum(d[b:b + round(0.05 * SR)] ** 2) > 0, "the room's tail follows the event"
            kinds.add(e["kind"])
        assert np.max(np.abs(d[~around])) < 1e-6, "input and target differ away from the labelled events"
        assert {e["kind"] for e in events} == {"breath", "pop"}
    assert kinds == {"breath", "pop"}


@needs_speech
def test_breaths_sit_before_phrase_onsets_and_pops_inside_speech(built):
    near = round(stats.EVENT_SPEECH_SECONDS * SR)
    before_onset = []
    for pair, x, y, d in takes(built):
        active = stats.speech_activity(y, SR)
        for e in pair.info["events"]:
            a, b = round(e["start"] * SR), round(e["end"] * SR)
            assert e["touches_speech"] == bool(active[max(0, a - near):b + near].any())
            if e["kind"] == "breath":
                assert breath.BREATH_SECONDS[0] - 1e-6 <= e["end"] - e["start"] <= breath.BREATH_SECONDS[1] + 1e-6
                # the breath's own level relative to the speech, within 3 dB of the drawn range (mic and room)
                assert breath.BREATH_LEVEL_DB[0] - 3 <= e["level_db"] <= breath.BREATH_LEVEL_DB[1] + 3
                assert band_share(d[a:b], 500, 4000) > 0.3
                assert band_share(d[a:b], 7500, SR / 2) < 1e-3, "no energy above the speech's band"
                before_onset.append(bool(active[b - round(0.05 * SR):b + round(0.15 * SR)].any()) or b == x.size)
            else:
                assert breath.POP_SECONDS[0] - 1e-6 <= e["end"] - e["start"] <= breath.POP_SECONDS[1] + 1e-6
                assert band_share(d[a:b], 0, 500) > 0.8
                assert active[a:b + round(0.03 * SR)].any(), "a pop sits on a word onset, inside speech"
    assert np.mean(before_onset) >= 0.8, "most breaths come just before a phrase onset"


@needs_speech
def test_room_noise_floor_without_digital_silence(built):
    for pair, x, y, d in takes(built):
        floor = stats.noise_floor_dbfs(y)
        assert breath.NOISE_FLOOR_DBFS[0] - 2 <= floor <= breath.NOISE_FLOOR_DBFS[1] + 2
        assert floor == pytest.approx(pair.info["noise_floor_dbfs"], abs=2), "the floor drawn for the take"
        for signal in (x, y):
            quiet_run, longest = 0, 0
            for silent in np.abs(signal) < SILENCE:
                quiet_run = quiet_run + 1 if silent else 0
                longest = max(longest, quiet_run)
            assert longest <= 0.01 * SR, "a run of digital silence longer than 10 ms"


@needs_speech
def test_speech_is_wideband(built):
    for pair, x, y, d in takes(built):
        assert stats.bandwidth_hz(y, SR) > 2000
        assert band_share(y, 4000, 7000) > 1e-3, "speech above the telephone band"


@needs_speech
def test_manifest_states_the_measured_properties_beside_the_papers(built):
    manifest = read_manifest(built)
    measured = manifest.source["statistics"]
    assert measured["paper_examples"] == breath.PAPER_STATISTICS
    ds = PairedDataset(built, None, resample=False)
    again = breath.dataset_statistics(((x, y, p.info["events"]) for p, (x, y) in zip(ds.pairs, ds)), SR)
    assert measured["this_set"] == again
    bandwidths = [stats.bandwidth_hz(y, SR) for _, (_, y) in zip(ds.pairs, ds)]
    assert measured["this_set"]["speech_bandwidth_hz"]["median"] == pytest.approx(np.median(bandwidths))
    assert measured["this_set"]["longest_silence_s"] <= 0.01
    labelled = measured["this_set"]["labelled_events"]
    assert labelled["breath"]["count"] == sum(e["kind"] == "breath" for p in ds.pairs for e in p.info["events"])
    for key in ("speech_bandwidth_hz", "noise_floor_dbfs", "located_events"):
        assert key in breath.PAPER_STATISTICS


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "nonspeech").is_dir(), reason="needs the paper's examples beside the checkout")
def test_paper_statistics_are_what_the_command_measures():
    """PAPER_STATISTICS (rounded to 3 decimals) as its documented command measures them with today's stats."""
    def rounded(v):
        return {k: rounded(x) for k, x in v.items()} if isinstance(v, dict) else round(v, 3) if isinstance(
            v, float) else v

    assert rounded(breath.measure_paper_examples(SHARED)) == breath.PAPER_STATISTICS


@needs_speech
@pytest.mark.slow
def test_distributions_cover_the_papers(tmp_path):
    """A 3-minute build: its measured distributions against the paper's examples' (PAPER_STATISTICS)."""
    breath.build(tmp_path, seconds=180.0, log=quiet)
    this = read_manifest(tmp_path).source["statistics"]["this_set"]
    paper = breath.PAPER_STATISTICS
    assert this["speech_bandwidth_hz"]["median"] > 4000
    assert this["speech_bandwidth_hz"]["max"] >= paper["speech_bandwidth_hz"]["min"]
    assert abs(this["noise_floor_dbfs"]["target"]["median"] - paper["noise_floor_dbfs"]["target"]["median"]) < 3
    breaths = this["labelled_events"]["breath"]
    assert breaths["level_db"]["min"] < -40 and breaths["level_db"]["max"] > -25, "from near the floor to loud"
    assert 0.5 <= breaths["touching_speech_share"] <= 0.95
    overlapping = 0
    for pair, x, y, d in takes(tmp_path):
        active = stats.speech_activity(y, SR)
        overlapping += sum(active[round(e["start"] * SR):round(e["end"] * SR)].any()
                           for e in pair.info["events"] if e["kind"] == "breath")
    assert 0.05 * breaths["count"] <= overlapping <= 0.6 * breaths["count"], "some breaths overlap speech"
    assert this["located_events"]["share_500_hz_4_khz"]["median"] > 0.5
    assert this["labelled_events"]["pop"]["count"] >= 18, "at least one pop a take"


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
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_missing_speech_packages_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(breath, "ASTERISK_DIR", tmp_path)
    with pytest.raises(DataNotFoundError, match="apt-get install asterisk-core-sounds-fr-g722"):
        breath.voice_files(VOICES[-1])
    (tmp_path / VOICES[0].name / "silence").mkdir(parents=True)
    (tmp_path / VOICES[0].name / "silence" / "1.g722").write_bytes(b"\0" * 8000)
    with pytest.raises(DataNotFoundError, match=f"apt-get install {VOICES[0].package}"):
        breath.voice_files(VOICES[0])  # silence/ alone is skipped
    monkeypatch.setattr(breath, "FFMPEG", "no-such-ffmpeg")
    with pytest.raises(DataNotFoundError, match="apt-get install ffmpeg"):
        breath.decode_g722([tmp_path / "x.g722"])


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
