"""CREPE full's ``.tflite`` built without TensorFlow (`runtime.crepe_build`): the time of its
first use and the features speed of the built file against TensorFlow's conversion.

Run by hand (about 2 minutes on 2 cores, most of it the TF conversion when no ``--reference``):
    .venv/bin/python benchmarks/crepe_build.py [--reference TF_CONVERTED.tflite] [-n 3]

First use: `instrument.pitch_tracker_file("full")` in a fresh ``DDSP_HOME`` holding only the
cached ``full.pth`` (reading the torch zip, the build, the atomic writes and LiteRT's load check),
N times, median. Speed: `features.compute_features` of the example clip (13.9 s, CREPE full
every 32 ms, the default) through each file, interleaved, N each, median wall seconds; the
outputs are compared too. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ddspcli import pretrained
from ddspcli.engine import audio, features

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "speech_198-209-0000.wav"


def first_use_s(checkpoint: Path) -> float:
    """Seconds of `pitch_tracker_file("full")` in a fresh DDSP_HOME with only the checkpoint."""
    from ddspcli import instrument

    spec = pretrained.get_spec("crepe-full")
    with tempfile.TemporaryDirectory() as home:
        os.environ["DDSP_HOME"] = home
        folder = pretrained.cache_dir(spec)
        folder.mkdir(parents=True)
        shutil.copy(checkpoint, folder / checkpoint.name)
        start = time.perf_counter()
        path = instrument.pitch_tracker_file("full")
        seconds = time.perf_counter() - start
        assert path.is_file() and path.with_suffix(".json").is_file()
    return seconds


def tf_converted(checkpoint: Path, folder: Path) -> Path:
    """TensorFlow's conversion of the checkpoint (`tflite_export.write_crepe_file`)."""
    from ddspcli.engine import tflite_export

    dest = folder / "full.tflite"
    tflite_export.write_crepe_file(checkpoint, dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="a TF-converted full.tflite (+ .json)")
    parser.add_argument("-n", type=int, default=3)
    args = parser.parse_args()
    checkpoint = pretrained.pull(pretrained.get_spec("crepe-full")) / "full.pth"
    home = os.environ.get("DDSP_HOME")
    builds = [first_use_s(checkpoint) for _ in range(args.n)]
    if home is None:
        os.environ.pop("DDSP_HOME", None)
    else:
        os.environ["DDSP_HOME"] = home
    with tempfile.TemporaryDirectory() as tmp:
        from ddspcli.runtime import crepe_build

        built = Path(tmp) / "built" / "full.tflite"
        crepe_build.write_crepe_tflite(checkpoint, built)
        reference = args.reference or tf_converted(checkpoint, Path(tmp))
        x = audio.read_audio(str(CLIP), 16000)[0]
        settings = features.FeatureSettings(pitch_model="full")
        times: dict[str, list[float]] = {"built": [], "tf_converted": []}
        outputs = {}
        for _ in range(args.n):
            for name, path in (("built", built), ("tf_converted", reference)):
                start = time.perf_counter()
                outputs[name] = features.compute_features(x, str(path), settings)
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = {k: float(np.abs(outputs["built"][k] - outputs["tf_converted"][k]).max())
            for k in ("f0_hz", "f0_confidence")}  # fmt: skip
    print(json.dumps({
        "first_use_s": builds, "first_use_median_s": statistics.median(builds),
        "features_s": times, "features_median_s": med,
        "tf_converted_over_built": med["tf_converted"] / med["built"],
        "max_abs_diff": diff, "load": os.getloadavg()[0],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
