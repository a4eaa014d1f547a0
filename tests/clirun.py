"""The one way tests run the `ddsp` command: in-process (fast) or as a subprocess.

`ddsp(...)` runs `ddspcli.cli.run` in this process with stdin, stdout and stderr replaced by
byte buffers, so a CLI test does not pay TensorFlow's import again (about 6 s a run). Use
`ddsp_process(...)` only where the process itself is the point: pipes closed by the reader,
signals, the console script, shell completion, native code writing to fd 2. Both return a
`subprocess.CompletedProcess` with bytes `stdout` and `stderr`.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path


class _Stream(io.TextIOWrapper):
    """A text stream over a `BytesIO`, with `.buffer`, that never claims to be a terminal."""

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None] | None, cwd: Path | None) -> Iterator[None]:
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_cwd = os.getcwd()
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ddsp(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    text: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``ddsp ARGS`` in this process; `env` entries set (or, with None, unset) variables;
    `text`: stdout and stderr as str (as ``subprocess.run(text=True)``)."""
    from ddspcli import cli

    out, err = io.BytesIO(), io.BytesIO()
    saved = (sys.stdin, sys.stdout, sys.stderr)
    replaced = (
        _Stream(io.BytesIO(stdin or b""), encoding="utf-8"),
        _Stream(out, encoding="utf-8", write_through=True),
        _Stream(err, encoding="utf-8", write_through=True),
    )
    sys.stdin, sys.stdout, sys.stderr = replaced
    try:
        with _environment(env, cwd):
            code = cli.run([str(a) for a in args])
    finally:
        for stream in replaced[1:]:
            stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    stdout, stderr = out.getvalue(), err.getvalue()
    if text:
        stdout, stderr = stdout.decode(), stderr.decode()
    result = subprocess.CompletedProcess(["ddsp", *args], code, stdout, stderr)
    for stream in replaced:
        stream.detach()  # the wrappers must not close the buffers read above
    return result


def ddsp_process(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    text: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``python -m ddspcli ARGS`` as a child process (see the module docstring)."""
    return subprocess.run(
        [sys.executable, "-m", "ddspcli", *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
        text=text,
    )
