"""Block-by-block rendering of a model in TensorFlow, for inputs of any length in bounded memory:
the reference the runtime is checked against, and the path of tools holding a `LoadedModel`.

The decoder runs over blocks of frames with its GRU state carried (`model.controls`, a
`tf.function`); the synthesis graph is streamed by the same `graph.GraphStream` as the
runtime's, with each node's TensorFlow kernels (`graph.Node.tf_kernels`: `dsp`'s harmonic
synthesis, noise and FIR filter, an overlap-add FFT convolution for the reverb) in place of
its NumPy ones, so each block is the arithmetic of a one-shot render:

* harmonic: samples of frame ``j`` crossfade from frame ``j`` to ``j + 1``, so a frame is
  rendered once its successor is known; the fundamental's phase is carried in float64;
* filtered noise: each frame's ``hop`` samples of the seeded stream (`dsp.white_noise`) are
  convolved with that frame's FIR and overlap-added; a sample is final once the frames
  ``ceil(delay / hop)`` ahead are in;
* reverb: each dry block convolved with the impulse response, the ``ir - 1`` tail carried.

Output therefore lags the decoder by `StreamRenderer.lag` frames, and the last frames are
rendered by `finish` with the last frame held, as a one-shot render does. Only the z encoder
of ``--z`` models restarts its MFCC framing at each block (its GRU state is carried).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ddspcli.engine._tensorflow import tf
from ddspcli.engine.graph import GraphStream
from ddspcli.engine.model import Autoencoder

DEFAULT_BLOCK_FRAMES = 2500  # 10 s at 250 frames/s


def reference_stream(model: Autoencoder, seed: int = 0, reverb: bool = True) -> GraphStream:
    """The model's synthesis graph streamed with its TensorFlow kernels and trained weights
    (``reverb`` False: its sources only). `push` takes physical controls ``[t, ...]``."""
    graph = model.graph if reverb else model.graph.dry()
    modules = {n.attr: model.node_module(n) for n in graph.nodes}
    weights = {n.attr: n.runtime_weights(modules[n.attr]) for n in graph.nodes}
    kernels = {n.attr: n.tf_kernels(modules[n.attr]) for n in graph.nodes}
    return graph.stream(seed, weights, kernels)


class StreamRenderer:
    """Render a model's audio for a whole feature dict, one block of frames at a time.

    Args:
        model: the autoencoder (weights loaded).
        seed: seed of the noise stream.
        block_frames: frames decoded per block (memory grows linearly with it).
        reverb: False renders without the graph's effects (``audio`` is then the dry mix).
    """

    def __init__(self, model: Autoencoder, seed: int = 0,
                 block_frames: int = DEFAULT_BLOCK_FRAMES, reverb: bool = True):  # fmt: skip
        if block_frames < 1:
            raise ValueError("block_frames must be at least 1")
        self.model, self.seed, self.block_frames, self.reverb = model, seed, block_frames, reverb
        self.hop = model.hop
        self.lag = model.graph.lag
        graph = model.graph if reverb else model.graph.dry()
        self.parts = ("audio", "dry", *graph.stems)  # what `render` can return
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
            parts: any of `parts`: ``audio`` (final), ``dry`` (before the effects), each
                source (``harmonic``, ``noise``) and each effect's wet part (``reverb``).
            progress: called with the number of frames decoded after each block.
        Returns:
            ``{part: float32 [t * hop]}``.
        """
        unknown = set(parts) - set(self.parts)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; choose from {self.parts}")
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
            self._write(self._synth.push({k: np.asarray(v)[0, :count]
                                          for k, v in controls.items()}))  # fmt: skip
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
        self._synth = reference_stream(self.model, self.seed, self.reverb)
        self._out = {p: np.zeros(n_frames * self.hop, np.float32) for p in parts}
        self._at = 0  # samples written

    def _write(self, parts: dict[str, np.ndarray]) -> None:
        """Store the samples the graph's stream released."""
        n = len(parts["audio"])
        for name, out in self._out.items():
            out[self._at : self._at + n] = parts[name]
        self._at += n


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
    ``{"audio": [n]}`` plus those of `parts` the graph has (each source, e.g. ``harmonic``,
    ``noise``, and each effect's wet part, ``reverb``). `settings`: a
    `transfer.RenderSettings` (its ``block_s``, ``reverb``, ``seed``).

    ``audio`` is the final mix (dry when ``settings.reverb`` is off), so the stems sum to it.
    """
    model = loaded.model
    block = max(1, round(settings.block_s * model.frame_rate))
    renderer = StreamRenderer(model, settings.seed, block, reverb=settings.reverb)
    wanted = ("audio", *(p for p in parts if p in renderer.parts and p not in ("audio", "dry")))
    return renderer.render(features, audio, wanted, progress)
