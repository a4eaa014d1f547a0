"""Filesystem helpers shared by every command: atomic writes and overwrite protection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ddspcli.errors import OutputError


def check_writable(dest: Path, *, force: bool) -> None:
    """Raise `OutputError` if `dest` exists (without `force`) or its folder is missing."""
    if dest.is_dir():
        raise OutputError(f"{dest} is a directory; give a file name for the output")
    if dest.exists() and not force:
        raise OutputError(f"{dest} already exists; pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise OutputError(f"folder {dest.parent} does not exist; create it first")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only on success.

    The temporary file lives in the same folder (same filesystem), so the final
    `os.replace` is atomic: readers see either the old file or the complete new one,
    never a partial write. On any exception the temporary file is removed and `dest`
    is left untouched.
    """
    dest = Path(dest)
    check_writable(dest, force=force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if dest.exists() and not force:  # appeared while we were writing
            raise OutputError(f"{dest} already exists; pass --force to overwrite it")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (local or remote), read in 1 MiB blocks."""
    from ddspcli.storage import open_read

    digest = hashlib.sha256()
    with open_read(path) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
