"""The TensorFlow path against the TensorFlow-free runtime, side by side in one run.

Run by hand (about 3 minutes on 2 cores):
    .venv/bin/python benchmarks/runtime_speed.py [--model violin] [--seconds 14 60]

For each input length (the 14 s example clip `examples/speech_198-209-0000.wav`, and the clip
tiled to 60 s) two worker processes run the same work, one per path, so each peak RSS is its
own path's:

* ``tf``: CREPE tiny activations (`engine.crepe_tf.Crepe`, every 16 ms) and the streamed render
  (`engine.streaming.render`, 10 s blocks) of the model's features;
* ``runtime``: the same through `ddspcli.runtime` (LiteRT CREPE tiny, LiteRT decoder, NumPy
  synthesis), which never imports TensorFlow (the worker asserts it).

Each part is timed on a second run after a warm-up run of the same input (tracing of every
block shape, delegate set-up excluded); loading is timed on its own (the TensorFlow import is
not: whole-process times are for later). The features (A-weighted loudness, CREPE tiny f0) and the
runtime files are prepared first by a TensorFlow process into a temporary folder. Prints one
JSON line per path and length and a table of ratios; whole-process times are for later.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "speech_198-209-0000.wav"
SR, HOP, CREPE_HOP = 16000, 64, 256  # CREPE tiny every 16 ms


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def prepare(model: str, seconds: list[float], folder: Path) -> None:
    """TensorFlow process: input audio, features, runtime files (decoder, CREPE tiny)."""
    from ddspcli import pretrained
    from ddspcli.engine import audio, features, tflite_export
    from ddspcli.engine import model as model_lib

    path = pretrained.resolve_instrument(model)[0]
    loaded = model_lib.load_model_dir(str(path))
    tflite_export.write_runtime_files(loaded, folder / "model")
    tiny = ROOT / "ddspcli" / "models" / "crepe-tiny" / "tiny.pth"
    tflite_export.write_crepe_file(tiny, folder / "crepe-tiny.tflite")
    clip = audio.read_audio(str(CLIP), SR)[0]
    settings = features.model_settings(loaded.info, "tiny", None)
    for s in seconds:
        x = np.tile(clip, int(np.ceil(s * SR / len(clip))))[: int(s * SR)]
        feats = features.compute_features(x, str(tiny), settings)
        np.savez(folder / f"in_{s:g}.npz", audio=x, f0_hz=feats["f0_hz"],
                 loudness_db=feats["loudness_db"])  # fmt: skip
    (folder / "paths.json").write_text(json.dumps({"model": str(path), "tiny": str(tiny)}))


def worker_tf(folder: Path, seconds: float) -> dict:
    """The TensorFlow path: CREPE tiny and the streamed render."""
    from ddspcli.engine import crepe_tf, pitch, streaming, transfer
    from ddspcli.engine import model as model_lib

    paths = json.loads((folder / "paths.json").read_text())
    data = np.load(folder / f"in_{seconds:g}.npz")
    load_s, loaded = _timed(model_lib.load_model_dir, paths["model"])
    crepe_load_s, net = _timed(lambda: crepe_tf.Crepe(pitch.load_weights(paths["tiny"])))
    frames = np.array(pitch.frame_audio(data["audio"], CREPE_HOP))
    net.activations(frames[:64])  # warm-up (tracing)
    crepe_s, _ = _timed(lambda: [net.activations(frames[i : i + 128]).numpy()
                                 for i in range(0, len(frames), 128)])  # fmt: skip
    feats = {"f0_hz": data["f0_hz"], "loudness_db": data["loudness_db"]}
    streaming.render(loaded, feats, None, transfer.RenderSettings())  # traces each block shape
    render_s, _ = _timed(streaming.render, loaded, feats, None, transfer.RenderSettings())
    return {"path": "tf", "seconds": seconds, "load_s": load_s + crepe_load_s,
            "crepe_s": crepe_s, "render_s": render_s, "peak_rss_mb": _rss_mb()}  # fmt: skip


def worker_runtime(folder: Path, seconds: float) -> dict:
    """The runtime: LiteRT CREPE tiny, LiteRT decoder, NumPy synthesis."""
    from ddspcli import runtime
    from ddspcli.runtime import crepe

    data = np.load(folder / f"in_{seconds:g}.npz")
    load_s, rt = _timed(runtime.load, folder / "model")
    crepe_load_s, net = _timed(crepe.Crepe, folder / "crepe-tiny.tflite", 2)
    frames = crepe.frame_audio(data["audio"], CREPE_HOP)
    net.activations(frames[:64])
    crepe_s, _ = _timed(net.activations, frames)
    rt.render(data["f0_hz"], data["loudness_db"])  # the same warm-up as TensorFlow's
    render_s, _ = _timed(rt.render, data["f0_hz"], data["loudness_db"])
    assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"], "TF imported"
    return {"path": "runtime", "seconds": seconds, "load_s": load_s + crepe_load_s,
            "crepe_s": crepe_s, "render_s": render_s, "peak_rss_mb": _rss_mb()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="violin")
    parser.add_argument("--seconds", type=float, nargs="+", default=[14.0, 60.0])
    parser.add_argument("--worker", choices=["prepare", "tf", "runtime"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.worker == "prepare":
        prepare(args.model, args.seconds, args.folder)
        return
    if args.worker:
        work = worker_tf if args.worker == "tf" else worker_runtime
        print(json.dumps(work(args.folder, args.seconds[0])))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="ddsp-rt-bench-") as tmp:
        subprocess.run([sys.executable, __file__, "--worker", "prepare", "--folder", tmp,
                        "--model", args.model, "--seconds", *map(str, args.seconds)],
                       check=True, env=env)  # fmt: skip
        rows = []
        for s in args.seconds:
            for path in ("tf", "runtime"):
                run = subprocess.run([sys.executable, __file__, "--worker", path, "--folder",
                                      tmp, "--seconds", str(s)], check=True, env=env,
                                     capture_output=True, text=True)  # fmt: skip
                rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'input':>6} {'part':>12} {'TF':>9} {'runtime':>9} {'ratio':>7}")
    for s in args.seconds:
        tf_row, rt_row = (next(r for r in rows if r["seconds"] == s and r["path"] == p)
                          for p in ("tf", "runtime"))  # fmt: skip
        for key in ("load_s", "crepe_s", "render_s", "peak_rss_mb"):
            ratio = tf_row[key] / rt_row[key] if rt_row[key] else float("nan")
            print(f"{s:>5g}s {key:>12} {tf_row[key]:>9.3f} {rt_row[key]:>9.3f} {ratio:>6.1f}x")


if __name__ == "__main__":
    main()
