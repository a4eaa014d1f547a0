"""Does a model follow a voice? Speech and singing transferred with ``--octave 1``, checked by
an independent pitch tracker (librosa's pYIN, not our CREPE).

Run by hand (a few minutes per model on 2 cores):
    .venv/bin/python benchmarks/voice_check.py violin tenor_sax flute-sf cello-sf trumpet-sf \\
        [--model-dir NAME=DIR ...] [--json benchmarks/results/voice_check.jsonl]

Clips (from ../shared/data, see its SOURCES.md for licences): the 9 read-speech files (3
LibriSpeech speakers, 2 CMU ARCTIC speakers) and the vocadito song cut into three 11 s parts.
Each is rendered as ``ddsp transfer CLIP --model M --octave 1`` does (auto-adjust on, the
model's own feature settings, CREPE tiny, seed 0). Input and output are tracked with
`librosa.pyin` (65-2093 Hz, 1024-sample (64 ms) frames, hop 256 at 16 kHz; with 2048-sample
frames pYIN and CREPE disagreed on the input speech itself by a median 35 cents, with 1024 by
12). The error is the output pitch against the input pitch x 2^(shift/12), in cents, where
shift is the total the transfer applied (auto octaves + 12). A clip passes when >= 85% of the
steady co-voiced frames (voiced in both tracks and at least 32 ms from a voicing change in
either) are within 50 cents; the share over all co-voiced frames is reported too. Half of the
frames off by more than 50 cents on speech sat at voicing edges, where pYIN's voicing
probability is near 0 and the tracker, not the model, decides the figure. Also reported: the
median |error|, the output RMS (dBFS) and, for models with a reverb, the dry/wet energy ratio
of the output (dB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ddspcli import pretrained
from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import audio, features, streaming, transfer
from ddspcli.engine import model as model_lib

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RATE = 16000
HOP = 256
FRAME = 1024
PASS_CENTS, PASS_SHARE = 50.0, 0.85
STEADY_MARGIN = 2  # pYIN frames (32 ms) from a voicing change, in either track


def clips() -> dict[str, np.ndarray]:
    """Name -> 16 kHz mono audio of every clip of the check."""
    out = {}
    for path in sorted((SHARED / "speech").rglob("*.wav")):
        out[path.stem] = audio.read_audio(path, RATE)[0]
    song = audio.read_audio(SHARED / "vocadito" / "audio" / "vocadito_1.wav", RATE)[0]
    part = len(song) // 3
    for k in range(3):
        out[f"vocadito_1-part{k + 1}"] = song[k * part : (k + 1) * part]
    return out


def track(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pYIN f0 (Hz, NaN where unvoiced) and voiced flags, one frame per `HOP` samples."""
    import librosa

    f0, voiced, _ = librosa.pyin(x, fmin=65.0, fmax=2093.0, sr=RATE, frame_length=FRAME,
                                 hop_length=HOP)  # fmt: skip
    return f0, voiced


def steady(voiced: np.ndarray, margin: int = STEADY_MARGIN) -> np.ndarray:
    """Voiced frames at least `margin` frames from a voicing change."""
    keep = voiced.copy()
    for shift in range(1, margin + 1):
        keep[shift:] &= voiced[:-shift]
        keep[:-shift] &= voiced[shift:]
    return keep


def score(f0_in, v_in, f0_out, v_out, semitones: float) -> dict:
    """Share of co-voiced frames within `PASS_CENTS` (all of them, and the steady ones that
    decide the pass) and the median |error| in cents of the steady ones."""
    n = min(len(f0_in), len(f0_out))
    ratio = 2.0 ** (semitones / 12.0)

    def errors(mask: np.ndarray) -> np.ndarray:
        return 1200.0 * np.log2(f0_out[:n][mask] / (f0_in[:n][mask] * ratio))

    both = v_in[:n] & v_out[:n]
    firm = steady(v_in[:n]) & steady(v_out[:n])
    if not firm.any():
        return {"co_voiced": int(both.sum()), "steady": 0, "within_50": 0.0,
                "within_50_all": 0.0, "median_cents": None, "passed": False}  # fmt: skip
    cents = errors(firm)
    within = float(np.mean(np.abs(cents) <= PASS_CENTS))
    return {"co_voiced": int(both.sum()), "steady": int(firm.sum()),
            "within_50": round(within, 4),
            "within_50_all": round(float(np.mean(np.abs(errors(both)) <= PASS_CENTS)), 4),
            "median_cents": round(float(np.median(np.abs(cents))), 1),
            "passed": within >= PASS_SHARE}  # fmt: skip


