"""Small neural-network layers as `tf.Module`s: dense, layer norm, MLP stack, GRU.

Plain modules (not Keras layers) so that variables are created eagerly from an explicit seed,
checkpoint under stable names, and the GRU can carry its state across blocks of a long input.
Shapes use ``b`` batch, ``t`` frames, ``c`` channels.
"""

from __future__ import annotations

import math

from ddspcli.engine._tensorflow import tf


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


class InstanceNorm(tf.Module):
    """Normalise each channel over time (the whole input at once), then scale and shift: the
    official library's ``Normalize('instance')`` on ``[b, t, c]`` (variance epsilon 1e-5)."""

    def __init__(self, channels: int, epsilon: float = 1e-5, name: str = "instance_norm"):
        super().__init__(name=name)
        self.scale = tf.Variable(tf.ones([channels]), name="scale")
        self.shift = tf.Variable(tf.zeros([channels]), name="shift")
        self.epsilon = epsilon

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """``[b, t, c]`` -> ``[b, t, c]``."""
        mean, var = tf.nn.moments(x, axes=[1], keepdims=True)
        return (x - mean) / tf.sqrt(var + self.epsilon) * self.scale + self.shift


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
        kernel = tf.identity(self.recurrent_kernel)  # a tensor: the gradient flows back to it
        outputs = gru_recurrence(
            tf.transpose(projected, [1, 0, 2]), kernel, self.bias[1], initial_state
        )
        outputs = tf.transpose(outputs, [1, 0, 2])
        return outputs, outputs[:, -1]

    def step(self, x: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        """One frame in plain ops (no XLA loop; for TFLite export): ``[b, c_in]`` input and
        ``[b, units]`` state -> the new ``[b, units]`` state (also the frame's output)."""
        projected = tf.matmul(x, self.kernel) + self.bias[0]
        return _gru_step(state, projected, self.recurrent_kernel, self.bias[1], self.units)[0]


def _gru_step(h, xp, kernel, bias, u):
    """One step: ``(h', z, r, n, hn)`` where ``hn = (h U + b)[:, 2u:]``."""
    hp = tf.matmul(h, kernel) + bias
    z = tf.sigmoid(xp[:, :u] + hp[:, :u])
    r = tf.sigmoid(xp[:, u : 2 * u] + hp[:, u : 2 * u])
    hn = hp[:, 2 * u :]
    n = tf.tanh(xp[:, 2 * u :] + r * hn)
    return z * h + (1.0 - z) * n, z, r, n, hn


@tf.function(jit_compile=True, autograph=False)
def _forward_loop(projected, kernel, bias, initial_state):
    """``[t, b, 3u]`` -> per-step ``(h, z, r, n, hn)``, each ``[t, b, u]`` (XLA: one fused
    kernel per step instead of a dozen small ops)."""
    u = int(kernel.shape[0])
    first = (initial_state, *[tf.zeros_like(initial_state)] * 4)
    return tf.scan(
        lambda carry, xp: _gru_step(carry[0], xp, kernel, bias, u), projected, initializer=first
    )


@tf.function(jit_compile=True, autograph=False)
def _backward_loop(d_h, h_prev, z, r, n, hn, kernel):
    """Reverse-time loop carrying only the state gradient; returns ``(d_h0 per step,
    d_hp [t, b, 3u], d_xp [t, b, 3u])``."""

    def step(carry, inputs):
        d_total = inputs[0] + carry[0]
        hp_t, z_t, r_t, n_t, hn_t = inputs[1:]
        d_n = d_total * (1.0 - z_t) * (1.0 - n_t * n_t)
        d_z = d_total * (hp_t - n_t) * z_t * (1.0 - z_t)
        d_r = d_n * hn_t * r_t * (1.0 - r_t)
        d_hp = tf.concat([d_z, d_r, d_n * r_t], axis=-1)
        d_xp = tf.concat([d_z, d_r, d_n], axis=-1)
        d_prev = d_total * z_t + tf.matmul(d_hp, kernel, transpose_b=True)
        return d_prev, d_hp, d_xp

    zero = tf.zeros_like(d_h[0])
    wide = tf.concat([zero, zero, zero], axis=-1)
    return tf.scan(step, (d_h, h_prev, z, r, n, hn), initializer=(zero, wide, wide), reverse=True)


@tf.custom_gradient
def gru_recurrence(
    projected: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, initial_state: tf.Tensor
) -> tf.Tensor:
    """The GRU's sequential part with a hand-written backward pass (full BPTT).

    Automatic differentiation of a loop accumulates the recurrent kernel's gradient one
    ``[units, 3 units]`` outer product per frame; here the backward loop only carries the state
    gradient, and the kernel and bias gradients are one large matrix product after it. Both
    loops are XLA-compiled (see BENCHMARKS.md: 4.9 s -> 2.7 s for GRU 512 at batch 16 x 1000).

    Args:
        projected: ``[t, b, 3u]`` time-major input projections ``x W + b_x``.
        kernel: ``[u, 3u]`` recurrent kernel. bias: ``[3u]`` recurrent bias.
        initial_state: ``[b, u]``.
    Returns:
        ``[t, b, u]`` states.
    """
    u = int(kernel.shape[0])
    args = [tf.stop_gradient(tf.convert_to_tensor(a)) for a in (kernel, bias, initial_state)]
    kernel_t, bias_t, init_t = args
    h, z, r, n, hn = _forward_loop(tf.stop_gradient(projected), kernel_t, bias_t, init_t)

    def backward(d_h):
        h_prev = tf.concat([init_t[None], h[:-1]], axis=0)  # [t, b, u]
        d_init, d_hp, d_xp = _backward_loop(d_h, h_prev, z, r, n, hn, kernel_t)
        flat_h = tf.reshape(h_prev, [-1, u])
        flat_dhp = tf.reshape(d_hp, [-1, 3 * u])
        d_kernel = tf.matmul(flat_h, flat_dhp, transpose_a=True)
        return d_xp, d_kernel, tf.reduce_sum(flat_dhp, axis=0), d_init[0]

    return h, backward


def count_parameters(module: tf.Module) -> int:
    """Number of trainable scalars in a module."""
    return int(sum(math.prod(v.shape) for v in module.trainable_variables))
