"""Block-by-block rendering of a model, for inputs of any length in bounded memory.

The decoder runs over blocks of frames with its GRU state carried; the synthesizers are
streamed with exactly the arithmetic of a one-shot render:

* harmonic: samples of frame ``j`` crossfade from frame ``j`` to ``j + 1`` (window amplitude
  upsampling, linear f0 interpolation), so a frame is rendered once its successor is known;
  the fundamental's phase is carried in float64;
* filtered noise: each frame's ``hop`` white-noise samples are convolved with that frame's FIR
  (full convolution) and overlap-added into a running buffer; the linear-phase delay means a
  sample is final once the frames ``ceil(delay / hop)`` ahead are in. The white noise is a
  seeded stream (`dsp.white_noise`) so any block split draws the same samples;
* reverb: overlap-add convolution of each dry block with the impulse response, carrying the
  ``ir - 1`` sample tail.

Output therefore lags the decoder by `StreamRenderer.lag` frames, and the last frames are
rendered by `finish` with the last frame held, as a one-shot render does. Only the z encoder
of ``--z`` models restarts its MFCC framing at each block (its GRU state is carried).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ddspcli.engine import dsp
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.model import Autoencoder

PARTS = ("audio", "harmonic", "noise", "dry")
DEFAULT_BLOCK_FRAMES = 2500  # 10 s at 250 frames/s


class StreamRenderer:
    """Render a model's audio for a whole feature dict, one block of frames at a time.

    Args:
        model: the autoencoder (weights loaded).
        seed: seed of the noise stream.
        block_frames: frames decoded per block (memory grows linearly with it).
    """

    def __init__(self, model: Autoencoder, seed: int = 0, block_frames: int = DEFAULT_BLOCK_FRAMES):
        if block_frames < 1:
            raise ValueError("block_frames must be at least 1")
        self.model, self.seed, self.block_frames = model, seed, block_frames
        self.hop = model.hop
        self.noise_crop = 0
        if model.noise is not None:
            probe = tf.zeros([1, 1, model.n_noise_bands])
            ir_size = int(dsp.frequency_impulse_response(probe, model.noise.window_size).shape[-1])
            self.noise_crop = dsp.filter_delay(ir_size)  # what a one-shot `same` drops
        self.lag = max(1, math.ceil(self.noise_crop / self.hop))
        self._controls = tf.function(model.controls)

    # -- public -------------------------------------------------------------------------------

    def render(
        self,
        features: dict[str, np.ndarray],
        audio: np.ndarray | None = None,
        parts: tuple[str, ...] = ("audio",),
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Render every frame.

        Args:
            features: ``f0_hz`` (Hz), ``loudness_db`` (dB), ``[t]`` each at the model's
                frame rate; a z model may take ``z`` ``[t, z_dims]`` instead of the audio.
            audio: ``[>= t * hop]`` input audio at the model's rate; needed by z models only
                (when no ``z`` is given).
            parts: any of ``audio`` (final), ``harmonic``, ``noise``, ``dry`` (before reverb).
            progress: called with the number of frames decoded after each block.
        Returns:
            ``{part: float32 [t * hop]}``.
        """
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
        n_frames = len(features["f0_hz"])
        if n_frames == 0:
            return {p: np.zeros(0, np.float32) for p in parts}
        self._start(n_frames, parts)
        block = min(self.block_frames, n_frames)
        state = self._initial_state()
        for first in range(0, n_frames, block):
            count = min(block, n_frames - first)
            inputs = self._block_inputs(features, audio, first, count, block)
            controls, state = self._controls(inputs, state)
            self._push({k: v[:, :count] for k, v in controls.items()}, first)
            if progress is not None:
                progress(count)
        self._finish()
        return self._out

    # -- decoder --------------------------------------------------------------------------------

    def _initial_state(self) -> dict[str, tf.Tensor]:
        state = {"rnn": tf.zeros([1, self.model.rnn.units])}
        if self.model.encoder is not None:
            state["z_rnn"] = tf.zeros([1, self.model.encoder.rnn.units])
        return state

    def _block_inputs(
        self,
        features: dict[str, np.ndarray],
        audio: np.ndarray | None,
        first: int,
        count: int,
        block: int,
    ) -> dict[str, tf.Tensor]:
        """Frames ``[first, first + count)`` padded (last value held) to `block` frames, so
        every block has the same shape and the decoder is traced once."""

        def frames(name: str) -> tf.Tensor:
            x = np.asarray(features[name][first : first + count], np.float32)
            return tf.constant(np.pad(x, (0, block - count), mode="edge")[None])

        inputs = {"f0_hz": frames("f0_hz"), "loudness_db": frames("loudness_db")}
        if self.model.encoder is not None and "z" in features:  # given z: the encoder rests
            z = np.asarray(features["z"][first : first + count], np.float32)
            inputs["z"] = tf.constant(np.pad(z, ((0, block - count), (0, 0)), mode="edge")[None])
        elif self.model.encoder is not None:
            if audio is None:
                raise ValueError("this model has a z encoder: it needs the input audio or z")
            piece = np.asarray(audio[first * self.hop : (first + count) * self.hop], np.float32)
            piece = np.pad(piece, (0, block * self.hop - len(piece)))
            inputs["audio"] = tf.constant(piece[None])
        return inputs

    # -- synthesizers -----------------------------------------------------------------------------

    def _start(self, n_frames: int, parts: tuple[str, ...]) -> None:
        self._n_frames = n_frames
        self._out = {p: np.zeros(n_frames * self.hop, np.float32) for p in parts}
        self._pending: dict[str, tf.Tensor] = {}  # controls of frames [emitted, decoded)
        self._emitted = 0  # frames whose samples are final
        self._phase: tf.Tensor | None = None
        self._noise_buffer = np.zeros(0, np.float32)  # full convolution from sample _noise_at
        self._noise_at = 0
        ir = self.model.reverb.ir if self.model.reverb is not None else None
        self._ir = None if ir is None else self.model.reverb.effective_ir(dsp.tf_float32(ir))
        self._tail = None if ir is None else np.zeros(int(ir.shape[0]) - 1, np.float32)

    def _push(self, controls: dict[str, tf.Tensor], first: int) -> None:
        """Take the controls of frames ``[first, first + t)``; emit what is now final."""
        if "noise_magnitudes" in controls:
            self._add_noise(controls.pop("noise_magnitudes"), first)
        self._pending = (
            {k: tf.concat([self._pending[k], v], axis=1) for k, v in controls.items()}
            if self._pending
            else controls
        )
        decoded = first + int(controls["f0_hz"].shape[1])
        self._emit(decoded - self.lag)

    def _finish(self) -> None:
        """Emit the last frames, the last one held (as a one-shot render ends)."""
        self._pending = {k: tf.concat([v, v[:, -1:]], axis=1) for k, v in self._pending.items()}
        self._emit(self._n_frames)

    def _emit(self, until: int) -> None:
        """Render frames ``[emitted, until)`` from pending controls (one frame of lookahead)."""
        count = until - self._emitted
        if count <= 0:
            return
        lookahead = {k: v[:, : count + 1] for k, v in self._pending.items()}
        harmonic, self._phase = dsp.harmonic_synthesis(
            lookahead["f0_hz"],
            lookahead["amplitudes"],
            lookahead["harmonic_distribution"],
            (count + 1) * self.hop,
            self.model.sample_rate,
            self.model.harmonic.amp_resample_method,
            self._phase,
            lookahead=True,
        )
        start, stop = self._emitted * self.hop, until * self.hop
        parts = {"harmonic": harmonic[0].numpy()}
        dry = parts["harmonic"]
        if self.model.noise is not None:
            parts["noise"] = self._take_noise(start, stop)
            dry = dry + parts["noise"]
        parts["dry"] = dry
        if "audio" in self._out:
            parts["audio"] = self._reverb(dry) if self._ir is not None else dry
        for name, out in self._out.items():
            out[start:stop] = parts.get(name, 0.0)
        self._pending = {k: v[:, count:] for k, v in self._pending.items()}
        self._emitted = until

    def _add_noise(self, magnitudes: tf.Tensor, first: int) -> None:
        """Filter frames ``[first, first + t)``'s white noise; overlap-add into the buffer."""
        n = int(magnitudes.shape[1]) * self.hop
        white = dsp.white_noise(self.seed, first * self.hop, n)[None]
        irs = dsp.frequency_impulse_response(magnitudes, self.model.noise.window_size)
        full = dsp.fft_convolve(white, irs, padding="valid")[0].numpy()
        offset = first * self.hop - self._noise_at
        needed = offset + len(full)
        if needed > len(self._noise_buffer):
            self._noise_buffer = np.pad(self._noise_buffer, (0, needed - len(self._noise_buffer)))
        self._noise_buffer[offset:needed] += full

    def _take_noise(self, start: int, stop: int) -> np.ndarray:
        """Final noise samples ``[start, stop)``; drops the buffer before them."""
        lo, hi = start + self.noise_crop - self._noise_at, stop + self.noise_crop - self._noise_at
        piece = self._noise_buffer[lo:hi].copy()
        self._noise_buffer = self._noise_buffer[hi:]
        self._noise_at += hi
        return piece

    def _reverb(self, dry: np.ndarray) -> np.ndarray:
        """Dry block -> dry + wet, carrying the convolution tail to the next block."""
        wet = dsp.fft_convolve(dry[None], self._ir[None], padding="valid")[0].numpy()
        wet[: len(self._tail)] += self._tail
        self._tail = wet[len(dry) :]
        return dry + wet[: len(dry)]
