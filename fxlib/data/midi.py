"""Seeded MIDI parts, a small Standard MIDI File writer, and rendering with the FluidSynth CLI.

A song is a list of :class:`Part` (one instrument each: a General MIDI program on its own
MIDI channel; drums on channel 9, General MIDI's channel 10) holding :class:`Note` with times
in seconds. :func:`write_midi` writes it as a format-1 Standard MIDI File, :func:`render_midi`
turns a MIDI file into a WAV file with ``fluidsynth`` and a SoundFont, and :func:`synthesize`
does both and returns the audio. :func:`random_riff` and :func:`drum_groove` make seeded parts.

Program numbers here are MIDI's, counted from 0: General MIDI's "25 Acoustic Guitar (nylon)"
is program 24.

FluidSynth renders deterministically: the same MIDI file, SoundFont, rate and gain give the
same samples.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from ..atomic import atomic_output
from .audio import DataError, load_audio

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
INSTALL_HINT = "install them with `apt-get install fluidsynth fluid-soundfont-gm`"
DRUM_CHANNEL = 9
GUITARS = {24: "Acoustic Guitar (nylon)", 25: "Acoustic Guitar (steel)", 26: "Electric Guitar (jazz)",
           27: "Electric Guitar (clean)", 28: "Electric Guitar (muted)"}
BASSES = {32: "Acoustic Bass", 33: "Electric Bass (finger)", 34: "Electric Bass (pick)"}
REGISTERS = {"guitar": (40, 76), "bass": (28, 55)}  # MIDI pitches: E2-E5 and E1-G3
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10),
          "mixolydian": (0, 2, 4, 5, 7, 9, 10), "minor_pentatonic": (0, 3, 5, 7, 10), "blues": (0, 3, 5, 6, 7, 10)}
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH = 36, 38, 42, 46, 49  # General MIDI drum keys


@dataclass(frozen=True)
class Note:
    """One note: ``start`` and ``duration`` in seconds, MIDI ``pitch`` 0-127, ``velocity`` 1-127."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument: MIDI ``program`` (0-127) on MIDI ``channel`` (0-15; 9 plays drums)."""

    program: int
    notes: list[Note] = field(default_factory=list)
    channel: int = 0
    name: str = ""


def _vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _track(events: list[tuple[int, int, bytes]]) -> bytes:
    """An ``MTrk`` chunk from ``(tick, order, message)`` events (sorted here), ending the track."""
    data, now = b"", 0
    events = sorted(events, key=lambda e: (e[0], e[1]))
    for tick, _, message in events:
        data += _vlq(tick - now) + message
        now = tick
    data += _vlq(0) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(data)) + data


def _check_part(part: Part, i: int) -> None:
    if not (0 <= part.program <= 127 and 0 <= part.channel <= 15):
        raise DataError(f"part #{i} ({part.name or 'unnamed'}): program {part.program} must be in 0-127 "
                        f"and channel {part.channel} in 0-15")
    for note in part.notes:
        if not (0 <= note.pitch <= 127 and 1 <= note.velocity <= 127 and note.start >= 0 and note.duration > 0):
            raise DataError(f"part #{i} ({part.name or 'unnamed'}): bad note {note} (pitch 0-127, velocity 1-127, "
                            "start >= 0 s, duration > 0 s)")


