"""Terminal output: rich messages and progress on stderr; data goes to stdout elsewhere."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from rich.console import Console

from ddspcli import tfimport

QUIET, NORMAL, VERBOSE = 0, 1, 2


@dataclass
class _State:
    verbosity: int = NORMAL


state = _State()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class _StdoutConsole(Console):
    """stdout's console: a reader that went away (``| head``) is reported like any other write
    to a closed pipe (rich's own handling exits 1), so the CLI stops with its documented code."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(32, "stdout was closed by its reader")


out_console = _StdoutConsole(highlight=False, soft_wrap=True)


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Apply the global ``--quiet``/``--verbose`` flags (quiet wins)."""
    state.verbosity = QUIET if quiet else VERBOSE if verbose else NORMAL
    if state.verbosity < VERBOSE:
        # Hide TF's C++ log lines, errors included: TF 2.21 logs spurious ones while reading
        # TFRecords ("oneDNN supports DT_STRING only on platforms with AVX-512"); real
        # failures still reach the user as Python exceptions. --verbose shows everything.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tfimport.show_native_logs = state.verbosity >= VERBOSE


def show_bars() -> bool:
    """Progress bars only on an interactive stderr (not in logs or pipes) and without -q."""
    return state.verbosity >= NORMAL and err_console.is_terminal


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


class DownloadProgress:
    """A rich progress bar (bytes, rate, time left) on stderr; silent with ``--quiet``.

    Implements `ddspcli.pretrained.Progress`. Use as a context manager.
    """

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=err_console, disable=not show_bars(),
        )  # fmt: skip
        self._task: int | None = None
        self._started = False

    def __enter__(self) -> DownloadProgress:
        return self  # the bar appears with the first transfer, so errors print cleanly

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._bar.stop()

    def start(self, label: str, total: int) -> None:
        if not self._started:
            self._bar.start()
            self._started = True
        self._task = self._bar.add_task(label, total=total)

    def advance(self, n_bytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n_bytes)

    def finish(self) -> None:
        self._task = None

    def message(self, text: str) -> None:
        info(text)


class CountProgress:
    """A rich bar over a count (files, frames) with a free-text status and ETA (stderr)."""

    def __init__(self, label: str, total: int, show_count: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn()]
        columns += [MofNCompleteColumn()] if show_count else []
        columns += [TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
        self._bar = Progress(*columns, console=err_console, disable=not show_bars())
        self._task = self._bar.add_task(label, total=total, status="")

    def __enter__(self) -> CountProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def set_total(self, total: int) -> None:
        """The count, once it is known (the bar is created before the work is sized)."""
        self._bar.update(self._task, total=total)

    def advance(self, n: int = 1, status: str | None = None) -> None:
        """`n` more items done; optionally a new status text."""
        self._bar.update(self._task, advance=n, **({} if status is None else {"status": status}))

    @property
    def completed(self) -> float:
        """Items done so far."""
        return self._bar.tasks[0].completed


class FrameProgress(CountProgress):
    """Progress over feature frames, shown as minutes of audio done."""

    def __init__(self, label: str, total_frames: int, frame_rate: int) -> None:
        super().__init__(label, total_frames, show_count=False)
        self.frame_rate = frame_rate

    def advance(self, n: int = 1, status: str | None = None) -> None:
        minutes = (self.completed + n) / self.frame_rate / 60.0
        super().advance(n, status or f"{minutes:.1f} audio min")


class TrainDisplay:
    """Live training status on stderr: step, loss, eval loss, steps/s, ETA, last checkpoint.

    On an interactive stderr a rich live panel; otherwise one plain line per summary (none with
    ``--quiet``).
    """

    def __init__(self, total_steps: int, start_step: int) -> None:
        self.total, self.start = total_steps, start_step
        self._live = None
        self._rows: dict[str, str] = {}

    def __enter__(self) -> TrainDisplay:
        if show_bars():
            from rich.live import Live

            self._live = Live(self._render(), console=err_console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, summary) -> None:
        """Show one `train.Summary`."""
        remaining = max(0, self.total - summary.step)
        eta = remaining / summary.steps_per_sec if summary.steps_per_sec > 0 else float("nan")
        self._rows["step"] = f"{summary.step} / {self.total}"
        self._rows["loss"] = f"{summary.loss:.4f}"
        if summary.eval_loss is not None:
            self._rows["eval loss"] = f"{summary.eval_loss:.4f}"
        self._rows["steps/s"] = f"{summary.steps_per_sec:.2f}"
        self._rows["ETA"] = _duration(eta)
        if summary.checkpoint:
            self._rows["checkpoint"] = summary.checkpoint
        if self._live is not None:
            self._live.update(self._render())
        elif state.verbosity >= NORMAL:
            text = "  ".join(f"{k} {v}" for k, v in self._rows.items())
            print(text, file=sys.stderr, flush=True)

    def _render(self):
        from rich.table import Table

        table = Table(show_header=False, show_edge=False, box=None)
        for key, value in (self._rows or {"step": f"{self.start} / {self.total}"}).items():
            table.add_row(f"[bold]{key}[/bold]", value)
        return table


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
