"""Models for the DDSP-VST plugin: the one ``.tflite`` file it loads, written and checked.

The plugin's contract (its ``ModelLibrary::validateModel``, ``PredictControlsModel`` and
``Constants.h``): exactly three float32 inputs ``call_f0_scaled:0`` [1] (``midi / 127``),
``call_pw_scaled:0`` [1] (power ``dB / 80 + 1``) and ``call_state:0`` [512] (the GRU state
it feeds back every 320-sample hop), and four outputs ``StatefulPartitionedCall:0`` amplitude
[1], ``:1`` harmonic distribution [60], ``:2`` noise magnitudes [65] and ``:3`` the new state
[512], after their scaling functions (the plugin synthesises from them directly); builtin
operators only (it has no Flex delegate); and a ``metadata.json`` it reads by opening the file
as a zip archive (its ``export_time`` is the model's id).

Those names are what the TFLite converter gives a SavedModel signature ``call`` whose
arguments are named ``f0_scaled``, ``pw_scaled`` and ``state`` (inputs ``call_<arg>:0``,
outputs ``StatefulPartitionedCall:<i>``), which is how the official exporter gets them.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ddspcli import __version__, choices, storage
from ddspcli.engine import adjust, dsp, features
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.errors import InputError, ModelError

STATE_SIZE = 512
N_HARMONICS = 60
N_NOISE = 65
INPUTS = {"call_f0_scaled:0": 1, "call_pw_scaled:0": 1, "call_state:0": STATE_SIZE}
OUTPUTS = {
    "StatefulPartitionedCall:0": 1,  # amplitude
    "StatefulPartitionedCall:1": N_HARMONICS,  # harmonic distribution
    "StatefulPartitionedCall:2": N_NOISE,  # noise magnitudes
    "StatefulPartitionedCall:3": STATE_SIZE,  # GRU state
}
METADATA = "metadata.json"
METADATA_KEYS = (  # what the plugin reads
    "export_time", "mean_min_pitch_note_hz", "mean_max_pitch_note_hz", "mean_min_power_note",
    "mean_max_power_note", "version",
)  # fmt: skip
CUSTOM_OPCODE = 32  # BuiltinOperator.CUSTOM in the TFLite schema
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
    plugin's four outputs: amplitude [1], harmonic distribution [60] (above Nyquist zeroed,
    normalised), noise magnitudes [65] (linear) and the new state [512]."""
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
            f0_hz = dsp.midi_to_hz(f0 * model_lib.F0_RANGE)
            harmonic = m.harmonic.get_controls(
                raw["amplitudes"], raw["harmonic_distribution"], f0_hz
            )
            noise = m.noise.get_controls(raw["noise_magnitudes"])["magnitudes"]
            return (harmonic["amplitudes"][0], harmonic["harmonic_distribution"][0],
                    noise[0], new_state[0])  # fmt: skip

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
        ModelError: not a plugin model (`check_exportable`), or the result fails `check`.
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


# ---------------------------------------------------------------------------------------------
# Check.


def check_file(path: str | Path) -> list[str]:
    """Every way a file breaks the plugin's contract, one line each ([] = it loads).

    Raises:
        InputError: the file cannot be read.
    """
    try:
        with storage.open_read(path) as f:
            payload = f.read()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    return check_bytes(payload)


def check_bytes(payload: bytes) -> list[str]:
    """`check_file` on bytes: the model (loads, operators, tensors), then the metadata."""
    if len(payload) < 8 or payload[4:8] != b"TFL3":
        return ["not a TFLite model (no TFL3 flatbuffer identifier at byte 4)"]
    interpreter, why = None, ""
    try:
        interpreter = new_interpreter(payload)
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        why = f"not a loadable TFLite model (damaged or truncated?): {first}"
    try:
        problems = operator_problems(payload)
        schema_io = schema_tensors(payload)
    except Exception:  # a damaged flatbuffer can fail anywhere in the reader
        return [why] if interpreter is None else ["the flatbuffer's operator table is unreadable"]
    if interpreter is None and not problems:
        return [why]  # not for want of an operator: the file itself is broken
    inputs, outputs = (
        (interpreter.get_input_details(), interpreter.get_output_details())
        if interpreter is not None else schema_io
    )
    problems += _tensor_problems(inputs, INPUTS, "input")
    problems += _tensor_problems(outputs, OUTPUTS, "output")
    return problems + metadata_problems(payload)


