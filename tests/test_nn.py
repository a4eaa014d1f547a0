"""The GRU's hand-written backward pass equals automatic differentiation of the same loop."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ddspcli.engine import nn


def test_gru_custom_gradient_equals_autodiff():
    gru = nn.GRU(5, 8, tf.random.Generator.from_seed(0))
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=[3, 20, 5]), tf.float32)
    h0 = tf.constant(rng.normal(size=[3, 8]), tf.float32)
    weights = tf.constant(rng.normal(size=[3, 20, 8]), tf.float32)

    def autodiff(x, h0):
        projected = tf.tensordot(x, gru.kernel, 1) + gru.bias[0]

        def step(h, xp):
            return nn._gru_step(h, xp, gru.recurrent_kernel, gru.bias[1], 8)[0]

        states = tf.scan(step, tf.transpose(projected, [1, 0, 2]), initializer=h0)
        return tf.transpose(states, [1, 0, 2])

    results = []
    for fn in (autodiff, lambda x, h0: gru(x, h0)[0]):
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            y = fn(x, h0)
            loss = tf.reduce_sum(y * weights) + tf.reduce_sum(y[:, -1] ** 2)
        results.append([y, *tape.gradient(loss, [x, h0, *gru.trainable_variables])])
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_gru_state_carries_across_blocks():
    gru = nn.GRU(4, 6, tf.random.Generator.from_seed(2))
    x = tf.random.stateless_normal([2, 30, 4], seed=[1, 2])
    whole, _ = gru(x)
    first, state = gru(x[:, :13])
    second, _ = gru(x[:, 13:], state)
    np.testing.assert_allclose(tf.concat([first, second], 1).numpy(), whole.numpy(), atol=1e-6)
