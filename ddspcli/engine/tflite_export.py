"""A model's runtime files: the decoder (and z encoder) as TFLite, CREPE as TFLite.

`ddspcli.runtime` plays a model without TensorFlow: LiteRT runs these files and NumPy does the
synthesis. `write_runtime_files` writes, into a model folder:

* ``decoder.tflite``: features ``f0_hz``, ``loudness_db`` ``[1, T]`` (Hz, dB; ``z`` ``[1, T,
  z_dims]`` for z models) and the GRU ``state`` ``[1, units]`` in; the raw (unscaled) controls
  ``amplitudes`` ``[1, T, 1]``, ``harmonic_distribution`` ``[1, T, k]``, ``noise_magnitudes``
  ``[1, T, m]`` and the new ``state`` out (the synthesizers scale them, as in TensorFlow);
* ``z_encoder.tflite`` (z models): signature ``mfcc`` (block audio ``[1, n]``, any ``n`` ->
  normalised MFCCs ``[1, f, 30]``) and the GRU + dense over MFCC frames with its state;
* ``<node>_<weight>.npy``: what a node of the synthesis graph streams with
  (`graph.Node.runtime_weights`): ``reverb_ir.npy``, the reverb's effective impulse response
  (float32 ``[m]``, first tap 0);
* ``runtime.json``: the graph's table (`graph.Graph.describe`), sizes, signatures with every
  tensor's shape, and each file's sha256.

Builtin TFLite operators only (no Flex). The time axis is fixed per signature: ``frames_1``
(one step, plain ops) and ``frames_64`` (a 64-step loop), run by the runtime in a loop with the
state carried, so any block length works and a stream equals a whole render. Measured on
2 cores for 3,500 frames of GRU 256 (violin), LiteRT: a dynamic time axis (one signature, a
WHILE loop with dynamic tensors) took 0.7-1.6 s for whole files (its loop tensors are
reallocated every step) and 77-100 us a frame for 1-5 frame blocks; fixed signatures take
48 us a frame one step at a time, 34 us a frame unrolled 50 steps (5.7 s to convert) and 42 us
a frame in a static 64-step loop (0.7 s to convert): the last, with the one-step signature for
live blocks and remainders.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ai_edge_litert import interpreter as litert
from tensorflow.compiler.tf2xla.python import xla  # DYNAMIC_UPDATE_SLICE in TFLite

from ddspcli import __version__
from ddspcli.engine import crepe_tf, graph, nn, pitch
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.errors import ModelError

FORMAT_VERSION = 1
RUNTIME_JSON = "runtime.json"
DECODER_FILE = "decoder.tflite"
Z_ENCODER_FILE = "z_encoder.tflite"
BLOCK_FRAMES = (1, 64)  # the signatures' fixed time axes: frames_1, frames_64
MFCC_SIZE = 30


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Conversion.


def convert(module: tf.Module, signatures: dict[str, Callable]) -> bytes:
    """Named concrete functions of `module` -> one TFLite flatbuffer, builtin operators only
    (through a temporary SavedModel, so each signature keeps its argument and output names)."""
    with tempfile.TemporaryDirectory(prefix="ddsp-tflite-") as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, list(signatures))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return bytes(converter.convert())


def gru_frames(gru: nn.GRU, inputs: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`nn.GRU` over a fixed number of frames in TFLite-friendly ops.

    Args:
        inputs: ``[1, T, c_in]`` (``T`` static). state: ``[1, units]``.
    Returns:
        ``([1, T, units], [1, units])``: every frame's state and the last.
    """
    u = gru.units
    projected = tf.tensordot(inputs, gru.kernel, 1) + gru.bias[0]  # [1, T, 3u], all frames
    steps = int(inputs.shape[1])
    if steps == 1:
        h = nn._gru_step(state, projected[:, 0], gru.recurrent_kernel, gru.bias[1], u)[0]
        return h[:, None], h
    xp = projected[0]

    def body(i, h, out):
        x_t = tf.reshape(tf.slice(xp, tf.stack([i, 0]), [1, 3 * u]), [1, 3 * u])
        h = nn._gru_step(h, x_t, gru.recurrent_kernel, gru.bias[1], u)[0]
        return i + 1, h, xla.dynamic_update_slice(out, h, tf.stack([i, 0]))  # in place

    out = tf.zeros([steps, u], tf.float32)
    _, h, out = tf.while_loop(lambda i, h, out: i < steps, body, [tf.constant(0), state, out],
                              maximum_iterations=steps)  # fmt: skip
    return out[None], h


