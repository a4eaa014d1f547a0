"""Terminal output: rich messages and progress on stderr; data goes to stdout elsewhere."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from rich.console import Console

QUIET, NORMAL, VERBOSE = 0, 1, 2


@dataclass
class _State:
    verbosity: int = NORMAL


state = _State()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Apply the global ``--quiet``/``--verbose`` flags (quiet wins)."""
    state.verbosity = QUIET if quiet else VERBOSE if verbose else NORMAL
    if state.verbosity < VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warnings


def info(message: str) -> None:
    """Progress or status for humans (hidden by ``--quiet``)."""
    if state.verbosity >= NORMAL:
        err_console.print(message)


def debug(message: str) -> None:
    """Detail shown only with ``--verbose``."""
    if state.verbosity >= VERBOSE:
        err_console.print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """A warning line; shown even with ``--quiet``."""
    err_console.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    """The one-line error message; plain text so scripts can parse it."""
    print(f"ddsp: error: {message}", file=sys.stderr, flush=True)
