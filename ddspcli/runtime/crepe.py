"""CREPE activations through LiteRT, framed as `ddspcli.engine.pitch` frames them.

The ``.tflite`` files come from `ddspcli.engine.tflite_export.write_crepe_file` (``tiny`` or
``full``; signature ``activations``: ``frames`` ``[n, 1024]`` -> ``activations`` ``[n, 360]``,
any ``n``), with a JSON beside each (its sha256 and tensor shapes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddspcli.errors import ModelError
from ddspcli.runtime.litert import HOW_TO_FIX, Program

SAMPLE_RATE = 16000
FRAME_SIZE = 1024
N_BINS = 360
BATCH = 128  # frames per call (bounded memory for long inputs)


def frame_audio(audio: np.ndarray, hop: int, n_frames: int | None = None) -> np.ndarray:
    """`pitch.frame_audio`: centred frames, frame ``i`` covering samples ``i * hop - 512 ..
    i * hop + 511`` (zeros outside).

    Args:
        audio: ``[n]`` at 16 kHz. hop: samples between frames. n_frames: default ``n // hop + 1``.
    Returns:
        ``[n_frames, 1024]`` float32 (a read-only strided view of a padded copy).
    """
    n_frames = len(audio) // hop + 1 if n_frames is None else n_frames
    need = (n_frames - 1) * hop + FRAME_SIZE
    padded = np.zeros(max(need, len(audio) + FRAME_SIZE), np.float32)
    padded[FRAME_SIZE // 2 : FRAME_SIZE // 2 + len(audio)] = audio
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, FRAME_SIZE), strides=(hop * 4, 4), writeable=False
    )


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
