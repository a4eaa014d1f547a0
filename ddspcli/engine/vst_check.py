"""DDSP-VST plugin files checked and run without TensorFlow: the contract, the checks, the model.

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
outputs ``StatefulPartitionedCall:<i>``), which is how the official exporter gets them
(`ddspcli.engine.vst` writes such files; it needs TensorFlow, this module does not: files run
in LiteRT, the flatbuffer is read with the schema reader LiteRT ships).
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
from ai_edge_litert import interpreter as litert
from ai_edge_litert import schema_py_generated as schema

from ddspcli import storage
from ddspcli.engine import adjust
from ddspcli.errors import InputError
from ddspcli.runtime.decoder import F0_RANGE, LD_RANGE
from ddspcli.runtime.litert import quiet_stderr

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
    graph = schema.Model.GetRootAsModel(payload, 0).Subgraphs(0)

    def detail(index: int) -> dict:
        tensor = graph.Tensors(index)
        dtype = np.float32 if tensor.Type() == schema.TensorType.FLOAT32 else np.void
        return {"name": tensor.Name().decode(), "shape": tensor.ShapeAsNumpy(), "dtype": dtype}

    return ([detail(int(i)) for i in graph.InputsAsNumpy()],
            [detail(int(i)) for i in graph.OutputsAsNumpy()])  # fmt: skip


def new_interpreter(content: bytes) -> litert.Interpreter:
    """LiteRT's interpreter on a model's bytes, tensors allocated: builtin operators only and
    no default delegate (as deterministic as the plugin's resolver), its native INFO line
    filtered out of stderr (`ddspcli.runtime.litert.quiet_stderr`)."""
    with quiet_stderr():
        interpreter = litert.Interpreter(
            model_content=content, num_threads=1,
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )  # fmt: skip
        interpreter.allocate_tensors()
    return interpreter


def operator_codes(payload: bytes) -> list[tuple[int, str]]:
    """``(builtin code, custom name)`` of each operator code in the flatbuffer, read with the
    schema reader LiteRT ships (independent of the interpreter)."""
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
    return ((midi / F0_RANGE).astype(np.float32),
            (np.asarray(level_db) / LD_RANGE + 1.0).astype(np.float32))  # fmt: skip
