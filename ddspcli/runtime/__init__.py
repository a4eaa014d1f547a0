"""The inference runtime: a model folder played without TensorFlow.

LiteRT (``ai-edge-litert``) runs the decoder (and z encoder) from the folder's ``.tflite``
files, NumPy does the synthesis (`ddspcli.runtime.synth`), CREPE runs from its own ``.tflite``
(`ddspcli.runtime.crepe`). Nothing here imports TensorFlow, directly or through another module
(`make lint` checks it). The files are written by `ddspcli.engine.tflite_export`.

    rt = runtime.load("path/to/model")
    out = rt.render(f0_hz, loudness_db)          # {"audio", "harmonic", "noise", "reverb"}
    stream = rt.stream()
    samples = stream.push(f0_block, loudness_block)   # any number of frames per call
    tail = stream.finish()

The output equals the TensorFlow render (`engine.streaming.render`) of the same features to
float32 rounding (`tests/test_runtime.py` states the tolerances).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddspcli.errors import InputError, ModelError
from ddspcli.runtime import synth as synth_lib
from ddspcli.runtime.decoder import Decoder, PluginDecoder, ZEncoder
from ddspcli.runtime.litert import HOW_TO_FIX, sha256

RUNTIME_JSON = "runtime.json"
FORMAT_VERSION = 1
DEFAULT_BLOCK_FRAMES = 2500  # 10 s at 250 frames/s: transfer's block (the z encoder's framing)

__all__ = ["Runtime", "Stream", "load"]


def read_description(folder: str | Path) -> dict:
    """``runtime.json`` of a model folder.

    Raises:
        ModelError: missing (with how to get it), unreadable, or of another format version.
    """
    path = Path(folder) / RUNTIME_JSON
    if not path.is_file():
        raise ModelError(f"{folder} has no runtime files ({RUNTIME_JSON}); {HOW_TO_FIX}")
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"{path} is unreadable: {err}; {HOW_TO_FIX}") from None
    if desc.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path} has format version {desc.get('format_version')!r}; this "
                         f"ddspcli reads {FORMAT_VERSION}; {HOW_TO_FIX}")  # fmt: skip
    return desc


def _read_reverb(folder: Path, described: Mapping) -> np.ndarray:
    """The effective reverb impulse response ``[m]`` float32 (sha256 and length checked)."""
    path = folder / described["file"]
    if not path.is_file():
        raise ModelError(f"{path} is missing; {HOW_TO_FIX}")
    if sha256(path) != described["sha256"]:
        raise ModelError(f"{path} is damaged (its sha256 differs from {RUNTIME_JSON}); "
                         f"{HOW_TO_FIX}")  # fmt: skip
    ir = np.load(path, allow_pickle=False)
    if ir.shape != (int(described["length"]),):
        raise ModelError(f"{path} has shape {list(ir.shape)}, not [{described['length']}]; "
                         f"{HOW_TO_FIX}")  # fmt: skip
    return ir.astype(np.float32)


@dataclass
class Runtime:
    """A loaded model folder: its description, decoder, optional z encoder and reverb IR."""

    folder: Path
    description: dict
    decoder: Decoder | PluginDecoder
    z_encoder: ZEncoder | None
    reverb_ir: np.ndarray | None
    num_threads: int = 1

    @property
    def synth(self) -> dict:
        return self.description["synth"]

    @property
    def sample_rate(self) -> int:
        return int(self.synth["sample_rate"])

    @property
    def frame_rate(self) -> int:
        return int(self.synth["frame_rate"])

    @property
    def hop(self) -> int:
        return int(self.synth["hop"])

    def stems(self, reverb: bool = True, room_ir: np.ndarray | None = None) -> tuple[str, ...]:
        """The stems `render` returns with ``stems=True`` (and these `reverb`, `room_ir`):
        each node of the graph, e.g. ``harmonic``, ``noise``, ``reverb``."""
        ir = (self.reverb_ir if room_ir is None else room_ir) if reverb else None
        return synth_lib.graph_of(self.synth, ir).stems

    def stream(
        self, seed: int = 0, reverb: bool = True, room_ir: np.ndarray | None = None
    ) -> Stream:
        """A stream from silence (fresh decoder state, noise from sample 0); `room_ir` as
        `Stream`'s."""
        return Stream(self, seed, reverb, room_ir)

    def render(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        audio: np.ndarray | None = None,
        *,
        z: np.ndarray | None = None,
        seed: int = 0,
        reverb: bool = True,
        room_ir: np.ndarray | None = None,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        stems: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Render a whole input, block by block, as `engine.streaming.render` does.

        Args:
            f0_hz, loudness_db: ``[t]`` (Hz, dB) at the model's frame rate.
            audio: ``[>= t * hop]`` input audio at the model's rate (z models, unless `z`).
            z: ``[t, z_dims]`` given latents (z models).
            seed: noise seed. reverb: False renders the dry mix.
            room_ir: ``[m]`` wet impulse response at the model's rate (first tap 0, no direct
                sound) used instead of `reverb_ir` (None: the model's own).
            block_frames: frames decoded per block; z models encode each block's audio on
                its own (padded to `block_frames` like TensorFlow's renderer, so use the same
                value to get the same z).
            stems: also return ``harmonic``, ``noise`` and ``reverb`` (wet part only).
            progress: called with the frames of each block once it is rendered.
        Returns:
            ``{"audio": float32 [t * hop], ...stems}``.
        """
        n = len(f0_hz)
        block = max(1, min(block_frames, n))
        stream = self.stream(seed, reverb, room_ir)
        out: dict[str, np.ndarray] = {}  # filled in place: one array per part kept, [n * hop]
        at = 0

        def keep(parts: dict[str, np.ndarray]) -> None:
            nonlocal at
            for key, value in parts.items():
                if key == "audio" or (stems and key in stream.synth.stems):
                    target = out.setdefault(key, np.zeros(n * self.hop, np.float32))
                    target[at : at + len(value)] = value
            at += len(parts["audio"])

        for first in range(0, n, block):
            count = min(block, n - first)
            keep(stream.push_parts(
                _held(f0_hz, first, count, count), _held(loudness_db, first, count, count),
                audio=self._block_audio(audio, first, count, block),
                z=None if z is None else np.asarray(z, np.float32)[first : first + count],
                z_frames=block,
            ))  # fmt: skip
            if progress is not None:
                progress(count)
        keep(stream.finish_parts())
        return out

    def _block_audio(
        self, audio: np.ndarray | None, first: int, count: int, block: int
    ) -> np.ndarray | None:
        """Block audio padded with zeros to `block` frames (TensorFlow's renderer's z input)."""
        if self.z_encoder is None or audio is None:
            return None
        piece = np.asarray(audio[first * self.hop : (first + count) * self.hop], np.float32)
        return np.pad(piece, (0, block * self.hop - len(piece)))


def _held(x: np.ndarray, first: int, count: int, size: int) -> np.ndarray:
    """Frames ``[first, first + count)`` of ``x``, the last held to `size` frames."""
    piece = np.asarray(x[first : first + count], np.float32)
    return np.pad(piece, (0, size - count), mode="edge")


class Stream:
    """Features in, audio out, a block at a time (any number of frames per block).

    `lag`: frames by which the output trails the input (the noise filter's look-ahead);
    `finish` releases them. Any split of a feature sequence into blocks gives the same samples
    (float32 rounding aside), except for z models, whose encoder frames each block's audio.
    """

    def __init__(
        self, runtime: Runtime, seed: int = 0, reverb: bool = True,
        room_ir: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """`room_ir`: ``[m]`` wet IR (model's rate, first tap 0) convolved instead of the
        model's `reverb_ir` (None: the model's own); `reverb` False: neither (dry)."""
        self.runtime = runtime
        runtime.decoder.reset()
        if runtime.z_encoder is not None:
            runtime.z_encoder.reset()
        ir = (runtime.reverb_ir if room_ir is None else room_ir) if reverb else None
        self.synth = synth_lib.SynthStream(runtime.synth, seed, ir)
        self.lag = self.synth.lag

    def push_parts(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        audio: np.ndarray | None = None,
        z: np.ndarray | None = None,
        z_frames: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Decode and synthesise the next ``t`` frames; the parts now final (see
        `synth.SynthStream.push`).

        Args:
            f0_hz, loudness_db: ``[t]`` Hz, dB.
            audio: the block's input audio ``[t * hop]`` (z models without `z`).
            z: ``[t, z_dims]``.
            z_frames: frames the z encoder resamples to (default ``t``; the first ``t`` kept).
        """
        t = len(f0_hz)
        if t == 0:
            return self.synth.empty()
        rt = self.runtime
        if rt.z_encoder is not None and z is None:
            if audio is None:
                raise InputError("this model has a z encoder: it needs the input audio or z")
            z = rt.z_encoder.push(audio, z_frames or t)[:t]
        raw = rt.decoder.push(f0_hz, loudness_db, z if rt.z_encoder is not None else None)
        # each node's scaling (none for a plugin file's outputs: physical already)
        return self.synth.push(self.synth.graph.scale(raw, f0_hz))

    def push(self, f0_hz: np.ndarray, loudness_db: np.ndarray,
             audio: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """`push_parts`' final mix only: ``[j * hop]`` float32."""
        parts = self.push_parts(f0_hz, loudness_db, audio)
        return parts.get("audio", np.zeros(0, np.float32))

    def finish_parts(self) -> dict[str, np.ndarray]:
        """The last `lag` frames' parts (the last frame held)."""
        return self.synth.finish()

    def finish(self) -> np.ndarray:
        """The last `lag` frames' final mix."""
        return self.finish_parts()["audio"]


def load(folder: str | Path, num_threads: int = 1) -> Runtime:
    """Load a model folder's runtime files (``runtime.json`` and what it names).

    Raises:
        ModelError: a file is missing, damaged or of the wrong shape (one line, naming it and
            how to get it again).
    """
    folder = Path(folder)
    desc = read_description(folder)
    kind = Decoder if desc["decoder"].get("controls") == "raw" else PluginDecoder
    decoder = kind(folder, desc["decoder"], num_threads)
    z_encoder = ZEncoder(folder, desc["z_encoder"], num_threads) if "z_encoder" in desc else None
    ir = _read_reverb(folder, desc["reverb"]) if "reverb" in desc else None
    return Runtime(folder, desc, decoder, z_encoder, ir, num_threads)
