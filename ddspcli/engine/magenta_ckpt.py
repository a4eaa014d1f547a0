"""Checkpoints written by the official DDSP library (ddsp 1.x-3.x) as ddspcli models.

A checkpoint folder holds ``operative_config-N.gin`` (every binding of the run) and a TF2
object checkpoint ``ckpt-N`` whose model variables live under ``model/...``. `read_config`
reads the bindings this module understands into a `MagentaConfig`; `build_model` makes the
ddspcli `Autoencoder` of the same shape and `load_weights` copies the variables by name into
it, checking each shape. The official `RnnFcDecoder` is ddspcli's decoder with other names:
one MLP stack per input key (dense, layer norm, leaky ReLU), a reset-after GRU over their
concatenation, an output stack over ``[stacks..., gru]`` and one dense layer; only the input
order differs (the official default is ``('ld_scaled', 'f0_scaled')``), so the rows of the
GRU's input kernel and of the output stack's first kernel are permuted accordingly.

The z autoencoder (``ae.gin``: ``MfccTimeDistributedRnnEncoder``) imports into ddspcli's
z encoder in its ``ddsp`` style (the official MFCC, instance norm, GRU, dense); its ``z``
decoder input is a third input stack. `import_folder` writes a ddspcli model folder.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.magenta_folder import (  # noqa: F401  (re-exported)
    fingerprint,
    is_checkpoint_folder,
    latest_checkpoint,
    newest_config,
)
from ddspcli.errors import ModelError

SCALED_KEYS = {"f0_scaled": "f0", "ld_scaled": "ld", "z": "z"}
# MfccTimeDistributedRnnEncoder.z_time_steps -> (FFT size, overlap), as the official encoder.
Z_AUDIO_SPEC = {63: (2048, 0.5), 125: (1024, 0.5), 250: (1024, 0.75), 500: (512, 0.75),
                1000: (256, 0.75)}  # fmt: skip


@dataclass(frozen=True)
class MagentaConfig:
    """What ddspcli needs of an official operative config."""

    sample_rate: int
    frame_rate: int
    rnn_channels: int
    ch: int
    layers_per_stack: int
    input_keys: tuple[str, ...]
    n_harmonics: int
    n_noise_bands: int
    reverb_length: int  # 0: no trainable reverb
    noise_window_size: int = 0  # FilteredNoise.window_size (official default 0)
    z_dims: int = 0  # 0: no z encoder
    z_rnn_channels: int = 0
    z_fft_size: int = 1024
    z_hop: int = 256


def _bindings(text: str) -> dict[str, str]:
    """``Name.param`` -> the value's source text, continuation lines joined."""
    joined = re.sub(r"\\\s*\n\s*", " ", text)
    found = {}
    for line in joined.splitlines():
        match = re.match(r"^([A-Za-z_][\w.]*\.[A-Za-z_]\w*)\s*=\s*(.+)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def read_config(folder: str | Path) -> MagentaConfig:
    """The shape of the model an official checkpoint folder holds.

    Raises:
        ModelError: no operative config, or one naming a decoder, encoder or rnn type that
            ddspcli cannot represent (the binding is named).
    """
    config_file = newest_config(folder)
    text = config_file.read_text()
    b = _bindings(text)

    def value(name: str, default: object = None) -> object:
        if name not in b:
            if default is None:
                raise ModelError(f"{config_file.name} has no binding {name}")
            return default
        source = b[name]
        try:
            return ast.literal_eval(source)
        except (ValueError, SyntaxError):
            return source

    decoder = str(value("Autoencoder.decoder", "@decoders.RnnFcDecoder()"))
    if "RnnFcDecoder" not in decoder or "ZRnnFcDecoder" in decoder:
        raise ModelError(f"Autoencoder.decoder = {decoder}: only RnnFcDecoder is supported")
    rnn_type = str(value("RnnFcDecoder.rnn_type", "gru"))
    if rnn_type != "gru":
        raise ModelError(f"RnnFcDecoder.rnn_type = {rnn_type!r}: only 'gru' is supported")
    splits = dict(value("RnnFcDecoder.output_splits"))
    keys = tuple(value("RnnFcDecoder.input_keys", ("ld_scaled", "f0_scaled")))
    unknown = [k for k in keys if k not in SCALED_KEYS]
    if unknown or sorted(keys) not in (["f0_scaled", "ld_scaled"],
                                       ["f0_scaled", "ld_scaled", "z"]):  # fmt: skip
        raise ModelError(f"RnnFcDecoder.input_keys = {keys}: ddspcli decodes (f0, loudness) "
                         "and optionally z")  # fmt: skip
    z = _z_encoder(value, "z" in keys)
    dag = text.split("ProcessorGroup.dag", 1)[-1]
    synth = "Additive" if "Additive()" in dag else "Harmonic"  # ddsp 0.x named it Additive
    sample_rate = int(value(f"{synth}.sample_rate", 16000))
    n_samples = int(value(f"{synth}.n_samples", 64000))
    frame_rate = value("F0LoudnessPreprocessor.frame_rate", 0)
    if not frame_rate:  # DefaultPreprocessor: time_steps frames over the example
        steps = int(value("DefaultPreprocessor.time_steps", 1000))
        frame_rate = round(steps * sample_rate / n_samples)
    return MagentaConfig(
        sample_rate=sample_rate,
        frame_rate=int(frame_rate),
        rnn_channels=int(value("RnnFcDecoder.rnn_channels")),
        ch=int(value("RnnFcDecoder.ch")),
        layers_per_stack=int(value("RnnFcDecoder.layers_per_stack")),
        input_keys=keys,
        n_harmonics=int(splits["harmonic_distribution"]),
        n_noise_bands=int(splits.get("noise_magnitudes", 0)),
        reverb_length=int(value("Reverb.reverb_length", 48000)) if "Reverb()" in dag else 0,
        noise_window_size=int(value("FilteredNoise.window_size", 0)),
        **z,
    )


def _z_encoder(value, decoded: bool) -> dict[str, int]:
    """The z encoder's fields of `MagentaConfig` (empty without one); `value` reads a
    binding. Raises `ModelError` for another encoder, or a z that is encoded but not decoded
    (or decoded but never encoded)."""
    encoder = str(value("Autoencoder.encoder", "None"))
    if encoder in ("None", "none"):
        if decoded:
            raise ModelError("RnnFcDecoder.input_keys names z but Autoencoder.encoder = None")
        return {}
    if "MfccTimeDistributedRnnEncoder" not in encoder:
        raise ModelError(f"Autoencoder.encoder = {encoder}: only MfccTimeDistributedRnnEncoder "
                         "is supported")  # fmt: skip
    if not decoded:
        raise ModelError(f"Autoencoder.encoder = {encoder} but RnnFcDecoder.input_keys has no z")
    name = "MfccTimeDistributedRnnEncoder"
    rnn_type = str(value(f"{name}.rnn_type", "gru"))
    if rnn_type != "gru":
        raise ModelError(f"{name}.rnn_type = {rnn_type!r}: only 'gru' is supported")
    steps = int(value(f"{name}.z_time_steps", 250))
    if steps not in Z_AUDIO_SPEC:
        raise ModelError(f"{name}.z_time_steps = {steps}: the official encoder allows "
                         f"{sorted(Z_AUDIO_SPEC)}")  # fmt: skip
    fft_size, overlap = Z_AUDIO_SPEC[steps]
    return {"z_dims": int(value(f"{name}.z_dims", 32)),
            "z_rnn_channels": int(value(f"{name}.rnn_channels", 512)),
            "z_fft_size": fft_size, "z_hop": int(fft_size * (1.0 - overlap))}  # fmt: skip


def build_model(config: MagentaConfig) -> model_lib.Autoencoder:
    """A ddspcli `Autoencoder` of the official model's shape (weights still initial), built
    from `gin_text` as a model folder's ``config.gin`` is (earlier gin bindings cleared)."""
    return model_lib.build_model(gin_text(config))


def load_weights(model: model_lib.Autoencoder, config: MagentaConfig, prefix: str) -> int:
    """Copy the official checkpoint's ``model/...`` variables into `model`, by name.

    Returns:
        The number of variables copied (every variable of `model`).
    Raises:
        ModelError: an unreadable checkpoint, a missing variable or a wrong shape (named).
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        raise ModelError(f"{prefix}: unreadable checkpoint ({str(err).splitlines()[0]})") from None
    copied: list[str] = []

    def tensor(name: str) -> np.ndarray:
        key = f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE"
        if not reader.has_tensor(key):
            raise ModelError(f"{prefix} has no variable model/{name}")
        try:
            return reader.get_tensor(key)
        except Exception as err:  # a damaged .data file fails in any layer of the reader
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelError(f"{prefix}: model/{name} is unreadable ({first}); the checkpoint "
                             "files may be damaged or incomplete") from None  # fmt: skip

    def put(variable: tf.Variable, name: str, value: np.ndarray | None = None) -> None:
        value = tensor(name) if value is None else value
        if tuple(value.shape) != tuple(variable.shape):
            raise ModelError(f"model/{name} has shape {list(value.shape)}, the configuration "
                             f"gives {variable.shape.as_list()}")  # fmt: skip
        variable.assign(value)
        copied.append(name)

    def stack(mlp, name: str, rows: np.ndarray | None = None) -> None:
        for i, (dense, norm) in enumerate(zip(mlp.dense, mlp.norm, strict=True)):
            layer = f"{name}/layer_with_weights-{i}"
            kernel = tensor(f"{layer}/layer_with_weights-0/kernel")
            put(dense.kernel, f"{layer}/layer_with_weights-0/kernel",
                kernel[rows] if i == 0 and rows is not None else kernel)  # fmt: skip
            put(dense.bias, f"{layer}/layer_with_weights-0/bias")
            put(norm.gamma, f"{layer}/layer_with_weights-1/gamma")
            put(norm.beta, f"{layer}/layer_with_weights-1/beta")

    ours = ["f0", "ld"] + (["z"] if config.z_dims else [])  # ddspcli's input order
    theirs = [SCALED_KEYS[k] for k in config.input_keys]
    sizes = {"f0": 1, "ld": 1, "z": config.z_dims}
    widths = [config.ch if config.layers_per_stack else sizes[k] for k in theirs]
    starts = np.cumsum([0, *widths])
    rows = np.concatenate([np.arange(starts[theirs.index(k)], starts[theirs.index(k) + 1])
                           for k in ours])  # fmt: skip
    for index, key in enumerate(ours):
        stack(model.stacks[index], f"decoder/input_stacks/{theirs.index(key)}")
    put(model.rnn.kernel, "decoder/rnn/rnn/cell/kernel",
        tensor("decoder/rnn/rnn/cell/kernel")[rows])  # fmt: skip
    put(model.rnn.recurrent_kernel, "decoder/rnn/rnn/cell/recurrent_kernel")
    put(model.rnn.bias, "decoder/rnn/rnn/cell/bias")
    out_rows = np.concatenate([rows, np.arange(len(rows), len(rows) + config.rnn_channels)])
    if config.layers_per_stack:
        stack(model.out_stack, "decoder/out_stack", out_rows)
        put(model.dense_out.kernel, "decoder/dense_out/kernel")
    else:  # no stacks: the dense layer reads [inputs..., gru] directly
        put(model.dense_out.kernel, "decoder/dense_out/kernel",
            tensor("decoder/dense_out/kernel")[out_rows])  # fmt: skip
    if model.encoder is not None:
        encoder = model.encoder
        for ours_var, name in ((encoder.norm.scale, "encoder/z_norm/scale"),
                               (encoder.norm.shift, "encoder/z_norm/shift")):  # fmt: skip
            put(ours_var, name, tensor(name).reshape(-1))  # official shape [1, 1, 1, 30]
        put(encoder.rnn.kernel, "encoder/rnn/rnn/cell/kernel")
        put(encoder.rnn.recurrent_kernel, "encoder/rnn/rnn/cell/recurrent_kernel")
        put(encoder.rnn.bias, "encoder/rnn/rnn/cell/bias")
        put(encoder.out.kernel, "encoder/dense_out/kernel")
        put(encoder.out.bias, "encoder/dense_out/bias")
    put(model.dense_out.bias, "decoder/dense_out/bias")
    for node in model.graph.nodes:  # the synthesis graph's weights (the reverb's IR)
        for weight in node.weights():
            if weight.official is None:
                raise ModelError(f"the {node.name} node's {weight.name} has no official name")
            put(getattr(model.node_module(node), weight.name), weight.official)
    return len(copied)


def gin_text(config: MagentaConfig) -> str:
    """ddspcli's ``config.gin`` for the official model's shape."""
    values = {
        "sample_rate": config.sample_rate, "frame_rate": config.frame_rate,
        "rnn_units": config.rnn_channels, "mlp_units": config.ch,
        "mlp_layers": config.layers_per_stack, "n_harmonics": config.n_harmonics,
        "n_noise_bands": config.n_noise_bands, "reverb_length": config.reverb_length,
        "z_dims": config.z_dims, "noise_window_size": config.noise_window_size,
    }  # fmt: skip
    if config.z_dims:
        values |= {"z_style": '"ddsp"', "z_fft_size": config.z_fft_size,
                   "z_hop": config.z_hop, "z_rnn_units": config.z_rnn_channels}  # fmt: skip
    lines = ["# Imported from an official DDSP checkpoint (ddsp 1.x-3.x RnnFcDecoder)."]
    return "\n".join([*lines, *(f"Autoencoder.{k} = {v}" for k, v in values.items())]) + "\n"


def import_folder(src: str | Path, dest: str | Path, *, force: bool = False) -> dict:
    """Write a ddspcli model folder (``model.json``, ``config.gin``, ``statistics.json``,
    ``ckpt.*`` and the runtime's files) from an official checkpoint folder; returns its
    ``model.json`` contents.

    Without ``dataset_statistics.pkl`` the folder has no statistics and a `DdspWarning` says
    that auto-adjust is off. Nothing is written unless every variable loaded.
    """
    import json
    import warnings

    from ddspcli import __version__, storage
    from ddspcli.engine import features, magenta_stats, modeldir
    from ddspcli.errors import DdspWarning

    src, dest = Path(src), Path(dest)
    storage.check_output_folder(dest, [src])
    storage.check_new_folder(dest, force=force)  # before the checkpoint is read
    config = read_config(src)
    prefix = latest_checkpoint(src)
    model = build_model(config)
    load_weights(model, config, prefix)
    stats_file = src / "dataset_statistics.pkl"
    statistics = {}
    if stats_file.exists():
        statistics = magenta_stats.to_statistics(magenta_stats.load(stats_file))
    else:
        warnings.warn(f"{src} has no dataset_statistics.pkl: the model imports without "
                      "statistics, so transfer's auto-adjust is off for it", DdspWarning,
                      stacklevel=2)  # fmt: skip
    settings = features.FeatureSettings(sample_rate=config.sample_rate,
                                        frame_rate=config.frame_rate)  # fmt: skip
    info = {
        "format_version": 1, "ddspcli_version": __version__,
        "sample_rate": config.sample_rate, "frame_rate": config.frame_rate,
        "variant": "ddsp-import", "z_dims": config.z_dims,
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "features": settings.to_dict(), "checkpoint": "ckpt",
        "steps": int(prefix.rsplit("-", 1)[-1]), "inference_only": True,
        "imported_from": f"{src.name}/{Path(prefix).name} (official DDSP checkpoint)",
    }  # fmt: skip
    with storage.atomic_folder(dest, force=force) as tmp:
        modeldir.write_checkpoint(model, tmp / "ckpt", dest)
        storage.write_text(tmp / model_lib.CONFIG_GIN, gin_text(config))
        storage.write_text(tmp / model_lib.MODEL_JSON, json.dumps(info, indent=2) + "\n")
        if statistics:
            storage.write_text(tmp / "statistics.json", json.dumps(statistics, indent=2) + "\n")
        modeldir.write_runtime_files(tmp, model)  # the decoder as TFLite, for the runtime
    return info


def official_harmonic_synthesis(
    f0_hz: np.ndarray,
    amplitudes: np.ndarray,
    harmonic_distribution: np.ndarray,
    n_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """The official library's oscillator bank (ddsp 3.x, ``use_angular_cumsum=False``) step
    for step, for checking an import against its outputs (bit-identical to the official
    harmonic audio on the same controls); ddspcli renders with `dsp.harmonic_synthesis`.

    The official bank multiplies f0 by the harmonic numbers per frame, resamples those
    frequencies with TF's bilinear image resize, and integrates each harmonic's radians per
    sample with a float32 cumulative sum, so its phase drifts by float32 rounding over
    seconds; ddspcli accumulates the fundamental's phase in float64. Same envelopes
    otherwise (Hann-window amplitudes, zero at or above Nyquist).

    Args:
        f0_hz: ``[b, t, 1]`` Hz. amplitudes: ``[b, t, 1]``. harmonic_distribution:
            ``[b, t, k]`` (normalised). n_samples: output length. sample_rate: Hz.
    Returns:
        ``[b, n_samples]`` float32 audio.
    """
    from ddspcli.engine import dsp

    k = int(harmonic_distribution.shape[-1])
    f0 = tf.constant(f0_hz, tf.float32)
    harmonic_amps = tf.constant(amplitudes, tf.float32) * tf.constant(harmonic_distribution,
                                                                       tf.float32)  # fmt: skip
    frame_frequencies = f0 * tf.linspace(1.0, float(k), k)[None, None, :]  # [b, t, k]
    frequencies = tf.compat.v1.image.resize(
        frame_frequencies[:, :, None, :], [n_samples, 1], align_corners=False,
        method=tf.compat.v1.image.ResizeMethod.BILINEAR,
    )[:, :, 0, :]  # fmt: skip
    envelopes = dsp.upsample(harmonic_amps, n_samples, "window")
    envelopes = tf.where(frequencies >= sample_rate / 2.0, tf.zeros_like(envelopes), envelopes)
    omegas = frequencies * (2.0 * np.pi) / float(sample_rate)  # two float32 ops, as theirs
    phases = tf.cumsum(omegas, axis=1)
    return tf.reduce_sum(envelopes * tf.sin(phases), axis=-1).numpy()
