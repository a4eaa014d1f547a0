"""`ddsp features` end to end (tiny CREPE for speed), including awkward inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.errors import EXIT_INPUT, EXIT_OUTPUT, EXIT_USAGE

TINY = ("--pitch-model", "tiny")


@pytest.fixture(scope="module", autouse=True)
def weights_cached(crepe_weights):
    crepe_weights("tiny")  # pulled once, so the subprocesses find it in the cache


def tone(sr: int, seconds: float, channels: int = 1, f0: float = 220.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.4 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def read_csv(data: bytes) -> np.ndarray:
    lines = data.decode().splitlines()
    assert lines[0] == "time_s,f0_hz,f0_confidence,loudness_db"
    return np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=",", ndmin=2)


def test_csv_to_stdout_and_stdin(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(16000, 1.0), 16000)
    run = ddsp("-q", "features", str(path), *TINY)
    assert run.returncode == 0, run.stderr
    rows = read_csv(run.stdout)
    assert rows.shape == (16000 // 64 + 1, 4)
    np.testing.assert_allclose(rows[:, 0], np.arange(len(rows)) * 0.004, atol=1e-6)
    core = rows[20:-20]
    assert np.all(np.abs(1200 * np.log2(core[:, 1] / 220.0)) < 10)
    piped = ddsp("-q", "features", "-", *TINY, stdin=path.read_bytes())
    assert piped.returncode == 0 and piped.stdout == run.stdout


def test_json_npz_and_plot_outputs(tmp_path):
    path = tmp_path / "tone.flac"
    sf.write(path, tone(16000, 0.5), 16000)
    out_json, out_npz, png = tmp_path / "f.json", tmp_path / "f.npz", tmp_path / "f.png"
    assert (
        ddsp("features", str(path), *TINY, "-o", str(out_json), "--plot", str(png)).returncode == 0
    )
    report = json.loads(out_json.read_text())
    assert report["frame_rate"] == 250 and len(report["f0_hz"]) == 8000 // 64 + 1
    assert report["settings"]["pitch_model"] == "tiny"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ddsp("features", str(path), *TINY, "-o", str(out_npz)).returncode == 0
    with np.load(out_npz) as npz:
        assert set(npz.files) == {"meta", "time_s", "f0_hz", "f0_confidence", "loudness_db"}
        assert npz["f0_hz"].shape == (126,)
    # Existing outputs are kept without --force.
    before = out_json.read_bytes()
    run = ddsp("features", str(path), *TINY, "-o", str(out_json))
    assert run.returncode == EXIT_OUTPUT and "--force" in run.stderr.decode()
    assert out_json.read_bytes() == before


def test_awkward_inputs_all_work_into_a_folder(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    clipped = np.clip(tone(16000, 1.0) * 4, -1, 1)
    cases = {
        "stereo44k.wav": (tone(44100, 1.0, 2), 44100),
        "eight_k.wav": (tone(8000, 1.0), 8000),
        "ninety_six_k.flac": (tone(96000, 0.5), 96000),
        "six_channels.wav": (tone(16000, 0.5, 6), 16000),
        "clipped.wav": (clipped, 16000),
        "dc_offset.wav": (tone(16000, 0.5) * 0.5 + 0.4, 16000),
        "silence.wav": (np.zeros((16000, 1), np.float32), 16000),
        "ten_samples.wav": (tone(16000, 10 / 16000), 16000),
    }
    for name, (x, sr) in cases.items():
        sf.write(inputs / name, x, sr)
    (inputs / ".hidden.wav").write_bytes(b"junk")  # hidden files are skipped
    out = tmp_path / "out"
    run = ddsp("-q", "features", str(inputs), *TINY, "-o", str(out))
    assert run.returncode == 0, run.stderr
    for name, (x, sr) in cases.items():
        rows = read_csv((out / f"{name.rsplit('.', 1)[0]}.features.csv").read_bytes())
        n16 = round(len(x) * 16000 / sr)
        assert len(rows) == n16 // 64 + 1, name
        assert np.all(np.isfinite(rows)), name
    silence = read_csv((out / "silence.features.csv").read_bytes())
    assert silence[:, 2].max() < 0.2 and np.all(silence[:, 3] == -80.0)
    eight = read_csv((out / "eight_k.features.csv").read_bytes())
    assert np.median(np.abs(1200 * np.log2(eight[20:-20, 1] / 220.0))) < 10


def test_bad_inputs_and_options(tmp_path):
    nan = tone(16000, 0.5)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    run = ddsp("features", str(tmp_path / "nan.wav"), *TINY, "-o", str(tmp_path / "nan.csv"))
    assert run.returncode == EXIT_INPUT
    assert run.stderr.decode().count("\n") == 1 and "NaN" in run.stderr.decode()
    assert not (tmp_path / "nan.csv").exists()
    sf.write(tmp_path / "a.wav", tone(16000, 0.2), 16000)
    sf.write(tmp_path / "b.wav", tone(16000, 0.2), 16000)
    run = ddsp("features", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), *TINY)
    assert run.returncode == EXIT_USAGE and "-o FOLDER" in run.stderr.decode()
    run = ddsp("features", str(tmp_path / "a.wav"), "--pitch-hop-ms", "10")
    assert run.returncode == EXIT_USAGE
    run = ddsp("features", str(tmp_path / "a.wav"), "--format", "xml")
    assert run.returncode == EXIT_USAGE


def test_output_targets_name_each_input_and_refuse_a_bad_folder(tmp_path):
    from ddspcli.engine import features, features_io
    from ddspcli.errors import OutputError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = [str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav"), "-"]
    targets = features_io.output_targets(files, str(tmp_path / "out"), "csv")
    assert [Path(t).name for t in targets.values()] == [
        "x.features.csv", "x_.features.csv", "stdin.features.csv"]  # fmt: skip
    assert (tmp_path / "out").is_dir()  # created
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        features_io.output_targets(files, str(blocker / "out"), "csv")
    with pytest.raises(ValueError, match="-o FOLDER"):
        features_io.output_targets(files, None, "csv")
    settings = features.FeatureSettings()
    assert features_io.expected_frames(str(tmp_path / "missing.wav"), settings) == 0
    assert features_io.expected_frames("-", settings, np.zeros(6400, np.float32)) == 101
