"""`ddsp room ...`: extract a model's learned room, put any recording into a room (issue 29).

Exit codes as every command (`ddspcli.errors`): 3 an input or ``--room`` file that is not
audio, silent, or longer than `room_io.MAX_IR_S`; 4 an output that exists without
``--force``; 5 a model without a room (or not a model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddspcli import ui
from ddspcli.cli._app import app
from ddspcli.cli._common import ForceOpt, JsonOpt, emit_json, resolve_model, stdout_conflict

room_app = typer.Typer(
    help="Rooms: extract the room a model learned, put any recording into a room.",
    no_args_is_help=True,
)
app.add_typer(room_app, name="room")

ROOM_HELP = ("Model name or directory, or an impulse-response file (at most 10 s; mixed to "
             "mono and resampled to the input's rate).")  # fmt: skip


def _model_folder(model: str) -> str:
    with ui.DownloadProgress() as progress:
        return resolve_model(model, progress)[0]


@room_app.command("extract")
def room_extract(
    model: Annotated[str, typer.Argument(help="Model name (`ddsp models list`) or directory.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="WAV of the impulse response (or -).")
    ],
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Write a model's room as an impulse response (float WAV: a unit direct impulse, then the
    learned room) and report its RT60 per octave band (125 Hz-4 kHz, Schroeder T30) and its
    direct-to-reverberant ratio.

    Example: [bold]ddsp room extract runs/violin -o hall.wav --json[/bold].
    """
    from ddspcli import storage
    from ddspcli.engine import room_io

    stdout_conflict(json_out, output)
    folder = _model_folder(model)
    storage.check_output(output, force=force)
    summary = room_io.extract(folder, output, force=force)
    _report(summary, json_out)


@room_app.command("apply")
def room_apply(
    source: Annotated[str, typer.Argument(help="Dry recording (any format `info` reads), or -.")],
    room: Annotated[str, typer.Option("--room", help=ROOM_HELP)],
    output: Annotated[str, typer.Option("--output", "-o", help="Output WAV (or -).")],
    room_mix: Annotated[
        float, typer.Option("--room-mix", help="Room level in dB relative to the room as given.")
    ] = 0.0,
    tail: Annotated[
        bool, typer.Option(help="Let the room ring on after the input ends (longer output).")
    ] = True,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Put a recording into a room (acoustic transfer): dry + the room's convolution.

    Example: [bold]ddsp room apply voice.wav --room runs/violin -o voice.hall.wav[/bold].
    """
    from ddspcli import storage
    from ddspcli.engine import room_io

    stdout_conflict(json_out, output)
    storage.protect_inputs([source, room])
    spec = room if Path(room).is_file() else _model_folder(room)
    storage.check_output(output, force=force)
    summary = room_io.apply(source, spec, output, mix_db=room_mix, tail=tail, force=force)
    for note in summary["notes"]:
        ui.info(f"note: {note}")
    ui.info(f"{source} -> {'stdout' if output == '-' else output} in the room of {room} "
            f"({summary['seconds']:.2f} s, peak {summary['peak_dbfs']} dBFS)")  # fmt: skip
    if json_out:
        emit_json(summary)


def _report(summary: dict, json_out: bool) -> None:
    for note in summary["notes"]:
        ui.info(f"note: {note}")
    if json_out:
        emit_json(summary)
        return
    from rich.table import Table

    table = Table(show_edge=False)
    for band in summary["rt60_s"]:
        table.add_column(f"{band} Hz", justify="right")
    table.add_row(*("-" if t is None else f"{t:.2f}" for t in summary["rt60_s"].values()))
    table.title = (f"RT60 (s) of {summary['source']}: DRR {summary['drr_db']:.1f} dB, "
                   f"{summary['length_s']:.2f} s")  # fmt: skip
    ui.out_console.print(table)
