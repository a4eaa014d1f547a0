"""The `ddsp` command: one thin Typer function per subcommand, calling the shared engine.

No math lives here: options are parsed, engine functions are called, results are printed
(data on stdout, messages on stderr), and errors become one line plus an exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ddspcli import __version__, ui
from ddspcli.errors import EXIT_INTERNAL, DdspError

app = typer.Typer(
    name="ddsp",
    help="Timbre transfer with DDSP: turn any recording into an instrument.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ddsp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and warnings on stderr.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr.")
    ] = False,
) -> None:
    """Timbre transfer with DDSP. Data goes to stdout, messages to stderr."""
    ui.set_verbosity(quiet, verbose)


@app.command("info")
def info_command(
    files: Annotated[list[str], typer.Argument(help="Audio files, or - for stdin.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    sample_rate: Annotated[
        int, typer.Option(help="Rate (Hz) the loudness is measured at.", min=8000)
    ] = 16000,
) -> None:
    """Decode audio files and report format, duration, level and A-weighted loudness."""
    from ddspcli.engine import analysis  # lazy: imports TensorFlow

    reports = []
    for name in files:
        ui.debug(f"reading {name}")
        reports.append(analysis.describe_audio(name, sample_rate))
    if json_out:
        json.dump(reports if len(files) > 1 else reports[0], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
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


def main() -> None:
    """Console-script entry point: run the app and map errors to exit codes.

    Typer itself handles usage errors (exit 2), Ctrl-C (exit 130) and ``--help``; the
    engine's `DdspError`s become one line on stderr and their own exit code.
    """
    try:
        app()
    except DdspError as err:
        ui.error(str(err))
        sys.exit(err.exit_code)
    except Exception as err:  # a bug: say so in one line, traceback with --verbose
        if ui.state.verbosity >= ui.VERBOSE:
            raise
        ui.error(f"internal error: {type(err).__name__}: {err} (rerun with -v for a traceback)")
        sys.exit(EXIT_INTERNAL)
