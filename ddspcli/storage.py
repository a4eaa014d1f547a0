"""Paths that may be local or remote (``gs://``, ``s3://``, ``hdfs://``, ``ram://``).

Local paths use the operating system directly (atomic `os.replace`, fsync). Paths with a URL
scheme go through `tf.io.gfile`, the file layer TensorFlow and Beam workers share, so a dataset
prepared on Dataflow can live in a bucket. TensorFlow is imported only when a remote path is met.
On object stores a rename is a copy then a delete; readers still see either no object or the
complete one, because an object only appears when its upload finishes.
"""

from __future__ import annotations

import contextlib
import errno
import glob as _glob
import hashlib
import io
import os
import posixpath
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ddspcli.errors import OutputError

STDOUT = "-"
# Names of this process's stdout: written as `-` is (``-o /dev/stdout > out.wav`` must not see
# out.wav as an existing file, nor rename a temporary over it).
STDOUT_NAMES = (STDOUT, "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout(dest: str | os.PathLike[str] | None) -> bool:
    """Whether an output names stdout: ``-`` or one of `STDOUT_NAMES`."""
    return dest is not None and os.fspath(dest) in STDOUT_NAMES


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def _gfile():
    from ddspcli import tfimport

    tfimport.import_quietly()  # on first use only: local paths never load TensorFlow
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

    - ``-``: the bytes go to stdout when the block ends (a closed pipe raises
      `BrokenPipeError`, which the CLI turns into a quiet exit).
    - a local path: checked by `check_output`, written to a temporary file in the folder of
      the real path (a symbolic link's target is written, the link kept), fsynced, given the
      umask's permissions and renamed into place; on any failure the temporary file is removed
      and `dest` is untouched. A character device or FIFO (``/dev/null``, a named pipe) is
      written into, never replaced.
    - a remote path: a uniquely named temporary object beside `dest`, then renamed.

    Raises:
        OutputError: `check_output`'s refusals, and OS errors (disk full, read-only,
            permission denied, ...) as one line naming `dest` (see `output_error`).
    """
    if is_stdout(dest):
        buffer = io.BytesIO()
        yield buffer
        write_stdout(buffer.getvalue())
        return
    if is_remote(dest):
        with _remote_atomic_write(os.fspath(dest), force=force) as f:
            yield f
        return
    check_output(dest, force=force)
    if is_stream(Path(dest)):  # opened as named: /dev/stdout's real path is no file name
        buffer = io.BytesIO()
        yield buffer
        with _mapped_os_errors(dest), open(dest, "wb") as stream:
            stream.write(buffer.getvalue())
        return
    real = Path(os.path.realpath(dest))
    remove_stale_temporaries(real)
    with _mapped_os_errors(dest):
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(real), suffix=".tmp",
                                        dir=real.parent)  # fmt: skip
    tmp = Path(tmp_name)
    try:
        with _mapped_os_errors(dest):
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~umask())
            check_output(dest, force=force)  # an output that appeared while we were writing
            os.replace(tmp, real)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _remote_atomic_write(dest: str, *, force: bool) -> Iterator[IO[bytes]]:
    if not force and exists(dest):
        raise OutputError(exists_message(dest))
    tmp = temporary_name(dest)
    try:
        with _gfile().GFile(tmp, "wb") as f:
            yield f
        rename(tmp, dest)
    finally:
        remove(tmp)


def write_bytes(dest: str | os.PathLike[str], data: bytes, *, force: bool) -> None:
    """Write `data` to `dest` (a path, a URL, a device or ``-``) as `atomic_write` does."""
    with atomic_write(dest, force=force) as f:
        f.write(data)


def write_stdout(data: bytes) -> None:
    """Write `data` to stdout and flush (`BrokenPipeError` when the reader has gone).

    A large write into a pipe whose reader leaves midway (``| head -c 100``) is taken in part
    and its count returned, without an error: the rest is written until it all went or the
    pipe says it is broken, so a cut output is never reported as complete.
    """
    view = memoryview(data)
    while view:
        written = sys.stdout.buffer.write(view)
        if not written:
            raise BrokenPipeError("stdout took no more bytes")
        view = view[written:]
    sys.stdout.buffer.flush()


def temporary_name(dest: str) -> str:
    """A hidden, unique name in the folder of `dest`, ending in ``.tmp``."""
    folder, name = (posixpath if is_remote(dest) else os.path).split(dest)
    return join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def _temporary_prefix(dest: Path) -> str:
    """``.NAME.PID-``: a local temporary names its owner, so a later run can tell whether the
    process that left it still runs (`remove_stale_temporaries`)."""
    return f".{dest.name}.{os.getpid()}-"


def _owner(temporary: str, name: str) -> int | None:
    """The process id in a temporary's name (`_temporary_prefix`), or None."""
    middle = temporary[len(name) + 2 : -len(".tmp")]
    pid, dash, _ = middle.partition("-")
    return int(pid) if dash and pid.isdigit() else None


def _running(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts: it may still be writing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    return True


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Remove the temporaries of `dest` (files or folders beside it) whose writer is gone, as a
    ``kill -9`` leaves them; a temporary of a running process is kept. Returns what was removed.
    """
    import shutil

    removed = []
    for tmp in dest.parent.glob(f".{_glob.escape(dest.name)}.*.tmp"):
        pid = _owner(tmp.name, dest.name)
        if pid is None or _running(pid):
            continue
        with contextlib.suppress(OSError):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
    return removed


def write_text(dest: str | os.PathLike[str], text: str, *, force: bool = True) -> None:
    """Write a text file (UTF-8) atomically."""
    write_bytes(dest, text.encode("utf-8"), force=force)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (local or remote), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open_read(path) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# Output safety: every file a command writes goes through `check_output` / `atomic_write`.

# (st_dev, st_ino) -> path of every input of the current run: never an output.
_inputs: dict[tuple[int, int], str] = {}


def protect_inputs(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Record the run's local input files: `check_output` refuses to write onto any of them,
    however the output is spelled (another relative path, a symbolic or a hard link)."""
    for path in paths:
        if os.fspath(path) == STDOUT or is_remote(path):
            continue
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode):
                _inputs[(st.st_dev, st.st_ino)] = os.fspath(path)


def forget_inputs() -> None:
    """Start a new run: no input is protected."""
    _inputs.clear()


def _input_at(st: os.stat_result) -> str | None:
    """The protected input that `st` is, if any (checked again: inode numbers are reused)."""
    name = _inputs.get((st.st_dev, st.st_ino))
    if name is None:
        return None
    try:
        now = os.stat(name)
    except OSError:
        return None
    return name if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) else None


