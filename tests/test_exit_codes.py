"""The one exit-code policy (README, "Exit codes"), per command: usage 2, input 3, output 4,
model 5, a failure the user can fix 6, never 1 for any of these."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.engine import train
from ddspcli.errors import (
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OUTPUT,
    EXIT_RUNTIME,
    EXIT_USAGE,
)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "x.wav"
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def check(run, code: int, text: str) -> None:
    err = run.stderr.decode()
    assert run.returncode == code, err
    assert text in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_usage_errors_are_2(wav, tmp_path):
    check(ddsp("transfer", wav, "-o", "-", "--json"), EXIT_USAGE, "both use stdout")
    check(ddsp("generate", "--profile", "p.csv", "-o", "-", "--json"), EXIT_USAGE,
          "both use stdout")  # fmt: skip
    other = tmp_path / "other.wav"
    other.write_bytes(wav.read_bytes())
    check(ddsp("transfer", wav, other, "-o", tmp_path / "y.wav"), EXIT_USAGE, "take one input")
    check(ddsp("transfer"), EXIT_USAGE, "give an audio file")
    check(ddsp("features", wav, other), EXIT_USAGE, "-o FOLDER")
    check(ddsp("features", wav, "--pitch-hop-ms", "5"), EXIT_USAGE, "multiple of 4")
    check(ddsp("prepare", "-", "-o", tmp_path / "d"), EXIT_USAGE, "not from stdin")
    check(ddsp("fit", tmp_path, "-o", tmp_path / "r", "--strategy", "cloud"), EXIT_USAGE,
          "'cloud' is not one of")  # fmt: skip
    check(ddsp("models", "export", tmp_path, "-o", tmp_path / "e", "--manifest-source", "ftp:x"),
          EXIT_USAGE, "--manifest-source")  # fmt: skip


def test_input_output_and_model_errors(wav, tmp_path):
    check(ddsp("info", tmp_path / "missing.wav"), EXIT_INPUT, "no such file")
    plot = tmp_path / "nofolder" / "p.png"
    run = ddsp("features", wav, "--pitch-model", "tiny", "-o", wav.with_suffix(".csv"),
               "--plot", plot)  # fmt: skip
    check(run, EXIT_OUTPUT, "does not exist")
    check(ddsp("transfer", wav, "--model", "no-such-model", env={"DDSP_OFFLINE": "1"}),
          EXIT_MODEL, "no-such-model")  # fmt: skip


def test_a_diverging_fit_is_6(tone_model, tmp_path, monkeypatch):
    diverged = (float("nan"), False)  # (loss, stop)
    monkeypatch.setattr(train.Trainer, "train_step", lambda self, batch, stop=False: diverged)
    run = ddsp("fit", tone_model["tones"], "-o", tmp_path / "run", "--steps", "2",
               "--variant", "tiny")  # fmt: skip
    check(run, EXIT_RUNTIME, "training diverged at step 0")


def test_a_missing_beam_extra_is_6(wav, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # `import apache_beam` fails
    run = ddsp("prepare", wav, "-o", tmp_path / "d", "--runner", "beam", "--pitch-model", "tiny")
    check(run, EXIT_RUNTIME, "pip install 'ddspcli[beam]'")
