"""CREPE as a ``.tflite`` built from its weights, without TensorFlow.

`build_crepe_tflite` writes the network of `ddspcli.engine.crepe_tf.Crepe` as TFLite's object
tree (`ai_edge_litert.schema_py_generated`, the schema LiteRT itself reads: `ModelT`,
`SubGraphT`, `TensorT`, ...) and packs it with `flatbuffers`, the two packages LiteRT installs.
The graph is the one TensorFlow's converter made of `Crepe.activations` (the shipped
``models/crepe-tiny/tiny.tflite``), op for op, so the activations agree to float rounding
(`tests/test_crepe_build.py` states the measured differences). For ``n`` frames, with ``c`` =
4 (tiny) or 32 (full) and ``f_i`` = (32, 4, 4, 4, 8, 16)[i] * c filters:

    frames [n, 1024]
    MEAN, SQUARED_DIFFERENCE, SUB, MEAN, SQRT, MAXIMUM(1e-8), DIV -> normalised [n, 1024]
    RESHAPE -> [n, 1024, 1, 1] (NHWC: time, 1, channels)
    6 x: CONV_2D (OHWI filter [f_i, k_i, 1, f_(i-1)], SAME, stride 4 then 1, fused RELU)
         -> MUL (batch norm scale [f_i]) -> ADD (its shift [f_i]) -> MAX_POOL_2D (2 x 1)
         time 1024 -> 256 -> 128 -> 64 -> 32 -> 16 -> 8 -> 4: [n, 4, 1, 16 c]
    RESHAPE -> [n, 64 c] (time-major, as torch flattens); FULLY_CONNECTED [360, 64 c] + bias
    LOGISTIC -> activations [n, 360]

TFLite's SAME padding is CREPE's: 254 either side of the first layer's 512-tap kernel, then
31 before and 32 after the 64-tap ones. Batch norm follows the ReLU, so it cannot be folded
into the convolution: it stays a MUL and an ADD, as the converter left it.

The bytes depend on the weights only (no time stamps, no versions, fixed names and order):
the same checkpoint gives the same file, and its sha256, on every machine. A ``.json`` beside
the file (`write_crepe_tflite`) records what `ddspcli.runtime.crepe.Crepe` checks at load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ddspcli import storage
from ddspcli.engine.pitch import (
    CAPACITY,
    FRAME_SIZE,
    N_BINS,
    STRIDES,
    capacity_of,
    load_weights,
)
from ddspcli.errors import ModelError
from ddspcli.runtime.litert import Program

SIGNATURE = "activations"
INPUT, OUTPUT = "frames", "activations"
SIGNATURES = {SIGNATURE: {"inputs": {INPUT: [-1, FRAME_SIZE]},
                          "outputs": {OUTPUT: [-1, N_BINS]}}}  # fmt: skip
DESCRIPTION = "CREPE activations, built by ddspcli.runtime.crepe_build"
SCHEMA_VERSION = 3  # TFLite's schema version (what TensorFlow's converter writes)
FILE_IDENTIFIER = b"TFL3"
MIN_STD = 1e-8  # frames are divided by max(std, 1e-8), as `crepe_tf.Crepe` does
N_LAYERS = 6

Op = schema.BuiltinOperator
Options = schema.BuiltinOptions
Activation = schema.ActivationFunctionType


# ---------------------------------------------------------------------------------------------
# The object tree.


@dataclass
class _Graph:
    """A subgraph being built: tensors, their buffers, operators and the operator codes used.

    Buffer 0 is TFLite's empty sentinel; every tensor without data points to it.
    """

    tensors: list[schema.TensorT] = field(default_factory=list)
    buffers: list[schema.BufferT] = field(default_factory=lambda: [schema.BufferT()])
    operators: list[schema.OperatorT] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)  # builtin codes, in order of first use

    def constant(self, name: str, array: np.ndarray) -> int:
        """A constant tensor (float32 or int32, little-endian) holding `array`; its index."""
        kind = {np.dtype(np.float32): schema.TensorType.FLOAT32,
                np.dtype(np.int32): schema.TensorType.INT32}[array.dtype]  # fmt: skip
        data = np.frombuffer(np.ascontiguousarray(array, array.dtype.newbyteorder("<")), np.uint8)
        self.buffers.append(schema.BufferT(data=data))
        return self._tensor(name, list(array.shape), kind, buffer=len(self.buffers) - 1)

    def activation(self, name: str, shape: list[int]) -> int:
        """A float32 tensor computed at run time; ``-1`` in `shape` is the free batch axis
        (stored as 1 with the signature keeping -1, as the converter does)."""
        return self._tensor(name, shape, schema.TensorType.FLOAT32, buffer=0)

    def _tensor(self, name: str, shape: list[int], kind: int, buffer: int) -> int:
        tensor = schema.TensorT(shape=[max(d, 1) for d in shape], type=kind, buffer=buffer,
                                name=name, hasRank=True)  # fmt: skip
        if -1 in shape:
            tensor.shapeSignature = list(shape)
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], output: int,
           options_type: int = Options.NONE, options: object = None) -> int:  # fmt: skip
        """Append a builtin operator computing `output` from `inputs`; returns `output`."""
        if code not in self.codes:
            self.codes.append(code)
        self.operators.append(schema.OperatorT(
            opcodeIndex=self.codes.index(code), inputs=inputs, outputs=[output],
            builtinOptionsType=options_type, builtinOptions=options))  # fmt: skip
        return output


def _operator_code(code: int) -> schema.OperatorCodeT:
    """Version 1 of a builtin (what the converter wrote for each op here); codes above 127
    are marked in the deprecated 8-bit field as the schema asks."""
    return schema.OperatorCodeT(builtinCode=code, deprecatedBuiltinCode=min(code, 127), version=1)


# ---------------------------------------------------------------------------------------------
# The network.


def _normalise(g: _Graph, frames: int) -> int:
    """``[n, 1024]`` frames -> zero mean, unit standard deviation per frame ``[n, 1024]``
    (population variance; the deviation floored at 1e-8)."""
    axis = g.constant("norm/axis", np.array([1], np.int32))
    keep = schema.ReducerOptionsT(keepDims=True)
    shape = [-1, FRAME_SIZE]
    mean = g.op(Op.MEAN, [frames, axis], g.activation("norm/mean", [-1, 1]),
                Options.ReducerOptions, keep)  # fmt: skip
    squared = g.op(Op.SQUARED_DIFFERENCE, [frames, mean], g.activation("norm/squared", shape))
    centred = g.op(Op.SUB, [frames, mean], g.activation("norm/centred", shape),
                   Options.SubOptions, schema.SubOptionsT())  # fmt: skip
    var = g.op(Op.MEAN, [squared, axis], g.activation("norm/variance", [-1, 1]),
               Options.ReducerOptions, keep)  # fmt: skip
    std = g.op(Op.SQRT, [var], g.activation("norm/std", [-1, 1]))
    floor = g.constant("norm/min_std", np.array(MIN_STD, np.float32))
    std = g.op(Op.MAXIMUM, [std, floor], g.activation("norm/floored_std", [-1, 1]))
    return g.op(Op.DIV, [centred, std], g.activation("norm/frames", shape),
                Options.DivOptions, schema.DivOptionsT())  # fmt: skip


def _reshape(g: _Graph, x: int, shape: list[int], name: str) -> int:
    """`x` reshaped to `shape` (``-1``: the batch), the shape given as a constant input."""
    new_shape = g.constant(f"{name}/shape", np.array(shape, np.int32))
    return g.op(Op.RESHAPE, [x, new_shape], g.activation(name, shape),
                Options.ReshapeOptions, schema.ReshapeOptionsT(newShape=list(shape)))  # fmt: skip


def _conv_block(g: _Graph, x: int, i: int, time: int, w: dict[str, np.ndarray]) -> tuple[int, int]:
    """Block `i` (1..6) on ``[n, time, 1, in]``: conv (SAME, fused ReLU) -> batch norm (MUL,
    ADD) -> 2 x 1 max pool. Returns the output ``[n, time', 1, out]`` and ``time'``."""
    kernel = w[f"conv{i}/kernel"]  # [width, 1, in, out] (TF's HWIO)
    filters = int(kernel.shape[-1])
    stride = STRIDES[i - 1]
    ohwi = np.ascontiguousarray(np.transpose(kernel, (3, 0, 1, 2)), np.float32)
    conv_opts = schema.Conv2DOptionsT(padding=schema.Padding.SAME, strideW=1, strideH=stride,
                                      fusedActivationFunction=Activation.RELU,
                                      dilationWFactor=1, dilationHFactor=1)  # fmt: skip
    time = -(-time // stride)  # SAME: ceil(time / stride)
    shape = [-1, time, 1, filters]
    filt = g.constant(f"conv{i}/filter", ohwi)
    bias = g.constant(f"conv{i}/bias", w[f"conv{i}/bias"])
    x = g.op(Op.CONV_2D, [x, filt, bias], g.activation(f"conv{i}", shape),
             Options.Conv2DOptions, conv_opts)  # fmt: skip
    scale, shift = (g.constant(f"bn{i}/{k}", w[f"bn{i}/{k}"]) for k in ("scale", "shift"))
    x = g.op(Op.MUL, [x, scale], g.activation(f"bn{i}/scaled", shape),
             Options.MulOptions, schema.MulOptionsT())  # fmt: skip
    x = g.op(Op.ADD, [x, shift], g.activation(f"bn{i}", shape),
             Options.AddOptions, schema.AddOptionsT())  # fmt: skip
    pool = schema.Pool2DOptionsT(padding=schema.Padding.VALID, strideW=1, strideH=2,
                                 filterWidth=1, filterHeight=2)  # fmt: skip
    time //= 2
    x = g.op(Op.MAX_POOL_2D, [x], g.activation(f"pool{i}", [-1, time, 1, filters]),
             Options.Pool2DOptions, pool)  # fmt: skip
    return x, time


def _network(g: _Graph, w: dict[str, np.ndarray]) -> tuple[int, int]:
    """The whole graph into `g`; returns the input (``[n, 1024]``) and output (``[n, 360]``)
    tensor indices."""
    frames = g.activation(INPUT, [-1, FRAME_SIZE])
    x = _reshape(g, _normalise(g, frames), [-1, FRAME_SIZE, 1, 1], "frames_nhwc")
    time = FRAME_SIZE
    for i in range(1, N_LAYERS + 1):
        x, time = _conv_block(g, x, i, time, w)
    dense = w["dense/kernel"]  # [in, 360]
    x = _reshape(g, x, [-1, int(dense.shape[0])], "flat")
    weights = g.constant("dense/weights", np.ascontiguousarray(dense.T, np.float32))
    fc = schema.FullyConnectedOptionsT(fusedActivationFunction=Activation.NONE)
    bias = g.constant("dense/bias", w["dense/bias"])
    logits = g.op(Op.FULLY_CONNECTED, [x, weights, bias], g.activation("logits", [-1, N_BINS]),
                  Options.FullyConnectedOptions, fc)  # fmt: skip
    return frames, g.op(Op.LOGISTIC, [logits], g.activation(OUTPUT, [-1, N_BINS]))


def _check_weights(weights: dict[str, np.ndarray], capacity: str | None) -> dict[str, np.ndarray]:
    """The weights as float32, their capacity checked against `capacity` (if given)."""
    found = capacity_of(weights)
    if capacity is not None and capacity != found:
        raise ModelError(f"CREPE weights of capacity {found!r}, not {capacity!r}")
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def build_crepe_tflite(weights: dict[str, np.ndarray], capacity: str | None = None) -> bytes:
    """CREPE's network as TFLite bytes: signature ``activations``, ``frames`` ``[n, 1024]``
    (audio at 16 kHz, any scale: normalised inside) -> ``activations`` ``[n, 360]`` (sigmoid
    outputs of the 20-cent pitch bins), any ``n``.

    Args:
        weights: `ddspcli.engine.pitch.convert_state_dict`'s arrays (TF layouts, batch norm as
            scale and shift), as `pitch.load_weights` returns them.
        capacity: ``"tiny"`` or ``"full"`` to check the weights against; None: not checked.
    Returns:
        the flatbuffer (deterministic: the same weights give the same bytes).
    Raises:
        ModelError: not CREPE weights, or of another capacity.
    """
    if capacity is not None and capacity not in CAPACITY:
        raise ValueError(f"capacity must be one of {sorted(CAPACITY)}, not {capacity!r}")
    try:
        w = _check_weights(weights, capacity)
        g = _Graph()
        frames, out = _network(g, w)
    except KeyError as err:
        raise ModelError(f"not CREPE weights: missing tensor {err}") from None
    subgraph = schema.SubGraphT(tensors=g.tensors, inputs=[frames], outputs=[out],
                                operators=g.operators, name="main")  # fmt: skip
    signature = schema.SignatureDefT(
        signatureKey=SIGNATURE, subgraphIndex=0,
        inputs=[schema.TensorMapT(name=INPUT, tensorIndex=frames)],
        outputs=[schema.TensorMapT(name=OUTPUT, tensorIndex=out)])  # fmt: skip
    model = schema.ModelT(version=SCHEMA_VERSION,
                          operatorCodes=[_operator_code(c) for c in g.codes],
                          subgraphs=[subgraph], description=DESCRIPTION, buffers=g.buffers,
                          signatureDefs=[signature])  # fmt: skip
    size = sum(len(b.data) for b in g.buffers if b.data is not None)
    builder = flatbuffers.Builder(size + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


# ---------------------------------------------------------------------------------------------
# Files.


def describe(content: bytes, name: str, capacity: str) -> dict:
    """The ``.json`` written beside a CREPE ``.tflite`` (what `runtime.crepe.Crepe` checks):
    ``{"file", "sha256", "bytes", "capacity", "signatures"}``, as
    `engine.tflite_export.write_crepe_file` writes it."""
    return {"file": name, "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content),
            "capacity": capacity, "signatures": SIGNATURES}  # fmt: skip


def write_crepe_tflite(checkpoint: str | Path, dest: str | Path) -> dict:
    """Build CREPE from a checkpoint (torch ``.pth``, read without torch, or a converted
    ``.npz``) into `dest` (``.tflite``) and its description into `dest` with ``.json``.

    Both are written atomically (a temporary file renamed into place), the ``.tflite`` first:
    a ``.json`` present means its file is complete. The file is loaded in LiteRT and its
    signature checked before the ``.json`` is written.

    Returns:
        the description written.
    Raises:
        ModelError: not a CREPE checkpoint; the built file does not load as described.
        OutputError: `dest` cannot be written.
    """
    dest = Path(dest)
    weights = load_weights(checkpoint)
    capacity = capacity_of(weights)
    content = build_crepe_tflite(weights, capacity)
    desc = describe(content, dest.name, capacity)
    dest.parent.mkdir(parents=True, exist_ok=True)
    storage.write_bytes(dest, content, force=True)
    Program(dest, desc)  # loads, checks the sha256 and the signature's shapes
    storage.write_bytes(dest.with_suffix(".json"), (json.dumps(desc, indent=2) + "\n").encode(),
                        force=True)  # fmt: skip
    return desc
