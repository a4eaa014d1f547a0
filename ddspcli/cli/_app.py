"""The Typer app and its global options; the commands register themselves on `app`."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import __version__, ui

app = typer.Typer(
    name="ddsp",
    help="Timbre transfer with DDSP: turn any recording into an instrument.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(
    help="List, download, verify and remove pretrained models (pretrained_manifest.toml).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


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
