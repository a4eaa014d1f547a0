"""Nothing lost (issue 22): every bad-output, fault and bad-value case through the CLI.

Each case of the matrix runs `ddsp` in-process and asserts the exit code, one ``ddsp: error:``
line naming the problem, no traceback, no temporary file left, and every input unchanged
(sha256). Closed pipes are subprocess tests: the process and its stdout are the point.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.errors import EXIT_OUTPUT, EXIT_PIPE, EXIT_USAGE

TINY = ("--pitch-model", "tiny")  # the bundled tracker: offline and fast


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tone(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 330 * t).astype(np.float32), rate, subtype="PCM_16")
    return path


def temporaries(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.tmp*"))


@dataclass
class Case:
    """One row: `setup(tmp)` makes the files, `args` may use {tmp}; expected code and text."""

    name: str
    args: tuple[str, ...]
    code: int
    message: str
    setup: Callable[[Path], None] = lambda tmp: None


def _same_files(tmp: Path) -> None:
    tone(tmp / "same.wav")
    (tmp / "dir").mkdir()
    os.symlink(tmp / "same.wav", tmp / "link.wav")
    os.link(tmp / "same.wav", tmp / "hard.wav")


def _file_as_folder(tmp: Path) -> None:
    tone(tmp / "same.wav")
    (tmp / "plain").write_text("a file, not a folder\n")


def _socket(tmp: Path) -> None:
    tone(tmp / "same.wav")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp / "sock"))
    sock.close()


def _run_folder(tmp: Path) -> None:
    tone(tmp / "same.wav")
    run = tmp / "run"
    shutil.copytree(Path(__file__).parent.parent / "ddspcli" / "models" / "violin", run)


MODEL = ("--model", "violin")
CASES = [
    # 1. the input destroyed through --force, however -o spells it
    Case(
        "transfer -o input --force",
        ("transfer", "same.wav", *MODEL, "-o", "same.wav", "--force"),
        EXIT_OUTPUT,
        "same.wav is an input of this command",
        _same_files,
    ),
    Case(
        "transfer -o input spelled differently",
        ("transfer", "same.wav", *MODEL, "-o", "./dir/../same.wav", "--force"),
        EXIT_OUTPUT,
        "is an input",
        _same_files,
    ),
    Case(
        "transfer -o symlink to input",
        ("transfer", "same.wav", *MODEL, "-o", "link.wav", "--force"),
        EXIT_OUTPUT,
        r"link.wav is an input .*\(it is same.wav\)",
        _same_files,
    ),
    Case(
        "transfer -o hard link to input",
        ("transfer", "same.wav", *MODEL, "-o", "hard.wav", "--force"),
        EXIT_OUTPUT,
        "hard.wav is an input",
        _same_files,
    ),
    Case(
        "transfer --plot onto input",
        ("transfer", "same.wav", *MODEL, "--plot", "same.wav", "--force"),
        EXIT_OUTPUT,
        "is an input",
        _same_files,
    ),
    Case(
        "transfer --save-features onto input",
        ("transfer", "same.wav", *MODEL, "--save-features", "hard.wav", "--force"),
        EXIT_OUTPUT,
        "is an input",
        _same_files,
    ),
    # 2. features: the input, and an audio suffix for CSV
    Case(
        "features -o input --force",
        ("features", "same.wav", *TINY, "-o", "same.wav", "--force"),
        EXIT_USAGE,
        "names a WAV file but features are written as csv",
        _same_files,
    ),
    Case(
        "features -o x.csv onto input",
        ("features", "same.wav", *TINY, "-o", "link.wav", "--format", "csv", "--force"),
        EXIT_USAGE,
        "names a WAV file",
        _same_files,
    ),
    Case(
        "features --format npz -o x.csv",
        ("features", "same.wav", *TINY, "--format", "npz", "-o", "f.csv"),
        EXIT_USAGE,
        "ends in .csv but --format is npz",
        _same_files,
    ),
    # 3. not a regular file
    Case(
        "-o a socket",
        ("features", "same.wav", *TINY, "-o", "sock", "--force"),
        EXIT_OUTPUT,
        "is not a regular file",
        _socket,
    ),
    Case(
        "-o a folder",
        ("features", "same.wav", *TINY, "-o", "dir/", "--format", "csv"),
        0,
        "",
        _same_files,
    ),  # a folder -o takes the per-input name: allowed
    # 5. write errors
    Case(
        "-o under /proc",
        ("features", "same.wav", *TINY, "-o", "/proc/out.csv"),
        EXIT_OUTPUT,
        "cannot write /proc/out.csv",
        _same_files,
    ),
    # 9. a file where a folder should be
    Case(
        "-o file/out.wav",
        ("transfer", "same.wav", *MODEL, "-o", "plain/out.wav"),
        EXIT_OUTPUT,
        "plain is a file, not a folder",
        _file_as_folder,
    ),
    # folders: an export or run folder that is (or holds) the input
    Case(
        "export onto its run",
        ("models", "export", "run", "-o", "run", "--force"),
        EXIT_OUTPUT,
        "run is or holds the input run",
        _run_folder,
    ),
    Case(
        "export over a folder holding the run",
        ("models", "export", "run", "-o", ".", "--force"),
        EXIT_OUTPUT,
        "is or holds the input run",
        _run_folder,
    ),
    Case(
        "prepare into the audio folder",
        ("prepare", "wavs", "-o", "wavs", "--pitch-model", "tiny"),
        EXIT_OUTPUT,
        "is or holds the input",
        lambda tmp: ((tmp / "wavs").mkdir(), tone(tmp / "wavs" / "a.wav")),
    ),
    Case(
        "fit into the dataset",
        ("fit", "data", "-o", "data"),
        EXIT_OUTPUT,
        "is or holds the input data",
        lambda tmp: (tmp / "data").mkdir(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_output_safety_matrix(case: Case, tmp_path):
    case.setup(tmp_path)
    inputs = {p: sha(p) for p in tmp_path.rglob("*") if p.is_file() and not p.is_socket()}
    before = {str(p) for p in tmp_path.rglob("*")}
    run = ddsp(*case.args, cwd=tmp_path, env={"DDSP_OFFLINE": "1"})
    err = run.stderr.decode()
    assert run.returncode == case.code, err
    assert "Traceback" not in err
    if case.code:
        lines = [ln for ln in err.splitlines() if ln.startswith("ddsp: error:")]
        assert len(lines) == 1, err
        import re

        assert re.search(case.message, lines[0]), lines[0]
        assert {str(p) for p in tmp_path.rglob("*")} == before  # nothing written
    assert temporaries(tmp_path) == []
    assert {p: sha(p) for p in inputs} == inputs  # every input unchanged


def test_force_onto_a_device_writes_into_it(tmp_path):
    wav = tone(tmp_path / "x.wav")
    run = ddsp("features", wav, *TINY, "-o", "/dev/null", "--force")
    assert run.returncode == 0, run.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device, not a regular file


def test_force_onto_a_fifo_writes_into_it(tmp_path):
    wav = tone(tmp_path / "x.wav")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    run = ddsp("features", wav, *TINY, "-o", fifo, "--format", "csv")  # no --force needed
    reader.join(timeout=60)
    assert run.returncode == 0, run.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received[0].startswith(b"time_s,f0_hz,f0_confidence,loudness_db\n")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "the filesystem is read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EDQUOT, "quota"),
    ],
)
def test_write_errors_are_exit_4_with_the_reason(tmp_path, monkeypatch, error, expected):
    """An OS error while the output is written (fsync is where a full disk shows on many
    filesystems) is one line naming the reason; the temporary file is removed."""
    wav = tone(tmp_path / "x.wav")

    def failing_fsync(fd: int) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    for args in (("features", wav, *TINY, "-o", tmp_path / "f.csv"),
                 ("transfer", wav, *MODEL, "-o", tmp_path / "out.wav", "--plot",
                  tmp_path / "p.png")):  # fmt: skip
        run = ddsp(*args, env={"DDSP_OFFLINE": "1"})
        err = run.stderr.decode()
        assert run.returncode == EXIT_OUTPUT, err
        assert expected in err and "Traceback" not in err and "internal error" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def _tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs at `path` (root only); False where that is not possible."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def test_real_full_disk_and_read_only_filesystem(tmp_path):
    """The issue's own reproductions, on real filesystems (skipped without root)."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    if not _tmpfs(full, "size=40k"):
        pytest.skip("needs root and mount to make a 40 kB tmpfs")
    try:
        assert _tmpfs(ro, "size=40k,ro")
        wav = tone(tmp_path / "x.wav", seconds=3.0)
        run = ddsp("transfer", wav, *MODEL, "-o", full / "out.wav", env={"DDSP_OFFLINE": "1"})
        assert run.returncode == EXIT_OUTPUT, run.stderr
        assert b"the disk is full" in run.stderr
        assert list(full.iterdir()) == []  # no temporary file left
        run = ddsp("features", wav, *TINY, "-o", ro / "f.csv")
        assert run.returncode == EXIT_OUTPUT
        assert b"read-only" in run.stderr
    finally:
        for mount in (full, ro):
            subprocess.run(["umount", str(mount)], capture_output=True, check=False)


