"""Pitch accuracy of `ddsp live`'s causal tracker, per register: CREPE tiny vs full.

Runs `live.CausalFeatures` (CREPE on every stride-th frame, each estimate held until the next,
no Viterbi: nothing from the future) on the first `--seconds` of each FluidR3 render (exact
f0: cello, tenor sax, violin, trumpet, flute, low to high) and on vocadito_1 (singing),
and scores raw pitch accuracy (50 cents) on voiced frames, skipping 60 ms after each onset,
as `pitch_accuracy.py` does. Also times CREPE per call (batch 1).

    DDSP_HOME=... .venv/bin/python benchmarks/live_pitch.py [--seconds 20] [--out results.jsonl]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pitch_accuracy import datasets, load_truth, onset_mask, score

from ddspcli import choices, pretrained
from ddspcli.engine import audio, crepe_tf, features, live

CONFIGS = [("tiny", 16.0), ("tiny", 8.0), ("full", 32.0), ("full", 16.0)]


def causal_f0(samples: np.ndarray, weights: str, model: str, hop_ms: float,
              block: int = 320) -> tuple[np.ndarray, float]:  # fmt: skip
    """f0 per 4 ms frame as `ddsp live` computes it, and the wall seconds it took."""
    settings = features.FeatureSettings(pitch_model=model, pitch_hop_ms=hop_ms)
    crepe = crepe_tf.CrepeLite(features.load_tracker(weights))
    tracker = live.CausalFeatures(crepe.activations, settings, settings.pitch_stride)
    start = time.perf_counter()
    padded = np.pad(samples, (0, live.LOOKAHEAD + block))
    f0 = np.concatenate([tracker.push(padded[i : i + block])["f0_hz"]
                         for i in range(0, len(padded) - block + 1, block)])  # fmt: skip
    return f0[: len(samples) // settings.hop + 1], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--configs", default=",".join(f"{m}@{h:g}" for m, h in CONFIGS),
                        help="e.g. tiny@16,full@32")
    parser.add_argument("--skip", default="", help="comma-separated file-name prefixes to skip")
    args = parser.parse_args()
    configs = [(c.split("@")[0], float(c.split("@")[1])) for c in args.configs.split(",")]
    skip = tuple(p for p in args.skip.split(",") if p)
    weights = {m: str(next(pretrained.pull(pretrained.get_spec(f"crepe-{m}")).glob("*.pth")))
               for m in ("tiny", "full")}  # fmt: skip
    rows = []
    for _, wav, f0_csv, notes_csv in datasets(args.data, quick=False):
        if skip and wav.name.startswith(skip):
            continue
        samples, _ = audio.read_audio(wav, 16000)
        samples = samples[: int(args.seconds * 16000)]
        times, truth = load_truth(f0_csv)
        keep = onset_mask(times, notes_csv) & (times < args.seconds)
        row = {"file": wav.name, "median_truth_hz": float(np.median(truth[truth > 0]))}
        for model, hop in configs:
            f0, wall = causal_f0(samples, weights[model], model, hop)
            n, rpa, _ = score(f0, 250, times, truth, keep)
            row[f"{model}@{hop:g}ms"] = round(100.0 * rpa / n, 2)
            row[f"{model}@{hop:g}ms_wall_s"] = round(wall, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"date": datetime.date.today().isoformat(), "seconds": args.seconds,
              "live_default": {m: choices.LIVE_PITCH_HOP_MS[m] for m in ("tiny", "full")},
              "rows": rows}  # fmt: skip
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
