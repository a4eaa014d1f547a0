"""`ddsp studio`: serve the local web page (`ddspcli.studio`, Gradio) on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import ui
from ddspcli.cli._app import app

STUDIO_EXTRA = "pip install 'ddspcli[studio]'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("studio")
def studio_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback: only this machine).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: the first free one from 7860).", min=1, max=65535),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
) -> None:
    """A web page to try, compare and keep transfers: upload or record, pick a model, listen.

    Needs the studio extra ([bold]pip install 'ddspcli[studio]'[/bold]). Listens on
    127.0.0.1 only; from another machine, use an SSH tunnel ([bold]ssh -L 7860:127.0.0.1:7860
    HOST[/bold]). Ctrl-C stops it and removes every temporary file.
    """
    import importlib.util

    from ddspcli.errors import RunError

    if importlib.util.find_spec("gradio") is None:
        raise RunError(f"`ddsp studio` needs Gradio, which this install lacks: {STUDIO_EXTRA}")
    if host not in LOOPBACK:
        ui.warn(f"--host {host}: the page (no login) is reachable by every machine that can "
                "reach this one; an SSH tunnel to 127.0.0.1 is safer")  # fmt: skip
    from ddspcli import studio

    def ready(url: str) -> None:
        ui.info(f"ddsp studio: {url}  (Ctrl-C stops it)")

    studio.serve(host, port, open_browser, on_ready=ready)
