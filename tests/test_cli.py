"""The `ddsp` command as users run it: exit codes, stdout vs stderr (in-process, and as a
process where the process is the point: the console script, completion, TF's native output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from badaudio import bad_inputs
from clirun import ddsp, ddsp_process

from ddspcli import __version__, tfimport
from ddspcli.errors import EXIT_INPUT, EXIT_USAGE


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "ddsp"
    assert script.exists(), "pip install -e . should create the ddsp console script"
    run = subprocess.run([str(script), "--version"], capture_output=True, check=False)
    assert run.returncode == 0 and run.stdout.decode().strip() == f"ddsp {__version__}"


def test_help_lists_only_working_commands():
    run = ddsp("--help")
    assert run.returncode == 0
    text = run.stdout.decode()
    for option in ("--version", "--quiet", "--verbose", "--install-completion"):
        assert option in text
    assert "info" in text


def test_shell_completion_script_and_completions():
    """The script bash sources, then what it asks for: completions of a partial command line.
    (Through click's _DDSP_COMPLETE protocol: `--show-completion` guesses the shell from the
    parent processes, which a test runner need not have.)"""
    script = str(Path(sys.executable).parent / "ddsp")

    def complete(instruction: str, words: str = "", cword: int = 0) -> subprocess.CompletedProcess:
        env = {**os.environ, "_DDSP_COMPLETE": instruction, "COMP_WORDS": words,
               "COMP_CWORD": str(cword)}  # fmt: skip
        return subprocess.run([script], capture_output=True, env=env, timeout=120, check=False)

    source = complete("source_bash")
    assert source.returncode == 0 and "complete -o default -F _ddsp_completion ddsp" in (
        source.stdout.decode()
    )
    assert complete("complete_bash", "ddsp tra", 1).stdout.split() == [b"transfer"]
    models = set(complete("complete_bash", "ddsp models ", 2).stdout.split())
    assert {b"list", b"pull", b"verify"} <= models


def test_info_table_on_stdout_and_json(data_dir):
    wav = str(data_dir / "speech_arctic_a0001.wav")
    run = ddsp("info", wav)
    assert run.returncode == 0, run.stderr
    assert "16000" in run.stdout.decode()
    run = ddsp("--quiet", "info", "--json", wav)
    assert run.returncode == 0 and run.stderr == b""
    [report] = json.loads(run.stdout)  # a list, one object per file, also for one
    assert report["sample_rate"] == 16000 and report["channels"] == 1
    assert report["duration_s"] == pytest.approx(3.88, abs=0.01)
    assert -80 < report["loudness_db_median"] < report["loudness_db_max"] < 40


def test_info_reads_stdin(data_dir):
    wav = (data_dir / "speech_arctic_a0001.wav").read_bytes()
    run = ddsp("info", "--json", "-", stdin=wav)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["source"] == "<stdin>"
    run = ddsp("info", "-", stdin=b"")
    assert run.returncode == EXIT_INPUT
    assert run.stderr.decode().startswith("ddsp: error: stdin is empty")


def test_bad_input_gives_one_line_and_exit_code(tmp_path):
    cases = bad_inputs(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for path, expected in cases:
        run = ddsp("info", str(path), cwd=tmp_path)
        err = run.stderr.decode()
        assert run.returncode == EXIT_INPUT, (path, err)
        assert err.count("\n") == 1 and err.startswith("ddsp: error: "), err
        assert expected in err
        assert run.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_usage_error_exit_code():
    run = ddsp("info", "--no-such-option", "x.wav")
    assert run.returncode == EXIT_USAGE
    assert run.stdout == b""


def test_tensorflow_import_noise_is_dropped_and_other_stderr_kept(data_dir, capfd):
    """TF >= 2.21 prints absl lines on import regardless of TF_CPP_MIN_LOG_LEVEL."""
    with tfimport.stderr_fd_captured() as cap:  # what native code writes to fd 2 goes to `cap`
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called"
                    b" are written to STDERR\n")  # fmt: skip
        os.write(2, b"I0000 00:00:1795447412.511604    5540 port.cc:153] oneDNN custom\n")
        os.write(2, b"E0000 00:00:1795447412.5 cuda.cc:1] real error\n")
        cap.seek(0)
        printed = cap.read()
    assert capfd.readouterr().err == ""  # nothing leaked past the capture
    kept = tfimport.drop_tf_import_noise(printed)
    assert kept == b"E0000 00:00:1795447412.5 cuda.cc:1] real error\n"
    # And the real import, through a command that loads TensorFlow: nothing but the data.
    quiet = ddsp_process("-q", "info", str(data_dir / "speech_arctic_a0001.wav"))
    assert quiet.returncode == 0 and quiet.stderr == b"", quiet.stderr
