"""The CREPE network in TensorFlow (training side: the reference the ``.tflite`` files are
converted from and checked against, and the tracker where no ``.tflite`` is at hand).

Weights, framing and decoding need no TensorFlow and live in `ddspcli.engine.pitch`; the
inference runtime runs the converted network with LiteRT (`ddspcli.runtime.crepe`).
"""

from __future__ import annotations

import numpy as np

from ddspcli.engine._tensorflow import tf
from ddspcli.engine.pitch import FRAME_SIZE, PADDINGS, STRIDES, capacity_of


class Crepe(tf.Module):
    """The CREPE network with fixed (inference) weights.

    Call `activations` on normalised or raw frames; frames are normalised inside.
    """

    def __init__(self, weights: dict[str, np.ndarray], name: str = "crepe") -> None:
        super().__init__(name=name)
        self.capacity = capacity_of(weights)
        self.w = {k: tf.constant(v) for k, v in weights.items()}

    @tf.function(input_signature=[tf.TensorSpec([None, FRAME_SIZE], tf.float32)])
    def activations(self, frames: tf.Tensor) -> tf.Tensor:
        """``[n, 1024]`` audio frames at 16 kHz -> ``[n, 360]`` pitch-bin activations in (0, 1)."""
        mean, var = tf.nn.moments(frames, axes=[1], keepdims=True)
        x = (frames - mean) / tf.maximum(tf.sqrt(var), 1e-8)
        x = x[:, :, None, None]  # NHWC: [n, time, 1, channels]
        for i in range(1, 7):
            x = tf.pad(x, [[0, 0], list(PADDINGS[i - 1]), [0, 0], [0, 0]])
            x = tf.nn.conv2d(x, self.w[f"conv{i}/kernel"], [1, STRIDES[i - 1], 1, 1], "VALID")
            x = tf.nn.relu(x + self.w[f"conv{i}/bias"])
            x = x * self.w[f"bn{i}/scale"] + self.w[f"bn{i}/shift"]
            x = tf.nn.max_pool2d(x, (2, 1), (2, 1), "VALID")
        x = tf.reshape(x, [tf.shape(x)[0], -1])  # [n, time * channels], time-major like torch
        return tf.sigmoid(tf.matmul(x, self.w["dense/kernel"]) + self.w["dense/bias"])


class CrepeLite:
    """The same network run by TensorFlow Lite (converted from `Crepe.activations` in memory,
    about a second): about 3x faster than TensorFlow for the one-to-four-frame calls of
    `ddsp live` (see BENCHMARKS.md, "Live"); activations within 1e-6 of `Crepe`'s.

    Args:
        crepe: the network to convert.
    """

    def __init__(self, crepe: Crepe) -> None:
        import warnings

        concrete = crepe.activations.get_concrete_function()
        flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([concrete], crepe).convert()
        with warnings.catch_warnings():  # tf.lite.Interpreter's notice about its successor
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0

    def activations(self, frames: np.ndarray) -> np.ndarray:
        """``[n, 1024]`` audio frames at 16 kHz -> ``[n, 360]`` activations (numpy)."""
        frames = np.ascontiguousarray(frames, np.float32)
        if len(frames) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(frames), FRAME_SIZE])
            self._interpreter.allocate_tensors()
            self._batch = len(frames)
        self._interpreter.set_tensor(self._input, frames)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()
