"""A model's learned room beside the room heard in its own recordings (issue 29, Must show 3).

Run by hand (seconds; TensorFlow for the model's room parameters):
    .venv/bin/python benchmarks/recording_room.py MODEL_DIR RECORDING... [--json OUT.jsonl]

The learned room: `ddsp room extract`'s description (RT60 per octave band by Schroeder T30 on
the learned impulse response, DRR). The recordings': `engine.decays.band_decays`, the free
decays after note offsets per octave band (T15, median and quartiles over the decays found,
and their count), one row per recording and one over all of them pooled. A band with fewer
than 3 decays in a recording is shown as "-": too few to say.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf

from ddspcli.engine import acoustics, decays, room_io

MIN_DECAYS = 3


def recording_rows(paths: list[str]) -> list[dict]:
    """One row per recording (mono, its own rate): per band median, quartiles, count."""
    rows, pooled = [], {c: [] for c in acoustics.ANALYSIS_BANDS_HZ}
    for path in paths:
        x, rate = sf.read(path, dtype="float64", always_2d=True)
        x = x.mean(axis=1)
        row = {"source": Path(path).name, "seconds": round(len(x) / rate, 1), "bands": {}}
        for centre in acoustics.ANALYSIS_BANDS_HZ:
            env = decays.envelope_db(acoustics.octave_filter(x, centre, rate), rate)
            times = [decays.decay_rt60(env[a:b]) for a, b in decays.free_decays(env)]
            times = [t for t in times if t is not None]
            pooled[centre].extend(times)
            row["bands"][acoustics.NOMINAL_HZ[centre]] = _summary(times)
        rows.append(row)
    rows.append({"source": "all recordings", "seconds": sum(r["seconds"] for r in rows),
                 "bands": {acoustics.NOMINAL_HZ[c]: _summary(t) for c, t in pooled.items()}})
    return rows


def _summary(times: list[float]) -> dict:
    if len(times) < MIN_DECAYS:
        return {"rt60_s": None, "decays": len(times)}
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"rt60_s": round(float(median), 3), "quartiles_s": [round(float(q1), 3),
            round(float(q3), 3)], "decays": len(times)}  # fmt: skip


def table(room: dict, rows: list[dict]) -> str:
    bands = [acoustics.NOMINAL_HZ[c] for c in acoustics.ANALYSIS_BANDS_HZ]
    lines = ["| RT60 (s) | " + " | ".join(f"{b} Hz" for b in bands) + " | DRR (dB) |",
             "|---|" + "---|" * (len(bands) + 1)]  # fmt: skip
    learned = [room["rt60_s"][str(b)] for b in bands]
    lines.append(f"| learned room ({Path(room['source']).name}) | "
                 + " | ".join("-" if t is None else f"{t:.2f}" for t in learned)
                 + f" | {room['drr_db']:.1f} |")  # fmt: skip
    for row in rows:
        cells = []
        for b in bands:
            s = row["bands"][b]
            cells.append("-" if s["rt60_s"] is None else
                         f"{s['rt60_s']:.2f} ({s['quartiles_s'][0]:.2f}-{s['quartiles_s'][1]:.2f},"
                         f" n={s['decays']})")  # fmt: skip
        lines.append(f"| {row['source']} ({row['seconds']:.0f} s) | " + " | ".join(cells)
                     + " | |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model folder with a room")
    parser.add_argument("recordings", nargs="+", help="the recordings it was trained on")
    parser.add_argument("--json", help="append one JSON line here")
    args = parser.parse_args(argv)
    room = room_io.describe(room_io.model_room(args.model))
    rows = recording_rows(args.recordings)
    print(table(room, rows))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"room": room, "recordings": rows}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
