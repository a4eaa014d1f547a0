"""Join isolated note samples into longer takes with silence between the notes.

A sample library's notes are trimmed to start at the onset, so 4 s training windows cut from
them never hold silence followed by a note: a model trained on them has never seen an onset
from silence and can stay silent when a phrase begins quietly. Joining the notes (shuffled
with a fixed seed) into takes with 0.25-1.0 s gaps gives every onset a silent lead-in.

    python recipes/join_notes.py SRC_DIR OUT_DIR [--per-take 8] [--seed 0]

Writes OUT_DIR/take-NN.wav (16-bit PCM at the notes' rate) and OUT_DIR/takes.csv (which
note starts where, in samples and seconds). Inputs are only read.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from ddspcli import storage
from ddspcli.engine.audio import write_wav


def plan_takes(names: list[str], per_take: int, seed: int) -> list[list[str]]:
    """Shuffle `names` with `seed` and cut them into takes of `per_take` notes."""
    order = list(np.random.default_rng(seed).permutation(sorted(names)))
    return [order[i : i + per_take] for i in range(0, len(order), per_take)]


def join(notes: list[np.ndarray], gaps_s: list[float], rate: int) -> tuple[np.ndarray, list[int]]:
    """Concatenate mono `notes` ([samples]) with a silence of `gaps_s[i]` before note i.

    Returns the take ([samples]) and each note's first sample.
    """
    parts, starts, t = [], [], 0
    for note, gap in zip(notes, gaps_s, strict=True):
        silence = np.zeros(round(gap * rate), dtype=np.float32)
        parts += [silence, note.astype(np.float32)]
        starts.append(t + len(silence))
        t += len(silence) + len(note)
    return np.concatenate(parts), starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-take", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [p.name for p in args.src.glob("*.wav")]
    if not names:
        raise SystemExit(f"join_notes: no .wav files in {args.src}")
    rng = np.random.default_rng(args.seed + 1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, take in enumerate(plan_takes(names, args.per_take, args.seed)):
        audio, rates = zip(*(sf.read(args.src / n, dtype="float32", always_2d=True) for n in take),
                           strict=True)  # fmt: skip
        if len(set(rates)) != 1:
            raise SystemExit(f"join_notes: mixed sample rates in {args.src}")
        mono = [a.mean(axis=1) for a in audio]
        gaps = list(rng.uniform(0.25, 1.0, len(take)))
        joined, starts = join(mono, gaps, rates[0])
        name = f"take-{k:02d}.wav"
        write_wav(args.out / name, joined, rates[0], force=True, subtype="PCM_16")
        rows += [(name, s, f"{s / rates[0]:.4f}", n) for s, n in zip(starts, take, strict=True)]
    table = io.StringIO(newline="")
    csv.writer(table).writerows([("take", "start_sample", "start_s", "note"), *rows])
    storage.write_text(args.out / "takes.csv", table.getvalue())
    print(f"join_notes: {len(names)} notes -> {k + 1} takes in {args.out}")


if __name__ == "__main__":
    main()
