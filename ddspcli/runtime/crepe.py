"""CREPE activations through LiteRT, framed as `ddspcli.engine.pitch` frames them.

The ``.tflite`` files (``tiny`` or ``full``; signature ``activations``: ``frames``
``[n, 1024]`` -> ``activations`` ``[n, 360]``, any ``n``) come with a JSON beside each (its
sha256 and tensor shapes). They are built from the torch checkpoints without TensorFlow by
`ddspcli.runtime.crepe_build` (full, on first use) or converted by TensorFlow with
`ddspcli.engine.tflite_export.write_crepe_file` (the shipped tiny): the same graph, the same
activations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddspcli.engine.pitch import N_BINS, frame_audio
from ddspcli.errors import ModelError
from ddspcli.runtime.litert import HOW_TO_FIX, Program

BATCH = 128  # frames per call (bounded memory for long inputs)


class Crepe:
    """A CREPE ``.tflite`` file in LiteRT.

    Args:
        path: the ``.tflite`` file; its description is read from the ``.json`` beside it.
        num_threads: interpreter threads (convolutions use them).
    Raises:
        ModelError: missing, damaged or wrongly shaped file (one line).
    """

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        path = Path(path)
        described_path = path.with_suffix(".json")
        try:
            described = json.loads(described_path.read_text())
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot read {described_path}: {err}; {HOW_TO_FIX}") from None
        self.capacity = described.get("capacity")
        self.program = Program(path, described, num_threads)
        self._batch = 0

    def activations(self, frames: np.ndarray, batch: int = BATCH) -> np.ndarray:
        """``[n, 1024]`` frames at 16 kHz -> ``[n, 360]`` activations in (0, 1), float32.

        Frames go in batches of `batch` (the last one shorter), so memory stays bounded.
        """
        frames = np.asarray(frames, np.float32)
        if len(frames) == 0:
            return np.zeros((0, N_BINS), np.float32)
        out = [self.program.run("activations", frames=frames[i : i + batch])["activations"]
               for i in range(0, len(frames), batch)]  # fmt: skip
        return np.concatenate(out)

    def audio_activations(self, audio: np.ndarray, hop: int) -> np.ndarray:
        """``[n]`` audio at 16 kHz -> ``[n // hop + 1, 360]`` activations of centred frames."""
        return self.activations(frame_audio(np.asarray(audio, np.float32), hop))
