"""`ddsp info`: format, duration, level and loudness of audio files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddspcli import ui
from ddspcli.cli._app import app
from ddspcli.cli._common import JsonOpt, emit_json


@app.command("info")
def info_command(
    files: Annotated[list[str], typer.Argument(help="Audio files, or - for stdin.")],
    json_out: JsonOpt = False,
    sample_rate: Annotated[
        int, typer.Option(help="Rate (Hz) the loudness is measured at.", min=8000)
    ] = 16000,
) -> None:
    """Decode audio files and report format, duration, level and A-weighted loudness.

    Files are read block by block: memory does not grow with their length. --json: a list,
    one object per file.
    """
    from ddspcli.engine import analysis  # lazy: imports TensorFlow after the checks

    reports = []
    for name in files:
        ui.debug(f"reading {name}")
        reports.append(analysis.describe_audio(name, sample_rate))
    if json_out:
        emit_json(reports)
    else:
        ui.out_console.print(_info_table(reports))


def _info_table(reports: list[dict[str, object]]) -> object:
    from rich.table import Table

    table = Table(title=None, show_edge=False)
    for column in ("file", "format", "rate", "ch", "seconds", "peak dBFS", "loudness dB"):
        table.add_column(column, justify="left" if column in ("file", "format") else "right")
    for r in reports:
        table.add_row(
            str(Path(str(r["source"])).name),
            f"{r['format']}/{r['subtype']}",
            str(r["sample_rate"]),
            str(r["channels"]),
            f"{r['duration_s']:.2f}",
            f"{r['peak_dbfs']:.1f}",
            f"{r['loudness_db_median']:.1f}",
        )
    return table
