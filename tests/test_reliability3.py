"""Reliability, round 3 (issue 31): one or more tests for every numbered line of the issue.

In-process (`clirun.ddsp`) wherever the process is not the point; subprocesses only for
signals, pipes, fd 2 and stdout redirected to a file. A refusal asserts the exit code, one
``ddsp: error:`` line naming the problem, no traceback, nothing written, no temporary file
left (``*.tmp*``) and every input unchanged (sha256). Offline throughout: the bundled CREPE
tiny, the shipped models, synthetic tones written here, ``DDSP_OFFLINE=1``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp
from conftest import TONE_MODEL_PARAMS

from ddspcli.errors import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OUTPUT,
    EXIT_PIPE,
    EXIT_TERMINATED,
    EXIT_USAGE,
)

DATA = Path(__file__).parent / "data"
PACKAGE_MODELS = Path(__file__).parent.parent / "ddspcli" / "models"
VIOLIN = PACKAGE_MODELS / "violin"
OFFICIAL = DATA / "ddsp370_solo_small"
TINY = ("--pitch-model", "tiny")
SMALL_FIT = ("--variant", "tiny", *[a for p in TONE_MODEL_PARAMS for a in ("--gin-param", p)],
             "--batch-size", "2", "--checkpoint-every", "1000", "--summary-every", "1")  # fmt: skip
OFFLINE = {"DDSP_OFFLINE": "1"}


# ---------------------------------------------------------------------------------------------
# Helpers.


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tone(path: Path, seconds: float = 1.0, rate: int = 16000, **write) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(path, x, rate, **(write or {"subtype": "PCM_16"}))
    return path


def temporaries(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.tmp*"))


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def files_sha(root: Path) -> dict[Path, str]:
    return {p: sha(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("ddsp: error:")]


class Scene:
    """A working folder: a snapshot of its files, in-process runs in it, the refusal checks."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {**OFFLINE, "DDSP_HOME": str(root.parent / "home"), **(env or {})}
        self.snap()

    def snap(self) -> None:
        self.before, self.inputs = tree(self.root), files_sha(self.root)

    def run(self, *args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        return ddsp(*map(str, args), cwd=self.root, env={**self.env, **(env or {})}, **kwargs)

    def clean(self) -> None:
        assert temporaries(self.root) == []
        assert {p: sha(p) for p in self.inputs} == self.inputs  # every input unchanged

    def refused(self, run: subprocess.CompletedProcess, code: int, pattern: str) -> str:
        """Exit `code`, one error line matching `pattern`, no traceback, nothing written."""
        err = run.stderr.decode()
        assert run.returncode == code, err
        assert "Traceback" not in err and "internal error" not in err, err
        lines = error_lines(err)
        assert len(lines) == 1, err
        assert re.search(pattern, lines[0]), lines[0]
        assert tree(self.root) == self.before  # nothing written (no file, no folder)
        self.clean()
        return lines[0]


@pytest.fixture
def scene(tmp_path) -> Scene:
    work = tmp_path / "work"
    work.mkdir()
    tone(work / "x.wav")
    return Scene(work)


def py_ddsp(*args) -> list[str]:
    return [sys.executable, "-m", "ddspcli", *map(str, args)]


def child_env(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, **OFFLINE}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def default_sigint() -> None:
    """In a child: SIGINT as in a terminal's foreground job (pytest started in the background
    or under nohup hands it down ignored, and `ddsp` keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate: Callable[[], object], proc: subprocess.Popen, timeout: float = 120):
    """Poll `predicate` until it is truthy; fail if `proc` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the process ended ({proc.returncode}) first: {err.decode()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("timed out")


def handles(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (Linux: SigCgt of /proc/PID/status).
    `ddsp` sets its SIGTERM handler when its `run` starts (`interrupts.install`): from then on
    a signal reaches the command itself, not Python's start-up."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    found = re.search(r"^SigCgt:\s*([0-9a-fA-F]+)", status, re.MULTILINE)
    return bool(found) and bool(int(found.group(1), 16) >> (signum - 1) & 1)


def running_command(proc: subprocess.Popen) -> None:
    """Wait until `ddsp` in `proc` runs its command (its SIGTERM handler is set)."""
    wait_for(lambda: handles(proc.pid, signal.SIGTERM), proc)


def dead_pid() -> int:
    """A process id whose process has ended and was reaped."""
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """The tone_model fixture's dataset (tests/toneset.py), without the 40 s of training."""
    from toneset import write_tone_dataset

    return write_tone_dataset(tmp_path_factory.mktemp("tones") / "tones")


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory) -> Path:
    """An official DDSP 3.7.0 checkpoint folder with its dataset statistics (see
    tests/test_magenta_ckpt.py)."""
    src = tmp_path_factory.mktemp("official") / "solo_ckpt"
    shutil.copytree(OFFICIAL, src)
    shutil.copy(DATA / "ddsp370_dataset_statistics.pkl", src / "dataset_statistics.pkl")
    return src


def _fail_if_called(what: str):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{what} ran: the refusal came after the work started")

    return forbidden


# ---------------------------------------------------------------------------------------------
# The refusal matrix (lines 1, 5, 7, 11, 14 and the smaller ones): in-process.


def _two_inputs(tmp: Path) -> None:
    tone(tmp / "x.flac", format="FLAC")
    tone(tmp / "x.ogg", format="OGG", subtype="VORBIS")


def _two_inputs_with_dir(tmp: Path) -> None:
    _two_inputs(tmp)
    (tmp / "D").mkdir()


def _link_to_take(tmp: Path) -> None:
    os.symlink("take.wav", tmp / "link.json")  # dangling until the take is written


def _previous_take(tmp: Path) -> None:
    tone(tmp / "take.wav", 2.0)


def _subfolder(tmp: Path) -> None:
    (tmp / "sub").mkdir()


def _profile(rows: str, bom: bool = False) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        text = "time_s,f0_hz,loudness_db\n" + rows
        (tmp / "p.csv").write_bytes(("\ufeff" if bom else "").encode() + text.encode())

    return setup


def _frame_rate_50(tones_dir: Path, pitch_model: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        shutil.copytree(tones_dir, tmp / "d50")
        info = json.loads((tmp / "d50" / "dataset.json").read_text())
        info["frame_rate"] = 50  # as `prepare --preset vst` writes it
        info["settings"]["features"].update(frame_rate=50, pitch_model=pitch_model)
        (tmp / "d50" / "dataset.json").write_text(json.dumps(info))

    return setup


def _damaged_checkpoint(tmp: Path) -> None:
    shutil.copytree(VIOLIN, tmp / "viol")
    [data] = (tmp / "viol").glob("ckpt*.data*")
    raw = bytearray(data.read_bytes())
    for i in range(1000, len(raw), 4096):
        raw[i] ^= 0xFF  # same size, bytes changed
    data.write_bytes(bytes(raw))


def _official(tmp: Path) -> None:
    shutil.copytree(OFFICIAL, tmp / "ckpt")


@dataclass
class Case:
    """A row: `setup(tmp)` writes the inputs; `guard`: (module, attribute) pairs that must not
    be called (the refusal comes before that work); `absent`: what must not be checked in the
    message."""

    name: str
    args: tuple[str, ...]
    code: int
    message: str
    setup: Callable[[Path], None] | str = lambda tmp: None
    guard: tuple[tuple[str, str], ...] = ()
    absent: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


LIVE = ("live", "-m", "violin", "-i", "x.wav", "-o", "take.wav")
BEFORE_LIVE_WORK = (("ddspcli.instrument.Instrument", "open"),)  # the model, CREPE
BEFORE_RENDER = (("ddspcli.engine.transfer", "run_jobs"),)
BOTH = "-o and --stats-json would both be written to"
CASES = [
    # 1. a take lost under its own statistics, however the second output spells the file
    Case("1 live -o take --stats-json take", (*LIVE, "--stats-json", "take.wav"), EXIT_OUTPUT,
         BOTH, guard=BEFORE_LIVE_WORK),
    Case("1 live ... --force", (*LIVE, "--stats-json", "take.wav", "--force"), EXIT_OUTPUT,
         BOTH, guard=BEFORE_LIVE_WORK),
    Case("1 live --stats-json ./take.wav", (*LIVE, "--stats-json", "./take.wav", "--force"),
         EXIT_OUTPUT, BOTH, guard=BEFORE_LIVE_WORK),
    Case("1 live --stats-json sub/../take.wav", (*LIVE, "--stats-json", "sub/../take.wav"),
         EXIT_OUTPUT, BOTH, _subfolder, guard=BEFORE_LIVE_WORK),
    Case("1 live --stats-json symlink to take", (*LIVE, "--stats-json", "link.json"),
         EXIT_OUTPUT, BOTH, _link_to_take, guard=BEFORE_LIVE_WORK),
    Case("1 live --stats-json symlink to take --force",
         (*LIVE, "--stats-json", "link.json", "--force"), EXIT_OUTPUT, BOTH, _link_to_take,
         guard=BEFORE_LIVE_WORK),
    Case("1 live onto an existing take --force", (*LIVE, "--stats-json", "take.wav", "--force"),
         EXIT_OUTPUT, BOTH, _previous_take, guard=BEFORE_LIVE_WORK),
    # 1 / 14. transfer: the same output twice, with advice that can help
    Case("14 transfer x.flac x.ogg --out-dir D (D exists)",
         ("transfer", "x.flac", "x.ogg", "--model", "violin", "--out-dir", "D"), EXIT_OUTPUT,
         r"x\.flac.* and .*x\.ogg.* would both be written to D/x\.violin\.wav",
         _two_inputs_with_dir, guard=BEFORE_RENDER, absent=("use --out-dir",)),
    Case("14 transfer x.flac x.ogg --out-dir D (D new)",
         ("transfer", "x.flac", "x.ogg", "--model", "violin", "--out-dir", "D"), EXIT_OUTPUT,
         r"x\.flac.* and .*x\.ogg.* would both be written to D/x\.violin\.wav", _two_inputs,
         guard=BEFORE_RENDER, absent=("use --out-dir",)),
    Case("14 transfer -o P.png --plot P.png", ("transfer", "x.wav", "-o", "P.png", "--plot",
         "P.png"), EXIT_USAGE, r"P\.png: audio is written as WAV or FLAC", guard=BEFORE_RENDER,
         absent=("use --out-dir",)),
    Case("14 transfer -o P.wav --plot P.wav", ("transfer", "x.wav", "-o", "P.wav", "--plot",
         "P.wav"), EXIT_OUTPUT, "the audio output and --plot would both be written to P.wav",
         guard=BEFORE_RENDER, absent=("use --out-dir",)),
    Case("14 transfer -o o.wav --save-features o.wav", ("transfer", "x.wav", "-o", "o.wav",
         "--save-features", "./o.wav"), EXIT_OUTPUT, "would both be written",
         guard=BEFORE_RENDER, absent=("use --out-dir",)),
    # 5. internal errors on input a user controls
    Case("5 eval on a dataset at 50 frames/s", ("eval", "violin", "--data", "d50"), EXIT_INPUT,
         r"250 frames/s but d50 was prepared at 50 frames/s", "frame_rate_50:tiny",
         guard=(("ddspcli.engine.evaluate", "evaluate"),)),
    # ... named before CREPE full (not cached in this DDSP_HOME) is fetched for the scoring
    Case("5 eval on a dataset at 50 frames/s, before any download",
         ("eval", "violin", "--data", "d50"), EXIT_INPUT,
         r"250 frames/s but d50 was prepared at 50 frames/s", "frame_rate_50:full",
         guard=(("ddspcli.engine.evaluate", "evaluate"),)),
    Case("5 live --block-ms 1e9", (*LIVE, "--block-ms", "1e9"), EXIT_USAGE,
         r"--block-ms.*1e\+09 is above the most allowed", guard=BEFORE_LIVE_WORK),
    Case("5 generate --profile to 1e9 s", ("generate", "--profile", "p.csv", "-o", "g.wav"),
         EXIT_INPUT, r"p\.csv lasts 1e\+09 s", _profile("0,440,-20\n1e9,440,-20\n")),
    Case("5 transfer --semitones 1e6", ("transfer", "x.wav", "--semitones", "1e6"), EXIT_USAGE,
         r"--semitones.*above the most allowed, 96"),
    Case("5 transfer --octave 1e20", ("transfer", "x.wav", "--octave", "99999999999999999999"),
         EXIT_USAGE, r"--octave.*(less than or equal to 8|most allowed)"),
    Case("5 prepare --beam-options --runner=NoSuchRunner",
         ("prepare", "x.wav", "-o", "ds", *TINY, "--runner", "beam", "--beam-options",
          "--runner=NoSuchRunner"), EXIT_USAGE, "NoSuchRunner"),
    Case("5 prepare --beam-options --runner=DaskRunner",
         ("prepare", "x.wav", "-o", "ds", *TINY, "--runner", "beam", "--beam-options",
          "--runner=DaskRunner"), EXIT_USAGE, "DaskRunner.*--runner dask"),
    Case("5 prepare --beam-options unbalanced quote",
         ("prepare", "x.wav", "-o", "ds", *TINY, "--runner", "beam", "--beam-options",
          "--runner='oops"), EXIT_USAGE, "(?i)quotation"),
    Case("5 prepare --runner dask without --scheduler",
         ("prepare", "x.wav", "-o", "ds", *TINY, "--runner", "dask"), EXIT_USAGE,
         "--runner dask needs --scheduler"),
    Case("5 fit on a folder that is not a dataset", ("fit", "notds", "-o", "RUN"), EXIT_INPUT,
         "notds is not a prepared dataset", lambda tmp: (tmp / "notds").mkdir()),
    Case("5 fit on a missing dataset", ("fit", "nothere", "-o", "RUN"), EXIT_INPUT, "nothere"),
    # 7. outputs under the wrong name
    Case("7 transfer -o out.csv", ("transfer", "x.wav", "-o", "out.csv"), EXIT_USAGE,
         r"out\.csv: audio is written as WAV or FLAC", guard=BEFORE_RENDER),
    Case("7 transfer -o out.mp3", ("transfer", "x.wav", "-o", "out.mp3"), EXIT_USAGE,
         r"out\.mp3: audio is written as WAV or FLAC", guard=BEFORE_RENDER),
    Case("7 generate -o g.csv", ("generate", "--profile", "p.csv", "-o", "g.csv"), EXIT_USAGE,
         r"g\.csv: audio is written as WAV or FLAC", _profile("0,440,-20\n1,440,-20\n")),
    Case("7 live -o ./x.csv", ("live", "-i", "x.wav", "-o", "./x.csv"), EXIT_USAGE,
         r"x\.csv: audio is written as WAV or FLAC", guard=BEFORE_LIVE_WORK),
    # 11. folder outputs do not create missing parents
    Case("11 models export -o a/b/c", ("models", "export", str(VIOLIN), "-o", "a/b/c"),
         EXIT_OUTPUT, "a/b does not exist"),
    Case("11 models import -o a/b/c", ("models", "import", "ckpt", "-o", "a/b/c"), EXIT_OUTPUT,
         "a/b does not exist", _official),
    Case("11 transfer --stems a/b/c", ("transfer", "x.wav", "--stems", "a/b/c", "-o", "s.wav"),
         EXIT_OUTPUT, "a/b does not exist", guard=BEFORE_RENDER),
    Case("11 transfer --out-dir a/b/c", ("transfer", "x.wav", "--out-dir", "a/b/c"),
         EXIT_OUTPUT, "a/b does not exist", guard=BEFORE_RENDER),
    # smaller: option ranges, the reasons given
    Case("hop 0", ("transfer", "x.wav", "--pitch-hop-ms", "0"), EXIT_USAGE, "positive"),
    Case("hop -4", ("transfer", "x.wav", "--pitch-hop-ms", "-4"), EXIT_USAGE, "positive",
         absent=("must be a multiple",)),
    Case("features hop 0", ("features", "x.wav", *TINY, "--pitch-hop-ms", "0", "-o", "f.csv"),
         EXIT_USAGE, "positive"),
    Case("peak-db nan", ("transfer", "x.wav", "--peak-db", "nan"), EXIT_USAGE,
         "--peak-db.*nan is not a finite number", absent=("less than or equal",)),
    Case("peak-db 3", ("transfer", "x.wav", "--peak-db", "3"), EXIT_USAGE,
         r"--peak-db.*3 is above the most allowed, 0"),
    Case("a damaged ckpt.data", ("transfer", "x.wav", "--model", "viol", "-o", "d.wav"),
         EXIT_MODEL, "viol: checkpoint .* is unreadable: .*(?i:checksum)", _damaged_checkpoint,
         absent=("{{function_node", "[Op:", "__wrapped__")),
    Case("a damaged ckpt.data (export)", ("models", "export", "viol", "-o", "exp"), EXIT_MODEL,
         "is unreadable", _damaged_checkpoint, absent=("{{function_node", "[Op:")),
    Case("a 0-byte MIDI", ("generate", "--midi", "empty.mid", "-o", "m.wav"), EXIT_INPUT,
         r"cannot read MIDI file empty\.mid: \S.*empty", lambda tmp: (tmp / "empty.mid").touch()),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refusal_matrix(case: Case, scene: Scene, request, monkeypatch):
    if isinstance(case.setup, str):  # "frame_rate_50:PITCH_MODEL": the tones (TensorFlow)
        setup = _frame_rate_50(request.getfixturevalue("tones"), case.setup.split(":")[1])
    else:
        setup = case.setup
    setup(scene.root)
    scene.snap()
    for module, attribute in case.guard:
        monkeypatch.setattr(f"{module}.{attribute}", _fail_if_called(f"{module}.{attribute}"))
    line = scene.refused(scene.run(*case.args, env=case.env), case.code, case.message)
    for text in case.absent:
        assert text not in line, line


# ---------------------------------------------------------------------------------------------
# 5. The model cache: unusable DDSP_HOME, a cache write refused.


def test_ddsp_home_a_file_is_one_line_exit_5(scene: Scene, monkeypatch):
    from ddspcli import pretrained

    monkeypatch.setattr(pretrained, "_fetch_file", _fail_if_called("a download"))
    (scene.root / "home.txt").write_text("not a folder\n")
    scene.snap()
    run = scene.run("features", "x.wav", "-o", "f.csv", env={"DDSP_HOME": "home.txt"})
    scene.refused(run, EXIT_MODEL, r"cannot use the model cache .*home\.txt .*DDSP_HOME")


def test_a_cache_write_refused_is_one_line_exit_5(scene: Scene, official_ckpt, monkeypatch):
    """An on-the-fly import (`transfer --model CKPT_DIR`) into a DDSP_HOME where folders
    cannot be created (PermissionError; tests run as root, so it is simulated)."""
    home = scene.root.parent / "ro_home"
    home.mkdir()
    real_mkdir = os.mkdir

    def refusing_mkdir(path, *args, **kwargs):
        if os.path.abspath(path).startswith(str(home)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refusing_mkdir)
    checkpoint = files_sha(official_ckpt)
    run = scene.run("transfer", "x.wav", "--model", official_ckpt, "-o", "o.wav",
                    env={"DDSP_HOME": str(home)})  # fmt: skip
    scene.refused(run, EXIT_MODEL, r"cannot use the model cache .*ro_home \(permission denied")
    assert temporaries(home) == [] and files_sha(official_ckpt) == checkpoint


def test_a_tampered_cached_crepe_file_offline_is_named_damaged(scene: Scene, monkeypatch):
    from ddspcli import pretrained

    home = scene.root.parent / "home"
    monkeypatch.setenv("DDSP_HOME", str(home))
    spec = pretrained.get_spec("crepe-full")
    cached = pretrained.cache_dir(spec) / spec.files[0].name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    run = scene.run("features", "x.wav", "-o", "f.csv")  # the default tracker: crepe full
    line = scene.refused(run, EXIT_MODEL, "crepe-full is damaged in the cache")
    assert "not in the cache" not in line
    assert cached.read_bytes() == b"tampered"  # reported, not silently replaced


# ---------------------------------------------------------------------------------------------
# 6. A failed fit leaves nothing to resume; the corrected command starts afresh.


def test_a_fit_whose_gin_fails_is_forgotten(tmp_path, tones):
    work = tmp_path / "work"
    work.mkdir()
    s = Scene(work)
    command = ("fit", tones, "-o", "RUN", *SMALL_FIT, "--steps", "1", "--eval-batches", "1")
    bad = s.run(*command, "--gin-param", "Autoencoder.no_such_param = 3")
    s.refused(bad, EXIT_INPUT, "bad model configuration: .*no_such_param")
    assert not (work / "RUN" / "config.gin").exists()
    good = s.run(*command)  # the corrected command
    assert good.returncode == 0, good.stderr.decode()
    assert "resuming" not in good.stderr.decode()
    config = (work / "RUN" / "config.gin").read_text()
    assert "no_such_param" not in config and "rnn_units = 48" in config
    assert temporaries(work) == []


# ---------------------------------------------------------------------------------------------
# 7 and 8: FLAC by name, devices.


def test_transfer_writes_flac_equal_to_the_wav(scene: Scene):
    wav = scene.run("transfer", "x.wav", "-o", "o.wav")
    flac = scene.run("transfer", "x.wav", "-o", "o.flac")
    assert wav.returncode == 0 and flac.returncode == 0, flac.stderr.decode()
    info = sf.info(scene.root / "o.flac")
    assert info.format == "FLAC" and sf.info(scene.root / "o.wav").format == "WAV"
    assert info.subtype == sf.info(scene.root / "o.wav").subtype == "PCM_16"
    a, rate_a = sf.read(scene.root / "o.wav", dtype="float64")
    b, rate_b = sf.read(scene.root / "o.flac", dtype="float64")
    assert rate_a == rate_b and a.shape == b.shape and np.abs(a).max() > 1e-3
    # The same samples within one step of the output's 16 bits (libsndfile rounds float to
    # 16-bit integers differently for WAV and FLAC).
    np.testing.assert_allclose(b, a, atol=2.0**-15 + 1e-12, rtol=0)
    scene.clean()


def test_live_writes_flac_equal_to_its_float_wav_and_into_dev_null(scene: Scene):
    import stat

    run = scene.run("live", "-i", "x.wav", "-o", "take.flac")
    assert run.returncode == 0, run.stderr.decode()
    run = scene.run("live", "-i", "x.wav", "-o", "take.wav")
    assert run.returncode == 0, run.stderr.decode()
    info = sf.info(scene.root / "take.flac")
    assert info.format == "FLAC" and info.subtype == "PCM_24"  # FLOAT becomes 24-bit
    a, _ = sf.read(scene.root / "take.wav", dtype="float64")
    b, _ = sf.read(scene.root / "take.flac", dtype="float64")
    assert a.shape == b.shape and len(a) > 16000 and np.abs(a).max() > 1e-3
    np.testing.assert_allclose(b, np.clip(a, -1, 1), atol=2.0**-23 + 1e-12, rtol=0)
    run = scene.run("live", "-i", "x.wav", "-o", "/dev/null")
    assert run.returncode == 0, run.stderr.decode()
    assert "ddsp: error" not in run.stderr.decode()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert tree(scene.root) == scene.before | {"take.flac", "take.wav"}
    scene.clean()


def test_transfer_to_dev_stdout_redirected_to_an_existing_file(tmp_path):
    wav = tone(tmp_path / "x.wav")
    out = tmp_path / "o.wav"
    out.write_bytes(b"an earlier file")
    with open(out, "wb") as stdout:  # the shell's `> o.wav`
        done = subprocess.run(py_ddsp("transfer", wav, "-o", "/dev/stdout"), stdout=stdout,
                              stderr=subprocess.PIPE, env=child_env(), timeout=300,
                              check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    info = sf.info(out)
    assert info.format == "WAV" and info.frames == 16000
    assert temporaries(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 10 and 12.


def test_generate_reads_a_csv_with_a_byte_order_mark(scene: Scene):
    _profile("0,440,-20\n0.5,440,-20\n", bom=True)(scene.root)
    run = scene.run("generate", "--profile", "p.csv", "-o", "g.wav")
    assert run.returncode == 0, run.stderr.decode()
    info = sf.info(scene.root / "g.wav")
    assert info.format == "WAV" and 0.5 <= info.duration <= 2.0
    scene.clean()


def test_live_seconds_stops_a_file_input(scene: Scene):
    tone(scene.root / "x6.wav", 6.0)
    run = scene.run("live", "--seconds", "1", "-i", "x6.wav", "-o", "o.wav",
                    "--stats-json", "s.json")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    seconds = sf.info(scene.root / "o.wav").duration
    latency_s = json.loads((scene.root / "s.json").read_text())["latency_ms"] / 1000
    assert 1.0 <= seconds <= 1.0 + latency_s + 0.05, (seconds, latency_s)


# ---------------------------------------------------------------------------------------------
# Smaller: help reflowed to the terminal.


def test_help_paragraphs_reflow_at_80_columns():
    run = ddsp("live", "--help", env={"COLUMNS": "80"}, text=True)
    assert run.returncode == 0
    text = run.stdout.split("╭")[0]  # the description, before the option boxes
    paragraphs = [[ln.strip() for ln in p.splitlines() if ln.strip()]
                  for p in re.split(r"\n\s*\n", text)]  # fmt: skip
    paragraphs = [p for p in paragraphs if p and not p[0].startswith("Usage:")]
    assert len(paragraphs) >= 2, text
    for lines in paragraphs:
        assert all(len(ln) <= 80 for ln in lines)
        for line in lines[:-1]:  # only a paragraph's last line may be short
            assert len(line) >= 60, f"a ragged line: {line!r} in {lines}"
    words = " ".join(" ".join(p) for p in paragraphs)
    assert "Blocks are processed causally with the state carried, so a file gives exactly" in words


# ---------------------------------------------------------------------------------------------
# 2. Temporaries: named by their writer, removed once the writer is gone.


def test_remove_stale_temporaries_removes_only_dead_writers_files(tmp_path):
    from ddspcli import storage

    dead = dead_pid()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = sleeper.pid
        dest = tmp_path / "out.wav"
        gone = [tmp_path / f".out.wav.{dead}-abc123.tmp"]
        gone[0].write_bytes(b"half a take")
        folder = tmp_path / f".out.wav.{dead}-def456.tmp"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "f").write_text("x")
        gone.append(folder)
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "keep").write_text("kept")
        os.symlink(outside, tmp_path / f".out.wav.{dead}-lnk999.tmp")
        gone.append(tmp_path / f".out.wav.{dead}-lnk999.tmp")
        kept = [
            tmp_path / f".out.wav.{live}-ghi789.tmp",  # its writer still runs
            tmp_path / ".out.wav.0a1b2c3d4e5f.tmp",  # an older name without a pid
            tmp_path / f".other.wav.{dead}-abc123.tmp",  # another output's
            tmp_path / f".out.wav.{dead}-abc123.tmp.bak",  # not a temporary name
            tmp_path / f"out.wav.{dead}-abc123.tmp",  # not hidden
        ]
        for path in kept:
            path.write_bytes(b"x")
        removed = storage.remove_stale_temporaries(dest)
        assert sorted(removed) == sorted(gone)
        assert not any(os.path.lexists(p) for p in gone)
        assert all(p.exists() for p in kept)
        assert (outside / "keep").read_text() == "kept"  # a link is removed, not its target
        # glob characters in the name are literal
        odd = tmp_path / "a[1].wav"
        mine = tmp_path / f".a[1].wav.{dead}-x.tmp"
        other = tmp_path / f".a1.wav.{dead}-x.tmp"
        mine.write_bytes(b"x")
        other.write_bytes(b"x")
        assert storage.remove_stale_temporaries(odd) == [mine]
        assert other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_atomic_write_names_its_temporary_with_its_pid(tmp_path):
    from ddspcli import storage

    with storage.atomic_write(tmp_path / "f.bin") as handle:
        handle.write(b"data")
        [tmp] = [p for p in tmp_path.iterdir() if p.name != "f.bin"]
        assert tmp.name.startswith(f".f.bin.{os.getpid()}-") and tmp.name.endswith(".tmp")
    assert (tmp_path / "f.bin").read_bytes() == b"data" and temporaries(tmp_path) == []


def test_models_import_killed_leaves_a_folder_that_the_next_import_removes(tmp_path,
                                                                           official_ckpt):
    """kill -9 of `models import` strands its `.NAME.<pid>-xxxx.tmp/`; the next import to the
    same -o removes it, and keeps the temporary folder of a writer that still runs."""
    inputs = files_sha(official_ckpt)
    proc = subprocess.Popen(py_ddsp("models", "import", official_ckpt, "-o", "NAME"),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env(DDSP_HOME=str(tmp_path / "home")))  # fmt: skip
    [stale] = wait_for(lambda: sorted(tmp_path.glob(".NAME.*.tmp")), proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert stale.is_dir() and stale.name.startswith(f".NAME.{proc.pid}-")
    assert not (tmp_path / "NAME").exists()
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        running = tmp_path / f".NAME.{sleeper.pid}-a1b2c3.tmp"
        running.mkdir()
        (running / "model.json").write_text("{}")
        run = ddsp("models", "import", official_ckpt, "-o", "NAME", cwd=tmp_path,
                   env={**OFFLINE, "DDSP_HOME": str(tmp_path / "home")})  # fmt: skip
        assert run.returncode == 0, run.stderr.decode()
        assert (tmp_path / "NAME" / "model.json").is_file()
        assert not stale.exists()
        assert (running / "model.json").read_text() == "{}"  # a running writer's: kept
        assert [p.name for p in tmp_path.glob(".NAME.*")] == [running.name]
        assert files_sha(official_ckpt) == inputs
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------------------
# 2. SIGTERM and kill -9 of `live` (subprocesses: the signal is the point).


def _live_take(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        py_ddsp("live", "-m", "violin", "-i", "x6.wav", "-o", "take.wav", "--stats-json",
                "s.json", *extra),
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
    )  # fmt: skip


def _take_temporary(folder: Path) -> list[Path]:
    return sorted(folder.glob(".take.wav.*.tmp"))


def test_sigterm_completes_the_live_take_and_its_statistics(tmp_path):
    tone(tmp_path / "x6.wav", 6.0)
    source = sha(tmp_path / "x6.wav")
    proc = _live_take(tmp_path, "--pace", "realtime")
    [tmp] = wait_for(lambda: _take_temporary(tmp_path), proc)
    assert f".take.wav.{proc.pid}-" in tmp.name  # the writer named in the temporary
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_TERMINATED, err.decode()
    assert b"Traceback" not in err
    audio, rate = sf.read(tmp_path / "take.wav")
    assert 0.5 <= len(audio) / rate < 5.9  # stopped partway, the audio so far kept
    assert np.abs(audio).max() > 1e-3
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["blocks"] > 0
    assert temporaries(tmp_path) == []
    assert sha(tmp_path / "x6.wav") == source


def test_kill_9_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    tone(tmp_path / "x6.wav", 6.0)
    proc = _live_take(tmp_path, "--pace", "realtime")
    wait_for(lambda: _take_temporary(tmp_path), proc)
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    [left] = _take_temporary(tmp_path)  # what kill -9 leaves
    assert f".take.wav.{proc.pid}-" in left.name
    assert not (tmp_path / "take.wav").exists()
    # The rerun of the same outputs (in-process: the run, not the process, is the point).
    rerun = ddsp("live", "-m", "violin", "-i", "x6.wav", "-o", "take.wav", "--stats-json",
                 "s.json", cwd=tmp_path, env=OFFLINE)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert temporaries(tmp_path) == [] and not left.exists()
    assert sf.info(tmp_path / "take.wav").duration >= 6.0
    json.loads((tmp_path / "s.json").read_text())


# ---------------------------------------------------------------------------------------------
# 3. Ctrl-C: deterministic inside librosa's numba Viterbi, then at spread times.

VITERBI_HOOK = textwrap.dedent("""
    import os, signal, sys

    from ddspcli.engine import pitch

    marks = open(sys.argv[1], "a")

    def mark(what):
        marks.write(what + "\\n")
        marks.flush()

    real = pitch.viterbi_path

    def viterbi_path(*args, **kwargs):
        mark("called")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C now: inside pitch tracking
        out = real(*args, **kwargs)
        mark("returned")
        return out

    pitch.viterbi_path = viterbi_path
    from ddspcli.cli import run

    try:
        code = run(sys.argv[2:])
    finally:
        mark(" ".join(m for m in ("numba", "librosa.sequence") if m in sys.modules) or "none")
    sys.exit(code)
""")


def test_ctrl_c_inside_pitch_tracking_is_a_clean_130(tmp_path):
    """A deterministic Ctrl-C inside the Viterbi decoding of a transfer (the defaults: CREPE
    tiny, Viterbi on). Since b453249 transfer decodes with `pitch.viterbi_path` (NumPy): the
    numba code of librosa's Viterbi, where interrupts crashed the interpreter (issue 31, 3), is
    not even loaded."""
    wav = tone(tmp_path / "x.wav")
    marks = tmp_path / "marks.txt"
    done = subprocess.run(
        [sys.executable, "-c", VITERBI_HOOK, str(marks), "transfer", str(wav), "--model",
         "violin", "-o", str(tmp_path / "o.wav"), *TINY],
        capture_output=True, env=child_env(), timeout=300, check=False, preexec_fn=default_sigint,
    )  # fmt: skip
    err = done.stderr.decode()
    seen = marks.read_text().splitlines()
    assert seen[0] == "called" and "returned" not in seen, (seen, err)
    assert done.returncode == EXIT_INTERRUPTED, err  # not 139 (a segmentation fault), not 1
    assert "Traceback" not in err and "ddsp: error" not in err, err
    assert seen[-1] == "none", seen  # no numba Viterbi on the transfer path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marks.txt", "x.wav"]


DEFERRED_CHECK = textwrap.dedent("""
    import os, signal, sys, time

    from ddspcli import interrupts

    interrupts.install()
    log = []

    def section(signum):
        with interrupts.deferred():
            os.kill(os.getpid(), signum)
            time.sleep(0.1)  # a handler would have run by now
            log.append("finished")

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            section(signum)
        except KeyboardInterrupt as err:
            log.append(type(err).__name__)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    section(signal.SIGINT)  # ignored stays ignored
    log.append(str(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))
    log.append(str(signal.getsignal(signal.SIGTERM) == interrupts._on_sigterm))
    print(" ".join(log))
""")


def test_deferred_sections_hold_ctrl_c_and_sigterm_to_their_end():
    """`interrupts.deferred` (around librosa's numba Viterbi, `pitch.viterbi_bins`): a signal
    inside is raised when the section ends, SIGTERM as `Terminated`; an ignored SIGINT stays
    ignored; handlers are restored. (The numba compilation itself, 20 s of CPU with an empty
    NUMBA_CACHE_DIR, is exercised by benchmarks/interrupt_sweep.py --numba-viterbi.)"""
    done = subprocess.run([sys.executable, "-c", DEFERRED_CHECK], capture_output=True,
                          env=child_env(), timeout=120, check=False,
                          preexec_fn=default_sigint)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [
        "finished", "KeyboardInterrupt", "finished", "Terminated", "finished", "True", "True"]


def _transfer(folder: Path, wav: Path) -> subprocess.Popen:
    return subprocess.Popen(py_ddsp("transfer", wav, "-o", folder / "o.wav"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
                            preexec_fn=default_sigint)  # fmt: skip


def test_ctrl_c_at_spread_times_ends_130_or_finishes(tmp_path):
    """A few interrupts over a 3 s transfer, timed from the start of the command (the
    20-interrupt sweep of a 60 s one, start-up included, is benchmarks/interrupt_sweep.py):
    each exits 130 with nothing written, or finished (0). A run may also end killed by SIGINT
    (-2; a shell reports 130 for it too), quietly: CPython 3.11 exits that way after a
    KeyboardInterrupt raised inside an ``eval``/``exec`` of a string (typing's forward
    references, namedtuple, dataclasses: ``_Py_UnhandledKeyboardInterrupt`` stays set even
    though `ddsp` caught it and returned 130)."""
    wav = tone(tmp_path / "x3.wav", 3.0)
    for delay in (0.0, 0.4, 1.0, 2.0):
        folder = tmp_path / f"at{delay}"
        folder.mkdir()
        proc = _transfer(folder, wav)
        running_command(proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        code, err = proc.returncode, err.decode()
        assert code in (EXIT_INTERRUPTED, -signal.SIGINT, 0), (delay, code, err)
        assert "Traceback" not in err and "ddsp: error" not in err, (delay, err)
        if code == 0:
            assert sf.info(folder / "o.wav").frames == 48000
        else:
            assert list(folder.iterdir()) == [], delay
        assert temporaries(folder) == []


def test_ctrl_c_during_start_up_is_130_without_a_traceback(tmp_path):
    """Ctrl-C pressed right after Enter, while `python -m ddspcli` imports the command
    modules (made deterministic with -X importtime: the signal goes as soon as the first
    ddspcli module has been imported, before `run` starts)."""
    wav = tone(tmp_path / "x.wav")
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "ddspcli", "transfer", str(wav), "-o",
         str(tmp_path / "o.wav")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
        preexec_fn=default_sigint,
    )  # fmt: skip
    for line in proc.stderr:
        if re.search(rb"\|\s+ddspcli\.\w", line):
            break
    assert not handles(proc.pid, signal.SIGTERM)  # `run` has not started
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    err = "".join(ln for ln in rest.decode().splitlines(True) if not ln.startswith("import time"))
    code = proc.returncode
    # A process killed by SIGINT itself (-2) reads as 130 in the shell: accepted, quietly.
    assert code in (EXIT_INTERRUPTED, -signal.SIGINT), (code, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert not (tmp_path / "o.wav").exists()


# ---------------------------------------------------------------------------------------------
# 4. A reader that closes stdout midway.


def _read_100_then_close(args: list[str], stdin=None) -> tuple[int, bytes, bytes]:
    proc = subprocess.Popen(py_ddsp(*args), stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env())  # fmt: skip
    got = b""
    while len(got) < 100:
        chunk = os.read(proc.stdout.fileno(), 100 - len(got))
        if not chunk:
            break
        got += chunk
    proc.stdout.close()  # `| head -c 100`
    err = proc.stderr.read()
    proc.wait(timeout=300)
    return proc.returncode, got, err


def test_features_to_a_reader_that_leaves_midway_is_141(tmp_path):
    wav = tone(tmp_path / "x20.wav", 20.0)  # a CSV of about 140 kB: more than a pipe holds
    code, got, err = _read_100_then_close(["features", str(wav), *TINY])
    assert len(got) == 100 and got.startswith(b"time_s,f0_hz")
    assert code == EXIT_PIPE, err.decode()
    assert b"-> stdout" not in err and b"ddsp: error" not in err and b"Traceback" not in err


def test_transfer_to_a_reader_that_leaves_midway_is_141(tmp_path):
    wav = tone(tmp_path / "x6.wav", 6.0)
    with open(wav, "rb") as stdin:  # `cat x6.wav |`
        code, got, err = _read_100_then_close(
            ["transfer", "-", "--model", "violin", "-o", "-", *TINY], stdin=stdin)
    assert got.startswith(b"RIFF")
    assert code == EXIT_PIPE, err.decode()
    assert b"-> stdout" not in err and b"ddsp: error" not in err and b"Traceback" not in err
    assert temporaries(tmp_path) == []


class _PartialBuffer:
    """A stdout buffer that takes `takes[i]` bytes of the i-th write (None: the pipe broke)."""

    def __init__(self, takes: list[int | None]) -> None:
        self.takes, self.got, self.flushed = list(takes), bytearray(), False

    def write(self, data) -> int:
        n = self.takes.pop(0)
        if n is None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        self.got += bytes(data[:n])
        return min(n, len(data))

    def flush(self) -> None:
        self.flushed = True


class _FakeStdout:
    def __init__(self, buffer: _PartialBuffer) -> None:
        self.buffer = buffer


@pytest.mark.parametrize(
    ("takes", "complete"),
    [([30, 30, 40], True), ([100], True), ([10, 20, None], False), ([10, 0], False)],
)
def test_write_stdout_writes_to_the_end_or_raises(monkeypatch, takes, complete):
    from ddspcli import storage

    data = bytes(range(100))
    buffer = _PartialBuffer(takes)
    monkeypatch.setattr(sys, "stdout", _FakeStdout(buffer))
    if complete:
        storage.write_stdout(data)
        assert bytes(buffer.got) == data and buffer.flushed
    else:
        with pytest.raises(BrokenPipeError):
            storage.write_stdout(data)
        assert data.startswith(bytes(buffer.got)) and len(buffer.got) < len(data)


# ---------------------------------------------------------------------------------------------
# 13. -q is quiet, on fd 2 too (native libraries print there).


def test_quiet_live_prints_nothing_on_stderr(tmp_path):
    wav = tone(tmp_path / "x.wav")
    done = subprocess.run(py_ddsp("-q", "live", "-m", "violin", "-i", wav, "-o",
                                  tmp_path / "o.wav"),
                          capture_output=True, env=child_env(TF_CPP_MIN_LOG_LEVEL=None),
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert sf.info(tmp_path / "o.wav").frames > 0
    assert done.stderr.decode() == ""


# ---------------------------------------------------------------------------------------------
# Smaller: an inherited ignored SIGINT (`nohup ddsp ... &`) is ignored by transfer and fit
# alike, SIGTERM still stops them.


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _spawn_ignoring(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(py_ddsp(*args), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(),
                            preexec_fn=_ignoring_sigint)  # fmt: skip


def _pester(proc: subprocess.Popen, every: float = 0.25) -> threading.Thread:
    """SIGINT `proc` every `every` seconds until it ends."""

    def loop() -> None:
        while proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                return
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_an_ignored_sigint_is_ignored_by_transfer_sigterm_still_stops_it(tmp_path):
    """Two runs with SIGINT ignored by their parent: one pestered with SIGINTs from start to end
    finishes; the other, held in its command by a stdin that has not ended (no race with how fast
    the machine transfers), ignores a SIGINT and stops on SIGTERM with 143, nothing written."""
    wav = tone(tmp_path / "x3.wav", 3.0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ignoring = _spawn_ignoring(["transfer", str(wav), "-o", "o.wav"], tmp_path / "a")
    stopped = subprocess.Popen(py_ddsp("transfer", "-", "-o", "o.wav"), cwd=tmp_path / "b",
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=child_env(),
                               preexec_fn=_ignoring_sigint)  # fmt: skip
    pester = _pester(ignoring)  # from the start to the end
    stopped.stdin.write(wav.read_bytes()[:20000])  # part of a WAV: the rest never comes
    stopped.stdin.flush()
    running_command(stopped)
    time.sleep(0.5)  # into the command's reading of its input
    stopped.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert stopped.poll() is None  # the SIGINT changed nothing
    stopped.send_signal(signal.SIGTERM)
    stopped.wait(timeout=120)
    _, err_b = stopped.communicate(timeout=60)
    _, err_a = ignoring.communicate(timeout=300)
    pester.join()
    assert ignoring.returncode == 0, err_a.decode()
    assert sf.info(tmp_path / "a" / "o.wav").frames == 48000
    assert stopped.returncode == EXIT_TERMINATED, err_b.decode()
    assert b"Traceback" not in err_a + err_b
    assert list((tmp_path / "b").iterdir()) == []


PARSE_HOOK = textwrap.dedent("""
    import os, signal, sys

    try:
        from typer._click import core
    except ImportError:  # Typer before 0.22 runs on the click package
        from click import core

    real = core.Command.parse_args

    def parse_args(self, ctx, args):
        os.kill(os.getpid(), signal.SIGTERM)  # `ddsp` has set its handler: run() started
        return real(self, ctx, args)

    core.Command.parse_args = parse_args
    from ddspcli.cli import main

    sys.argv = ["ddsp", *sys.argv[1:]]
    main()
""")


def test_sigterm_while_the_options_are_parsed_is_143(tmp_path):
    """SIGTERM in the first second of a run (Typer parsing the options: under load up to a
    second and more), made deterministic: the signal is sent from inside the parsing."""
    wav = tone(tmp_path / "x.wav")
    done = subprocess.run([sys.executable, "-c", PARSE_HOOK, "info", str(wav)],
                          capture_output=True, env=child_env(), timeout=120,
                          check=False)  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == EXIT_TERMINATED, (done.returncode, err)
    assert "Traceback" not in err


def test_an_ignored_sigint_is_ignored_by_fit_sigterm_still_stops_it(tmp_path, tones):
    """One run (a fit costs a TensorFlow start): SIGINTs every 20 ms while it trains change
    nothing (before round 3 the first one stopped it), then SIGTERM stops it with a checkpoint."""
    proc = _spawn_ignoring(["fit", str(tones), *SMALL_FIT, "--json-log", "-o", "RUN", "--steps",
                            "100000"], tmp_path)  # fmt: skip
    first = json.loads(proc.stdout.readline())["step"]  # training: the handlers are set
    pester = _pester(proc, every=0.02)
    steps = [json.loads(proc.stdout.readline())["step"] for _ in range(30)]  # 30 more steps
    assert proc.poll() is None and steps[-1] == first + 30
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    pester.join()
    # SIGTERM: stopped with a checkpoint (README: 143 for SIGTERM; fit says 130)
    assert proc.returncode in (EXIT_TERMINATED, EXIT_INTERRUPTED), err.decode()
    last = json.loads(out.splitlines()[-1])
    assert last["checkpoint"] and first + 30 <= last["step"] < 100000
    assert b"Traceback" not in err