def schema_tensors(payload: bytes) -> tuple[list[dict], list[dict]]:
    """The first subgraph's input and output tensors (``name``, ``shape``, ``dtype``) read
    from the flatbuffer itself, for files the interpreter cannot load (a Flex operator)."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(payload, 0).Subgraphs(0)

    def detail(index: int) -> dict:
        tensor = graph.Tensors(index)
        dtype = np.float32 if tensor.Type() == schema.TensorType.FLOAT32 else np.void
        return {"name": tensor.Name().decode(), "shape": tensor.ShapeAsNumpy(), "dtype": dtype}

    return ([detail(int(i)) for i in graph.InputsAsNumpy()],
            [detail(int(i)) for i in graph.OutputsAsNumpy()])  # fmt: skip


def new_interpreter(content: bytes) -> tf.lite.Interpreter:
    """The TFLite interpreter on a model's bytes, tensors allocated: builtin operators only and
    no default delegate (as quiet as it is deterministic; its deprecation notice silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=content, num_threads=1,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )  # fmt: skip
    interpreter.allocate_tensors()
    return interpreter


def operator_codes(payload: bytes) -> list[tuple[int, str]]:
    """``(builtin code, custom name)`` of each operator code in the flatbuffer, read with the
    schema reader TensorFlow ships (independent of the interpreter)."""
    from tensorflow.lite.python import schema_py_generated as schema

    flat = schema.Model.GetRootAsModel(payload, 0)
    codes = []
    for i in range(flat.OperatorCodesLength()):
        code = flat.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append((builtin, custom.decode() if custom else ""))
    return codes


def operator_problems(payload: bytes) -> list[str]:
    """Custom operators (Flex ones included): the plugin's builtin resolver has none."""
    problems = []
    for builtin, custom in operator_codes(payload):
        if builtin != CUSTOM_OPCODE:
            continue
        if custom.startswith("Flex"):
            problems.append(f"operator {custom} needs the Flex delegate, which the plugin lacks "
                            "(builtin TFLite operators only)")  # fmt: skip
        else:
            problems.append(f"custom operator {custom or '?'} is unknown to the plugin")
    return problems


def _tensor_problems(details: list[dict], wanted: dict[str, int], kind: str) -> list[str]:
    """Count, names (any order, no repeats), sizes and types, as the plugin checks them."""
    problems = []
    if len(details) != len(wanted):
        problems.append(f"{len(details)} {kind} tensors; the plugin needs {len(wanted)}")
    left = dict(wanted)
    for detail in details:
        name = detail["name"]
        size = int(np.prod(detail["shape"])) if len(detail["shape"]) else 1
        if name not in left:
            known = ", ".join(sorted(wanted))
            problems.append(f"{kind} tensor {name!r} is not one the plugin knows ({known})")
            continue
        if size != left[name]:
            problems.append(f"{kind} tensor {name} has {size} values; the plugin needs "
                            f"{left[name]}")  # fmt: skip
        if detail["dtype"] != np.float32:
            problems.append(f"{kind} tensor {name} is {np.dtype(detail['dtype']).name}, not "
                            "float32")  # fmt: skip
        del left[name]
    problems += [f"{kind} tensor {name} is missing" for name in sorted(left)]
    return problems


