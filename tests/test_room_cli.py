"""`ddsp room extract` and `ddsp room apply` (issue 29): the learned room as a WAV with its
RT60 and DRR, acoustic transfer, and every bad ``--room`` as one line and its exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.engine import acoustics as ac

SR = 16000
SHIPPED = Path(__file__).parent.parent / "ddspcli" / "models" / "violin"
ROOM_GIN = """Autoencoder.rnn_units = 64
Autoencoder.mlp_layers = 0
Autoencoder.n_harmonics = 30
Autoencoder.n_noise_bands = 16
Autoencoder.reverb_length = 24000
Autoencoder.room = 'decay'
"""


@pytest.fixture(scope="module")
def room_model(tmp_path_factory) -> Path:
    """A model folder whose room decays in 0.8 s at -6 dB in every band (weights untrained)."""
    from ddspcli.engine import model as model_lib
    from ddspcli.engine import room
    from ddspcli.engine._tensorflow import tf

    folder = tmp_path_factory.mktemp("room-model") / "hall"
    folder.mkdir()
    for name in ("model.json", "statistics.json"):
        shutil.copy(SHIPPED / name, folder / name)
    (folder / "config.gin").write_text(ROOM_GIN)
    model = model_lib.build_model(ROOM_GIN)
    r = model.reverb
    share = np.log(0.8 / r.min_rt60_s) / np.log(r.max_rt60_s / r.min_rt60_s)
    r.decay.assign(tf.fill([8], float(np.log(share / (1 - share)) / room.PARAM_SCALE)))
    amplitude = 10 ** (-6 / 20)  # -6 dB
    r.level.assign(tf.fill([8], float(np.log(amplitude / (1 - amplitude)) / room.PARAM_SCALE)))
    tf.train.Checkpoint(model=model).write(str(folder / "ckpt"))
    return folder


def impulse(path: Path, seconds: float = 2.0, rate: int = SR, channels: int = 1) -> Path:
    x = np.zeros((int(seconds * rate), channels), np.float32)
    x[0] = 0.5
    sf.write(path, x, rate, subtype="FLOAT")
    return path


def test_extract_writes_the_room_and_its_rt60(room_model, tmp_path):
    out = tmp_path / "room.wav"
    run = ddsp("room", "extract", str(room_model), "-o", str(out), "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    ir, rate = sf.read(out, dtype="float32")
    assert rate == SR and len(ir) == 24000 and ir[0] == 1.0
    assert np.all(ir[1 : 5 * SR // 1000] == 0.0)  # direct impulse, then nothing for 5 ms
    assert list(summary["rt60_s"]) == ["125", "250", "500", "1000", "2000", "4000"]
    rt60 = np.array(list(summary["rt60_s"].values()))
    np.testing.assert_allclose(rt60[2:], 0.8, rtol=0.1)  # 500 Hz - 4 kHz (one noise draw)
    np.testing.assert_allclose(summary["parameters"]["rt60_s"], 0.8, rtol=1e-4)
    np.testing.assert_allclose(summary["parameters"]["level_db"], -6.0, atol=1e-4)
    assert summary["drr_db"] == pytest.approx(ac.drr_db(ir, SR), abs=1e-3)
    assert summary["drr_db"] == pytest.approx(6.0, abs=0.1)
    table = ddsp("room", "extract", str(room_model), "-o", str(tmp_path / "b.wav"), text=True)
    assert table.returncode == 0 and "RT60 (s)" in table.stdout and "4000 Hz" in table.stdout


def test_extract_refusals(room_model, tmp_path):
    out = tmp_path / "room.wav"
    out.write_bytes(b"keep")
    run = ddsp("room", "extract", str(room_model), "-o", str(out), text=True)
    assert run.returncode == 4 and "--force" in run.stderr and out.read_bytes() == b"keep"
    dry = ddsp("room", "extract", str(SHIPPED), "-o", str(tmp_path / "v.wav"), text=True)
    assert dry.returncode == 5 and "has no room" in dry.stderr
    assert len(dry.stderr.strip().splitlines()) == 1 and not (tmp_path / "v.wav").exists()


def test_an_impulse_through_apply_gives_back_the_room(room_model, tmp_path):
    """Issue 29, must show 2: the RT60 of an impulse put into the room is the room's (5%)."""
    ir_file = tmp_path / "room.wav"
    summary = json.loads(ddsp("room", "extract", str(room_model), "-o", str(ir_file),
                              "--json").stdout)  # fmt: skip
    src = impulse(tmp_path / "impulse.wav")
    by_file, by_model = tmp_path / "f.wav", tmp_path / "m.wav"
    run = ddsp("room", "apply", str(src), "--room", str(ir_file), "-o", str(by_file))
    assert run.returncode == 0, run.stderr
    run = ddsp("room", "apply", str(src), "--room", str(room_model), "-o", str(by_model), "--json")
    assert run.returncode == 0, run.stderr
    out, rate = sf.read(by_model, dtype="float32")
    assert rate == SR and len(out) == 2 * SR + 24000  # the tail rings on
    np.testing.assert_allclose(out, sf.read(by_file, dtype="float32")[0], atol=1e-6)
    rt60 = ac.room_rt60(out, SR)
    np.testing.assert_allclose(rt60, list(summary["rt60_s"].values()), rtol=0.05)
    short = tmp_path / "s.wav"
    ddsp("room", "apply", str(src), "--room", str(ir_file), "-o", str(short), "--no-tail",
         "--room-mix", "-200")  # fmt: skip
    quiet, _ = sf.read(short, dtype="float32")
    assert len(quiet) == 2 * SR and abs(quiet[0] - 0.5) < 1e-6 and np.abs(quiet[1:]).max() < 1e-9


def test_stereo_other_rate_ir_is_mixed_and_resampled_with_a_note(tmp_path):
    rate = 44100
    t = np.arange(int(0.5 * rate)) / rate
    tail = np.exp(-ac.DECAY_60_DB * t / 0.3) * np.random.default_rng(0).standard_normal(len(t))
    stereo = np.stack([tail, tail], axis=1) * 0.1
    stereo[0] = 1.0
    sf.write(tmp_path / "ir.wav", stereo.astype(np.float32), rate, subtype="FLOAT")
    src = impulse(tmp_path / "in.wav", 1.0)
    run = ddsp("room", "apply", str(src), "--room", str(tmp_path / "ir.wav"), "-o",
               str(tmp_path / "out.wav"), text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2 channels mixed to mono" in run.stderr
    assert "resampled from 44100 Hz to 16000 Hz" in run.stderr
    out, out_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert out_rate == SR and len(out) == SR + 8000


@pytest.mark.parametrize("kind", ["text", "long", "missing", "silent"])
def test_bad_room_files_are_one_line_and_exit_3(kind, tmp_path):
    room = tmp_path / "room.wav"
    if kind == "text":
        room.write_text("not audio at all\n")
    elif kind == "long":
        impulse(room, 10.5)
    elif kind == "silent":
        sf.write(room, np.zeros(1000, np.float32), SR)
    src, out = impulse(tmp_path / "in.wav", 0.5), tmp_path / "out.wav"
    run = ddsp("room", "apply", str(src), "--room", str(room), "-o", str(out), text=True)
    if kind == "missing":  # neither a file nor a model: the model resolver's own line
        assert run.returncode in (3, 5), run.stderr
    else:
        assert run.returncode == 3, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()
    if kind == "long":
        assert "at most 10 s" in run.stderr
