"""Control curves from a melody: MIDI notes -> frame-rate f0 and loudness (for `ddsp generate`).

`read_midi` is the only I/O (through `mido`); the rest are pure functions: `monophonic`
resolves overlapping notes by last-note priority, `velocity_loudness` maps MIDI velocity into a
model's training loudness distribution, and `note_curves` draws f0 (with optional vibrato) and
loudness envelopes (attack, sustain, release) at the model's frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddspcli.errors import InputError

DRUM_CHANNEL = 9  # MIDI channel 10, 0-based
SILENCE_DB = -80.0


@dataclass(frozen=True)
class Note:
    """One note: start and end in seconds, MIDI pitch, velocity 1..127."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int


def read_midi(path: str) -> list[Note]:
    """Every pitched note of a MIDI file, tempo changes applied, drums (channel 10) left out.

    Raises:
        InputError: unreadable file, no notes at all, or only drum notes.
    """
    import mido

    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise InputError(f"cannot read MIDI file {path}: {err}") from None
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    drums = 0
    now = 0.0
    for message in midi:  # iterating a MidiFile yields messages with delta times in seconds
        now += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        if message.channel == DRUM_CHANNEL:
            drums += message.type == "note_on" and message.velocity > 0
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            if key in sounding:  # a retrigger ends the sounding note
                start, velocity = sounding.pop(key)
                notes.append(Note(start, now, message.note, velocity))
            sounding[key] = (now, message.velocity)
        elif key in sounding:
            start, velocity = sounding.pop(key)
            notes.append(Note(start, now, message.note, velocity))
    for (_, pitch), (start, velocity) in sounding.items():  # never released: end of file
        notes.append(Note(start, now, pitch, velocity))
    notes = [n for n in notes if n.end_s > n.start_s]
    if not notes:
        what = "only drum notes (channel 10)" if drums else "no notes"
        raise InputError(f"{path} holds {what}; give a MIDI file with a pitched melody")
    return sorted(notes, key=lambda n: (n.start_s, n.pitch))


def monophonic(notes: list[Note]) -> tuple[list[Note], int]:
    """Resolve overlaps by last-note priority: a note cuts the one sounding when it starts.

    Returns:
        ``(notes without overlaps, number of notes that were cut)``.
    """
    ordered = sorted(notes, key=lambda n: (n.start_s, n.pitch))
    out: list[Note] = []
    cut = 0
    for note in ordered:
        if out and out[-1].end_s > note.start_s:
            previous = out.pop()
            cut += 1
            if note.start_s > previous.start_s:
                out.append(Note(previous.start_s, note.start_s, previous.pitch, previous.velocity))
        out.append(note)
    return out, cut


def velocity_loudness(velocity: np.ndarray, quantiles: list[float] | None) -> np.ndarray:
    """MIDI velocity -> loudness (dB): velocity 1..127 spans the 25th..100th percentile of the
    model's note-on loudness (or -40..-10 dB without statistics)."""
    share = 0.25 + 0.75 * (np.clip(np.asarray(velocity, np.float64), 1, 127) - 1) / 126
    if not quantiles:
        return -40.0 + 30.0 * (share - 0.25) / 0.75
    q = np.asarray(quantiles, np.float64)
    return np.interp(share, np.linspace(0.0, 1.0, len(q)), q)


def note_curves(
    notes: list[Note],
    frame_rate: int,
    loudness_quantiles: list[float] | None = None,
    attack_s: float = 0.03,
    release_s: float = 0.15,
    vibrato_cents: float = 0.0,
    vibrato_hz: float = 5.5,
    tail_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Frame-rate controls for monophonic `notes`.

    f0 holds each note's pitch from its start to the next note's start (and before the first
    note, its pitch), so the pitch never glides into silence; vibrato of `vibrato_cents` at
    `vibrato_hz` starts after the attack. Loudness rises from silence (-80 dB) to the note's
    level over `attack_s` (linearly in amplitude), holds, and falls back over `release_s` after
    the note ends.

    Returns:
        ``{"f0_hz", "loudness_db", "f0_confidence"}``, float32 ``[frames]`` covering the last
        note's end plus `tail_s`.
    """
    if not notes:
        raise ValueError("no notes to draw")
    n_frames = int(np.ceil((max(n.end_s for n in notes) + tail_s) * frame_rate)) + 1
    t = np.arange(n_frames) / frame_rate
    midi = np.full(n_frames, float(notes[0].pitch))
    amplitude = np.zeros(n_frames)
    levels = velocity_loudness(np.array([n.velocity for n in notes]), loudness_quantiles)
    floor = 10.0 ** (SILENCE_DB / 20.0)
    for note, level in zip(notes, levels, strict=True):
        midi[t >= note.start_s] = note.pitch
        since = t - note.start_s
        peak = 10.0 ** (level / 20.0)
        rise = np.clip(since / max(attack_s, 1e-6), 0.0, 1.0)
        fall = np.clip(1.0 - (t - note.end_s) / max(release_s, 1e-6), 0.0, 1.0)
        envelope = np.where(t < note.end_s, rise, np.minimum(rise, fall)) * peak
        amplitude = np.maximum(amplitude, np.where(since >= 0, envelope, 0.0))
        if vibrato_cents:
            held = (since > attack_s) & (t < note.end_s)
            midi[held] += vibrato_cents / 100.0 * np.sin(2 * np.pi * vibrato_hz * since[held])
    loudness = 20.0 * np.log10(np.maximum(amplitude, floor))
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return {
        "f0_hz": f0.astype(np.float32),
        "loudness_db": loudness.astype(np.float32),
        "f0_confidence": (amplitude > floor).astype(np.float32),
    }
