"""Models for the DDSP-VST plugin: the one ``.tflite`` file it loads, written from a model.

The plugin's contract (inputs, outputs, operators, ``metadata.json``) and the checks of a file
against it are in `ddspcli.engine.vst_check`, which needs no TensorFlow; this module converts a
vst-variant model (TensorFlow) and checks the result with it before writing.

The names the plugin wants are what the TFLite converter gives a SavedModel signature ``call``
whose arguments are named ``f0_scaled``, ``pw_scaled`` and ``state`` (inputs ``call_<arg>:0``,
outputs ``StatefulPartitionedCall:<i>``), which is how the official exporter gets them.
"""

from __future__ import annotations

import datetime
import io
import json
import tempfile
import zipfile
from pathlib import Path

from ddspcli import __version__, choices, storage
from ddspcli.engine import dsp, features
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.vst_check import METADATA, N_HARMONICS, N_NOISE, STATE_SIZE, check_bytes
from ddspcli.errors import ModelError

HOW_TO_TRAIN = (
    "train one for the plugin: ddsp prepare AUDIO -o DATA --preset vst; "
    "ddsp fit DATA --variant vst -o RUN"
)


# ---------------------------------------------------------------------------------------------
# Export.


def check_exportable(loaded: model_lib.LoadedModel) -> None:
    """Refuse a model the plugin could not load or would drive with features it never saw.

    Raises:
        ModelError: naming what differs and how to train a plugin model.
    """
    m, info = loaded.model, loaded.info
    feats = features.FeatureSettings.from_dict(info.get("features") or {})
    wanted = features.FeatureSettings.vst()
    problems = []
    if info.get("variant") != choices.Variant.VST.value:
        problems.append(f"its variant is {info.get('variant')!r}, not 'vst'")
    shape = (m.rnn.units, m.n_harmonics, m.n_noise_bands, m.z_dims)
    if shape != (STATE_SIZE, N_HARMONICS, N_NOISE, 0):
        problems.append(
            f"GRU {shape[0]}, {shape[1]} harmonics, {shape[2]} noise bands, z {shape[3]} "
            "(the plugin needs GRU 512, 60, 65, no z)"
        )
    have = (m.sample_rate, m.frame_rate, feats.loudness, feats.n_fft)
    if have != (wanted.sample_rate, wanted.frame_rate, wanted.loudness, wanted.n_fft):
        problems.append(
            f"it was trained at {have[0]} Hz, {have[1]} frames/s on {have[2]} level over "
            f"{have[3]} samples (the plugin feeds 16000 Hz, 50 frames/s, power over 1024)"
        )
    unplugged = [f"{n.name} {w.name}" for n in m.graph.sources for w in n.weights()
                 if not w.plugin]  # fmt: skip
    if unplugged:  # the file carries the decoder only: a source's weights have no place in it
        problems.append(f"its synthesizers have weights a plugin file cannot carry "
                        f"({', '.join(unplugged)})")  # fmt: skip
    if problems:
        raise ModelError(
            f"{loaded.path} is not a DDSP-VST model: {'; '.join(problems)}; {HOW_TO_TRAIN}"
        )
    if not loaded.statistics.get("note_ranges"):
        raise ModelError(
            f"{loaded.path} has no note-range statistics (statistics.json 'note_ranges') for "
            "the plugin's metadata; prepare its data again with --preset vst"
        )


