"""Synthesizers and effects: frame-rate controls in, audio out (the one-shot TensorFlow renders
of the synthesis graph's nodes, `ddspcli.engine.graph`, which build them).

Each is a `tf.Module` (so trainable variables checkpoint with the model) with two steps:
`get_controls` scales raw network outputs into physical controls, and `__call__` renders
audio from raw outputs. Set ``scale_fn=None`` to pass physical controls directly.
"""

from __future__ import annotations

from collections.abc import Callable

from ddspcli.engine import dsp
from ddspcli.engine._tensorflow import tf

ScaleFn = Callable[[tf.Tensor], tf.Tensor] | None


def _scale(fn: ScaleFn, x: tf.Tensor) -> tf.Tensor:
    return dsp.tf_float32(x) if fn is None else fn(x)


class Harmonic(tf.Module):
    """Harmonic oscillator bank driven by f0, amplitude and harmonic distribution."""

    def __init__(
        self,
        n_samples: int = 64000,
        sample_rate: int = 16000,
        scale_fn: ScaleFn = dsp.exp_sigmoid,
        normalize_below_nyquist: bool = True,
        amp_resample_method: str = "window",
        name: str = "harmonic",
    ) -> None:
        super().__init__(name=name)
        self.n_samples = n_samples
        self.sample_rate = sample_rate
        self.scale_fn = scale_fn
        self.normalize_below_nyquist = normalize_below_nyquist
        self.amp_resample_method = amp_resample_method

    def get_controls(
        self, amplitudes: tf.Tensor, harmonic_distribution: tf.Tensor, f0_hz: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """Scale raw outputs.

        Args:
            amplitudes: ``[b, t, 1]`` raw (or linear, without `scale_fn`).
            harmonic_distribution: ``[b, t, k]`` raw weights.
            f0_hz: ``[b, t, 1]`` Hz.
        Returns:
            dict with ``amplitudes`` ``[b, t, 1]``, ``harmonic_distribution`` ``[b, t, k]``
            (summing to 1 below Nyquist when `normalize_below_nyquist`), ``f0_hz``.
        """
        amplitudes = _scale(self.scale_fn, amplitudes)
        distribution = _scale(self.scale_fn, harmonic_distribution)
        if self.normalize_below_nyquist:
            distribution = dsp.normalize_harmonics(distribution, f0_hz, self.sample_rate)
        return {
            "amplitudes": amplitudes,
            "harmonic_distribution": distribution,
            "f0_hz": dsp.tf_float32(f0_hz),
        }

    def get_signal(
        self,
        amplitudes: tf.Tensor,
        harmonic_distribution: tf.Tensor,
        f0_hz: tf.Tensor,
        initial_phase: tf.Tensor | None = None,
        n_samples: int | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Render scaled controls: ``(audio [b, n_samples], final_phase [b, 1, 1])``.

        `n_samples` overrides the length given at construction (for inputs of any length).
        """
        return dsp.harmonic_synthesis(
            f0_hz,
            amplitudes,
            harmonic_distribution,
            n_samples or self.n_samples,
            self.sample_rate,
            self.amp_resample_method,
            initial_phase,
        )

    def __call__(
        self, amplitudes: tf.Tensor, harmonic_distribution: tf.Tensor, f0_hz: tf.Tensor
    ) -> tf.Tensor:
        """Raw outputs to audio ``[b, n_samples]``."""
        controls = self.get_controls(amplitudes, harmonic_distribution, f0_hz)
        return self.get_signal(**controls)[0]


class FilteredNoise(tf.Module):
    """White noise shaped by a time-varying linear-phase filter (frequency sampling)."""

    def __init__(
        self,
        n_samples: int = 64000,
        window_size: int = 257,
        scale_fn: ScaleFn = dsp.exp_sigmoid,
        initial_bias: float = -5.0,
        name: str = "filtered_noise",
    ) -> None:
        super().__init__(name=name)
        self.n_samples = n_samples
        self.window_size = window_size
        self.scale_fn = scale_fn
        self.initial_bias = initial_bias

    def get_controls(self, magnitudes: tf.Tensor) -> dict[str, tf.Tensor]:
        """``[b, t, k]`` raw outputs -> linear magnitudes (bias shifts the start quieter)."""
        if self.scale_fn is None:
            return {"magnitudes": dsp.tf_float32(magnitudes)}
        return {"magnitudes": self.scale_fn(dsp.tf_float32(magnitudes) + self.initial_bias)}

    def get_signal(self, magnitudes: tf.Tensor, noise: tf.Tensor | None = None) -> tf.Tensor:
        """Filter `noise` (default: uniform in [-1, 1]) by `magnitudes` ``[b, t, k]``.

        Returns:
            ``[b, n_samples]``.
        """
        if noise is None:
            batch = tf.shape(magnitudes)[0]
            noise = tf.random.uniform([batch, self.n_samples], -1.0, 1.0)
        return dsp.frequency_filter(noise, magnitudes, window_size=self.window_size)

    @staticmethod
    def white(magnitudes: tf.Tensor, n_samples: int, seed: tf.Tensor | None = None) -> tf.Tensor:
        """Uniform noise ``[b, n_samples]`` in [-1, 1) for ``[b, t, k]`` magnitudes, drawn
        statelessly from `seed` (``[2]`` int; default ``[0, 0]``) so runs are repeatable."""
        seed = tf.constant([0, 0], tf.int32) if seed is None else seed
        shape = tf.stack([tf.shape(magnitudes)[0], n_samples])
        return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)

    def __call__(self, magnitudes: tf.Tensor) -> tf.Tensor:
        """Raw outputs to audio ``[b, n_samples]``."""
        return self.get_signal(**self.get_controls(magnitudes))


class Stateless(tf.Module):
    """The module of a graph node without weights whose render lives in its node
    (`graph.Node.tf_module`'s default): an entry in the model's checkpoint, nothing more."""


class Reverb(tf.Module):
    """Convolution reverb with a learnable impulse response and a dry path.

    The IR's first tap is forced to 0 so the dry signal is carried by the dry path only.
    """

    def __init__(
        self,
        reverb_length: int = 48000,
        trainable: bool = True,
        add_dry: bool = True,
        name: str = "reverb",
        rng: tf.random.Generator | None = None,
    ) -> None:
        super().__init__(name=name)
        self.reverb_length = reverb_length
        self.add_dry = add_dry
        self.ir = None
        if trainable:  # a near-silent random start (seeded through `rng` when given)
            noise = rng.normal([reverb_length], stddev=1e-6) if rng else None
            if noise is None:
                noise = tf.random.normal([reverb_length], stddev=1e-6)
            self.ir = tf.Variable(noise, name="ir")

    def get_controls(self, audio: tf.Tensor, ir: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Pick the IR (the variable when trainable) as ``[b, ir]`` or ``[1, ir]`` (shared)."""
        ir = self.ir if ir is None else ir
        if ir is None:
            raise ValueError("a non-trainable Reverb needs an impulse response")
        ir = dsp.tf_float32(ir)
        if ir.shape.rank == 1:
            ir = ir[None, :]  # [1, m]: shared by the batch (one FFT of the IR, broadcast)
        return {"audio": dsp.tf_float32(audio), "ir": ir}

    @staticmethod
    def effective_ir(ir: tf.Tensor) -> tf.Tensor:
        """The IR as applied: ``[..., m]`` with its first tap (the dry path's job) zeroed."""
        return tf.concat([tf.zeros_like(ir[..., :1]), ir[..., 1:]], axis=-1)

    def get_signal(self, audio: tf.Tensor, ir: tf.Tensor) -> tf.Tensor:
        """``[b, n]`` audio, ``[b or 1, m]`` IR -> ``[b, n]`` (wet, plus dry when `add_dry`)."""
        ir = self.effective_ir(ir)
        wet = dsp.fft_convolve(audio, ir, padding="same", delay_compensation=0)
        return wet + audio if self.add_dry else wet

    def __call__(self, audio: tf.Tensor, ir: tf.Tensor | None = None) -> tf.Tensor:
        """Apply the reverb to ``[b, n]`` audio."""
        return self.get_signal(**self.get_controls(audio, ir))
