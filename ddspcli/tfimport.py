"""Import TensorFlow once, without the lines its native libraries print on import.

TF >= 2.21 prints absl lines on import whatever ``TF_CPP_MIN_LOG_LEVEL`` says. This module is
at the bottom of the layers (no rich, no engine): the engine (`engine._tensorflow`) and
`storage` (for ``tf.io.gfile``) import TensorFlow through it; the CLI's ``--verbose`` sets
`show_native_logs`.

It is also the one door from the TensorFlow-free side (`ddspcli.runtime`, `ddspcli.instrument`,
the feature pipeline) to TensorFlow code, declared here once: `engine_module` imports a
TensorFlow-backed engine module by name when it is needed (converting an old model folder,
CREPE from a ``.pth``), and `available` says whether it can. The import-linter contracts do not
follow this door, by design: they state what the light install imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import IO

TRAIN_EXTRA = "pip install 'ddspcli[train]'"  # what brings TensorFlow to a light install

show_native_logs = False  # --verbose: keep everything TensorFlow prints


# What TensorFlow's native libraries print on import whatever TF_CPP_MIN_LOG_LEVEL says
# (TF >= 2.21): absl's pre-initialisation banner, its I/W-level lines ("I0000 00:00:...
# port.cc:153] oneDNN custom operations are on ...") and the CPU-feature continuation line.
_TF_IMPORT_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IW]\d{4} \d\d:\d\d:"
    rb"|To enable the following instructions:)"
)


def drop_tf_import_noise(printed: bytes) -> bytes:
    """The lines of `printed` (raw stderr bytes) that are not `_TF_IMPORT_NOISE`."""
    return b"".join(ln for ln in printed.splitlines(keepends=True)
                    if not _TF_IMPORT_NOISE.match(ln))  # fmt: skip


@contextmanager
def stderr_fd_captured() -> Iterator[IO[bytes]]:
    """Point file descriptor 2 (native code's stderr) at a temporary file for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_quietly() -> None:
    """Import TensorFlow once, dropping its native info/warning lines unless ``--verbose``.

    Anything else printed during the import (errors, Python warnings) is passed on to
    stderr unchanged, so a broken install still explains itself.
    """
    if "tensorflow" in sys.modules or show_native_logs:
        return
    with stderr_fd_captured() as capture:
        try:
            import tensorflow as tf

            # Python-side TF warnings (e.g. tf.function retracing advice) are for developers.
            tf.get_logger().setLevel("ERROR")
        finally:
            capture.seek(0)
            kept = drop_tf_import_noise(capture.read())
    if kept:
        sys.stderr.write(kept.decode(errors="replace"))
        sys.stderr.flush()


def available() -> bool:
    """Whether TensorFlow is installed (without importing it); False also where it is blocked
    (``sys.modules["tensorflow"] = None``, as the tests simulate a light install)."""
    if sys.modules.get("tensorflow") is not None:
        return True
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # blocked: its sys.modules entry is None
        return False


def engine_module(name: str) -> ModuleType:
    """``ddspcli.engine.<name>``, a module that imports TensorFlow, imported on demand.

    Raises:
        ModuleNotFoundError: TensorFlow is not installed (its message names `TRAIN_EXTRA`).
    """
    if not available():
        raise ModuleNotFoundError(f"TensorFlow is not installed ({TRAIN_EXTRA} adds it)",
                                  name="tensorflow")  # fmt: skip
    return importlib.import_module(f"ddspcli.engine.{name}")