def controls_module(m: model_lib.Autoencoder) -> tf.Module:
    """A module whose ``call(f0_scaled [1], pw_scaled [1], state [512])`` returns the
    plugin's outputs: the physical controls of the graph's sources in the decoder's order
    (amplitude [1], harmonic distribution [60] (above Nyquist zeroed, normalised), noise
    magnitudes [65] (linear)) and the new state [512]. The graph's effects stay out (their
    weights are not `graph.Weight.plugin`: the plugin adds its own reverb)."""
    names = [c.name for c in m.graph.controls()]
    spec = tf.TensorSpec

    class Controls(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="vst_controls")
            self.model = m

        @tf.function(input_signature=[spec([1], tf.float32, name="f0_scaled"),
                                      spec([1], tf.float32, name="pw_scaled"),
                                      spec([STATE_SIZE], tf.float32, name="state")])  # fmt: skip
        def call(self, f0_scaled, pw_scaled, state):
            f0 = tf.reshape(f0_scaled, [1, 1])
            raw, new_state = m.decode_frame(
                f0, tf.reshape(pw_scaled, [1, 1]), tf.reshape(state, [1, STATE_SIZE])
            )
            controls = m.scale_controls(raw, dsp.midi_to_hz(f0 * model_lib.F0_RANGE))
            return (*(controls[name][0] for name in names), new_state[0])

    return Controls()


def to_tflite(module: tf.Module, builtins_only: bool = True) -> bytes:
    """Convert a module's ``call`` tf.function (with an input signature) to TFLite bytes,
    through a temporary SavedModel whose signature is named ``call`` (so inputs are named
    ``call_<argument>:0`` and outputs ``StatefulPartitionedCall:<i>``)."""
    with tempfile.TemporaryDirectory(prefix="ddsp-vst-") as tmp:
        tf.saved_model.save(module, tmp, signatures={"call": module.call.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["call"])
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if not builtins_only:
            ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        converter.target_spec.supported_ops = ops
        return bytes(converter.convert())


def metadata(loaded: model_lib.LoadedModel, export_time: str | None = None) -> dict:
    """``metadata.json``: the official exporter's keys, from the dataset's note ranges."""
    ranges = loaded.statistics["note_ranges"]
    low, high = ranges["mean_min_pitch_note"], ranges["mean_max_pitch_note"]
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {
        "mean_min_pitch_note": low,
        "mean_max_pitch_note": high,
        "mean_min_pitch_note_hz": 440.0 * 2.0 ** ((low - 69.0) / 12.0),
        "mean_max_pitch_note_hz": 440.0 * 2.0 ** ((high - 69.0) / 12.0),
        "mean_min_power_note": ranges["mean_min_power_note"],
        "mean_max_power_note": ranges["mean_max_power_note"],
        "version": f"ddspcli {__version__}",
        "export_time": export_time or now,
        "num_harmonics": loaded.model.n_harmonics,
        "num_noise_amps": loaded.model.n_noise_bands,
        "frame_rate": loaded.model.frame_rate,
        "frame_size": choices.VST_FRAME_SIZE,
        "sample_rate": loaded.model.sample_rate,
        "steps": loaded.info.get("steps"),
    }


def append_metadata(tflite: bytes, meta: dict) -> bytes:
    """The model with ``metadata.json`` appended as a zip archive whose offsets count from the
    start of the file (as the plugin's zip reader takes them)."""
    buffer = io.BytesIO(tflite)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(METADATA, json.dumps(meta, indent=2))
    return buffer.getvalue()


def export(run: str | Path, dest: str | Path, *, force: bool = False,
           export_time: str | None = None) -> dict:  # fmt: skip
    """Write a vst-variant model as the plugin's ``.tflite`` (checked before it is written).

    Returns:
        the metadata written.
    Raises:
        ModelError: not a plugin model (`check_exportable`), or the result fails
            `vst_check.check_bytes`.
    """
    storage.check_output(dest, force=force)
    loaded = model_lib.load_model_dir(str(run))
    check_exportable(loaded)
    meta = metadata(loaded, export_time)
    payload = append_metadata(to_tflite(controls_module(loaded.model)), meta)
    problems = check_bytes(payload)
    if problems:  # a converter that changed its naming: say so rather than write a dud
        raise ModelError(f"the converted model breaks the plugin's contract: {problems[0]}")
    with storage.atomic_write(dest, force=force) as f:
        f.write(payload)
    return meta
