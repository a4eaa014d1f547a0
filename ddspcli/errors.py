"""Exceptions that the CLI turns into one line on stderr and a documented exit code.

Exit codes (also in the README):

* 0 success
* 1 unexpected internal error (a bug: please report it)
* 2 bad command-line usage (raised by Typer/Click), or a bad ``TF_CONFIG``
* 3 bad input data (missing, unreadable or invalid file)
* 4 output problem (exists without ``--force``, cannot be written)
* 5 model or download problem (missing, offline, hash mismatch)
* 6 the work could not finish for a reason the user can fix: training diverged, an optional
  extra (Apache Beam, dask) is not installed, a Dask scheduler does not answer or its workers
  cannot run ddspcli, the workers of a multi-worker run disagree
* 130 interrupted (Ctrl-C)
* 143 stopped by SIGTERM (``kill``, ``timeout``, ``docker stop``): ended as for Ctrl-C
* 141 stdout closed by its reader (``| head``): output cut short, no message (128 + SIGPIPE)
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4
EXIT_MODEL = 5
EXIT_RUNTIME = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_PIPE = 141


class DdspError(Exception):
    """Base class for errors a user can fix; ``str(error)`` is the one-line message."""

    exit_code: int = EXIT_INTERNAL


class UsageError(DdspError):
    """A setting the option parser cannot see is wrong (e.g. a malformed ``TF_CONFIG``)."""

    exit_code = EXIT_USAGE


class InputError(DdspError):
    """An input file is missing, unreadable, empty or holds invalid data."""

    exit_code = EXIT_INPUT


class OutputError(DdspError):
    """An output cannot be written (exists without --force, bad folder, disk full)."""

    exit_code = EXIT_OUTPUT


class RunError(DdspError):
    """The work could not finish for a reason the user can fix (divergence, a missing extra)."""

    exit_code = EXIT_RUNTIME


class ModelError(DdspError):
    """A model or weight file is missing, cannot be downloaded or fails verification."""

    exit_code = EXIT_MODEL


class DdspWarning(UserWarning):
    """Something a user should know that does not stop the command (the CLI prints it as one
    ``warning:`` line on stderr; library users get a normal Python warning)."""


class OutputClosedError(DdspError):
    """The reader of stdout went away (``| head``): the output was cut short. Quiet."""

    exit_code = EXIT_PIPE
