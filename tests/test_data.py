"""fxlib.data: audio file I/O, the manifest layout, PairedDataset and its errors, training windows, MIDI files."""
from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from scipy.io import wavfile

from fxlib.data import (AudioFileError, DataError, DataNotFoundError, Manifest, Pair, PairedDataset, PairWriter,
                        RandomClips, StreamingWindows, load_audio, read_manifest, save_audio, split_names,
                        wav_bytes, write_manifest)
from fxlib.data.midi import DRUM_CHANNEL, Note, Part, random_riff, write_midi
from fxlib.errors import AudioFormatError

SR = 22050


def ramp(n: int, offset: float = 0.0, channels: int = 1) -> np.ndarray:
    """Distinct, exactly representable values: ``offset + t / 2**15`` per sample, float32 ``(C, n)``."""
    x = (offset + np.arange(n) / 2 ** 15).astype(np.float32)
    return np.stack([x + c for c in range(channels)])


def make_dataset(root, lengths, sr=SR, splits=None, seed=0, delta=0):
    """A data set with ramps as inputs and their negatives as targets (``delta`` samples shorter)."""
    splits = splits or ["train"] * len(lengths)
    pairs = []
    for i, (n, split) in enumerate(zip(lengths, splits)):
        pid = f"{i:02d}"
        save_audio(root / split / f"{pid}_input.wav", ramp(n, i), sr)
        save_audio(root / split / f"{pid}_target.wav", -ramp(n - delta, i), sr)
        pairs.append(Pair(pid, split, f"{split}/{pid}_input.wav", f"{split}/{pid}_target.wav", n / sr))
    write_manifest(root, Manifest("toy", {"kind": "test"}, sr, 1, seed, "pytest", {}, pairs))
    return root


# -- audio ---------------------------------------------------------------------------------
def test_save_load_round_trip_is_exact(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1000)).astype(np.float32)
    path = save_audio(tmp_path / "sub" / "a.wav", x, 44100)
    y, sr = load_audio(path)
    assert sr == 44100 and y.dtype == np.float32 and np.array_equal(x, y)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.wav"]  # no temporary file left


def test_load_converts_pcm_channels_and_rate(tmp_path):
    pcm = (np.sin(np.arange(4410) / 10) * 16000).astype(np.int16)
    wavfile.write(tmp_path / "pcm.wav", 44100, pcm)
    x, sr = load_audio(tmp_path / "pcm.wav")
    assert sr == 44100 and x.shape == (1, 4410) and np.allclose(x[0], pcm / 32768)
    stereo, _ = load_audio(tmp_path / "pcm.wav", channels=2)
    assert stereo.shape == (2, 4410) and np.array_equal(stereo[0], stereo[1])
    y, sr = load_audio(tmp_path / "pcm.wav", sample_rate=22050)
    assert sr == 22050 and y.shape == (1, 2205)
    save_audio(tmp_path / "st.wav", np.stack([x[0], -x[0]]), 44100)
    mono, _ = load_audio(tmp_path / "st.wav", channels=1)
    assert mono.shape == (1, 4410) and np.abs(mono).max() == 0


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00", b"not a wav file at all" * 10])
def test_load_corrupt_file_names_it(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match="broken.wav"):
        load_audio(path)


def test_load_truncated_file_is_an_error(tmp_path):
    save_audio(tmp_path / "a.wav", ramp(1000), SR)
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "a.wav").write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioFileError, match="a.wav"):
        load_audio(tmp_path / "a.wav")


