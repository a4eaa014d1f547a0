"""`runtime.litert.Program.run` reuses a signature's allocation when its input shapes repeat
(`ddsp live`'s speed): the outputs equal the signature runner's, whatever the order of
signatures and shapes, and are never views of the interpreter's tensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddspcli.runtime import litert

MODELS = Path(__file__).resolve().parents[1] / "ddspcli" / "models"


def _fresh(path: Path, described: dict, signature: str, **inputs: np.ndarray) -> dict:
    """The signature runner's outputs, from a new interpreter (nothing reused)."""
    program = litert.Program(path, described)
    return {k: np.array(v) for k, v in program.runners[signature](**inputs).items()}


def test_repeated_shapes_give_the_runners_outputs_in_any_order():
    folder = MODELS / "violin"
    described = json.loads((folder / "runtime.json").read_text())["decoder"]
    path = folder / described["file"]
    program = litert.Program(path, described)
    rng = np.random.default_rng(0)
    units = int(described["signatures"]["frames_1"]["inputs"]["state"][-1])
    calls = []
    for size in (1, 1, 64, 1, 64, 64, 1, 1):
        inputs = {"f0_hz": rng.uniform(100, 800, (1, size)).astype(np.float32),
                  "loudness_db": rng.uniform(-80, -10, (1, size)).astype(np.float32),
                  "state": rng.normal(0, 0.3, (1, units)).astype(np.float32)}  # fmt: skip
        calls.append((f"frames_{size}", inputs, program.run(f"frames_{size}", **inputs)))
    for signature, inputs, out in calls:
        ref = _fresh(path, described, signature, **inputs)
        assert set(out) == set(ref)
        for key in ref:
            assert np.array_equal(out[key], ref[key]), (signature, key)
    first, again = calls[0][2], calls[1][2]  # two one-frame calls: separate arrays
    assert not any(np.shares_memory(first[k], again[k]) for k in first)


def test_crepe_batches_of_changing_size_give_the_runners_activations():
    path = MODELS / "crepe-tiny" / "tiny.tflite"
    described = json.loads(path.with_suffix(".json").read_text())
    program = litert.Program(path, described)
    rng = np.random.default_rng(1)
    for n in (1, 1, 2, 1, 2, 2, 3, 1):
        frames = rng.normal(0, 0.1, (n, 1024)).astype(np.float32)
        out = program.run("activations", frames=frames)["activations"]
        ref = _fresh(path, described, "activations", frames=frames)["activations"]
        assert np.array_equal(out, ref), n
