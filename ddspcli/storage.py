"""Paths that may be local or remote (``gs://``, ``s3://``, ``hdfs://``, ``ram://``).

Local paths use the operating system directly (atomic `os.replace`, fsync). Paths with a URL
scheme go through `tf.io.gfile`, the file layer TensorFlow and Beam workers share, so a dataset
prepared on Dataflow can live in a bucket. TensorFlow is imported only when a remote path is met.
On object stores a rename is a copy then a delete; readers still see either no object or the
complete one, because an object only appears when its upload finishes.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ddspcli import ui
from ddspcli.errors import OutputError


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def _gfile():
    ui.import_tensorflow_quietly()
    import tensorflow as tf

    return tf.io.gfile


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts with ``/`` for remote paths and the OS separator for local ones."""
    base = os.fspath(base)
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def basename(path: str) -> str:
    """Last component of a local or remote path."""
    return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path)


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether a file or folder exists."""
    return _gfile().exists(os.fspath(path)) if is_remote(path) else Path(path).exists()


def isdir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a folder."""
    return _gfile().isdir(os.fspath(path)) if is_remote(path) else Path(path).is_dir()


def size(path: str | os.PathLike[str]) -> int:
    """File size in bytes."""
    return _gfile().stat(os.fspath(path)).length if is_remote(path) else Path(path).stat().st_size


def makedirs(path: str | os.PathLike[str]) -> None:
    """Create a folder and its parents (no error if it exists)."""
    if is_remote(path):
        _gfile().makedirs(os.fspath(path))
    else:
        Path(path).mkdir(parents=True, exist_ok=True)


def remove(path: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
    """Delete a file."""
    if not is_remote(path):
        Path(path).unlink(missing_ok=missing_ok)
        return
    gfile = _gfile()
    import tensorflow as tf

    try:
        gfile.remove(os.fspath(path))
    except tf.errors.NotFoundError:
        if not missing_ok:
            raise


def glob(pattern: str) -> list[str]:
    """Sorted paths matching a pattern (``*``, ``?``, ``[...]``; ``**`` only for local paths)."""
    if is_remote(pattern):
        return sorted(_gfile().glob(pattern))
    return sorted(_glob.glob(pattern, recursive=True))


def walk_files(folder: str) -> list[str]:
    """Every file below `folder`, recursively, sorted; hidden files and folders skipped."""
    if not is_remote(folder):
        root = Path(folder)
        return [
            str(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]  # fmt: skip
    found = []
    for top, dirs, files in _gfile().walk(folder):
        dirs[:] = [d for d in dirs if not d.rstrip("/").startswith(".")]
        found.extend(posixpath.join(top, f) for f in files if not f.startswith("."))
    return sorted(found)


def open_read(path: str | os.PathLike[str]) -> IO[bytes]:
    """A seekable binary file object for reading."""
    if is_remote(path):
        return _gfile().GFile(os.fspath(path), "rb")
    return open(path, "rb")


def read_text(path: str | os.PathLike[str]) -> str:
    """A whole text file (UTF-8)."""
    with open_read(path) as f:
        return f.read().decode("utf-8")


def rename(src: str, dest: str) -> None:
    """Move `src` onto `dest`, replacing it (atomic for local paths)."""
    if is_remote(src) or is_remote(dest):
        _gfile().rename(src, dest, overwrite=True)
    else:
        os.replace(src, dest)


@contextlib.contextmanager
def atomic_write(dest: str | os.PathLike[str], *, force: bool = True) -> Iterator[IO[bytes]]:
    """Yield a binary file to write; it becomes `dest` only when the block succeeds.

    Local paths use `fsutil.atomic_path` (same-folder temporary file, fsync, `os.replace`).
    Remote paths write a uniquely named temporary object beside `dest` and rename it.
    """
    from ddspcli.fsutil import atomic_path

    if not is_remote(dest):
        with atomic_path(dest, force=force) as tmp, open(tmp, "wb") as f:
            yield f
        return
    dest = os.fspath(dest)
    if not force and exists(dest):
        raise OutputError(f"{dest} already exists; pass --force to overwrite it")
    tmp = temporary_name(dest)
    try:
        with _gfile().GFile(tmp, "wb") as f:
            yield f
        rename(tmp, dest)
    finally:
        remove(tmp)


def temporary_name(dest: str) -> str:
    """A hidden, unique name in the folder of `dest`, ending in ``.tmp``."""
    folder, name = (posixpath if is_remote(dest) else os.path).split(dest)
    return join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def write_text(dest: str | os.PathLike[str], text: str, *, force: bool = True) -> None:
    """Write a text file (UTF-8) atomically."""
    with atomic_write(dest, force=force) as f:
        f.write(text.encode("utf-8"))