def _closed_reader(args: list[str], stdin: bytes | None, verbose: bool = False):
    """Run ddsp with a stdout whose reader has gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| true`: the reader exits at once
    cmd = [sys.executable, "-m", "ddspcli", *(["-v"] if verbose else []), *args]
    try:
        done = subprocess.run(cmd, input=stdin, stdout=write_end, stderr=subprocess.PIPE,
                              timeout=300, check=False)  # fmt: skip
    finally:
        os.close(write_end)
    return done


def test_closed_stdout_exits_141_quietly(tmp_path):
    """``| true`` / ``| head``: exit 141 (128 + SIGPIPE), no message, no traceback; with -v a
    debug line says why. Covers audio (transfer), text (features) and rich tables (info)."""
    wav = tone(tmp_path / "x.wav")
    cases = [
        (["transfer", "-", "--model", "violin", "-o", "-"], wav.read_bytes(), False),
        (["features", str(wav), "--pitch-model", "tiny"], None, False),
        (["info", str(wav)], None, True),  # a rich table; -v: the reason on stderr
    ]
    for args, stdin, verbose in cases:
        done = _closed_reader(args, stdin, verbose)
        err = done.stderr
        assert done.returncode == EXIT_PIPE, (args, err.decode())
        assert b"ddsp: error" not in err and b"Traceback" not in err, err.decode()
        assert (b"stdout was closed by its reader" in err) == verbose, err.decode()


def _float_options() -> list[tuple[str, str]]:
    """(command path, option) for every float option of every command."""
    from ddspcli import cli

    found, stack = [], [((), cli.build_command())]
    while stack:
        path, command = stack.pop()
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))
        for param in getattr(command, "params", []):
            annotation = param.type_descriptor.annotation
            is_float = annotation is float or float in typing.get_args(annotation)
            if is_float and param.opts[0].startswith("--"):
                found.append((" ".join(path), param.opts[0]))
    return sorted(found)


FLOAT_OPTIONS = _float_options()
REQUIRED = {  # what each command needs besides the option, so that parsing reaches it
    "fit": ("data", "-o", "run"),
    "prepare": ("in.wav", "-o", "data"),
    "eval": ("model", "--data", "data"),
    "generate": ("--profile", "p.csv"),
    "live": ("-i", "in.wav", "-o", "out.wav"),
    "room apply": ("in.wav", "--room", "ir.wav", "-o", "out.wav"),
}


def test_the_float_options_are_found():
    assert ("transfer", "--semitones") in FLOAT_OPTIONS
    assert ("generate", "--vibrato") in FLOAT_OPTIONS
    assert len(FLOAT_OPTIONS) >= 15


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_option_refuses_non_finite_values(value):
    for command, option in FLOAT_OPTIONS:
        # The values are checked before any input is opened: these files need not exist.
        needed = REQUIRED.get(command, ("nonexistent-input",))
        run = ddsp(*command.split(), f"{option}={value}", *needed)
        err = run.stderr.decode()
        assert run.returncode == EXIT_USAGE, (command, option, err)
        assert "finite" in err or "Input should" in err, (command, option, err)
        assert len(err.strip().splitlines()) == 1, err


def test_peak_above_full_scale_is_refused(tmp_path):
    run = ddsp("transfer", tone(tmp_path / "x.wav"), "--peak-db", "0.5")
    assert run.returncode == EXIT_USAGE
    assert b"--peak-db" in run.stderr


def test_usage_errors_are_one_line_with_the_help_hint():
    for args in (("transfer", "--bogus"), ("frobnicate",), ("features",),
                 ("transfer", "x.wav", "--octave", "one")):  # fmt: skip
        run = ddsp(*args)
        err = run.stderr.decode()
        assert run.returncode == EXIT_USAGE, err
        assert err.startswith("ddsp: error: ") and "--help" in err
        assert len(err.strip().splitlines()) == 1, err


def _truncated(tmp_path: Path) -> Path:
    full = tone(tmp_path / "full.wav", seconds=2.0)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 2 * 10667])  # header says 2.0 s, data holds 0.67 s
    return cut


def test_truncated_wav_warns_with_both_lengths(tmp_path):
    cut = _truncated(tmp_path)
    for args in (("info", cut), ("features", cut, *TINY, "-o", tmp_path / "f.csv"),
                 ("transfer", cut, *MODEL, "-o", tmp_path / "o.wav")):  # fmt: skip
        run = ddsp(*args, env={"DDSP_OFFLINE": "1"})
        err = run.stderr.decode()
        assert run.returncode == 0, err
        assert "cut short" in err and "2.00 s (32000 frames)" in err, err
        assert "0.67 s (10667 frames)" in err
    assert sf.info(tmp_path / "o.wav").frames == 10667  # what is there, no more


def test_streamed_wav_of_unknown_length_does_not_warn(tmp_path):
    """sox/arecord/ffmpeg write 0xFFFFFFFF (or 0) as the length when writing to a pipe."""
    data = bytearray(tone(tmp_path / "x.wav").read_bytes())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    data[4:8] = (0xFFFFFFFF).to_bytes(4, "little")
    run = ddsp("info", "-", "--json", stdin=bytes(data))
    assert run.returncode == 0, run.stderr
    assert b"cut short" not in run.stderr


def test_clipping_is_never_silent(tmp_path):
    from ddspcli.engine import audio

    with pytest.warns(UserWarning, match="clipped at full scale"):
        audio.write_wav(tmp_path / "c.wav", np.full(100, 1.5, np.float32), 16000)


def test_info_streams_the_file_and_matches_a_one_shot_analysis(tmp_path, monkeypatch):
    """`describe_audio` never decodes the whole file (read_audio is off limits) and gives the
    figures of a one-shot analysis of the whole mono mix."""
    from ddspcli.engine import analysis, audio, dsp

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((44100 * 25, 2))).astype(np.float32)  # 25 s, 2 blocks+
    x[:44100] *= 0.001
    path = tmp_path / "long.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    mono, _ = audio.read_audio(path, 16000)
    loud = dsp.compute_loudness(mono, 16000, 250).numpy()
    peak, rms = analysis.level_dbfs(mono)

    def forbidden(*args, **kwargs):
        raise AssertionError("describe_audio decoded the whole file")

    monkeypatch.setattr(audio, "read_audio", forbidden)
    report = analysis.describe_audio(str(path))
    assert report["peak_dbfs"] == pytest.approx(round(peak, 2), abs=0.011)
    assert report["rms_dbfs"] == pytest.approx(round(rms, 2), abs=0.011)
    assert report["loudness_db_median"] == pytest.approx(float(np.median(loud)), abs=0.011)
    assert report["loudness_db_max"] == pytest.approx(float(np.max(loud)), abs=0.011)
    assert report["active_fraction"] == pytest.approx(float(np.mean(loud > -60)), abs=1e-4)


def test_loudness_stream_equals_the_one_shot_loudness():
    from ddspcli.engine import analysis, dsp

    x = np.random.default_rng(1).standard_normal(16000 * 3 + 123).astype(np.float32) * 0.2
    whole = dsp.compute_loudness(x, 16000, 250).numpy()
    for block in (1, 100, 511, 4096, 20000):
        stream = analysis.LoudnessStream(16000, 250)
        for start in range(0, len(x), block):
            stream.push(x[start : start + block])
        out = stream.finish()
        assert out.shape == whole.shape
        np.testing.assert_allclose(out, whole, atol=1e-4)


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    from ddspcli import storage
    from ddspcli.errors import OutputError

    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(OutputError, match="not empty; pass --force"), storage.atomic_folder(dest):
        pass
    with pytest.raises(RuntimeError), storage.atomic_folder(dest, force=True) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("the writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    assert (dest / "old.txt").read_text() == "old"
    with storage.atomic_folder(dest, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