def test_load_errors_missing_nan_and_bad_channels(tmp_path):
    with pytest.raises(DataNotFoundError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav")
    x = np.zeros(100, np.float32)
    x[17] = np.nan
    wavfile.write(tmp_path / "nan.wav", SR, x)
    with pytest.raises(AudioFileError, match="nan.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")
    save_audio(tmp_path / "st.wav", ramp(10, channels=2), SR)
    with pytest.raises(AudioFileError, match="st.wav"):
        load_audio(tmp_path / "st.wav", channels=3)
    with pytest.raises(AudioFormatError, match="NaN"):
        save_audio(tmp_path / "bad.wav", x[None], SR)
    assert not (tmp_path / "bad.wav").exists()


PAPER_MP3 = Path("/work/shared/paper-listening-test/mastering/full_model_92_0_x.mp3")


def two_tones(sr: int = 44100, seconds: float = 1.0) -> np.ndarray:
    """Stereo float32 ``(2, T)``: 440 Hz at 0.5 on the left, 660 Hz at 0.25 on the right."""
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    """A RIFF WAVE file of ``(id, payload)`` chunks (odd payloads padded)."""
    body = b"".join(cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1) for cid, data in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_pcm_wav_scaling_is_what_the_scipy_reader_gave(tmp_path, bits):
    """Integer PCM reads as before the move to soundfile: uint8 (x - 128) / 128, int16 x / 2**15, 24 and
    32 bit x / 2**(bits - 1) rounded once to float32; full scale, zero and odd values included."""
    rng = np.random.default_rng(bits)
    top = 2 ** (bits - 1)
    ints = np.concatenate([[-top, -top + 1, -1, 0, 1, top - 2, top - 1], rng.integers(-top, top, 5000)])
    pcm = (ints.astype(np.int64) << (32 - bits)).astype(np.int32)  # left-aligned: soundfile stores the top bits
    soundfile.write(tmp_path / "pcm.wav", np.stack([pcm, pcm[::-1]], axis=1), 44100, format="WAV",
                    subtype="PCM_U8" if bits == 8 else f"PCM_{bits}")
    x, sr = load_audio(tmp_path / "pcm.wav")
    old = (ints.astype(np.float64) / top).astype(np.float32)  # scipy's int16 / 2**15 in float32 is the same
    assert sr == 44100 and x.dtype == np.float32 and x.shape == (2, ints.size)
    assert np.array_equal(x[0], old) and np.array_equal(x[1], old[::-1])
    if bits in (8, 16, 32):  # the files scipy.io.wavfile writes read the same
        dtype = {8: np.uint8, 16: np.int16, 32: np.int32}[bits]
        wavfile.write(tmp_path / "scipy.wav", 8000, (ints + 128).astype(dtype) if bits == 8 else ints.astype(dtype))
        assert np.array_equal(load_audio(tmp_path / "scipy.wav")[0][0], old)


def test_load_wav_with_a_fluidsynth_list_chunk(tmp_path):
    """FluidSynth writes a LIST (INFO) chunk between fmt and data; scipy warned about it, soundfile skips it."""
    pcm = np.array([0, 16384, -16384, 32767, -32768], np.int16)
    fmt = struct.pack("<HHIIHH", 1, 1, SR, 2 * SR, 2, 16)
    info = b"INFO" + b"ISFT" + struct.pack("<I", 11) + b"FluidSynth\0" + b"\0"
    (tmp_path / "fs.wav").write_bytes(riff((b"fmt ", fmt), (b"LIST", info), (b"data", pcm.tobytes())))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, sr = load_audio(tmp_path / "fs.wav")
    assert sr == SR and np.array_equal(x, (pcm / 32768).astype(np.float32)[None])


@pytest.mark.parametrize("file_format, subtype, rate", [("FLAC", "PCM_16", 44100), ("OGG", "VORBIS", 44100),
                                                        ("OGG", "OPUS", 48000), ("MP3", "MPEG_LAYER_III", 44100)])
def test_load_flac_ogg_and_mp3(tmp_path, file_format, subtype, rate):
    x = two_tones(rate)
    path = tmp_path / f"tones.{file_format.lower()}"
    soundfile.write(path, x.T, rate, format=file_format, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == rate and y.dtype == np.float32 and y.shape == x.shape
    if file_format == "FLAC":
        assert np.array_equal(y, np.round(x * 32768).clip(-32768, 32767).astype(np.float32) / 32768)
    else:  # lossy: the same tones, each on its own channel
        for c in range(2):
            assert np.corrcoef(x[c], y[c])[0, 1] > 0.99
    mono, _ = load_audio(path, channels=1, sample_rate=22050)
    assert mono.shape == (1, x.shape[1] * 22050 // rate)


@pytest.mark.skipif(not PAPER_MP3.is_file(), reason=f"the paper's listening-test stimuli are not at {PAPER_MP3.parent}")
def test_load_the_papers_mp3_stimulus():
    x, sr = load_audio(PAPER_MP3)
    assert sr == 44100 and x.dtype == np.float32 and x.shape[0] == 1
    assert 4.0 < x.shape[1] / sr < 4.1 and 0.1 < np.abs(x).max() <= 1.0  # about 4 s of mastered music
    y, sr = load_audio(PAPER_MP3, sample_rate=SR, channels=2)
    assert sr == SR and y.shape == (2, -(-x.shape[1] * SR // 44100))


def test_save_flac_is_24_bit(tmp_path):
    steps = np.array([-2 ** 23, -12345, -1, 0, 1, 777, 2 ** 23 - 1]) / 2 ** 23
    x = np.stack([steps, steps[::-1]]).astype(np.float32)
    path = save_audio(tmp_path / "sub" / "a.flac", x, 48000)
    assert soundfile.info(path).format == "FLAC" and soundfile.info(path).subtype == "PCM_24"
    y, sr = load_audio(path)
    assert sr == 48000 and np.array_equal(x, y)  # values on the 24-bit grid come back exactly
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.flac"]  # no temporary file left
    noise = np.random.default_rng(0).uniform(-1, 1, (1, 1000))
    save_audio(tmp_path / "n.FLAC", noise, 22050)  # the suffix in any case
    assert np.abs(load_audio(tmp_path / "n.FLAC")[0] - noise).max() <= 2.0 ** -24 + 1e-12
    save_audio(tmp_path / "loud.flac", np.array([[1.5, -1.5, 1.0, -1.0]]), 22050)  # clipped
    assert np.array_equal(load_audio(tmp_path / "loud.flac")[0], np.array([[1 - 2 ** -23, -1, 1 - 2 ** -23, -1]],
                                                                            np.float32))


def test_save_wav_is_float_and_byte_for_byte_reproducible(tmp_path):
    """No PEAK chunk (libsndfile's holds a time stamp), so a data set's checksums reproduce."""
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (2, 1000)).astype(np.float32)
    first = save_audio(tmp_path / "a.wav", x, SR).read_bytes()
    assert b"PEAK" not in first and first == save_audio(tmp_path / "b.wav", x, SR).read_bytes()
    info = soundfile.info(tmp_path / "a.wav")
    assert (info.format, info.subtype, info.channels, info.frames) == ("WAV", "FLOAT", 2, 1000)
    assert np.array_equal(load_audio(tmp_path / "a.wav")[0], x)  # values beyond full scale kept


@pytest.mark.parametrize("name", ["a.mp3", "a.ogg", "a.wav.tmp", "a"])
def test_save_refuses_other_suffixes(tmp_path, name):
    with pytest.raises(AudioFormatError, match=rf"{name}: cannot write audio files .*\.wav or \.flac"):
        save_audio(tmp_path / name, np.zeros((1, 10)), SR)
    assert list(tmp_path.iterdir()) == []


def test_save_names_a_format_limit_and_leaves_no_file(tmp_path):
    with pytest.raises(AudioFormatError, match="nine.flac: cannot write 9 channel"):
        save_audio(tmp_path / "nine.flac", np.zeros((9, 100)), SR)
    assert list(tmp_path.iterdir()) == []


def test_load_truncated_flac_is_an_error(tmp_path):
    save_audio(tmp_path / "a.flac", np.random.default_rng(0).uniform(-1, 1, (1, 20000)), SR)
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "a.flac").write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioFileError, match="a.flac"):
        load_audio(tmp_path / "a.flac")


def test_wav_bytes_round_trip_rounding_and_clipping():
    steps = np.array([0.0, 0.4, 0.6, -0.4, -0.6, 1.6, 32767.0, -32767.0, -40000.0, 100.0]) / 32767
    x = np.stack([steps, -steps])
    data = wav_bytes(x, 16000)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    info = soundfile.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 2)
    pcm, sr = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    expected = [0, 0, 1, 0, -1, 2, 32767, -32767, -32767, 100]  # nearest step; clipped to +-32767
    assert sr == 16000 and pcm[:, 0].tolist() == expected and pcm[:, 1].tolist() == [-v for v in expected]
    assert np.array_equal(wav_bytes(x.astype(np.float32), 16000), data)
    assert soundfile.read(io.BytesIO(wav_bytes(x[:1], 8000)), always_2d=True)[0].shape == (10, 1)


def test_wav_bytes_refuses_bad_audio():
    with pytest.raises(AudioFormatError, match="channels, samples"):
        wav_bytes(np.zeros(10), SR)
    with pytest.raises(AudioFormatError, match="NaN"):
        wav_bytes(np.full((1, 10), np.nan), SR)
    with pytest.raises(AudioFormatError, match="sample rate"):
        wav_bytes(np.zeros((1, 10)), 0)


# -- manifest and splits -------------------------------------------------------------------
def test_manifest_round_trip_and_errors(tmp_path):
    pair = Pair("a", "train", "train/a_input.wav", "train/a_target.wav", 1.5, info={"tempo": 120})
    m = Manifest("amp", {"kind": "test"}, SR, 1, 3, "cmd", {"x": 1}, [pair])
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json.*JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "task": "amp"}))
    with pytest.raises(DataError, match="lacks"):
        read_manifest(tmp_path)