def exists_message(dest: str | os.PathLike[str]) -> str:
    """The one wording of "this output exists" used by every command."""
    return f"{os.fspath(dest)} already exists; pass --force to overwrite it"


def is_stream(path: str | os.PathLike[str]) -> bool:
    """A character device or FIFO: written into, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_distinct(named: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Refuse two outputs of one command that are the same file (however spelled: relative,
    absolute, through a link) or both stdout, before any work. `named`: ``(what, path)``
    pairs, e.g. ``("--stats-json", "take.wav")``; None paths are skipped.

    Raises:
        OutputError: naming both outputs.
    """
    seen: dict[str, str] = {}
    for what, path in named:
        if path is None:
            continue
        text = os.fspath(path)
        key = STDOUT if is_stdout(text) else text if is_remote(text) else os.path.realpath(text)
        if key in seen:
            where = "stdout" if key == STDOUT else text
            raise OutputError(f"{seen[key]} and {what} would both be written to {where}; give "
                              "each output its own file")  # fmt: skip
        seen[key] = what


def check_output(dest: str | os.PathLike[str], *, force: bool) -> None:
    """Fail before any work when `dest` must not or cannot be written; ``-`` always passes.

    Refused, `force` or not: one of the run's inputs (`protect_inputs`), a folder, a socket or
    block device, a path under a missing folder or under a file. Refused without `force`: an
    existing regular file. Character devices and FIFOs pass (they are written into).

    Raises:
        OutputError: with one line saying what is wrong and what to do.
    """
    if is_stdout(dest):
        return
    if is_remote(dest):
        if not force and exists(dest):
            raise OutputError(exists_message(dest))
        return
    path = Path(dest)
    try:
        st: os.stat_result | None = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None  # a missing output, or a missing folder reported by the check below
    except OSError as err:
        raise output_error(dest, err) from None
    if st is not None:
        name = _input_at(st)
        if name is not None:
            same = "" if os.path.abspath(name) == os.path.abspath(path) else f" (it is {name})"
            raise OutputError(
                f"{dest} is an input of this command{same}; inputs are never overwritten, "
                "even with --force: write the output to another file"
            )
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{dest} is a folder; give a file name for the output")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            return
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{dest} is not a regular file (a socket or block device); "
                              "write the output to a file")  # fmt: skip
        if not force:
            raise OutputError(exists_message(dest))
    check_folder(Path(os.path.realpath(path)).parent, dest)


