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

from ddspcli.engine import dsp, npdsp
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.model import Autoencoder

PARTS = ("audio", "harmonic", "noise", "dry")
DEFAULT_BLOCK_FRAMES = 2500  # 10 s at 250 frames/s


class SynthStream:
    """The harmonic and filtered-noise synthesizers fed controls a few frames at a time.

    `push` takes the controls of the next frames and returns the samples that are now final
    (the frames up to `lag` behind the newest): ``harmonic``, ``noise`` (when the model has
    noise) and ``dry`` (their sum), each ``[k * hop]`` for the ``k`` frames released. `finish`
    releases the rest with the last frame held. Any split of the frames gives the same samples
    as a one-shot render (float32 rounding aside).

    Args:
        model: the autoencoder (weights loaded). seed: seed of the noise stream.
        compiled: run the synthesizers as `tf.function` graphs, traced once per block shape
            (XLA would save another 0.4 ms per 20 ms block but costs seconds of compiling per
            shape).
        numpy: run them with `npdsp` instead (``window`` amplitude upsampling only, else
            the TensorFlow path): for many small blocks (live), where TensorFlow's fixed cost
            per graph run is most of the work (2.6-3.0 -> 0.46-0.53 ms per 20 ms block).
    """

    def __init__(
        self, model: Autoencoder, seed: int = 0, compiled: bool = False, numpy: bool = False
    ) -> None:
        self.model, self.seed, self.hop = model, seed, model.hop
        self.numpy = numpy and model.harmonic.amp_resample_method == "window"
        self.noise_crop = 0
        if model.noise is not None:
            probe = tf.zeros([1, 1, model.n_noise_bands])
            ir_size = int(dsp.frequency_impulse_response(probe, model.noise.window_size).shape[-1])
            self.noise_crop = dsp.filter_delay(ir_size)  # what a one-shot `same` drops
        self.lag = max(1, math.ceil(self.noise_crop / self.hop))
        self.reset()
        if compiled:
            self._harmonic = tf.function(dsp.harmonic_synthesis)
            self._filter = tf.function(self._filtered_noise)
        else:
            self._harmonic, self._filter = dsp.harmonic_synthesis, self._filtered_noise

    def reset(self) -> None:
        """Back to the start of a stream (compiled graphs kept)."""
        self.decoded = 0  # frames pushed
        self.emitted = 0  # frames whose samples are final
        self._pending: dict[str, np.ndarray] = {}  # controls of frames [emitted, decoded)
        self._phase: tf.Tensor | float | None = None  # float64 radians on the numpy path
        self._noise_buffer = np.zeros(0, np.float32)  # full convolution from sample _noise_at
        self._noise_at = 0

    def _filtered_noise(self, white: tf.Tensor, magnitudes: tf.Tensor) -> tf.Tensor:
        """``[1, t * hop]`` white noise through each frame's FIR: the full convolution."""
        irs = dsp.frequency_impulse_response(magnitudes, self.model.noise.window_size)
        return dsp.fft_convolve(white, irs, padding="valid")[0]

    def push(self, controls: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
        """Take the controls ``[1, t, ...]`` of the next ``t`` frames; return what is final."""
        controls = {k: np.asarray(v) for k, v in controls.items()}  # cheap slicing below
        first = self.decoded
        if "noise_magnitudes" in controls:
            self._add_noise(controls.pop("noise_magnitudes"), first)
        self._pending = (
            {k: np.concatenate([self._pending[k], v], axis=1) for k, v in controls.items()}
            if self._pending
            else controls
        )
        self.decoded = first + int(controls["f0_hz"].shape[1])
        return self._emit(self.decoded - self.lag)

    def finish(self) -> dict[str, np.ndarray]:
        """Release the last frames, the last one held (as a one-shot render ends)."""
        if not self._pending:
            return self._emit(self.emitted)
        self._pending = {k: np.concatenate([v, v[:, -1:]], axis=1)
                         for k, v in self._pending.items()}  # fmt: skip
        return self._emit(self.decoded)

    def _emit(self, until: int) -> dict[str, np.ndarray]:
        """Render frames ``[emitted, until)`` from pending controls (one frame of lookahead)."""
        count = until - self.emitted
        if count <= 0:
            empty = np.zeros(0, np.float32)
            return {"harmonic": empty, "dry": empty} | ({"noise": empty} if self.model.noise
                                                        is not None else {})  # fmt: skip
        lookahead = {k: v[:, : count + 1] for k, v in self._pending.items()}
        parts = {"harmonic": self._render_harmonic(lookahead, count)}
        parts["dry"] = parts["harmonic"]
        if self.model.noise is not None:
            parts["noise"] = self._take_noise(self.emitted * self.hop, until * self.hop)
            parts["dry"] = parts["harmonic"] + parts["noise"]
        self._pending = {k: v[:, count:] for k, v in self._pending.items()}
        self.emitted = until
        return parts

    def _render_harmonic(self, lookahead: dict[str, np.ndarray], count: int) -> np.ndarray:
        """The `count` frames' harmonic samples ``[count * hop]`` (plus one frame of controls
        for the crossfade); the oscillator phase carried in `_phase`."""
        if self.numpy:
            harmonic, self._phase = npdsp.harmonic_synthesis(
                lookahead["f0_hz"][0, :, 0], lookahead["amplitudes"][0, :, 0],
                lookahead["harmonic_distribution"][0], self.hop, self.model.sample_rate,
                self._phase or 0.0,
            )  # fmt: skip
            return harmonic
        harmonic, self._phase = self._harmonic(
            lookahead["f0_hz"],
            lookahead["amplitudes"],
            lookahead["harmonic_distribution"],
            (count + 1) * self.hop,
            self.model.sample_rate,
            self.model.harmonic.amp_resample_method,
            self._phase,
            lookahead=True,
        )
        return harmonic[0].numpy()

    def _add_noise(self, magnitudes: np.ndarray, first: int) -> None:
        """Filter frames ``[first, first + t)``'s white noise; overlap-add into the buffer."""
        n = int(magnitudes.shape[1]) * self.hop
        white = dsp.white_noise(self.seed, first * self.hop, n)
        if self.numpy:
            irs = npdsp.impulse_responses(magnitudes[0], self.model.noise.window_size)
            full = npdsp.filter_blocks(white, irs)
        else:
            full = self._filter(tf.constant(white[None]), magnitudes).numpy()
        offset = first * self.hop - self._noise_at
        needed = offset + len(full)
        if needed > len(self._noise_buffer):
            self._noise_buffer = np.pad(self._noise_buffer, (0, needed - len(self._noise_buffer)))
        self._noise_buffer[offset:needed] += full

    def _take_noise(self, start: int, stop: int) -> np.ndarray:
        """Final noise samples ``[start, stop)``; drops the buffer before them."""
        lo, hi = start + self.noise_crop - self._noise_at, stop + self.noise_crop - self._noise_at
        piece = self._noise_buffer[lo:hi].copy()
        if len(piece) < stop - start:  # the buffer's end: no noise filtered beyond it
            piece = np.pad(piece, (0, stop - start - len(piece)))
        self._noise_buffer = self._noise_buffer[hi:]
        self._noise_at += hi
        return piece


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
        self.lag = SynthStream(model, seed).lag
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
        state = initial_state(self.model)
        for first in range(0, n_frames, block):
            count = min(block, n_frames - first)
            inputs = self._block_inputs(features, audio, first, count, block)
            controls, state = self._controls(inputs, state)
            self._write(self._synth.push({k: v[:, :count] for k, v in controls.items()}))
            if progress is not None:
                progress(count)
        self._write(self._synth.finish())
        return self._out

    # -- decoder --------------------------------------------------------------------------------

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

    # -- output -----------------------------------------------------------------------------------

    def _start(self, n_frames: int, parts: tuple[str, ...]) -> None:
        self._synth = SynthStream(self.model, self.seed)
        self._out = {p: np.zeros(n_frames * self.hop, np.float32) for p in parts}
        self._at = 0  # samples written
        ir = self.model.reverb.ir if self.model.reverb is not None else None
        self._ir = None if ir is None else self.model.reverb.effective_ir(dsp.tf_float32(ir))
        self._tail = None if ir is None else np.zeros(int(ir.shape[0]) - 1, np.float32)

    def _write(self, parts: dict[str, np.ndarray]) -> None:
        """Store the samples `SynthStream` released (and the reverb of their dry sum)."""
        n = len(parts["dry"])
        if n == 0:
            return
        if "audio" in self._out:
            parts["audio"] = self._reverb(parts["dry"]) if self._ir is not None else parts["dry"]
        for name, out in self._out.items():
            out[self._at : self._at + n] = parts.get(name, 0.0)
        self._at += n

    def _reverb(self, dry: np.ndarray) -> np.ndarray:
        """Dry block -> dry + wet, carrying the convolution tail to the next block."""
        wet = dsp.fft_convolve(dry[None], self._ir[None], padding="valid")[0].numpy()
        wet[: len(self._tail)] += self._tail
        self._tail = wet[len(dry) :]
        return dry + wet[: len(dry)]


def initial_state(model: Autoencoder) -> dict[str, tf.Tensor]:
    """Zero recurrent state of the decoder (and of the z encoder's GRU), batch 1."""
    state = {"rnn": tf.zeros([1, model.rnn.units])}
    if model.encoder is not None:
        state["z_rnn"] = tf.zeros([1, model.encoder.rnn.units])
    return state


def render(
    loaded,
    features: dict[str, np.ndarray],
    audio: np.ndarray | None,
    settings,
    parts: tuple[str, ...] = (),
    progress=None,
) -> dict[str, np.ndarray]:
    """The TensorFlow render of adjusted features (`StreamRenderer`: the reference
    the runtime is checked against, and the path of tools that hold a `LoadedModel`):
    ``{"audio": [n]}`` plus any of ``harmonic``, ``noise``, ``reverb``. `settings`: a
    `transfer.RenderSettings` (its ``block_s``, ``reverb``, ``seed``).

    ``audio`` is the final mix (dry when ``settings.reverb`` is off); ``reverb`` is the wet
    part alone, so ``harmonic + noise + reverb == audio``.
    """
    model = loaded.model
    block = max(1, round(settings.block_s * model.frame_rate))
    wet = settings.reverb and model.reverb is not None
    final = "audio" if wet else "dry"
    wanted = {final} | ({"dry"} if wet and "reverb" in parts else set())
    wanted |= {p for p in parts if p in ("harmonic", "noise") and (p != "noise" or model.noise)}
    renderer = StreamRenderer(model, settings.seed, block)
    out = renderer.render(features, audio, tuple(sorted(wanted)), progress)
    result = {"audio": out.pop(final)}
    if "dry" in out:
        result["reverb"] = result["audio"] - out.pop("dry")
    result.update(out)
    return result