def test_split_names_deterministic_and_complete():
    names = split_names(24, seed=0)
    assert names == split_names(24, seed=0) and names != split_names(24, seed=1)
    assert (names.count("train"), names.count("valid"), names.count("test")) == (18, 3, 3)
    assert sorted(set(split_names(3, 5))) == ["test", "train", "valid"]
    with pytest.raises(DataError, match="at least 3"):
        split_names(2)


def test_split_names_reproduces_the_papers_sklearn_split():
    model_selection = pytest.importorskip("sklearn.model_selection")
    for n in (3, 10, 27, 30, 57, 90, 123):
        idx = list(range(n))
        rest, test = model_selection.train_test_split(idx, test_size=0.10, random_state=0)
        _, valid = model_selection.train_test_split(rest, test_size=0.11111111111, random_state=0)
        expected = ["test" if i in test else "valid" if i in valid else "train" for i in idx]
        assert split_names(n, 0) == expected


# -- PairedDataset -------------------------------------------------------------------------
def test_paired_dataset_loads_a_split(tmp_path):
    make_dataset(tmp_path, [1000, 1500, 800], splits=["train", "train", "test"])
    ds = PairedDataset(tmp_path, "train")
    assert len(ds) == 2 and ds.ids == ["00", "01"]
    x, y = ds[1]
    assert x.shape == y.shape == (1, 1500) and np.array_equal(x, ramp(1500, 1)) and np.array_equal(y, -x)
    assert len(PairedDataset(tmp_path, None)) == 3
    assert PairedDataset(tmp_path, "train", channels=2)[0][0].shape == (2, 1000)


