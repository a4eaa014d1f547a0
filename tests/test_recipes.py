"""The recipe helper that joins trimmed note samples into takes with silent lead-ins."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "join_notes.py"


def test_join_notes_puts_each_note_after_a_silence_and_keeps_it_intact(tmp_path):
    rate = 16000
    src = tmp_path / "notes"
    src.mkdir()
    notes = {}
    for k in range(5):  # distinct levels and lengths so that every note can be found again
        note = np.full(rate // 2 + 800 * k, 0.1 * (k + 1), dtype=np.float32)
        sf.write(src / f"n{k}.wav", note, rate, subtype="FLOAT")
        notes[f"n{k}.wav"] = note
    out = tmp_path / "takes"
    run = subprocess.run([sys.executable, str(RECIPE), str(src), str(out), "--per-take", "2"],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.glob("take-*.wav")) == ["take-00.wav", "take-01.wav",
                                                              "take-02.wav"]  # fmt: skip
    with open(out / "takes.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["note"] for r in rows) == sorted(notes)  # every note exactly once
    for take in ("take-00.wav", "take-01.wav", "take-02.wav"):
        audio, sr = sf.read(out / take, dtype="float32")
        assert sr == rate
        placed = [r for r in rows if r["take"] == take]
        end = 0
        for r in placed:
            start = int(r["start_sample"])
            note = notes[r["note"]]
            gap = start - end
            assert 0.25 * rate - 2 <= gap <= 1.0 * rate + 2  # a silent lead-in of 0.25-1 s
            assert np.all(audio[end:start] == 0)
            np.testing.assert_allclose(audio[start : start + len(note)], note, atol=1 / 32768)
            end = start + len(note)
        assert end == len(audio)
    # The source notes are only read.
    assert all(np.array_equal(sf.read(src / n, dtype="float32")[0], v) for n, v in notes.items())