def render(loaded, x: np.ndarray, weights: str, fsettings) -> tuple[dict, dict]:
    """``ddsp transfer --octave 1``'s rendering: the parts and the adjustment report."""
    from ddspcli.engine import features as features_lib

    feats = features_lib.compute_features(x, weights, fsettings)
    limits = adjust_lib.f0_limits(loaded.model.sample_rate)
    adjusted, report = adjust_lib.adjust(feats, loaded.statistics,
                                         adjust_lib.Adjustments(octaves=1), limits)  # fmt: skip
    parts = ("harmonic", "noise", "reverb") if loaded.model.reverb is not None else ()
    rendered = streaming.render(loaded, adjusted, x, transfer.RenderSettings(), parts)
    rendered = {k: v[: len(x)] for k, v in rendered.items()}
    gain = adjust_lib.peak_gain(rendered["audio"], -1.0, False)
    return {k: v * np.float32(gain) for k, v in rendered.items()}, report


def check_model(name: str, folder: str, inputs: dict, tracked: dict, weights: str,
                dry: bool = False, room: np.ndarray | None = None) -> list[dict]:  # fmt: skip
    """One row per clip; `dry`: score the dry part of a model with a room (`--room none`);
    `room`: a wet IR ``[m]`` at 16 kHz the output is put into (`acoustics.apply_room`, as
    ``--room IR.wav``) before it is scored."""
    from ddspcli.engine import acoustics
    loaded = model_lib.load_model_dir(folder)
    fsettings = features.model_settings(loaded.info, "tiny", None)
    rows = []
    for clip, x in inputs.items():
        rendered, report = render(loaded, x, weights, fsettings)
        if dry and "reverb" in rendered:
            rendered = {"audio": rendered["audio"] - rendered["reverb"]}
        if room is not None:
            dry_out = rendered["audio"]
            wet_out = acoustics.apply_room(dry_out, room)[: len(dry_out)].astype(np.float32)
            rendered = {"audio": wet_out, "reverb": wet_out - dry_out}
        out = rendered["audio"]
        f0_out, v_out = track(out)
        row = {"model": name, "clip": clip, "seconds": round(len(x) / RATE, 2),
               "semitones": report["semitones"],
               **score(*tracked[clip], f0_out, v_out, report["semitones"]),
               "rms_dbfs": round(10 * np.log10(np.mean(np.square(out, dtype=np.float64)) + 1e-20),
                                 2)}  # fmt: skip
        if "reverb" in rendered:
            wet = float(np.sum(np.square(rendered["reverb"], dtype=np.float64)))
            dry = float(np.sum(np.square(out - rendered["reverb"], dtype=np.float64)))
            row["dry_wet_db"] = round(10 * np.log10(dry / max(wet, 1e-20)), 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    medians = [r["median_cents"] for r in rows if r["median_cents"] is not None]
    levels = [r["rms_dbfs"] for r in rows]
    out = {"model": rows[0]["model"], "clips": len(rows),
           "passed": sum(r["passed"] for r in rows),
           "median_cents": round(float(np.median(medians)), 1) if medians else None,
           "rms_dbfs_median": round(float(np.median(levels)), 2)}  # fmt: skip
    if "dry_wet_db" in rows[0]:
        out["dry_wet_db_median"] = round(float(np.median([r["dry_wet_db"] for r in rows])), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", help="manifest names")
    parser.add_argument("--model-dir", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--json", help="append one JSON line per clip and per model here")
    parser.add_argument("--dry", action="store_true",
                        help="score models with a room without it (their dry part)")
    parser.add_argument("--room-ir", help="a full IR file (direct sound first) to play every "
                        "model's output in, as `ddsp transfer --room IR.wav`")  # fmt: skip
    args = parser.parse_args()
    room = None
    if args.room_ir:
        from ddspcli.engine import room_io

        room = room_io.load_room(args.room_ir, RATE).wet
    entries = [(n, str(pretrained.resolve_instrument(n)[0])) for n in args.models]
    entries += [tuple(item.split("=", 1)) for item in args.model_dir]
    weights = str(pretrained.pull(pretrained.get_spec("crepe-tiny")) / "tiny.pth")
    inputs = clips()
    tracked = {clip: track(x) for clip, x in inputs.items()}
    table = []
    for name, folder in entries:
        label = name + " (dry)" * args.dry
        if args.room_ir:
            label += f" in {Path(args.room_ir).name}"
        rows = check_model(label, folder, inputs, tracked, weights, args.dry, room)
        table.append(summary(rows))
        if args.json:
            with open(args.json, "a") as f:
                for row in [*rows, {"summary": table[-1]}]:
                    f.write(json.dumps(row) + "\n")
    header = ("model", "clips passing", "median error (cents)", "output RMS (dBFS, median)",
              "dry/wet (dB)")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for s in table:
        wet = f"{s['dry_wet_db_median']:+.1f}" if "dry_wet_db_median" in s else "dry only"
        print(f"| `{s['model']}` | {s['passed']} / {s['clips']} | {s['median_cents']} | "
              f"{s['rms_dbfs_median']:.1f} | {wet} |")


if __name__ == "__main__":
    main()