def metadata_problems(payload: bytes) -> list[str]:
    """``metadata.json`` present as the plugin reads it: a zip entry whose central directory
    offset counts from the start of the file, holding JSON with the keys the plugin reads."""
    eocd = payload.rfind(b"PK\x05\x06")
    if eocd < 0:
        return [f"no {METADATA}: the file has no zip archive appended (the plugin takes the "
                "model's id and pitch/power range from it)"]  # fmt: skip
    offset = struct.unpack("<I", payload[eocd + 16 : eocd + 20])[0]
    if payload[offset : offset + 4] != b"PK\x01\x02":
        return [f"the appended zip's central directory offset {offset} does not count from the "
                "start of the file; the plugin's zip reader would not find metadata.json"]
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            meta = json.loads(archive.read(METADATA))
    except KeyError:
        return [f"the appended zip archive has no {METADATA}"]
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError) as err:
        return [f"{METADATA} is unreadable: {err}"]
    if not isinstance(meta, dict):
        return [f"{METADATA} is not a JSON object"]
    return _metadata_key_problems(meta)


def _metadata_key_problems(meta: dict) -> list[str]:
    """Missing keys; numbers that are not finite; an empty id."""
    problems = [f"{METADATA} lacks {key}" for key in METADATA_KEYS if key not in meta]
    for key in METADATA_KEYS[1:5]:
        value = meta.get(key)
        if key in meta and not (isinstance(value, int | float) and math.isfinite(value)):
            problems.append(f"{METADATA} {key} is not a finite number: {value!r}")
    if "export_time" in meta and not str(meta["export_time"]):
        problems.append(f"{METADATA} export_time (the model's id in the plugin) is empty")
    return problems


def read_metadata(path: str | Path) -> dict:
    """The ``metadata.json`` of an exported file (zipfile reads the appended archive)."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(METADATA))


# ---------------------------------------------------------------------------------------------
# Running an exported file as the plugin does.


class PluginModel:
    """An exported file in the TFLite interpreter, called once per hop with the state fed
    back, as the plugin's ``PredictControlsModel`` does (inputs and outputs found by name)."""

    def __init__(self, path_or_bytes: str | Path | bytes) -> None:
        content = (path_or_bytes if isinstance(path_or_bytes, bytes)
                   else Path(path_or_bytes).read_bytes())  # fmt: skip
        self.interpreter = new_interpreter(content)
        self.inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.state = np.zeros(STATE_SIZE, np.float32)

    def __call__(self, f0_scaled: float, pw_scaled: float) -> dict[str, np.ndarray]:
        """One hop: ``{amplitudes [1], harmonic_distribution [60], noise_magnitudes [65]}``."""
        run = self.interpreter
        run.set_tensor(self.inputs["call_f0_scaled:0"], np.float32([f0_scaled]))
        run.set_tensor(self.inputs["call_pw_scaled:0"], np.float32([pw_scaled]))
        run.set_tensor(self.inputs["call_state:0"], self.state)
        run.invoke()
        out = {key: run.get_tensor(self.outputs[name]).copy() for key, name in (
            ("amplitudes", "StatefulPartitionedCall:0"),
            ("harmonic_distribution", "StatefulPartitionedCall:1"),
            ("noise_magnitudes", "StatefulPartitionedCall:2"))}  # fmt: skip
        self.state = run.get_tensor(self.outputs["StatefulPartitionedCall:3"]).copy()
        return out

    def run(self, f0_scaled: np.ndarray, pw_scaled: np.ndarray) -> dict[str, np.ndarray]:
        """Frame by frame over ``[t]`` inputs -> ``[t, size]`` per output."""
        frames = [self(f, p) for f, p in zip(f0_scaled, pw_scaled, strict=True)]
        return {key: np.stack([f[key] for f in frames]) for key in frames[0]}


def scaled_inputs(f0_hz: np.ndarray, level_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plugin's input scaling: ``midi(f0) / 127`` (0 Hz -> 0) and ``dB / 80 + 1``."""
    midi = adjust.hz_to_midi(f0_hz)
    return ((midi / model_lib.F0_RANGE).astype(np.float32),
            (np.asarray(level_db) / model_lib.LD_RANGE + 1.0).astype(np.float32))  # fmt: skip
