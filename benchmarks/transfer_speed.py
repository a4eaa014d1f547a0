"""Transfer speed and memory: wall seconds per second of audio, by part, and peak RSS.

Run by hand (about 10 minutes on 2 cores):
    DDSP_HOME=... .venv/bin/python benchmarks/transfer_speed.py [--model DIR_OR_NAME]

Audio: the first 10 s and 60 s of the concatenated speech clips in ../shared/data/speech
(tiled for the memory runs). Parts, timed in-process after a 1 s warm-up (loading and tracing
excluded): features (CREPE + loudness), adjustment, synthesis (streamed render). Memory: peak
RSS of a whole `ddsp transfer` process (start-up included) on 1-minute and 10-minute inputs.

Without `--model`, models of the named variants are built with random weights (speed does not
depend on the weights) and the statistics of a prepared dataset if `--stats` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf
import tensorflow as tf

from ddspcli import pretrained
from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import audio, features, streaming, transfer
from ddspcli.engine import model as model_lib

SR = 16000


def speech(seconds: float, root: Path) -> np.ndarray:
    """The concatenated speech clips, tiled to `seconds`."""
    clips = sorted((root / "speech").rglob("*.wav"))
    x = np.concatenate([audio.read_audio(c, SR)[0] for c in clips])
    reps = int(np.ceil(seconds * SR / len(x)))
    return np.tile(x, reps)[: int(seconds * SR)]


def random_model_dir(variant: str, folder: Path, stats: Path | None) -> Path:
    """A model directory with random weights (as `ddsp fit` would write at step 0)."""
    config = model_lib.config_text(variant, [], [], False)
    model = model_lib.build_model(config)
    folder.mkdir(parents=True)
    tf.train.Checkpoint(model=model).write(str(folder / "ckpt"))
    (folder / model_lib.CONFIG_GIN).write_text(config)
    info = {"sample_rate": SR, "frame_rate": 250, "variant": variant, "checkpoint": "ckpt"}
    (folder / model_lib.MODEL_JSON).write_text(json.dumps(info))
    if stats is not None:
        (folder / "statistics.json").write_text(stats.read_text())
    return folder


def time_parts(loaded, x: np.ndarray, pitch_model: str, weights: Path) -> dict[str, float]:
    """Wall seconds of features, adjustment and synthesis for `x`."""
    settings = features.model_settings(loaded.info, pitch_model, None)
    out = {}
    start = time.perf_counter()
    feats = features.compute_features(x, weights, settings)
    out["features"] = time.perf_counter() - start
    start = time.perf_counter()
    adjusted, _ = adjust_lib.adjust(feats, loaded.statistics, adjust_lib.Adjustments(octaves=1),
                                  adjust_lib.f0_limits(SR))  # fmt: skip
    out["adjust"] = time.perf_counter() - start
    start = time.perf_counter()
    streaming.render(loaded, adjusted, x, transfer.RenderSettings())
    out["synthesis"] = time.perf_counter() - start
    out["total"] = sum(out.values())
    return out


def peak_rss_mb(wav: Path, model: str, pitch_model: str) -> tuple[float, float]:
    """(peak RSS in MB, wall s) of one `ddsp transfer` process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "ddspcli", "-q", "transfer", str(wav), "--model", model,
                   "--pitch-model", pitch_model, "-o", str(Path(tmp) / "out.wav")]  # fmt: skip
        # A fresh parent per measurement: RUSAGE_CHILDREN's peak is over all children so far.
        probe = (
            "import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
            "time.perf_counter() - t)"
        )
        run = subprocess.run([sys.executable, "-c", probe, *command], check=True,
                             capture_output=True, text=True)  # fmt: skip
    rss, wall = run.stdout.split()
    return float(rss), float(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--model", help="model directory or manifest name")
    parser.add_argument("--variants", default="tiny,harmonic+noise+reverb")
    parser.add_argument("--stats", type=Path, help="statistics.json for random models")
    parser.add_argument("--lengths", default="10,60", help="seconds, comma-separated ('' skips)")
    parser.add_argument("--pitch-models", default="tiny,full")
    parser.add_argument("--memory-minutes", default="1,10", help="'' to skip")
    args = parser.parse_args()
    weights = {m: pretrained.pull(pretrained.get_spec(f"crepe-{m}")) / f"{m}.pth"
               for m in args.pitch_models.split(",")}  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        if args.model:
            models[Path(args.model).name] = pretrained.resolve_instrument(args.model)[0]
        else:
            for variant in args.variants.split(","):
                path = random_model_dir(variant, Path(tmp) / variant, args.stats)
                models[variant] = str(path)
        lengths = [float(s) for s in args.lengths.split(",") if s]
        if lengths:
            print("\n| model | pitch | audio | features | adjust | synthesis | total s/s |")
            print("|---|---|---|---|---|---|---|")
        for name, path in models.items() if lengths else ():
            loaded = model_lib.load_model_dir(path)
            for pitch_model in args.pitch_models.split(","):
                time_parts(loaded, speech(1.0, args.data), pitch_model, weights[pitch_model])
                for seconds in lengths:
                    t = time_parts(loaded, speech(seconds, args.data), pitch_model,
                                   weights[pitch_model])  # fmt: skip
                    per = " | ".join(f"{t[k] / seconds:.3f}" for k in
                                     ("features", "adjust", "synthesis", "total"))  # fmt: skip
                    print(f"| {name} | {pitch_model} | {seconds:.0f} s | {per} |", flush=True)
        if args.memory_minutes:
            print("\n| model | pitch | input | peak RSS (MB) | wall s |")
            print("|---|---|---|---|---|")
            for name, path in models.items():
                for minutes in [float(m) for m in args.memory_minutes.split(",")]:
                    wav = Path(tmp) / f"speech{minutes:g}.wav"
                    if not wav.exists():
                        sf.write(wav, speech(60 * minutes, args.data), SR)
                    rss, wall = peak_rss_mb(wav, path, args.pitch_models.split(",")[0])
                    print(f"| {name} | {args.pitch_models.split(',')[0]} | {minutes:g} min | "
                          f"{rss:.0f} | {wall:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