def write_midi(path: str | Path, parts: list[Part], tempo_bpm: float = 120.0, ticks_per_beat: int = 480,
               tail: float = 1.0) -> Path:
    """Write ``parts`` as a format-1 Standard MIDI File, atomically.

    Track 0 holds the tempo; each part gets a track with its name and program change. Every
    track ends ``tail`` seconds after the last note-off, so a renderer lets the notes ring out.

    Args:
        path: the ``.mid`` file to write.
        parts: one per instrument; two parts may not share a channel.
        tempo_bpm: beats (quarter notes) per minute; converts seconds to ticks.
        ticks_per_beat: time resolution.
        tail: seconds of silence after the last note.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    channels = [p.channel for p in parts]
    if len(set(channels)) != len(channels):
        raise DataError(f"two parts share a MIDI channel: channels {channels}")
    if not 20 <= tempo_bpm <= 400:
        raise DataError(f"tempo {tempo_bpm} bpm is outside 20-400")
    for i, part in enumerate(parts):
        _check_part(part, i)
    ticks_per_second = tempo_bpm / 60.0 * ticks_per_beat
    end = max((n.start + n.duration for p in parts for n in p.notes), default=0.0) + tail
    end_tick = round(end * ticks_per_second)
    tempo = round(60_000_000 / tempo_bpm)
    tracks = [_track([(0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big")), (end_tick, 9, b"\xff\x01\x00")])]
    for part in parts:
        name = part.name.encode("ascii", "replace")[:127]
        events = [(0, 0, b"\xff\x03" + _vlq(len(name)) + name), (0, 1, bytes([0xC0 | part.channel, part.program]))]
        for note in part.notes:
            on = round(note.start * ticks_per_second)
            off = max(on + 1, round((note.start + note.duration) * ticks_per_second))
            events.append((on, 3, bytes([0x90 | part.channel, note.pitch, note.velocity])))
            events.append((off, 2, bytes([0x80 | part.channel, note.pitch, 0])))  # offs before ons at a tick
        events.append((end_tick, 9, b"\xff\x01\x00"))  # an empty text event holds the track open
        tracks.append(_track(events))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), ticks_per_beat)
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_bytes(header + b"".join(tracks))
    return path


def random_riff(rng: np.random.Generator, instrument: str, seconds: float, tempo_bpm: float,
                program: int | None = None, key: int | None = None, scale: str | None = None) -> Part:
    """A seeded riff for a guitar or a bass: a one- or two-bar motif repeated over a chord progression.

    The motif is drawn on a sixteenth-note grid (more onsets on the beats), walks the scale
    within the instrument's register, and is played legato or staccato; guitar riffs mix single
    notes with power chords. Each repetition is moved to the next chord of a I-IV-V-I style
    progression; velocities follow the beat with some jitter.

    Args:
        rng: the random source (the riff depends on nothing else).
        instrument: ``"guitar"`` or ``"bass"``.
        seconds: length of the riff.
        tempo_bpm: quarter notes per minute.
        program: MIDI program; default a random one of :data:`GUITARS` or :data:`BASSES`.
        key: pitch class of the tonic, 0 (C) to 11; default random.
        scale: a name in :data:`SCALES`; default random.

    Returns:
        a :class:`Part` on channel 0 named after the instrument, key and scale.
    """
    if instrument not in REGISTERS:
        raise DataError(f"instrument must be one of {sorted(REGISTERS)}, got {instrument!r}")
    programs = sorted(GUITARS if instrument == "guitar" else BASSES)
    program = int(rng.choice(programs)) if program is None else program
    key = int(rng.integers(12)) if key is None else key
    scale = str(rng.choice(sorted(SCALES))) if scale is None else scale
    if scale not in SCALES:
        raise DataError(f"unknown scale {scale!r}; scales: {', '.join(SCALES)}")
    low, high = REGISTERS[instrument]
    pitches = [p for p in range(low, high + 1) if (p - key) % 12 in SCALES[scale]]
    step = 60.0 / tempo_bpm / 4  # a sixteenth note, in seconds
    motif_steps = 16 * int(rng.integers(1, 3))
    density = rng.uniform(0.45, 0.9)
    legato = rng.uniform(0.5, 1.0) if program != 28 else rng.uniform(0.2, 0.4)  # muted guitar: short
    onset_p = [density if s % 4 == 0 else density * (0.6 if s % 2 == 0 else 0.3) for s in range(motif_steps)]
    onsets = [s for s in range(motif_steps) if rng.random() < onset_p[s]] or [0]
    base = int(rng.integers(len(pitches) // 4, len(pitches) // 2))  # index of the motif's first note
    walk = np.clip(base + np.cumsum(rng.choice([-2, -1, 0, 1, 2], size=len(onsets))), 0, len(pitches) - 1)
    chords = rng.random(len(onsets)) < (0.3 if instrument == "guitar" else 0.0)
    level = int(rng.integers(60, 110))
    progression = [0, 3, 4, 0] if len(SCALES[scale]) == 7 else [0, 2, 3, 0]  # scale degrees of the chords
    notes = []
    for rep in range(int(np.ceil(seconds / (motif_steps * step)))):
        shift = progression[rep % len(progression)]
        for j, s in enumerate(onsets):
            start = (rep * motif_steps + s) * step
            if start >= seconds:
                break
            gap = (onsets[j + 1] if j + 1 < len(onsets) else motif_steps + onsets[0]) - s
            duration = min(gap * step * legato, seconds - start)
            velocity = int(np.clip(level + (15 if s % 4 == 0 else 0) + rng.integers(-8, 9), 1, 127))
            pitch = pitches[min(int(walk[j]) + shift, len(pitches) - 1)]
            chord = [pitch, pitch + 7, pitch + 12] if chords[j] and pitch + 12 <= high else [pitch]
            notes += [Note(start, duration, p, velocity) for p in chord]
    names = "C C# D D# E F F# G G# A A# B".split()
    return Part(program, notes, 0, f"{instrument} {names[key]} {scale}")


def drum_groove(rng: np.random.Generator, seconds: float, tempo_bpm: float) -> Part:
    """A seeded rock/pop drum groove on General MIDI's drum channel (10, i.e. channel 9 here).

    Kick on 1 and 3 plus random extra kicks, snare on 2 and 4, hi-hats on eighths or
    sixteenths (open on some off-beats), a crash at the start of every fourth bar.
    """
    step = 60.0 / tempo_bpm / 4
    hat_every = 1 if rng.random() < 0.3 else 2  # sixteenths or eighths
    extra_kicks = [s for s in range(16) if s % 8 != 0 and rng.random() < 0.15]
    notes = []
    for bar in range(int(np.ceil(seconds / (16 * step)))):
        for s in range(16):
            t = (bar * 16 + s) * step
            if t >= seconds:
                break
            hits = []
            if s % 8 == 0 or s in extra_kicks:
                hits.append((KICK, 100))
            if s % 8 == 4:
                hits.append((SNARE, 105))
            if s % hat_every == 0:
                hat = OPEN_HAT if s % 8 == 6 and rng.random() < 0.2 else CLOSED_HAT
                hits.append((hat, 70 + int(rng.integers(0, 20))))
            if s == 0 and bar % 4 == 0:
                hits.append((CRASH, 95))
            notes += [Note(t, step, key, velocity) for key, velocity in hits]
    return Part(0, notes, DRUM_CHANNEL, "drums")


def _check_tools(soundfont: Path) -> str:
    """The fluidsynth executable, after checking that it and ``soundfont`` exist."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise BackendUnavailableError(f"the fluidsynth program is not installed; {INSTALL_HINT}")
    if not soundfont.is_file():
        raise BackendUnavailableError(f"SoundFont {soundfont} does not exist; {INSTALL_HINT}")
    return exe


