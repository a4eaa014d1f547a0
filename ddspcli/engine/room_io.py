"""`ddsp room`: read a room (a model's, or an impulse-response file), describe it, apply it.

A room file is a full impulse response, as measured IRs are: the direct sound (its largest
sample) then the room. `extract` writes a model's room that way (a unit impulse at sample 0,
then the learned wet IR), so `apply --room room.wav` and `apply --room MODEL` do the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddspcli import choices, runtime, storage, tfimport
from ddspcli.engine import acoustics, audio
from ddspcli.errors import InputError, ModelError

MAX_IR_S = choices.MAX_ROOM_IR_S  # longest impulse-response file `--room` accepts (s)


@dataclass
class RoomIR:
    """A room ready to apply: its wet IR ``[m]`` (direct sound removed, direct = 1)."""

    wet: np.ndarray
    sample_rate: int
    source: str
    notes: list[str] = field(default_factory=list)  # what was done to the file (mixed, ...)
    parameters: dict | None = None  # a `room.Room`'s decays and levels per band

    def full(self) -> np.ndarray:
        """``[m]`` direct impulse at sample 0 plus the wet IR (what `extract` writes)."""
        return acoustics.with_direct(self.wet).astype(np.float32)


def is_model_folder(path: str) -> bool:
    """A folder written by `ddsp fit` / `models export` (it holds ``model.json``)."""
    return storage.isdir(path) and storage.exists(storage.join(path, "model.json"))


def no_room(source: str) -> ModelError:
    """The one line for a model without a room (exit 5)."""
    return ModelError(f"{source} has no room (it was trained dry); pass an IR file or a model "
                      "trained with one (--variant harmonic+noise+room)")  # fmt: skip


def model_room(model_dir: str) -> RoomIR:
    """The room of a model folder, with its parameters where TensorFlow is installed
    (`tfimport.engine_module`), else as its runtime files hold it (`runtime_room`).
    `ModelError` when it has none."""
    try:
        dsp = tfimport.engine_module("dsp")
        model_lib = tfimport.engine_module("model")
        room_lib = tfimport.engine_module("room")
    except ModuleNotFoundError:  # the light install: the room as the runtime plays it
        return runtime_room(model_dir)
    loaded = model_lib.load_model_dir(model_dir)
    reverb = loaded.model.reverb
    if reverb is None:
        raise no_room(model_dir)
    wet = reverb.effective_ir(dsp.tf_float32(reverb.ir)).numpy().astype(np.float64)
    parameters = reverb.summary() if isinstance(reverb, room_lib.Room) else None
    return RoomIR(wet, int(loaded.model.sample_rate), model_dir, parameters=parameters)


def runtime_room(model_dir: str) -> RoomIR:
    """The room of a model folder from its runtime files (no TensorFlow): the effective wet
    IR the runtime convolves with, without the decay and level parameters (those live in the
    checkpoint). `ModelError` when the folder has no room or no runtime files."""
    played = runtime.load(model_dir)
    return learned_room(played.reverb_ir, played.sample_rate, model_dir)


def learned_room(ir: np.ndarray | None, sample_rate: int, source: str,
                 target_rate: int | None = None) -> RoomIR:  # fmt: skip
    """A model's room from its runtime files: its effective wet IR ``[m]`` (first tap 0, no
    direct sound) at `sample_rate` (Hz), resampled to `target_rate` with a note.

    Raises:
        ModelError: `ir` is None (the model has no room).
    """
    if ir is None:
        raise no_room(source)
    return resampled(RoomIR(np.asarray(ir, np.float64), int(sample_rate), source), target_rate)


def resampled(room: RoomIR, sample_rate: int | None) -> RoomIR:
    """`room` at `sample_rate` (Hz; None: as it is), with a note when resampled."""
    if sample_rate is None or room.sample_rate == sample_rate:
        return room
    room.notes.append(f"{room.source}: room resampled from {room.sample_rate} Hz to "
                      f"{sample_rate} Hz")  # fmt: skip
    room.wet = audio.resample(room.wet, room.sample_rate, sample_rate).astype(float)
    room.sample_rate = sample_rate
    return room


def file_room(path: str, sample_rate: int | None = None) -> RoomIR:
    """An impulse-response file: decoded, mixed to mono and resampled to `sample_rate` (each
    with a note), direct sound located and removed (`acoustics.split_direct`).

    Raises:
        InputError: not audio, longer than `MAX_IR_S`, or silent.
    """
    try:
        raw, info = audio.read_audio(path, None, mono=False)
    except InputError as err:
        raise InputError(f"--room {path}: not an impulse response: {err}") from None
    notes = []
    if info.duration_s > MAX_IR_S:
        raise InputError(f"--room {path} is {info.duration_s:.1f} s long; an impulse response "
                         f"may be at most {MAX_IR_S:g} s (trim its silent tail)")  # fmt: skip
    ir = raw.mean(axis=1) if raw.ndim == 2 else raw
    if raw.ndim == 2 and raw.shape[1] > 1:
        notes.append(f"{path}: {raw.shape[1]} channels mixed to mono")
    rate = info.sample_rate
    if sample_rate is not None and rate != sample_rate:
        ir = audio.resample(ir, rate, sample_rate)
        notes.append(f"{path}: resampled from {rate} Hz to {sample_rate} Hz")
        rate = sample_rate
    if not np.any(ir):
        raise InputError(f"--room {path} is silent: an impulse response needs a direct sound")
    _, wet = acoustics.split_direct(ir, rate)
    return RoomIR(wet, rate, path, notes)


def load_room(spec: str, sample_rate: int | None = None) -> RoomIR:
    """``--room``: a model folder (its room, resampled to `sample_rate` if that differs) or
    an impulse-response file."""
    if is_model_folder(spec):
        return resampled(model_room(spec), sample_rate)
    if not Path(spec).exists() and not storage.is_remote(spec):
        raise InputError(f"--room {spec}: no such file or model folder")
    return file_room(spec, sample_rate)


def describe(room: RoomIR) -> dict:
    """RT60 per octave band 125 Hz-4 kHz (s, Schroeder T30), DRR (dB), length (s)."""
    rt60 = acoustics.rt60(room.wet, room.sample_rate)
    bands = [acoustics.NOMINAL_HZ[c] for c in acoustics.ANALYSIS_BANDS_HZ]
    by_band = zip(bands, rt60, strict=True)
    summary = {
        "source": room.source,
        "sample_rate": room.sample_rate,
        "length_s": round(len(room.wet) / room.sample_rate, 4),
        "rt60_s": {str(b): None if np.isnan(t) else round(float(t), 4) for b, t in by_band},
        "rt60_fit_db": list(acoustics.T30),
        "drr_db": round(acoustics.drr_db(room.full(), room.sample_rate), 3),
        "notes": room.notes,
    }
    if room.parameters is not None:
        summary["parameters"] = room.parameters
    return summary


def extract(model_dir: str, output: str, *, force: bool = False) -> dict:
    """Write a model's room as a float WAV (direct impulse + wet IR); its `describe`."""
    room = model_room(model_dir)
    audio.write_wav(output, room.full(), room.sample_rate, force=force, subtype="FLOAT")
    return {"output": output, **describe(room)}


def apply(
    source: str, room_spec: str, output: str, *, mix_db: float = 0.0, tail: bool = True,
    force: bool = False,
) -> dict:  # fmt: skip
    """Put a recording into a room: ``dry + 10**(mix_db/20) * (dry * wet IR)``.

    The input is mixed to mono at its own rate; the room is resampled to it. With `tail` the
    output is longer by the IR's length (the room rings on), else it keeps the input's.
    Written as a float WAV (a room can raise the peak above full scale).
    """
    dry, info = audio.read_audio(source, None)
    room = load_room(room_spec, info.sample_rate)
    padded = np.concatenate([dry, np.zeros(len(room.wet) if tail else 0, np.float32)])
    wet = acoustics.apply_room(padded, room.wet, mix_db)
    audio.write_wav(output, wet, info.sample_rate, force=force, subtype="FLOAT")
    peak = float(np.max(np.abs(wet))) if len(wet) else 0.0
    return {
        "input": source, "output": output, "room": room.source, "mix_db": mix_db,
        "sample_rate": info.sample_rate, "seconds": round(len(wet) / info.sample_rate, 4),
        "peak_dbfs": round(20 * np.log10(peak), 2) if peak > 0 else None, "notes": room.notes,
    }  # fmt: skip