def test_missing_folder_says_how_to_make_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist.*fxlib data <task> build"):
        PairedDataset(tmp_path / "nothing", "train")


def test_missing_manifest_is_an_incomplete_data_set(tmp_path):
    make_dataset(tmp_path, [1000, 1000, 1000])
    (tmp_path / "manifest.json").rename(tmp_path / "manifest.partial.json")
    with pytest.raises(DataNotFoundError, match="no manifest.json.*unfinished"):
        PairedDataset(tmp_path, "train")


def test_corrupt_wav_is_named(tmp_path):
    make_dataset(tmp_path, [1000, 1000])
    (tmp_path / "train" / "01_target.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(AudioFileError, match="01_target.wav"):
        PairedDataset(tmp_path, "train")


def test_sample_rate_mismatch(tmp_path):
    make_dataset(tmp_path, [4410, 4410], sr=44100)
    with pytest.raises(AudioFileError, match=r"00_input.wav: sample rate 44100 Hz, but 22050 Hz.*resample=False"):
        PairedDataset(tmp_path, "train", resample=False)
    ds = PairedDataset(tmp_path, "train", sample_rate=22050)
    assert ds[0][0].shape == (1, 2205) and ds.sample_rate == 22050
    assert PairedDataset(tmp_path, "train", sample_rate=None, resample=False)[0][0].shape == (1, 4410)


def test_empty_data_set_and_empty_split(tmp_path):
    write_manifest(tmp_path, Manifest("toy", {}, SR, 1, 0, "pytest", {}, []))
    with pytest.raises(DataError, match="no pairs"):
        PairedDataset(tmp_path, "train")
    make_dataset(tmp_path, [1000, 1000])
    with pytest.raises(DataError, match="no pairs in split 'valid'.*train: 2"):
        PairedDataset(tmp_path, "valid")
    with pytest.raises(DataError, match="unknown split"):
        PairedDataset(tmp_path, "training")


def test_lengths_trimmed_with_a_warning_or_refused(tmp_path):
    make_dataset(tmp_path / "near", [1000, 1000], delta=3)
    with pytest.warns(UserWarning, match="trimmed"):
        ds = PairedDataset(tmp_path / "near", "train")
    assert ds[0][0].shape == ds[0][1].shape == (1, 997)
    make_dataset(tmp_path / "far", [10000, 10000], delta=5000)
    with pytest.raises(AudioFileError, match="00_input.wav.*5000"):
        PairedDataset(tmp_path / "far", "train")


def test_pair_writer_resumes_and_refuses_other_settings(tmp_path):
    header = Manifest("toy", {}, SR, 1, 0, "pytest", {"n": 2})

    def write(writer, pid):
        inp, tgt = writer.paths(pid, "train")
        save_audio(inp, ramp(100), SR)
        save_audio(tgt, ramp(100), SR)
        writer.add(writer.pair(pid, "train", 100 / SR))

    writer = PairWriter(tmp_path, header)
    assert not writer.reuse("a")
    write(writer, "a")  # then the run stops: only the partial manifest exists
    assert (tmp_path / "manifest.partial.json").exists() and not (tmp_path / "manifest.json").exists()
    writer = PairWriter(tmp_path, header)
    assert writer.reuse("a") and not writer.reuse("b")
    write(writer, "b")
    writer.finish()
    assert [p.id for p in read_manifest(tmp_path).pairs] == ["a", "b"]
    assert not (tmp_path / "manifest.partial.json").exists()
    save_audio(tmp_path / "train" / "b_target.wav", ramp(100, 1.0), SR)  # changed behind the manifest's back
    writer = PairWriter(tmp_path, header)
    assert writer.reuse("a") and not writer.reuse("b")
    assert not (tmp_path / "manifest.json").exists()  # the data set no longer looks complete
    with pytest.raises(DataError, match="other settings"):
        PairWriter(tmp_path, Manifest("toy", {}, SR, 1, 0, "pytest", {"n": 3}))


# -- windows -------------------------------------------------------------------------------
def toy_pairs(lengths, channels=1):
    return [(ramp(n, 10 * i, channels), -ramp(n, 10 * i, channels)) for i, n in enumerate(lengths)]


def padded(x, start, length):
    out = np.zeros((x.shape[0], length), np.float32)
    lo, hi = max(start, 0), min(start + length, x.shape[1])
    out[:, lo - start:hi - start] = x[:, lo:hi]
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_streaming_windows_walk_files_contiguously(batch_size):
    lengths = [1000, 2500, 333, 4096, 1700]
    data = toy_pairs(lengths, channels=2)
    frame, context = 256, 1000
    left = (context - frame) // 2
    sw = StreamingWindows(data, batch_size, context=context, frame=frame, seed=1)
    batches = list(sw)
    assert len(batches) == len(sw) == sw.steps_per_epoch
    covered = [np.zeros(n, int) for n in lengths]
    last = {}  # slot -> (file, position) of its previous valid frame
    for step, batch in enumerate(batches):
        assert batch["context"].shape == (batch_size, 2, context) and batch["context"].dtype == torch.float32
        assert batch["input"].shape == batch["target"].shape == (batch_size, 2, frame)
        for b in range(batch_size):
            if not batch["valid"][b]:
                assert batch["file"][b] == -1 and not batch["reset"][b] and batch["context"][b].abs().max() == 0
                last[b] = ("done", 0)
                continue
            assert last.get(b, (0,))[0] != "done", "a slot ran out and came back"
            f, pos = int(batch["file"][b]), int(batch["position"][b])
            x, y = data[f]
            np.testing.assert_array_equal(batch["input"][b].numpy(), padded(x, pos, frame))
            np.testing.assert_array_equal(batch["target"][b].numpy(), padded(y, pos, frame))
            np.testing.assert_array_equal(batch["context"][b].numpy(), padded(x, pos - left, context))
            expect_reset = step == 0 or pos == 0
            assert bool(batch["reset"][b]) == expect_reset
            if not expect_reset:  # continues the slot's previous frame
                assert last[b] == (f, pos - frame)
            covered[f][pos:pos + frame] += 1
            last[b] = (f, pos)
    assert all((c == 1).all() for c in covered)  # every sample exactly once per epoch


def test_streaming_windows_epochs_are_reproducible():
    data = toy_pairs([3000, 1000, 2000, 500])
    a, b = StreamingWindows(data, 2, 512, 128, seed=7), StreamingWindows(data, 2, 512, 128, seed=7)
    first = [x["file"].tolist() for x in a]
    assert first == [x["file"].tolist() for x in b]
    assert first != [x["file"].tolist() for x in a]  # the second epoch is shuffled differently
    fixed = StreamingWindows(data, 1, 512, 128, shuffle_files=False)
    assert [int(x["file"][0]) for x in fixed] == sorted(int(x["file"][0]) for x in fixed)


def test_streaming_windows_on_paired_dataset(tmp_path):
    make_dataset(tmp_path, [5000, 3000, 4000])
    sw = StreamingWindows(PairedDataset(tmp_path, "train"), batch_size=4, context=2048, frame=512)
    batch = next(iter(sw))
    assert batch["reset"].all() and batch["valid"].all() and len(sw) == 6


def test_window_argument_errors():
    with pytest.raises(DataError, match="frame <= context"):
        StreamingWindows(toy_pairs([100]), 1, context=64, frame=128)
    with pytest.raises(DataError, match="same"):
        StreamingWindows([(ramp(100), ramp(90))], 1, 64, 32)
    with pytest.raises(DataError, match="empty"):
        RandomClips([], 1, 64, 32)


def test_random_clips_are_reproducible_and_in_range():
    data = toy_pairs([3000, 1000, 100])
    clips = RandomClips(data, 5, context=1024, frame=256, seed=3, steps_per_epoch=4)
    a, b = list(clips.iter_epoch(0)), list(RandomClips(data, 5, 1024, 256, seed=3, steps_per_epoch=4).iter_epoch(0))
    assert len(a) == 4
    for x, y in zip(a, b):
        for key in x:
            assert torch.equal(x[key], y[key])
    assert not torch.equal(a[0]["position"], next(iter(RandomClips(data, 5, 1024, 256, seed=4)))["position"])
    for batch in a:
        assert batch["reset"].all() and batch["valid"].all()
        for f, pos, inp, ctx in zip(batch["file"], batch["position"], batch["input"], batch["context"]):
            x = data[int(f)][0]
            assert 0 <= pos <= max(x.shape[1] - 256, 0)
            np.testing.assert_array_equal(inp.numpy(), padded(x, int(pos), 256))
            np.testing.assert_array_equal(ctx.numpy(), padded(x, int(pos) - 384, 1024))


# -- MIDI files ----------------------------------------------------------------------------
def test_write_midi_layout(tmp_path):
    song = [Part(33, [Note(0.0, 0.5, 40, 100), Note(0.5, 0.5, 43, 90)], 0, "bass"),
            Part(0, [Note(0.0, 0.1, 36, 110)], DRUM_CHANNEL, "drums")]
    data = write_midi(tmp_path / "song.mid", song, tempo_bpm=120).read_bytes()
    assert data[:4] == b"MThd" and int.from_bytes(data[10:12], "big") == 3  # tempo track + 2 parts
    assert data.count(b"MTrk") == 3 and bytes([0xC0, 33]) in data and bytes([0x99, 36, 110]) in data
    assert bytes([0x90, 43, 90]) in data  # the second bass note, 480 ticks (0.5 s at 120 bpm) later
    with pytest.raises(DataError, match="share a MIDI channel"):
        write_midi(tmp_path / "x.mid", [Part(0), Part(1)])
    with pytest.raises(DataError, match="bad note"):
        write_midi(tmp_path / "x.mid", [Part(0, [Note(0, 1, 200, 100)])])


def test_random_riff_is_seeded_and_in_register():
    a = random_riff(np.random.default_rng(5), "bass", 8.0, 120.0)
    assert a == random_riff(np.random.default_rng(5), "bass", 8.0, 120.0)
    assert a.notes and all(28 <= n.pitch <= 55 and n.start < 8.0 for n in a.notes)
    assert 32 <= a.program <= 34
    with pytest.raises(DataError, match="instrument"):
        random_riff(np.random.default_rng(0), "piano", 1.0, 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        random_riff(np.random.default_rng(1), "guitar", 2.0, 150.0, program=28, key=4, scale="blues")


@pytest.mark.parametrize("task", ["amp", "breath", "mastering"])
def test_data_commands_build_by_default_what_the_quick_profile_trains_on(task, monkeypatch):
    import importlib

    from fxlib.cli import main
    from fxlib.paths import data_dir, resolve
    from fxlib.tasks import get_task

    module, seen = importlib.import_module(f"fxlib.data.{task}"), {}
    monkeypatch.setattr(module, "build", lambda root, seconds, *args, **kwargs: seen.update(root=root, seconds=seconds,
                                                                                          **kwargs))
    assert main(["data", task, "build"]) == 0
    assert Path(seen["root"]) == resolve(data_dir(task, "quick")) and seen["command"].startswith(f"fxlib data {task}")
    assert seen["seconds"] == get_task(task).profile("quick").data_seconds
