"""Small neural-network layers as `tf.Module`s: dense, layer norm, MLP stack, GRU.

Plain modules (not Keras layers) so that variables are created eagerly from an explicit seed,
checkpoint under stable names, and the GRU can carry its state across blocks of a long input.
Shapes use ``b`` batch, ``t`` frames, ``c`` channels.
"""

from __future__ import annotations

import math

import tensorflow as tf


def glorot_uniform(rng: tf.random.Generator, shape: list[int]) -> tf.Tensor:
    """Glorot/Xavier uniform init for a ``[fan_in, fan_out]`` kernel."""
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(shape, -limit, limit)


def orthogonal(rng: tf.random.Generator, rows: int, cols: int) -> tf.Tensor:
    """A ``[rows, cols]`` matrix with orthonormal columns (or rows), for recurrent kernels."""
    q, r = tf.linalg.qr(rng.normal([max(rows, cols), min(rows, cols)]))
    q = q * tf.sign(tf.linalg.diag_part(r))
    return q if rows >= cols else tf.transpose(q)


class Dense(tf.Module):
    """``y = x W + b``: ``[..., c_in] -> [..., c_out]``."""

    def __init__(self, c_in: int, c_out: int, rng: tf.random.Generator, name: str = "dense"):
        super().__init__(name=name)
        self.kernel = tf.Variable(glorot_uniform(rng, [c_in, c_out]), name="kernel")
        self.bias = tf.Variable(tf.zeros([c_out]), name="bias")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.tensordot(x, self.kernel, 1) + self.bias


class LayerNorm(tf.Module):
    """Normalise the last axis to zero mean and unit variance, then scale and shift."""

    def __init__(self, channels: int, epsilon: float = 1e-3, name: str = "layer_norm"):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([channels]), name="gamma")
        self.beta = tf.Variable(tf.zeros([channels]), name="beta")
        self.epsilon = epsilon

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.epsilon) * self.gamma + self.beta


class MLP(tf.Module):
    """``layers`` x (dense -> layer norm -> leaky ReLU): ``[..., c_in] -> [..., units]``."""

    def __init__(
        self, c_in: int, units: int, layers: int, rng: tf.random.Generator, name: str = "mlp"
    ):
        super().__init__(name=name)
        self.dense = [Dense(c_in if i == 0 else units, units, rng) for i in range(layers)]
        self.norm = [LayerNorm(units) for _ in range(layers)]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for dense, norm in zip(self.dense, self.norm, strict=True):
            x = tf.nn.leaky_relu(norm(dense(x)), alpha=0.2)
        return x


class GRU(tf.Module):
    """Gated recurrent unit over time (Keras' ``reset_after`` form, the cuDNN-compatible one).

    The input projection of all frames is one matrix product; only ``h @ U`` runs step by step.

    Gates per frame: ``z = s(x Wz + h Uz + b)``, ``r = s(x Wr + h Ur + b)``,
    ``n = tanh(x Wn + bx + r * (h Un + bh))``, ``h' = z * h + (1 - z) * n``.
    """

    def __init__(self, c_in: int, units: int, rng: tf.random.Generator, name: str = "gru"):
        super().__init__(name=name)
        self.units = units
        self.kernel = tf.Variable(glorot_uniform(rng, [c_in, 3 * units]), name="kernel")
        recurrent = [orthogonal(rng, units, units) for _ in range(3)]
        self.recurrent_kernel = tf.Variable(tf.concat(recurrent, axis=1), name="recurrent_kernel")
        self.bias = tf.Variable(tf.zeros([2, 3 * units]), name="bias")

    def __call__(
        self, x: tf.Tensor, initial_state: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``[b, t, c_in]`` (and ``[b, units]`` state) -> ``([b, t, units], final [b, units])``."""
        projected = tf.tensordot(x, self.kernel, 1) + self.bias[0]  # [b, t, 3u]
        if initial_state is None:
            initial_state = tf.zeros([tf.shape(x)[0], self.units], x.dtype)
        u = self.units
        recurrent_kernel, recurrent_bias = self.recurrent_kernel, self.bias[1]

        def step(h: tf.Tensor, xp: tf.Tensor) -> tf.Tensor:
            hp = tf.matmul(h, recurrent_kernel) + recurrent_bias
            z = tf.sigmoid(xp[:, :u] + hp[:, :u])
            r = tf.sigmoid(xp[:, u : 2 * u] + hp[:, u : 2 * u])
            n = tf.tanh(xp[:, 2 * u :] + r * hp[:, 2 * u :])
            return z * h + (1.0 - z) * n

        outputs = tf.scan(step, tf.transpose(projected, [1, 0, 2]), initializer=initial_state)
        outputs = tf.transpose(outputs, [1, 0, 2])
        return outputs, outputs[:, -1]


def count_parameters(module: tf.Module) -> int:
    """Number of trainable scalars in a module."""
    return int(sum(math.prod(v.shape) for v in module.trainable_variables))
