"""What several commands share: model protection, CREPE weights, render options, JSON output,
and the one translation of an engine `ValueError` into a usage error."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from ddspcli import choices, ui


def emit_json(payload: object) -> None:
    """Print `payload` as indented JSON on stdout (the one JSON writer of every command).

    Shapes (README, "JSON output"): `info`, `transfer` and `eval` print a list with one object
    per input or model, even for one; `prepare`, `generate` and `models list` one value.
    """
    json.dump(payload, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """An engine `ValueError` raised while checking option values is a usage error (exit 2)."""
    try:
        yield
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def stdout_conflict(json_out: bool, output: str | None) -> None:
    """``--json`` and ``-o -`` cannot both have stdout: a usage error."""
    from ddspcli import storage

    if json_out and storage.is_stdout(output):
        raise typer.BadParameter("--json and -o - both use stdout; write the audio to a file")


def _protect_model(folder: str | Path) -> None:
    """No output of this run may be written onto a file of the model in use."""
    from ddspcli import storage

    storage.protect_inputs(p for p in Path(folder).rglob("*") if p.is_file())


def resolve_model(model: str, progress: ui.DownloadProgress) -> tuple[str, str]:
    """``--model`` -> ``(model folder, short name)`` by `ddspcli.instrument.resolve_model` (a
    manifest name, a model folder, or an official DDSP checkpoint folder imported once into
    the cache). The model's files (and an imported checkpoint's) are protected as inputs of
    the run."""
    from ddspcli import instrument

    resolved = instrument.resolve_model(model, progress)
    for folder in (resolved.imported_from, resolved.folder):
        if folder is not None:
            _protect_model(folder)
    return str(resolved.folder), resolved.name


def open_instrument(model: str, progress: ui.DownloadProgress, **options: object):
    """``--model`` -> a `ddspcli.instrument.Instrument` (`Instrument.open` with `options`: the
    pitch tracker and its hop), its files and an imported checkpoint's protected as inputs of
    the run; settings the model cannot use are usage errors."""
    from ddspcli.instrument import Instrument

    with usage_errors():
        player = Instrument.open(model, progress=progress, **options)
    for folder in (player.imported_from, player.folder):
        if folder is not None:
            _protect_model(folder)
    return player


def pitch_weights(model: str, progress: ui.DownloadProgress) -> Path:
    """Resolve ``crepe-<model>`` through the manifest (downloading if needed) to a file."""
    from ddspcli import pretrained

    spec = pretrained.get_spec(f"crepe-{model}")
    return pretrained.pull(spec, progress) / spec.files[0].name


PitchModelOpt = Annotated[choices.PitchModel, typer.Option(help="CREPE capacity.")]
def _positive_hop(value: float | None) -> float | None:
    """``--pitch-hop-ms`` must be positive when given (0 used to mean the default); NaN and
    infinity are left to the finiteness check every float option gets (`_run`)."""
    if value is not None and math.isfinite(value) and value <= 0:
        raise typer.BadParameter(f"{value:g} ms is not a hop; give a positive multiple of 4 ms "
                                 "(4, 16, 32, ...) or leave the option out")  # fmt: skip
    return value


PitchHopOpt = Annotated[
    float | None, typer.Option(help=choices.pitch_hop_help(), callback=_positive_hop)
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

# Adjustment options shared by `transfer` and `live`.
OctaveOpt = Annotated[
    int,
    typer.Option(help="Octaves to shift (after auto-adjust).", min=-choices.MAX_SHIFT_OCTAVES,
                 max=choices.MAX_SHIFT_OCTAVES),
]  # fmt: skip
SemitonesOpt = Annotated[
    float,
    typer.Option(help="Semitones to shift (after auto-adjust).",
                 min=-choices.MAX_SHIFT_SEMITONES, max=choices.MAX_SHIFT_SEMITONES),
]  # fmt: skip
LoudnessShiftOpt = Annotated[float, typer.Option(help="dB added to the loudness.")]
QuietDbOpt = Annotated[
    float, typer.Option("--quiet-db", help="dB off the frames without notes (auto-adjust).")
]

# Rendering options shared by `transfer` and `generate` (the room ones by `live` too).
ReverbOpt = Annotated[
    bool, typer.Option(help="Apply the model's room (--no-reverb: the same as --room none).")
]
RoomOpt = Annotated[str | None, typer.Option("--room", help=choices.room_help())]
RoomMixOpt = Annotated[
    float,
    typer.Option("--room-mix", help=choices.room_mix_help(), min=choices.MIN_ROOM_MIX_DB,
                 max=choices.MAX_ROOM_MIX_DB),
]  # fmt: skip


def room_plays(room: str | None, room_mix: float, reverb: bool) -> bool:
    """Whether a room plays, refusing contradictions as usage errors (before any work):
    ``--no-reverb`` (an alias of ``--room none``) with another ``--room``, and ``--room-mix``
    without a room to set the level of. An IR file is protected as an input from here on, so
    no output check that follows lets it be overwritten (``live -o hall.wav --room hall.wav``)."""
    from ddspcli import storage

    if room is not None and Path(room).is_file():
        storage.protect_inputs([room])
    dry = room == choices.ROOM_NONE
    if not reverb and room is not None and not dry:
        raise typer.BadParameter(f"--no-reverb renders without a room but --room {room} asks "
                                 f"for one; give one of them (--room {choices.ROOM_NONE} is "
                                 "the dry render)")  # fmt: skip
    if (dry or not reverb) and room_mix != choices.ROOM_MIX_DB:
        raise typer.BadParameter(f"--room-mix {room_mix:g} sets the level of a room, but the "
                                 "render is dry; drop one of them")  # fmt: skip
    return reverb and not dry


def open_room(player, room: str | None, room_mix: float, progress: ui.DownloadProgress):
    """``--room MODEL|IR.wav`` (where `room_plays`) for `player` (an `Instrument`) -> the wet
    IR its render takes (None: the model's own), its notes said on stderr; a room model's
    files protected as inputs. A ``--room-mix`` the model cannot use (it has no room of its
    own and none is given) is a usage error."""
    ir = None
    if room is not None:
        found = player.open_room(room, progress)
        if not Path(room).is_file():
            resolve_model(room, progress)  # resolved already: protects the model's files
        for note in found.notes:
            ui.info(f"note: {note}")
        ir = found.wet
    with usage_errors():
        player.room_ir(ir, room_mix)
    return ir
SampleRateOpt = Annotated[
    int | None, typer.Option(help="Output rate in Hz (default: the model's).", min=8000)
]
PeakDbOpt = Annotated[
    float,
    typer.Option(help="Peak ceiling in dBFS (at most 0): louder output is turned down.", max=0.0),
]
NormalizeOpt = Annotated[
    bool, typer.Option("--normalize", help="Scale the peak to exactly --peak-db.")
]