class DecoderModule(tf.Module):
    """The decoder with fixed-length signatures (see the module docstring)."""

    def __init__(self, m: model_lib.Autoencoder) -> None:
        super().__init__(name="runtime_decoder")
        self.model = m

    def frames(self, steps: int) -> Callable:
        """The concrete function of a `steps`-frame signature."""
        m, spec = self.model, tf.TensorSpec
        args = [spec([1, steps], tf.float32, name="f0_hz"),
                spec([1, steps], tf.float32, name="loudness_db"),
                spec([1, m.rnn.units], tf.float32, name="state")]  # fmt: skip
        if m.z_dims:
            args.append(spec([1, steps, m.z_dims], tf.float32, name="z"))

        def call(f0_hz, loudness_db, state, z=None):
            f0, ld = model_lib.preprocess(f0_hz, loudness_db)
            inputs = [f0, ld] + ([z] if m.z_dims else [])
            stacked = [stack(x) for stack, x in zip(m.stacks, inputs, strict=True)]
            hidden, new_state = gru_frames(m.rnn, tf.concat(stacked, -1), state)
            raw = m._split(m.dense_out(m.out_stack(tf.concat([*stacked, hidden], -1))))
            return {**raw, "state": new_state}

        return tf.function(call, input_signature=args, autograph=False).get_concrete_function()


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_in, n_out]`` float32: `tf.signal.dct` type II (unnormalised) times
    ``1 / sqrt(2 n_in)``, the scaling of `tf.signal.mfccs_from_log_mel_spectrograms`."""
    n, k = np.arange(n_in)[:, None], np.arange(n_out)[None, :]
    return (2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) / np.sqrt(2.0 * n_in)).astype(
        np.float32
    )


def mfcc_builtin(enc: model_lib.ZEncoder, audio: tf.Tensor) -> tf.Tensor:
    """`model.ZEncoder.mfcc` with the DCT as a matrix product: TFLite has no builtin for the
    complex slice inside `tf.signal.dct` (its only non-builtin operator). ``[1, n]`` ->
    ``[1, ceil(n / hop), 30]``."""
    log_mel = enc.log_mel(audio)
    return tf.tensordot(log_mel, dct_matrix(int(log_mel.shape[-1]), MFCC_SIZE), 1)


class ZEncoderModule(tf.Module):
    """The z encoder split at its GRU: ``mfcc`` (audio of any length -> normalised MFCCs) and
    ``frames_T`` (GRU + dense over MFCC frames, state carried). The runtime resamples the
    dense outputs to the block's frames as `model.ZEncoder` does."""

    def __init__(self, encoder: model_lib.ZEncoder) -> None:
        super().__init__(name="runtime_z_encoder")
        self.encoder = encoder

    def mfcc(self) -> Callable:
        enc = self.encoder

        def call(audio):
            return {"mfcc": enc.norm(mfcc_builtin(enc, audio))}

        spec = [tf.TensorSpec([1, None], tf.float32, name="audio")]
        return tf.function(call, input_signature=spec, autograph=False).get_concrete_function()

    def frames(self, steps: int) -> Callable:
        enc, spec = self.encoder, tf.TensorSpec
        args = [spec([1, steps, MFCC_SIZE], tf.float32, name="mfcc"),
                spec([1, enc.rnn.units], tf.float32, name="state")]  # fmt: skip

        def call(mfcc, state):
            hidden, new_state = gru_frames(enc.rnn, mfcc, state)
            return {"z": enc.out(hidden), "state": new_state}

        return tf.function(call, input_signature=args, autograph=False).get_concrete_function()


# ---------------------------------------------------------------------------------------------
# Files.


def _signature_shapes(content: bytes) -> dict[str, dict[str, dict[str, list[int]]]]:
    """Every signature's inputs and outputs with their shapes (-1: free), read back from the
    converted bytes (what the runtime will check)."""
    interpreter = litert.Interpreter(model_content=content)
    out = {}
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        out[name] = {kind: {k: [int(s) for s in v["shape_signature"]] for k, v in details.items()}
                     for kind, details in (("inputs", runner.get_input_details()),
                                           ("outputs", runner.get_output_details()))}  # fmt: skip
    return out


