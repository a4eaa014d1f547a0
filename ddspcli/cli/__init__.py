"""The `ddsp` command: a thin Typer shell over the engine, one module per command group.

Each command parses its options (choices and defaults from `ddspcli.choices`), calls one
engine entry point and prints; `_run.run` turns every outcome into an exit code.
"""

# Importing a command module registers it on `app`; `ddsp --help` lists them in this order.
# isort: off
from ddspcli.cli import info, features, prepare, fit, transfer, live, evaluate, generate  # noqa: F401
from ddspcli.cli import models, room, studio  # noqa: F401
# isort: on
from ddspcli.cli._app import app
from ddspcli.cli._run import build_command, main, run

__all__ = ["app", "build_command", "main", "run"]
