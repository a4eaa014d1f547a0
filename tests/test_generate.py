"""Melody -> control curves (`engine/generate.py`)."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from ddspcli.engine import generate
from ddspcli.errors import InputError


def write_midi(path, events, tempo=500_000, ticks=480):
    """events: (beat_start, beats, pitch, velocity, channel)."""
    midi = mido.MidiFile(ticks_per_beat=ticks)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    timeline = []
    for start, beats, pitch, velocity, channel in events:
        timeline.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity,
                                                channel=channel)))  # fmt: skip
        timeline.append((start + beats, 0, mido.Message("note_off", note=pitch, channel=channel)))
    now = 0.0
    for when, _, message in sorted(timeline, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=round((when - now) * ticks)))
        now = when
    midi.save(path)
    return path


def test_three_notes_at_120_bpm(tmp_path):
    path = write_midi(tmp_path / "m.mid", [(0, 1, 60, 100, 0), (1, 1, 64, 80, 0),
                                           (2.5, 0.5, 67, 120, 0), (0, 4, 36, 100, 9)])  # fmt: skip
    notes = generate.read_midi(str(path))
    assert [(n.pitch, n.velocity) for n in notes] == [(60, 100), (64, 80), (67, 120)]
    np.testing.assert_allclose([(n.start_s, n.end_s) for n in notes],
                               [(0, 0.5), (0.5, 1.0), (1.25, 1.5)], atol=1e-6)  # fmt: skip


def test_overlaps_resolve_by_last_note_priority():
    notes = [generate.Note(0.0, 1.0, 60, 90), generate.Note(0.5, 1.5, 64, 90),
             generate.Note(2.0, 3.0, 67, 90)]  # fmt: skip
    mono, cut = generate.monophonic(notes)
    assert cut == 1
    assert [(n.start_s, n.end_s, n.pitch) for n in mono] == [
        (0.0, 0.5, 60), (0.5, 1.5, 64), (2.0, 3.0, 67)]  # fmt: skip


def test_empty_and_drum_only_files_are_refused(tmp_path):
    drums = write_midi(tmp_path / "d.mid", [(0, 1, 36, 100, 9), (1, 1, 38, 100, 9)])
    with pytest.raises(InputError, match="only drum notes"):
        generate.read_midi(str(drums))
    empty = write_midi(tmp_path / "e.mid", [])
    with pytest.raises(InputError, match="no notes"):
        generate.read_midi(str(empty))
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    with pytest.raises(InputError, match="cannot read MIDI"):
        generate.read_midi(str(tmp_path / "bad.mid"))


def test_curves_follow_the_notes_with_envelopes():
    notes = [generate.Note(0.2, 0.7, 69, 127), generate.Note(0.7, 1.0, 57, 1)]
    quantiles = list(np.linspace(-30.0, -10.0, 101))
    c = generate.note_curves(notes, 250, quantiles, attack_s=0.04, release_s=0.1,
                             vibrato_cents=0.0, tail_s=0.5)  # fmt: skip
    t = np.arange(len(c["f0_hz"])) / 250
    assert len(t) == int(np.ceil(1.5 * 250)) + 1
    np.testing.assert_allclose(c["f0_hz"][(t >= 0.2) & (t < 0.7)], 440.0, rtol=1e-6)
    np.testing.assert_allclose(c["f0_hz"][t >= 0.7], 220.0, rtol=1e-6)
    np.testing.assert_allclose(c["f0_hz"][t < 0.2], 440.0, rtol=1e-6)  # held before the first
    # velocity 127 -> the loudest quantile; velocity 1 -> the 25th percentile
    assert c["loudness_db"][np.searchsorted(t, 0.5)] == pytest.approx(-10.0, abs=1e-4)
    assert c["loudness_db"][np.searchsorted(t, 0.9)] == pytest.approx(-25.0, abs=1e-4)
    assert c["loudness_db"][0] == pytest.approx(generate.SILENCE_DB)
    # the attack: half the peak amplitude 20 ms after the onset (-6 dB); silent after release
    half = c["loudness_db"][np.searchsorted(t, 0.22)]
    assert half == pytest.approx(-10.0 + 20 * np.log10(0.5), abs=0.2)
    assert c["loudness_db"][t > 1.11].max() == pytest.approx(generate.SILENCE_DB)
    vib = generate.note_curves(notes, 250, quantiles, vibrato_cents=30.0, vibrato_hz=5.0)
    cents = 1200 * np.log2(vib["f0_hz"][(t > 0.3) & (t < 0.7)] / 440.0)
    assert cents.max() == pytest.approx(30.0, abs=1.0) and cents.min() == pytest.approx(-30, abs=1)
