"""The decoder (and z encoder) in LiteRT: features -> raw controls, state carried across blocks.

The files (`ddspcli.engine.tflite_export`) have signatures with a fixed time axis
(``frames_1``, ``frames_64``); `Decoder.push` runs as many of the longest as fit and ends with
one-frame steps, so a block of any length is decoded exactly, without padding, and a stream of
blocks equals one whole render.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ddspcli.engine.adjust import hz_to_midi
from ddspcli.runtime.litert import Program

F0_RANGE, LD_RANGE = 127.0, 80.0  # model.preprocess: midi / 127, dB / 80 + 1
PLUGIN_OUTPUTS = {"output_0": "amplitudes", "output_1": "harmonic_distribution",
                  "output_2": "noise_magnitudes"}  # fmt: skip


def _split_frames(n: int, sizes: list[int]) -> list[tuple[int, int]]:
    """``(first, size)`` pieces covering ``n`` frames, longest signatures first."""
    pieces, at = [], 0
    for size in sorted(sizes, reverse=True):
        while n - at >= size:
            pieces.append((at, size))
            at += size
    return pieces


def run_frames(
    program: Program, sizes: list[int], inputs: Mapping[str, np.ndarray], state: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run ``frames_T`` signatures over ``[t, ...]`` inputs (batch axis added here).

    Returns:
        ``({output: [t, ...]}, final state [1, units])``.
    """
    n = len(next(iter(inputs.values())))
    outputs: dict[str, list[np.ndarray]] = {}
    for first, size in _split_frames(n, sizes):
        piece = {k: v[None, first : first + size] for k, v in inputs.items()}
        result = program.run(f"frames_{size}", state=state, **piece)
        state = result.pop("state")
        for key, value in result.items():
            outputs.setdefault(key, []).append(value[0])
    return {k: np.concatenate(v) for k, v in outputs.items()}, state


class Decoder:
    """``decoder.tflite``: ``f0_hz`` (Hz), ``loudness_db`` (dB) ``[t]`` (and ``z``
    ``[t, z_dims]``) -> raw ``amplitudes`` ``[t, 1]``, ``harmonic_distribution`` ``[t, k]``,
    ``noise_magnitudes`` ``[t, m]``, the GRU state carried from block to block."""

    scaled = False  # raw outputs: the synthesizers scale them

    def __init__(self, folder: str | Path, described: Mapping, num_threads: int = 1) -> None:
        self.program = Program(Path(folder) / described["file"], described, num_threads)
        self.sizes = [int(s) for s in described["block_frames"]]
        self.units = int(described["signatures"]["frames_1"]["inputs"]["state"][-1])
        self.reset()

    def reset(self) -> None:
        """Zero state (the start of a stream)."""
        self.state = np.zeros((1, self.units), np.float32)

    def push(
        self, f0_hz: np.ndarray, loudness_db: np.ndarray, z: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Decode the next ``t`` frames (any ``t``)."""
        inputs = {"f0_hz": np.asarray(f0_hz, np.float32),
                  "loudness_db": np.asarray(loudness_db, np.float32)}  # fmt: skip
        if z is not None:
            inputs["z"] = np.asarray(z, np.float32)
        if len(inputs["f0_hz"]) == 0:
            return {}
        raw, self.state = run_frames(self.program, self.sizes, inputs, self.state)
        return raw


class PluginDecoder:
    """A DDSP-VST plugin file (`ddspcli.engine.vst`) as the decoder: one frame per call,
    inputs ``midi(f0) / 127`` and ``dB / 80 + 1``, outputs already scaled (linear amplitude,
    normalised harmonic distribution, linear noise magnitudes), the 512-float state fed back."""

    scaled = True

    def __init__(self, folder: str | Path, described: Mapping, num_threads: int = 1) -> None:
        self.program = Program(Path(folder) / described["file"], described, num_threads)
        self.units = int(described["signatures"]["call"]["inputs"]["state"][-1])
        self.reset()

    def reset(self) -> None:
        """Zero state."""
        self.state = np.zeros(self.units, np.float32)

    def push(self, f0_hz: np.ndarray, loudness_db: np.ndarray, z: None = None) -> dict:
        """``[t]`` Hz and dB -> ``amplitudes`` ``[t, 1]``, ``harmonic_distribution``
        ``[t, 60]``, ``noise_magnitudes`` ``[t, 65]``."""
        f0 = (hz_to_midi(f0_hz) / F0_RANGE).astype(np.float32)
        pw = (np.asarray(loudness_db, np.float64) / LD_RANGE + 1.0).astype(np.float32)
        frames: dict[str, list[np.ndarray]] = {k: [] for k in PLUGIN_OUTPUTS.values()}
        for f, p in zip(f0, pw, strict=True):
            out = self.program.run("call", f0_scaled=f[None], pw_scaled=p[None], state=self.state)
            self.state = out["output_3"]
            for name, key in PLUGIN_OUTPUTS.items():
                frames[key].append(out[name])
        return {k: np.stack(v) for k, v in frames.items()} if len(f0) else {}


@functools.lru_cache(maxsize=8)
def _positions(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`dsp.resample_linear`'s lower / upper input index and float32 fraction per output."""
    pos = np.arange(n_out, dtype=np.float64) * n_in / n_out
    lo = np.floor(pos).astype(np.int64)
    return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)


def resample_linear(x: np.ndarray, n_out: int) -> np.ndarray:
    """`dsp.resample_linear` on ``[t, c]`` -> ``[n_out, c]`` (last frame held), float32."""
    lo, hi, frac = _positions(len(x), n_out)
    return x[lo] + (x[hi] - x[lo]) * frac[:, None]


class ZEncoder:
    """``z_encoder.tflite``: a block's audio -> z ``[frames, z_dims]``, as `model.ZEncoder`
    (MFCC framing restarts at each block, the GRU state is carried)."""

    def __init__(self, folder: str | Path, described: Mapping, num_threads: int = 1) -> None:
        self.program = Program(Path(folder) / described["file"], described, num_threads)
        self.sizes = [int(s) for s in described["block_frames"]]
        self.units = int(described["rnn_units"])
        self.reset()

    def reset(self) -> None:
        """Zero state."""
        self.state = np.zeros((1, self.units), np.float32)

    def push(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """``[n]`` audio of one block -> ``[n_frames, z_dims]``."""
        mfcc = self.program.run("mfcc", audio=np.asarray(audio, np.float32)[None])["mfcc"][0]
        out, self.state = run_frames(self.program, self.sizes, {"mfcc": mfcc}, self.state)
        return resample_linear(out["z"], n_frames)
