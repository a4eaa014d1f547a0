"""Rendering with rooms (issue 29): ``--room MODEL|IR.wav|none`` and ``--room-mix DB`` on
``transfer``, ``generate`` and ``live``.

Analytic checks: a unit impulse is the dry render; an impulse plus an echo adds the echo of the
dry render; ``--room-mix -6`` scales the wet stem by ``10**(-6/20)``; another model's room
equals its extracted WAV; ``live`` with a room equals the offline render of its own features
with that room, at the same latency. Bad input (Must show 4): one line, its exit code, nothing
written, no temporary left, inputs unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli import choices
from ddspcli.engine import acoustics as ac
from ddspcli.engine import live
from ddspcli.instrument import Instrument

SR = 16000
MODEL = "flute-sf"  # a shipped model without a room of its own
SHIPPED = Path(__file__).parent.parent / "ddspcli" / "models"
ROOM_GIN = """Autoencoder.rnn_units = 64
Autoencoder.mlp_layers = 0
Autoencoder.n_harmonics = 30
Autoencoder.n_noise_bands = 16
Autoencoder.reverb_length = 24000
Autoencoder.room = 'decay'
"""
PCM16 = 1.0 / 32768  # one LSB of the 16-bit outputs


@pytest.fixture(scope="module")
def room_model(tmp_path_factory) -> Path:
    """A model folder (runtime files included) whose room decays in 0.8 s at -6 dB in every
    band; decoder weights untrained."""
    from ddspcli.engine import model as model_lib
    from ddspcli.engine import modeldir, room
    from ddspcli.engine._tensorflow import tf

    folder = tmp_path_factory.mktemp("room-model") / "hall"
    folder.mkdir()
    for name in ("model.json", "statistics.json"):
        shutil.copy(SHIPPED / "violin" / name, folder / name)
    (folder / "config.gin").write_text(ROOM_GIN)
    model = model_lib.build_model(ROOM_GIN)
    r = model.reverb
    share = np.log(0.8 / r.min_rt60_s) / np.log(r.max_rt60_s / r.min_rt60_s)
    r.decay.assign(tf.fill([8], float(np.log(share / (1 - share)) / room.PARAM_SCALE)))
    amplitude = 10 ** (-6 / 20)
    r.level.assign(tf.fill([8], float(np.log(amplitude / (1 - amplitude)) / room.PARAM_SCALE)))
    tf.train.Checkpoint(model=model).write(str(folder / "ckpt"))
    modeldir.write_runtime_files(folder, model)
    return folder


def glide(seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone gliding 300 -> 600 Hz (a flute's range), with a short gap."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 300.0 * 2.0 ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    tone[(t > 0.9) & (t < 1.0)] = 0.0
    return tone.astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "glide.wav"
    sf.write(path, glide(), SR, subtype="FLOAT")
    return path


def write_ir(path: Path, ir: np.ndarray, rate: int = SR) -> Path:
    sf.write(path, np.asarray(ir, np.float32), rate, subtype="FLOAT")
    return path


def hall(seconds: float = 0.6, rt60: float = 0.5, channels: int = 1, rate: int = SR) -> np.ndarray:
    """A measured-like IR: a unit direct sound, then 5 ms of nothing, then a decaying tail."""
    t = np.arange(int(seconds * rate)) / rate
    tail = np.exp(-ac.DECAY_60_DB * t / rt60) * np.random.default_rng(1).standard_normal(len(t))
    ir = 0.03 * tail * (t > 0.005)
    ir[0] = 1.0
    return np.stack([ir] * channels, axis=1) if channels > 1 else ir


@pytest.fixture(scope="module")
def hall_file(tmp_path_factory) -> Path:
    return write_ir(tmp_path_factory.mktemp("ir") / "hall.wav", hall())


def transfer(clip: Path, out: Path, *args: str, stems: Path | None = None) -> dict:
    extra = ["--stems", str(stems)] if stems else []
    run = ddsp("transfer", clip, "-m", MODEL, "-o", out, "--json", "--loudness-shift", "-6",
               *extra, *args)  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)[0]
    assert summary["gain_db"] == 0.0 and summary["peak_dbfs"] < -1.5  # no peak-safe gain
    return summary


def read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


def stem(folder: Path, part: str) -> np.ndarray:
    return read(folder / f"glide.{MODEL}.{part}.wav")


# ---------------------------------------------------------------------------------------------
# The model's own room, none, and the Instrument's room argument.


def test_default_is_the_models_own_room_and_none_is_no_reverb(room_model, clip, tmp_path):
    """Default: the model's own room, bit for bit as giving it explicitly; ``--room none`` is
    ``--no-reverb`` (the dry render), bit for bit."""
    outs = {}
    for key, args in {"default": [], "own": ["--room", str(room_model)], "none": ["--room", "none"],
                      "no-reverb": ["--no-reverb"]}.items():  # fmt: skip
        out = tmp_path / f"{key}.wav"
        run = ddsp("transfer", clip, "-m", room_model, "-o", out, "--stems", tmp_path / key, *args)
        assert run.returncode == 0, run.stderr
        outs[key] = read(out)
    assert np.array_equal(outs["default"], outs["own"])
    assert np.array_equal(outs["none"], outs["no-reverb"])
    assert np.abs(outs["default"] - outs["none"]).max() > 100 * PCM16  # the room is there
    assert (tmp_path / "default" / "glide.hall.reverb.wav").is_file()
    assert not (tmp_path / "none" / "glide.hall.reverb.wav").exists()


def test_instrument_room_argument(room_model):
    """`Instrument.room_ir`: None (the model's own room, untouched) unless asked; scaled by the
    level; contradictions are `ValueError`s."""
    inst = Instrument.open(str(room_model), load_pitch=False)
    assert inst.room_ir() is None and inst.room_ir(reverb=False) is None
    own = inst.runtime.reverb_ir
    expected = own.astype(np.float64) * 10 ** (-6 / 20)
    np.testing.assert_allclose(inst.room_ir(room_mix_db=-6.0), expected, rtol=1e-12)
    given = np.array([0.0, 0.5, 0.25])
    np.testing.assert_array_equal(inst.room_ir(given), given)
    for bad in ({"room": given, "reverb": False}, {"room_mix_db": -6.0, "reverb": False},
                {"room": np.zeros((2, 3))}, {"room": np.array([0.0, np.nan])}):  # fmt: skip
        with pytest.raises(ValueError):
            inst.room_ir(**bad)
    dry = Instrument.open(MODEL, load_pitch=False)
    with pytest.raises(ValueError, match="no room of its own"):
        dry.room_ir(room_mix_db=-6.0)
    assert dry.stem_names() == ("harmonic", "noise")
    assert dry.stem_names(room=given) == ("harmonic", "noise", "reverb")


# ---------------------------------------------------------------------------------------------
# Analytic rooms.


def test_a_unit_impulse_is_the_dry_render_and_an_echo_adds_the_echo(clip, tmp_path):
    """A room file is a full IR (direct sound then room: `room_io.file_room`): a unit impulse
    at t = 0 is the direct sound alone, so the output is the dry render; an impulse plus an
    echo of gain 0.5 after 100 ms adds 0.5 x the dry render 100 ms later (the mix formula
    ``dry + dry * wet IR``)."""
    impulse = np.zeros(SR // 2)
    impulse[0] = 1.0
    delay, gain = SR // 10, 0.5
    echo = impulse.copy()
    echo[delay] = gain
    dry_dir, imp_dir, echo_dir = tmp_path / "dry", tmp_path / "imp", tmp_path / "echo"
    transfer(clip, tmp_path / "dry.wav", "--room", "none", stems=dry_dir)
    transfer(clip, tmp_path / "imp.wav", "--room", str(write_ir(tmp_path / "i.wav", impulse)),
             stems=imp_dir)  # fmt: skip
    transfer(clip, tmp_path / "echo.wav", "--room", str(write_ir(tmp_path / "e.wav", echo)),
             stems=echo_dir)  # fmt: skip
    dry = read(tmp_path / "dry.wav")
    assert np.abs(dry).max() > 0.05
    assert np.array_equal(read(tmp_path / "imp.wav"), dry)
    assert np.abs(stem(imp_dir, "reverb")).max() == 0.0
    expected_wet = np.concatenate([np.zeros(delay), gain * dry[:-delay]])
    wet = stem(echo_dir, "reverb")
    assert np.abs(wet - expected_wet).max() <= 1.5 * PCM16  # two roundings to 16 bits
    assert np.abs(read(tmp_path / "echo.wav") - (dry + expected_wet)).max() <= 1.5 * PCM16


def test_room_mix_scales_the_wet_stem(hall_file, clip, tmp_path):
    """``--room-mix -6``: the wet stem is 10**(-6/20) of the 0 dB one (least squares, within
    1e-5 on the float render; 16-bit stems to their rounding), the dry stems unchanged."""
    inst = Instrument.open(MODEL, pitch_model="tiny")
    room = inst.open_room(str(hall_file)).wet
    feats, _ = inst.adjust(inst.features(glide(), SR))
    full = inst.render(feats, stems=True, room=room)
    down = inst.render(feats, stems=True, room=room, room_mix_db=-6.0)
    ratio = float(np.dot(down["reverb"], full["reverb"]) / np.dot(full["reverb"], full["reverb"]))
    assert abs(ratio - 10 ** (-6 / 20)) < 1e-5, ratio
    assert np.abs(down["reverb"] - 10 ** (-6 / 20) * full["reverb"]).max() < 1e-7
    for part in ("harmonic", "noise"):
        assert np.array_equal(down[part], full[part])
    a, b = tmp_path / "a", tmp_path / "b"
    transfer(clip, tmp_path / "a.wav", "--room", str(hall_file), stems=a)
    transfer(clip, tmp_path / "b.wav", "--room", str(hall_file), "--room-mix", "-6", stems=b)
    wet0, wet6 = stem(a, "reverb"), stem(b, "reverb")
    assert np.abs(wet0).max() > 0.01
    cli_ratio = float(np.dot(wet6, wet0) / np.dot(wet0, wet0))
    assert abs(cli_ratio - 10 ** (-6 / 20)) < 1e-4, cli_ratio
    assert np.abs(wet6 - 10 ** (-6 / 20) * wet0).max() <= PCM16
    assert np.array_equal(stem(a, "harmonic"), stem(b, "harmonic"))


def test_another_models_room_equals_its_extracted_wav(room_model, clip, tmp_path):
    """``--room MODEL`` (its learned room, from its runtime files) equals ``--room room.wav``
    written by ``ddsp room extract`` (a float WAV: the same float32 samples), bit for bit."""
    ir = tmp_path / "room.wav"
    run = ddsp("room", "extract", room_model, "-o", ir)
    assert run.returncode == 0, run.stderr
    assert sf.info(ir).subtype == "FLOAT"
    by_model = transfer(clip, tmp_path / "m.wav", "--room", str(room_model), stems=tmp_path / "m")
    by_file = transfer(clip, tmp_path / "f.wav", "--room", str(ir), stems=tmp_path / "f")
    assert by_model["peak_dbfs"] == by_file["peak_dbfs"]
    assert np.array_equal(read(tmp_path / "m.wav"), read(tmp_path / "f.wav"))
    wet = stem(tmp_path / "m", "reverb")
    assert np.abs(wet).max() > 0.01 and np.array_equal(wet, stem(tmp_path / "f", "reverb"))


def test_generate_takes_a_room(hall_file, tmp_path):
    csv = tmp_path / "tune.csv"
    csv.write_text("time_s,f0_hz,loudness_db\n0,440,-40\n0.3,440,-15\n1.0,440,-15\n1.2,440,-70\n")
    outs = {}
    for key, args in {"dry": [], "hall": ["--room", str(hall_file)]}.items():
        out = tmp_path / f"{key}.wav"
        run = ddsp("generate", "-m", MODEL, "--profile", csv, "-o", out, *args)
        assert run.returncode == 0, run.stderr
        outs[key] = read(out)
    assert len(outs["dry"]) == len(outs["hall"])
    assert np.abs(outs["hall"] - outs["dry"]).max() > 100 * PCM16


def test_rooms_play_without_tensorflow(room_model, hall_file, clip, tmp_path):
    """The light install: ``--room MODEL`` (its runtime files) and ``--room IR.wav`` need no
    TensorFlow (blocked here), and give what they give with it."""
    import subprocess
    import sys

    for key, room in (("model", room_model), ("file", hall_file)):
        out = tmp_path / f"{key}.wav"
        args = ["transfer", str(clip), "-m", MODEL, "--room", str(room), "-o", str(out)]
        code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
                f"from ddspcli import cli; sys.exit(cli.run({args!r}))")  # fmt: skip
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        with_tf = tmp_path / f"{key}.tf.wav"
        assert ddsp(*args[:-1], with_tf).returncode == 0
        assert np.array_equal(read(out), read(with_tf))


# ---------------------------------------------------------------------------------------------
# Live: the same room, within the latency budget.


def test_live_with_a_room_equals_the_offline_render_and_keeps_its_latency(hall_file, clip,
                                                                         tmp_path):  # fmt: skip
    """The live engine with a room against `Instrument.render` of the frames it decoded with
    the same room (test_live's tolerance, 1e-5); the stats' latency is that without a room."""
    inst = Instrument.open(MODEL, pitch_model="tiny")
    room = inst.open_room(str(hall_file)).wet
    audio = glide()
    settings = live.LiveSettings(room_mix_db=-3.0)
    engine = live.LiveEngine(inst, settings, 320, room)
    engine.recorded = []
    out = []
    for start in range(0, len(audio) + engine.delay, 320):
        block = np.zeros(320, np.float32)
        piece = audio[start : start + 320]
        block[: len(piece)] = piece
        out.append(engine.process(block))
    out = np.concatenate(out)
    feats = {k: np.concatenate([r[k] for r in engine.recorded]) for k in ("f0_hz", "loudness_db")}
    offline = inst.render(feats, stems=True, room=room, room_mix_db=-3.0)
    n = len(audio)
    np.testing.assert_allclose(out[engine.delay : engine.delay + n], offline["audio"][:n],
                               atol=1e-5)  # fmt: skip
    assert np.abs(offline["reverb"][:n]).max() > 0.01  # the room is in it
    latency = {}
    for key, args in {"dry": [], "hall": ["--room", str(hall_file)]}.items():
        stats = tmp_path / f"{key}.json"
        run = ddsp("live", "-m", MODEL, "-i", clip, "-o", tmp_path / f"{key}.wav",
                   "--stats-json", stats, *args)  # fmt: skip
        assert run.returncode == 0, run.stderr
        latency[key] = json.loads(stats.read_text())["latency_ms"]
    assert latency["hall"] == latency["dry"], latency
    assert len(read(tmp_path / "hall.wav")) == len(read(tmp_path / "dry.wav"))


# ---------------------------------------------------------------------------------------------
# Must show 4: bad input.


def digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def command(kind: str, clip: Path, folder: Path, out: Path) -> list:
    if kind == "transfer":
        return ["transfer", clip, "-m", MODEL, "-o", out, "--stems", folder / "stems"]
    if kind == "generate":
        csv = folder / "tune.csv"
        csv.write_text("time_s,f0_hz,loudness_db\n0,440,-20\n0.5,440,-20\n")
        return ["generate", "-m", MODEL, "--profile", csv, "-o", out]
    return ["live", "-m", MODEL, "-i", clip, "-o", out, "--stats-json", folder / "stats.json"]


BAD = {
    "text": (3, "not an impulse response"),
    "empty": (3, "not an impulse response"),
    "long": (3, f"at most {choices.MAX_ROOM_IR_S:g} s"),
    "silent": (3, "silent"),
    "missing": (3, "no such file or model folder"),
    "dry-model": (5, "has no room"),
    "mix-nan": (2, "not a finite number"),
    "mix-high": (2, "above the most allowed"),
    "mix-low": (2, "below the least allowed"),
    "none-and-mix": (2, "the render is dry"),
    "no-reverb-and-room": (2, "--no-reverb"),
    "mix-without-room": (2, "no room of its own"),
}


@pytest.mark.parametrize("kind", ["transfer", "generate", "live"])
@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_room_is_one_line_and_nothing_is_written(kind, bad, clip, tmp_path):
    room = tmp_path / "room.wav"
    args: list = ["--room", room]
    if bad == "text":
        room.write_text("not audio at all\n")
    elif bad == "empty":
        room.write_bytes(b"")
    elif bad == "long":
        write_ir(room, hall(choices.MAX_ROOM_IR_S + 0.5))
    elif bad == "silent":
        write_ir(room, np.zeros(1000))
    elif bad == "dry-model":
        args = ["--room", "cello-sf"]
    elif bad.startswith("mix-") and bad != "mix-without-room":
        value = {"mix-nan": "nan", "mix-high": "21", "mix-low": "-61"}[bad]
        args = ["--room", write_ir(room, hall()), "--room-mix", value]
    elif bad == "none-and-mix":
        args = ["--room", "none", "--room-mix", "-6"]
    elif bad == "no-reverb-and-room":
        args = ["--room", write_ir(room, hall()), "--no-reverb"]
    elif bad == "mix-without-room":
        args = ["--room-mix", "-6"]
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out.wav"
    cmd = command(kind, clip, work, out)
    before = digest([clip, room, *work.iterdir()])
    run = ddsp(*cmd, *args, text=True)
    code, message = BAD[bad]
    assert run.returncode == code, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddsp: error:"), run.stderr
    assert message in lines[0] and "Traceback" not in run.stderr
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in before if
                                                            p.parent == work)  # fmt: skip
    assert digest([clip, room, *work.iterdir()]) == before


@pytest.mark.parametrize("kind", ["transfer", "generate", "live"])
def test_the_room_file_is_an_input_never_overwritten(kind, clip, tmp_path):
    room = write_ir(tmp_path / "room.wav", hall())
    before = digest([room])
    run = ddsp(*command(kind, clip, tmp_path, room), "--room", room, "--force", text=True)
    assert run.returncode == 4 and "is an input of this command" in run.stderr, run.stderr
    assert digest([room]) == before and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("kind", ["transfer", "generate", "live"])
def test_a_stereo_441_khz_ir_is_mixed_and_resampled_with_a_note(kind, clip, tmp_path):
    room = write_ir(tmp_path / "stereo.wav", hall(channels=2, rate=44100), 44100)
    before = digest([clip, room])
    out = tmp_path / "out.wav"
    run = ddsp(*command(kind, clip, tmp_path, out), "--room", room, text=True)
    assert run.returncode == 0, run.stderr
    assert "note: " in run.stderr and "2 channels mixed to mono" in run.stderr
    assert "resampled from 44100 Hz to 16000 Hz" in run.stderr
    assert out.is_file() and sf.info(out).samplerate == SR
    assert digest([clip, room]) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_room_extract_without_tensorflow_gives_the_runtime_room(room_model, tmp_path):
    """The light install: `ddsp room extract MODEL` reads the room from the runtime files
    (TensorFlow blocked here), the same WAV as with TensorFlow, without the parameters."""
    import subprocess
    import sys

    light, full = tmp_path / "light.wav", tmp_path / "full.wav"
    args = ["room", "extract", str(room_model), "-o", str(light), "--json"]
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            f"from ddspcli import cli; sys.exit(cli.run({args!r}))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "parameters" not in json.loads(run.stdout)
    with_tf = ddsp(*args[:4], str(full), "--json")
    assert with_tf.returncode == 0 and "parameters" in json.loads(with_tf.stdout)
    assert np.array_equal(read(light), read(full))
