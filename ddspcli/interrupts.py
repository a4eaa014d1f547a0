"""How a run is stopped: Ctrl-C (SIGINT) and SIGTERM end it the same way, never mid-way through
native code that cannot be interrupted safely.

- `install`: SIGTERM (systemd, ``docker stop``, ``timeout``) raises `Terminated`, a
  `KeyboardInterrupt`, so every ``finally`` and ``except KeyboardInterrupt`` of a Ctrl-C runs
  for it too (a live take is completed, temporary files are removed); the CLI exits 143 for it
  and 130 for Ctrl-C. A SIGINT that the parent set to be ignored (``nohup ddsp ... &``: POSIX
  shells ignore SIGINT in background jobs) stays ignored by every command.
- `deferred`: a section during which a signal is noted and raised when the section ends, for
  native code that must not be left half done (numba compiling or loading librosa's Viterbi:
  an interrupt there could crash the interpreter later with a segmentation fault).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop as for Ctrl-C (the CLI's exit code is 143, 128 + SIGTERM)."""


terminated = False  # a SIGTERM came during this run (libraries may turn it into a plain 130)


def _raise_for(signum: int) -> None:
    global terminated
    if signum == signal.SIGTERM:
        terminated = True
        raise Terminated
    raise KeyboardInterrupt


def _on_sigterm(signum, frame) -> None:
    _raise_for(signum)


def note_sigterm() -> None:
    """Record a SIGTERM handled elsewhere (`fit`'s stop flag), for the exit code."""
    global terminated
    terminated = True


def install() -> None:
    """SIGTERM raises `Terminated` in the main thread (a no-op elsewhere, where Python cannot
    set handlers). SIGINT keeps Python's handler, or the ignore inherited from the parent."""
    global terminated
    terminated = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def ignored(signum: int) -> bool:
    """Whether `signum` is set to be ignored (inherited from the parent for SIGINT)."""
    return signal.getsignal(signum) == signal.SIG_IGN


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM during the block, then raise for the first one that came.

    Outside the main thread (where signals are not delivered to Python) the block just runs.
    A signal that is ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
        for sig in STOP_SIGNALS
        if not ignored(sig)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        _raise_for(pending[0])