def _write(folder: Path, name: str, content: bytes) -> dict:
    """Write one file atomically; ``{"file", "sha256", "bytes"}``."""
    target = folder / name
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(content)
    tmp.replace(target)
    return {"file": name, "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}


def check_supported(m: model_lib.Autoencoder) -> None:
    """Refuse what the NumPy synthesis does not render (one line, from the node)."""
    for node in m.graph.nodes:
        problem = node.runtime_problem(m.node_module(node))
        if problem:
            raise ModelError(problem)


def write_runtime_files(
    model: model_lib.Autoencoder | model_lib.LoadedModel,
    folder: str | Path,
    block_frames: tuple[int, ...] = BLOCK_FRAMES,
) -> dict:
    """Write the runtime's files for a model into `folder` (created if missing).

    Args:
        model: the autoencoder (weights loaded) or a loaded model folder.
        folder: where ``runtime.json`` and the files go (normally the model folder).
        block_frames: the fixed time axes of the signatures; 1 must be among them.
    Returns:
        the ``runtime.json`` written.
    Raises:
        ModelError: the model uses something the runtime cannot render.
    """
    m = model.model if isinstance(model, model_lib.LoadedModel) else model
    check_supported(m)
    if 1 not in block_frames:
        raise ValueError("block_frames must include 1 (blocks of any length end with it)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = sorted(set(block_frames))
    decoder = DecoderModule(m)
    content = convert(decoder, {f"frames_{t}": decoder.frames(t) for t in frames})
    desc = {
        "format_version": FORMAT_VERSION,
        "ddspcli_version": __version__,
        "synth": m.graph.describe(),
        "rnn_units": m.rnn.units,
        "z_dims": m.z_dims,
        "decoder": {**_write(folder, DECODER_FILE, content), "controls": "raw",
                    "block_frames": frames, "signatures": _signature_shapes(content)},
    }  # fmt: skip
    if m.encoder is not None:
        enc = ZEncoderModule(m.encoder)
        sigs = {"mfcc": enc.mfcc(), **{f"frames_{t}": enc.frames(t) for t in frames}}
        content = convert(enc, sigs)
        desc["z_encoder"] = {**_write(folder, Z_ENCODER_FILE, content), "block_frames": frames,
                             "rnn_units": m.encoder.rnn.units, "hop": m.encoder.hop,
                             "signatures": _signature_shapes(content)}  # fmt: skip
    for node in m.graph.nodes:  # the reverb: "reverb": {"file": "reverb_ir.npy", ...}
        for name, array in node.runtime_weights(m.node_module(node)).items():
            written = _write(folder, f"{node.attr}_{name}.npy", _npy_bytes(array))
            desc[node.attr] = {**written, "length": len(array)}
    (folder / RUNTIME_JSON).write_text(json.dumps(desc, indent=2) + "\n")
    return desc


def _npy_bytes(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# CREPE.


def crepe_to_tflite(weights: dict[str, np.ndarray]) -> bytes:
    """`crepe_tf.Crepe.activations` (``frames`` ``[n, 1024]`` -> ``activations`` ``[n, 360]``,
    any ``n``) as TFLite bytes, builtin operators only; signature ``activations``."""
    crepe = crepe_tf.Crepe(weights)

    def call(frames):
        return {"activations": crepe.activations(frames)}

    spec = [tf.TensorSpec([None, pitch.FRAME_SIZE], tf.float32, name="frames")]
    concrete = tf.function(call, input_signature=spec, autograph=False).get_concrete_function()
    return convert(crepe, {"activations": concrete})


def write_crepe_file(checkpoint: str | Path, dest: str | Path) -> dict:
    """Convert a CREPE checkpoint (torch ``.pth`` or converted ``.npz``) into ``dest``
    (``crepe-tiny.tflite``/``crepe-full.tflite``); returns its description (capacity, sha256,
    signature shapes) as ``runtime.crepe`` reads it from a JSON beside it."""
    weights = pitch.load_weights(checkpoint)
    content = crepe_to_tflite(weights)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    desc = {**_write(dest.parent, dest.name, content), "capacity": pitch.capacity_of(weights),
            "signatures": _signature_shapes(content)}  # fmt: skip
    dest.with_suffix(".json").write_text(json.dumps(desc, indent=2) + "\n")
    return desc


# ---------------------------------------------------------------------------------------------
# DDSP-VST plugin files.


def write_plugin_runtime_json(folder: str | Path, info: dict) -> dict:
    """``runtime.json`` for a model folder holding a DDSP-VST plugin file (``model.json``'s
    ``file``; `ddspcli.engine.vst_check`): the file itself is the decoder (one frame a call,
    scaled controls out), synthesised as the vst variant does (60 harmonics, 65 noise bands through
    the full-length filter, no reverb: the plugin adds its own)."""
    from ddspcli.engine import vst_check

    folder = Path(folder)
    content = (folder / info["file"]).read_bytes()
    rate, frame_rate = int(info["sample_rate"]), int(info["frame_rate"])
    hop = rate // frame_rate
    nodes = (graph.harmonic.Harmonic(rate, hop, vst_check.N_HARMONICS, scale_fn="none"),
             graph.noise.FilteredNoise(rate, hop, vst_check.N_NOISE, 0, 0.0, "none"))  # fmt: skip
    synth = graph.Graph(nodes, rate, frame_rate, hop).describe()
    desc = {
        "format_version": FORMAT_VERSION,
        "ddspcli_version": __version__,
        "synth": synth,
        "rnn_units": vst_check.STATE_SIZE,
        "z_dims": 0,
        "decoder": {"file": info["file"], "sha256": hashlib.sha256(content).hexdigest(),
                    "bytes": len(content), "controls": "vst",
                    "signatures": _signature_shapes(content)},
    }  # fmt: skip
    (folder / RUNTIME_JSON).write_text(json.dumps(desc, indent=2) + "\n")
    return desc
