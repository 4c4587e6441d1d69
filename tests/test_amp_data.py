"""The amp task's offline data: FluidSynth rendering, the tube-preamp targets, determinism, resuming."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from fxlib.cli import main
from fxlib.data import DataNotFoundError, PairedDataset, amp, midi, read_manifest
from fxlib.data.midi import DEFAULT_SOUNDFONT, Note, Part
from fxlib.errors import BackendUnavailableError
from fxlib.metrics import loudness_lufs

SR = 22050
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None or not DEFAULT_SOUNDFONT.is_file(),
                                      reason="needs fluidsynth and fluid-soundfont-gm")
TINY = dict(seconds=1.5, file_seconds=0.5, command="pytest")  # three pairs of half a second


def quiet(line: str) -> None:
    pass


def wav_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


@needs_fluidsynth
def test_render_places_notes_in_time():
    x = midi.synthesize([Part(27, [Note(1.0, 0.5, 52, 110)])], 2.0, SR)
    assert x.shape == (1, 2 * SR) and x.dtype == np.float32
    assert np.abs(x[:, :int(0.99 * SR)]).max() == 0 and np.abs(x[:, SR:int(1.5 * SR)]).max() > 0.05


@needs_fluidsynth
def test_render_a_song_with_drums():
    rng = np.random.default_rng(0)
    bass = midi.random_riff(rng, "bass", 2.0, 120.0)
    bass.channel = 1
    drums = midi.drum_groove(rng, 2.0, 120.0)
    song = midi.synthesize([bass, drums], 2.0, SR, channels=2, tempo_bpm=120.0)
    alone = midi.synthesize([bass], 2.0, SR, channels=2, tempo_bpm=120.0)
    assert song.shape == (2, 2 * SR) and np.sum(song ** 2) > 1.2 * np.sum(alone ** 2)


def test_missing_fluidsynth_or_soundfont_says_what_to_install(monkeypatch, tmp_path):
    with pytest.raises(BackendUnavailableError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        midi.synthesize([Part(0, [Note(0, 0.1, 60, 100)])], 0.2, soundfont=tmp_path / "none.sf2")
    monkeypatch.setattr(midi.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="fluidsynth program is not installed.*apt-get install"):
        midi.render_midi(tmp_path / "x.mid", tmp_path / "x.wav")


@needs_fluidsynth
def test_build_is_deterministic_and_the_target_is_processed(tmp_path):
    amp.build(tmp_path / "a", seed=3, log=quiet, **TINY)
    amp.build(tmp_path / "b", seed=3, log=quiet, **TINY)
    files = wav_bytes(tmp_path / "a")
    assert len(files) == 6 and files == wav_bytes(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    manifest = read_manifest(tmp_path / "a")
    assert manifest.source["preamp"] in amp.PREAMPS and manifest.seed == 3
    for split in ("train", "valid", "test"):
        (x, y), = PairedDataset(tmp_path / "a", split, resample=False)
        assert x.shape == y.shape == (1, SR // 2)
        scale = float(x[0] @ y[0] / (x[0] @ x[0]))
        residual = np.sum((y - scale * x) ** 2) / np.sum(y ** 2)
        assert residual > 0.05, "the target is no more than a scaled copy of the input"
    amp.build(tmp_path / "c", seed=4, log=quiet, **TINY)
    assert wav_bytes(tmp_path / "c") != files


@needs_fluidsynth
def test_a_build_measures_itself_beside_the_papers_pairs(tmp_path):
    """The manifest holds the set's statistics beside the paper's; the audio shows the calibration."""
    amp.build(tmp_path, seconds=6, file_seconds=2, seed=0, log=quiet)
    statistics = read_manifest(tmp_path).source["statistics"]
    assert statistics["paper_examples"] == amp.PAPER_STATISTICS and statistics["this_set"]["pairs"] == 3
    for x, y in (pair for split in ("train", "valid", "test") for pair in PairedDataset(tmp_path, split, resample=False)):
        assert amp.DI_PEAK_DBFS[0] - 0.01 <= 20 * np.log10(np.abs(x).max()) <= amp.DI_PEAK_DBFS[1] + 0.01
        assert loudness_lufs(y, SR) - loudness_lufs(x, SR) > 4.0  # the preamp and limiter add level, as the paper's did
    change = statistics["this_set"]["loudness_lufs"]["change"]
    assert change["n"] == 3 and change["min"] > 4.0


@needs_fluidsynth
def test_interrupted_build_never_looks_complete_and_resumes(tmp_path, monkeypatch):
    real_save, calls = amp.save_audio, []

    def failing_save(*args):
        calls.append(args[0])
        if len(calls) == 4:  # the second pair's target: stop the build there
            raise KeyboardInterrupt
        return real_save(*args)

    monkeypatch.setattr(amp, "save_audio", failing_save)
    with pytest.raises(KeyboardInterrupt):
        amp.build(tmp_path / "a", log=quiet, **TINY)
    assert (tmp_path / "a" / "manifest.partial.json").exists() and not (tmp_path / "a" / "manifest.json").exists()
    with pytest.raises(DataNotFoundError, match="unfinished"):
        PairedDataset(tmp_path / "a", "train")
    monkeypatch.setattr(amp, "save_audio", real_save)
    lines = []
    amp.build(tmp_path / "a", log=lines.append, **TINY)
    assert len(lines) == 3  # two pairs built, one reused, and the summary
    amp.build(tmp_path / "b", log=quiet, **TINY)
    assert wav_bytes(tmp_path / "a") == wav_bytes(tmp_path / "b")


def test_preamp_falls_back_when_a_backend_is_missing(monkeypatch):
    monkeypatch.setitem(amp.PREAMPS, "lv2", [{"kind": "lv2", "id": "urn:fxlib:no-such-plugin"}])
    monkeypatch.setitem(amp.PREAMPS, "vst3", [{"kind": "vst3", "id": "NoSuchPluginAnywhere"}])
    with pytest.warns(UserWarning, match="unavailable"):
        name, chain = amp.preamp_chain("auto")
    with chain:
        assert name == "builtin"
        x = (0.5 * np.sin(np.arange(SR) * 2 * np.pi * 220 / SR)).astype(np.float32)[None]
        assert np.abs(chain.process(x) - x).max() > 0.1


@needs_fluidsynth
def test_cli_build_and_settings_conflict(tmp_path, capsys):
    args = ["build", "--root", str(tmp_path), "--seconds", "1.5", "--file-seconds", "0.5", "--preamp", "builtin"]
    assert main(["data", "amp", *args]) == 0
    manifest = read_manifest(tmp_path)
    assert manifest.source["preamp"] == "builtin" and manifest.command.startswith("fxlib data amp build")
    assert main(["data", "amp", *args, "--seed", "9"]) == 2
    assert "other settings" in capsys.readouterr().err
