"""Feature extraction speed: wall and CPU seconds per second of audio.

Run by hand (about 20 minutes on 2 cores):
    DDSP_HOME=... .venv/bin/python benchmarks/features_speed.py [--torch-python PATH]

Audio: the first 10 s and 60 s of the concatenated speech clips in ../shared/data/speech.
Configurations: naive CREPE full at 250 frames/s (every frame, one batch loop, no silence
skipping or refinement), our default, `--pitch-model tiny`, and torchcrepe full at 250 frames/s
with Viterbi decoding when a Python with torch + torchcrepe is given (`--torch-python`; it runs
in that interpreter, never in ddspcli's environment). Model loading and the first call are
excluded (a 1 s warm-up). Prints a Markdown table and the ratios to torchcrepe.
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

from ddspcli import pretrained
from ddspcli.engine import audio, features

SR = 16000
CONFIGS = {
    "naive CREPE full@250": features.FeatureSettings(
        pitch_hop_ms=4, silence_db=-np.inf, refine_cents=None
    ),
    "default (full, 32 ms + refinement)": features.FeatureSettings(),
    "tiny (--pitch-model tiny)": features.FeatureSettings(pitch_model="tiny"),
}

TORCHCREPE_SCRIPT = """
import sys, time, types, json
import numpy as np, soundfile as sf
try:
    import torchaudio
except Exception:
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
import torch, torchcrepe
x, sr = sf.read(sys.argv[1], dtype="float32")
def run(y):
    t = torch.from_numpy(y)[None]
    return torchcrepe.predict(t, sr, hop_length=64, model="full", decoder=torchcrepe.decode.viterbi,
                              batch_size=512, device="cpu", pad=True)
run(x[:sr])
wall, cpu = time.perf_counter(), time.process_time()
run(x)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def speech(seconds: float, root: Path) -> np.ndarray:
    clips = sorted((root / "speech").rglob("*.wav"))
    x = np.concatenate([audio.read_audio(c, SR)[0] for c in clips])
    if len(x) < seconds * SR:
        raise SystemExit(f"only {len(x) / SR:.1f} s of speech under {root / 'speech'}")
    return x[: int(seconds * SR)]


def time_ours(
    x: np.ndarray, settings: features.FeatureSettings, weights: Path
) -> tuple[float, float]:
    features.compute_features(x[:SR], weights, settings)  # warm-up: load, trace
    wall, cpu = time.perf_counter(), time.process_time()
    features.compute_features(x, weights, settings)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_torchcrepe(x: np.ndarray, python: str) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        sf.write(tmp.name, x, SR, subtype="FLOAT")
        run = subprocess.run([python, "-c", TORCHCREPE_SCRIPT, tmp.name], capture_output=True,
                             text=True, check=True)  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result["wall"], result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--torch-python", help="python with torch and torchcrepe installed")
    parser.add_argument("--lengths", default="10,60", help="seconds, comma-separated")
    args = parser.parse_args()
    weights = {
        m: pretrained.pull(pretrained.get_spec(f"crepe-{m}")) / f"{m}.pth" for m in ("full", "tiny")
    }
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}", flush=True)  # fmt: skip
    rows = []
    for seconds in [float(s) for s in args.lengths.split(",")]:
        x = speech(seconds, args.data)
        results = {}
        for name, settings in CONFIGS.items():
            results[name] = time_ours(x, settings, weights[settings.pitch_model])
            print(f"  {seconds:.0f} s {name}: {results[name]}", flush=True)
        if args.torch_python:
            results["torchcrepe full@250"] = time_torchcrepe(x, args.torch_python)
            print(f"  {seconds:.0f} s torchcrepe: {results['torchcrepe full@250']}", flush=True)
        rows.append((seconds, results))
    print("\n| audio | configuration | wall s/s | CPU s/s | x faster than torchcrepe (wall/CPU) |")
    print("|---|---|---|---|---|")
    for seconds, results in rows:
        ref = results.get("torchcrepe full@250")
        for name, (wall, cpu) in results.items():
            ratio = f"{ref[0] / wall:.1f} / {ref[1] / cpu:.1f}" if ref else "n/a"
            per = f"{wall / seconds:.3f} | {cpu / seconds:.3f}"
            print(f"| {seconds:.0f} s | {name} | {per} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