def check_folder(folder: Path, dest: str | os.PathLike[str]) -> None:
    """`folder` exists and this process may create files in it; else `OutputError`."""
    if not folder.is_dir():
        for part in (folder, *folder.parents):
            if part.exists() and not part.is_dir():
                raise OutputError(f"cannot write {os.fspath(dest)}: {part} is a file, not a "
                                  "folder")  # fmt: skip
        raise OutputError(f"folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise output_error(dest, OSError(errno.EROFS if _read_only(folder) else errno.EACCES, ""))


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


_OS_ERROR_LINES = {
    errno.ENOSPC: "the disk is full (no space left on the device); free some space or write "
    "elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EROFS: "the filesystem is read-only; write the output elsewhere",
    errno.EACCES: "permission denied; write the output where you may create files",
    errno.EPERM: "operation not permitted; write the output where you may create files",
    errno.ENOENT: "its folder does not exist (or cannot hold files); create it first or "
    "write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file name",
    errno.EFBIG: "the file is too large for this filesystem",
    errno.EIO: "an input/output error occurred on the device",
}


def output_error(dest: str | os.PathLike[str], err: OSError) -> OutputError:
    """An `OutputError` with one line saying why `dest` could not be written."""
    reason = _OS_ERROR_LINES.get(err.errno or 0) or (err.strerror or str(err) or "unknown error")
    return OutputError(f"cannot write {os.fspath(dest)}: {reason}")


@contextlib.contextmanager
def _mapped_os_errors(dest: str | os.PathLike[str]) -> Iterator[None]:
    """Turn OS errors raised while writing `dest` into `output_error` lines."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as err:
        raise output_error(dest, err) from None


def check_new_folder(dest: str | os.PathLike[str], *, force: bool) -> None:
    """A folder output (`atomic_folder`) may be written: absent, empty, or `force`, in a folder
    that exists (missing parents are not created, as for file outputs)."""
    dest = Path(dest)
    check_folder(dest.absolute().parent, dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not force:
        raise OutputError(f"{dest} exists and is not empty; pass --force to replace it")


@contextlib.contextmanager
def atomic_folder(dest: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a new temporary folder beside `dest`; it replaces `dest` when the block succeeds.

    A non-empty `dest` is refused without `force`. On any failure the temporary folder is
    removed and `dest` is untouched; OS errors become `output_error` lines (exit 4).
    """
    import shutil

    dest = Path(dest)
    check_new_folder(dest, force=force)
    remove_stale_temporaries(dest)
    with _mapped_os_errors(dest):
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(dest), suffix=".tmp",
                                    dir=dest.parent))  # fmt: skip
    try:
        with _mapped_os_errors(dest):
            yield tmp
            os.chmod(tmp, 0o777 & ~umask())
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_output_folder(dest: str | os.PathLike[str]) -> None:
    """Create the output folder `dest` (``--out-dir``, ``--stems``) unless it exists; its parent
    must exist, as for file outputs. Raises `OutputError`."""
    path = Path(dest)
    if path.is_dir():
        return
    check_folder(path.absolute().parent, dest)
    with _mapped_os_errors(dest):
        path.mkdir()


def check_output_folder(
    dest: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]
) -> None:
    """Refuse an output folder that is, or holds, one of `inputs` (files or folders).

    Writing a model or dataset folder with --force replaces the folder: if it were the run
    being exported (or held the input audio) the input would be lost.
    """
    if is_remote(dest):
        return
    target = os.path.realpath(dest)
    for item in inputs:
        if is_remote(item) or os.fspath(item) == STDOUT:
            continue
        real = os.path.realpath(item)
        if real == target or real.startswith(target.rstrip(os.sep) + os.sep):
            raise OutputError(
                f"{os.fspath(dest)} is or holds the input {os.fspath(item)}; inputs are never "
                "overwritten, even with --force: choose another output folder"
            )