def render_midi(midi: str | Path, wav: str | Path, sample_rate: int = 22050, soundfont: str | Path | None = None,
                gain: float = 0.5, reverb: bool = False, chorus: bool = False, timeout: float = 600.0) -> Path:
    """Render a MIDI file to a stereo 32-bit float WAV file with the ``fluidsynth`` program.

    Runs ``fluidsynth -ni -q -g GAIN -r RATE -O float -T wav -R 0|1 -C 0|1 -F WAV SOUNDFONT MIDI``;
    the WAV file is written atomically and lasts until the MIDI file's end (plus FluidSynth's
    last block).

    Args:
        midi: the ``.mid`` file.
        wav: the WAV file to write.
        sample_rate: in Hz.
        soundfont: a ``.sf2`` file; default :data:`DEFAULT_SOUNDFONT` (FluidR3_GM).
        gain: FluidSynth's master gain (its default is 0.2).
        reverb, chorus: FluidSynth's built-in effects (off: a dry, DI-like sound).
        timeout: seconds before the render is abandoned.

    Raises:
        BackendUnavailableError: fluidsynth or the SoundFont is missing (says what to install).
        DataError: fluidsynth failed or wrote nothing (with its messages).
    """
    soundfont = Path(soundfont or DEFAULT_SOUNDFONT)
    exe = _check_tools(soundfont)
    midi, wav = Path(midi), Path(wav)
    if not midi.is_file():
        raise DataError(f"MIDI file {midi} does not exist")
    with atomic_output(wav) as tmp:
        cmd = [exe, "-ni", "-q", "-g", f"{gain:g}", "-r", str(int(sample_rate)), "-O", "float", "-T", "wav",
               "-R", str(int(reverb)), "-C", str(int(chorus)), "-F", str(tmp), str(soundfont), str(midi)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise DataError(f"fluidsynth took more than {timeout:g} s to render {midi}") from e
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
            raise DataError(f"fluidsynth failed to render {midi} (exit code {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[-800:]}")
    return wav


def synthesize(parts: list[Part], seconds: float, sample_rate: int = 22050, channels: int = 1,
               tempo_bpm: float = 120.0, soundfont: str | Path | None = None, gain: float = 0.5,
               reverb: bool = False, chorus: bool = False) -> np.ndarray:
    """Render ``parts`` with FluidSynth and return exactly ``seconds`` of audio.

    Args:
        parts: the instruments (see :func:`write_midi`).
        seconds: length of the result; longer renders are cut, shorter ones zero-padded.
        sample_rate: in Hz.
        channels: 1 (the stereo render averaged) or 2.
        tempo_bpm, soundfont, gain, reverb, chorus: as for :func:`write_midi` and :func:`render_midi`.

    Returns:
        float32 ``(channels, round(seconds * sample_rate))``.
    """
    _check_tools(Path(soundfont or DEFAULT_SOUNDFONT))
    with tempfile.TemporaryDirectory(prefix="fxlib-midi-") as tmp:
        midi = write_midi(Path(tmp) / "song.mid", parts, tempo_bpm)
        wav = render_midi(midi, Path(tmp) / "song.wav", sample_rate, soundfont, gain, reverb, chorus)
        audio, _ = load_audio(wav, channels=channels)
    n = round(seconds * sample_rate)
    return np.pad(audio[:, :n], ((0, 0), (0, max(0, n - audio.shape[1]))))
