"""Reconstruction quality of trained models on a prepared dataset's eval split.

Run by hand (minutes per model on 2 cores):
    DDSP_HOME=... .venv/bin/python benchmarks/model_quality.py data/violin \\
        runs/violin-half runs/violin --untrained runs/violin [--max-examples 30]

For each model (a model directory, or a manifest name), every eval example is resynthesized
from its own features; the output's features are extracted again with the dataset's own pitch
settings and compared (`ddspcli.engine.evaluate`): f0 L1 in semitones and the share of outliers
(> 1 semitone) on frames whose recorded confidence is >= 0.85, loudness L1 in dB, and the
multi-scale spectral loss. `--untrained DIR` adds DIR's configuration at its initial weights
(the same seed), so the table shows what training bought. Prints a Markdown table and, with
`--json`, one JSON object per model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ddspcli import pretrained
from ddspcli.engine import data, evaluate
from ddspcli.engine import model as model_lib


def untrained(path: str) -> model_lib.LoadedModel:
    """A model directory's configuration at its initial (seeded) weights."""
    trained = model_lib.load_model_dir(path)
    config = Path(path, model_lib.CONFIG_GIN).read_text()
    info = {**trained.info, "steps": 0}
    return model_lib.LoadedModel(model_lib.build_model(config), info, {}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="prepared dataset folder")
    parser.add_argument("models", nargs="*", help="model directories or manifest names")
    parser.add_argument("--untrained", action="append", default=[], help="model directory")
    parser.add_argument("--split", default="eval")
    parser.add_argument("--max-examples", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stored = data.read_info(args.data).get("settings", {}).get("features", {})
    pitch_model = stored.get("pitch_model", "full")
    weights = pretrained.pull(pretrained.get_spec(f"crepe-{pitch_model}")) / f"{pitch_model}.pth"
    entries = [(f"{name} (untrained)", lambda p=name: untrained(p)) for name in args.untrained]
    entries += [(name, lambda n=name: model_lib.load_model_dir(pretrained.resolve_instrument(n)[0]))
                for name in args.models]  # fmt: skip
    rows = []
    for name, load in entries:
        start = time.perf_counter()
        loaded = load()
        scores = evaluate.evaluate(loaded, args.data, str(weights), args.split,
                                   max_examples=args.max_examples)  # fmt: skip
        steps = loaded.info.get("steps", "?")
        rows.append((name, steps, scores))
        if args.json:
            print(json.dumps({"model": name, "steps": steps, **scores.to_dict()}), flush=True)
        print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print("\n| model | steps | examples | f0 L1 (semitones) | f0 outliers | loudness L1 (dB) "
          "| spectral loss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, steps, s in rows:
        f0 = f"{s.f0_l1_semitones:.3f} | {100 * s.f0_outliers:.2f}%"
        print(f"| {name} | {steps} | {s.examples} | {f0} | {s.loudness_l1_db:.2f} | "
              f"{s.spectral_loss:.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
