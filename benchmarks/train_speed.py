"""Seconds per training step and peak memory: variants x (eager, compiled, XLA).

Run by hand (about 10-20 minutes on 2 cores):
    .venv/bin/python benchmarks/train_speed.py [--variants harmonic+noise+reverb tiny]
        [--modes compiled jit eager] [--batch-size 16] [--steps 5] [--breakdown]

Each (variant, mode) runs in a fresh process: it writes a synthetic prepared dataset of 4 s
harmonic tones (the test helper), builds the real `Trainer` on it and times `--steps` training
steps after one warm-up step (tracing and compilation excluded). Peak memory is the child's
maximum resident set size (its own). `--breakdown` also times the network alone (decoder forward and
backward with a loss on its raw outputs) to show the audio-rate share of a step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(variant: str, mode: str, batch: int, steps: int, breakdown: bool) -> dict:
    """One measurement, in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    import tensorflow as tf
    from toneset import write_tone_dataset

    from ddspcli.engine import data, nn, train

    with tempfile.TemporaryDirectory() as tmp:
        ds = write_tone_dataset(Path(tmp) / "ds", n_train=2 * batch, n_eval=0, seconds=4.0)
        settings = train.TrainSettings(steps=10**6, batch_size=batch, jit=mode == "jit")
        trainer, _ = train.open_run(
            Path(tmp) / "run", str(ds), settings, variant=variant, steps_given=True
        )
        batches = iter(data.make_dataset(ds, "train", batch, seed=0))
        step = trainer._replica_train_step if mode == "eager" else trainer._train_step
        go_on = tf.constant(0.0)  # the step's stop flag: nobody asks to stop
        times = []
        for i in range(steps + 1):
            b = next(batches)
            start = time.perf_counter()
            loss = float(step(b, go_on)[0])
            if i:
                times.append(time.perf_counter() - start)
        result = {"variant": variant, "mode": mode, "batch": batch,
                  "parameters": nn.count_parameters(trainer.model),
                  "s_per_step": float(np.median(times)), "min_s": float(np.min(times)),
                  "loss": loss}  # fmt: skip
        if breakdown:
            model = trainer.model

            @tf.function
            def network_only(b):
                with tf.GradientTape() as tape:
                    raw, _ = model.decode(b)
                    loss = tf.add_n([tf.reduce_mean(v) for v in raw.values()])
                return tape.gradient(loss, model.trainable_variables)

            network_only(b)
            start = time.perf_counter()
            for _ in range(steps):
                network_only(b)
            result["network_s"] = (time.perf_counter() - start) / steps
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=["harmonic+noise+reverb", "tiny"])
    parser.add_argument("--modes", nargs="+", default=["compiled", "jit", "eager"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(*args.child, args.batch_size, args.steps, args.breakdown)
        print(json.dumps(result))
        return
    for variant in args.variants:
        for mode in args.modes:
            command = [sys.executable, __file__, "--child", variant, mode, "--batch-size",
                       str(args.batch_size), "--steps", str(args.steps)]  # fmt: skip
            if args.breakdown and mode == "compiled":
                command.append("--breakdown")
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            if run.returncode:
                error = run.stderr.strip().splitlines()[-1]
                print(json.dumps({"variant": variant, "mode": mode, "error": error}), flush=True)
                continue
            result = json.loads(run.stdout.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
