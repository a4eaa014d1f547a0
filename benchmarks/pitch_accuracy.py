"""Raw pitch and raw chroma accuracy (50 cents) of our pitch tracking configurations.

Run by hand (about 35 minutes on 2 cores):
    DDSP_HOME=... .venv/bin/python benchmarks/pitch_accuracy.py [--data ../shared/data] [--quick]

Sets: `soundfont_renders/fluidr3_gm/*_first40s` (5 instruments, exact f0; frames within 60 ms
after a note onset are skipped because the previous note's release still sounds) and
`vocadito` (annotated singing). Only frames that the ground truth marks voiced are scored.
Configurations: CREPE full at 250 frames/s (every frame, the reference), CREPE tiny at
250 frames/s, and our default (`FeatureSettings()`). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ddspcli import pretrained
from ddspcli.engine import audio, features, pitch

CONFIGS = {
    "full@250 (reference)": features.FeatureSettings(pitch_model="full", pitch_hop_ms=4),
    "tiny@250": features.FeatureSettings(pitch_model="tiny", pitch_hop_ms=4),
    "full, 20 ms hop + jump refinement": features.FeatureSettings(pitch_hop_ms=20),
    "default (full, 32 ms hop + jump refinement)": features.FeatureSettings(),
    "tiny default (16 ms hop + jump refinement)": features.FeatureSettings(pitch_model="tiny"),
}


def load_truth(f0_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, f0_hz)`` from a two-column CSV (header optional)."""
    rows = np.genfromtxt(f0_csv, delimiter=",", skip_header=0, invalid_raise=False)
    rows = rows[~np.isnan(rows).any(axis=1)]
    return rows[:, 0], rows[:, 1]


def onset_mask(times: np.ndarray, notes_csv: Path | None, skip_s: float = 0.06) -> np.ndarray:
    """True for frames to score: not within `skip_s` after a note onset."""
    keep = np.ones(len(times), bool)
    if notes_csv is None:
        return keep
    notes = np.genfromtxt(notes_csv, delimiter=",", skip_header=1)
    for start in np.atleast_2d(notes)[:, 0]:
        keep &= ~((times >= start) & (times < start + skip_s))
    return keep


def score(est_hz: np.ndarray, frame_rate: int, times: np.ndarray, truth_hz: np.ndarray,
          keep: np.ndarray) -> tuple[int, int, int]:  # fmt: skip
    """(voiced frames scored, within 50 cents, within 50 cents modulo octave)."""
    est_times = np.arange(len(est_hz)) / frame_rate
    est_cents = np.interp(times, est_times, pitch.hz_to_cents(np.maximum(est_hz, 1e-3)))
    voiced = (truth_hz > 0) & keep
    diff = est_cents[voiced] - pitch.hz_to_cents(truth_hz[voiced])
    chroma = np.abs((diff + 600) % 1200 - 600)
    return int(voiced.sum()), int((np.abs(diff) <= 50).sum()), int((chroma <= 50).sum())


def datasets(root: Path, quick: bool) -> list[tuple[str, Path, Path, Path | None]]:
    """(set name, audio, f0 csv, notes csv or None)."""
    items = []
    renders = sorted((root / "soundfont_renders" / "fluidr3_gm").glob("*_first40s.flac"))
    for flac in renders[:2] if quick else renders:
        stem = flac.with_suffix("")
        items.append(("renders", flac, Path(f"{stem}.f0.csv"), Path(f"{stem}.notes.csv")))
    voc = root / "vocadito"
    items.append(("vocadito", voc / "audio" / "vocadito_1.wav",
                  voc / "annotations" / "vocadito_1_f0.csv", None))  # fmt: skip
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="two renders only")
    parser.add_argument("--only", default="", help="run configurations containing this text")
    args = parser.parse_args()
    configs = {name: s for name, s in CONFIGS.items() if args.only in name}
    weights = {m: pretrained.pull(pretrained.get_spec(f"crepe-{m}")) for m in ("full", "tiny")}
    totals: dict[tuple[str, str], np.ndarray] = {}
    seconds: dict[str, float] = {}
    for set_name, wav, f0_csv, notes_csv in datasets(args.data, args.quick):
        samples, _ = audio.read_audio(wav, 16000)
        times, truth = load_truth(f0_csv)
        keep = onset_mask(times, notes_csv)
        for config, settings in configs.items():
            path = weights[settings.pitch_model] / f"{settings.pitch_model}.pth"
            start = time.perf_counter()
            feats = features.compute_features(samples, path, settings)
            seconds[config] = seconds.get(config, 0.0) + time.perf_counter() - start
            counts = np.array(score(feats["f0_hz"], settings.frame_rate, times, truth, keep))
            totals[(set_name, config)] = totals.get((set_name, config), 0) + counts
            print(f"  {wav.name:45s} {config:36s} RPA {counts[1] / counts[0]:.4f}", flush=True)
    print("\n| configuration | renders RPA | renders RCA | vocadito RPA | vocadito RCA | wall s |")
    print("|---|---|---|---|---|---|")
    for config in configs:
        cells = []
        for set_name in ("renders", "vocadito"):
            n, rpa, rca = totals[(set_name, config)]
            cells += [f"{100 * rpa / n:.2f}%", f"{100 * rca / n:.2f}%"]
        print(f"| {config} | " + " | ".join(cells) + f" | {seconds[config]:.0f} |")


if __name__ == "__main__":
    main()
