"""DDSP-VST models (issue 18): `prepare --preset vst`, the `vst` variant, `models export --format
vst` and `models check-vst`, against the plugin's contract (../shared/reference/ddsp-vst)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.engine import features, vst, vst_check
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf

PLUGIN = Path(__file__).resolve().parents[2] / "shared/reference/ddsp-vst/models"
EXTRACTOR = PLUGIN / "extract_features_micro.tflite"
RANGES = {"mean_min_pitch_note": 60.0, "mean_max_pitch_note": 76.5,
          "mean_min_power_note": -48.0, "mean_max_power_note": -12.0, "pieces": 3}  # fmt: skip


def _write_vst_model(folder: Path, seed: int = 3) -> model_lib.Autoencoder:
    """A model folder of the vst variant (untrained, seeded weights) with its statistics."""
    folder.mkdir()
    config = model_lib.config_text("vst", [], [], False)
    m = model_lib.build_model(config, seed=seed)
    tf.train.Checkpoint(model=m).write(str(folder / "ckpt"))
    (folder / "config.gin").write_text(config)
    info = {"variant": "vst", "sample_rate": 16000, "frame_rate": 50, "z_dims": 0, "steps": 0,
            "features": features.FeatureSettings.vst().to_dict(), "checkpoint": "ckpt"}  # fmt: skip
    (folder / "model.json").write_text(json.dumps(info))
    (folder / "statistics.json").write_text(json.dumps({"note_ranges": RANGES}))
    return m


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A vst model folder and its export (one conversion for the module)."""
    root = tmp_path_factory.mktemp("vst")
    model = _write_vst_model(root / "run")
    out = root / "Model.tflite"
    run = ddsp("models", "export", str(root / "run"), "--format", "vst", "-o", str(out))
    assert run.returncode == 0, run.stderr
    return {"run": root / "run", "file": out, "model": model, "bytes": out.read_bytes()}


def _tiny_tflite(names: tuple[str, str, str], state: int = 512, flex: bool = False) -> bytes:
    """A small converted function with the given argument names and state size (its outputs
    are named StatefulPartitionedCall:0..3 like an export's), optionally with a Flex op."""
    spec = tf.TensorSpec

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(2.0)  # a variable: the signature is a StatefulPartitionedCall

        @tf.function(input_signature=[spec([1], tf.float32, name=names[0]),
                                      spec([1], tf.float32, name=names[1]),
                                      spec([state], tf.float32, name=names[2])])  # fmt: skip
        def call(self, a, b, s):
            x = tf.math.cumprod(a) if flex else a  # Cumprod converts only as a Flex op
            return x * self.w + b, tf.tile(a, [60]), tf.tile(b, [65]), s * 0.5

    return vst.to_tflite(Tiny(), builtins_only=not flex)


# -------------------------------------------------------------------------------------------
# Features.


def test_power_is_the_mean_square_in_db_over_centred_1024_sample_frames():
    rate, hop = 16000, 320
    t = np.arange(rate) / rate
    audio = (0.25 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)  # 32 periods per frame
    power = features.compute_power(audio, features.FeatureSettings.vst())
    assert power.shape == (rate // hop + 1,)
    inner = power[3:-3]  # frames whose 1024-sample window lies inside the signal
    np.testing.assert_allclose(inner, 20 * np.log10(0.25 / np.sqrt(2)), atol=0.02)
    assert power[0] == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)) - 10 * np.log10(2), abs=0.05)
    silent = features.compute_power(np.zeros(4000, np.float32), features.FeatureSettings.vst())
    np.testing.assert_allclose(silent, -80.0)  # the floor, as the plugin's -80 dB


@pytest.mark.skipif(not EXTRACTOR.exists(), reason="../shared/reference/ddsp-vst not present")
def test_power_agrees_with_the_plugins_extractor_on_the_same_frames(data_dir):
    audio, rate = sf.read(data_dir / "speech_arctic_a0001.wav", dtype="float32")
    assert rate == 16000
    audio = audio[:32000]
    ours = features.compute_power(audio, features.FeatureSettings.vst())
    plugin = vst_check.new_interpreter(EXTRACTOR.read_bytes())
    index = {d["name"]: d["index"] for d in plugin.get_output_details()}
    padded = np.pad(audio, 512)
    theirs = []
    for k in range(0, len(ours), 4):  # frame k: the 1024 samples centred on sample 320 k
        plugin.set_tensor(plugin.get_input_details()[0]["index"], padded[320 * k : 320 * k + 1024])
        plugin.invoke()
        theirs.append(float(plugin.get_tensor(index["StatefulPartitionedCall:2"])[0]))  # pw_db
    diff = np.abs(ours[::4][: len(theirs)] - np.array(theirs))
    assert diff.max() < 0.01, diff.max()


def test_prepare_preset_vst_writes_power_at_50_frames_and_note_ranges(tmp_path, crepe_weights):
    crepe_weights("tiny")
    t = np.arange(48000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 330 * t) * np.minimum(1, t * 8) * np.minimum(1, (3 - t) * 8)
    sf.write(tmp_path / "tone.wav", tone.astype(np.float32), 16000)
    out = tmp_path / "data"
    run = ddsp("prepare", str(tmp_path / "tone.wav"), "-o", str(out), "--preset", "vst",
               "--pitch-model", "tiny", "--example-secs", "1", "--eval-fraction", "0")  # fmt: skip
    assert run.returncode == 0, run.stderr
    info = json.loads((out / "dataset.json").read_text())
    feats = info["settings"]["features"]
    assert (info["frame_rate"], info["n_frames"], feats["loudness"], feats["n_fft"],
            feats["pitch_hop_ms"], feats["viterbi"]) == (50, 50, "power", 1024, 20.0, False)
    ranges = json.loads((out / "statistics.json").read_text())["note_ranges"]
    assert ranges["mean_min_pitch_note"] == pytest.approx(63.86, abs=0.3)  # 330 Hz
    assert ranges["mean_max_power_note"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.5)
    bad = ddsp("prepare", str(tmp_path / "tone.wav"), "-o", str(tmp_path / "d2"), "--preset",
               "vst", "--frame-rate", "100")  # fmt: skip
    assert bad.returncode == 2 and b"--preset vst fixes" in bad.stderr
    assert not (tmp_path / "d2").exists()


def test_fit_refuses_the_vst_variant_on_other_features(tone_model, tmp_path):
    run = ddsp("fit", str(tone_model["tones"]), "--variant", "vst", "-o", str(tmp_path / "r"))
    assert run.returncode == 3
    assert b"--preset vst" in run.stderr and len(run.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# -------------------------------------------------------------------------------------------
# Export and the contract.


def test_export_meets_the_contract_read_three_independent_ways(exported):
    payload = exported["bytes"]
    assert vst_check.check_bytes(payload) == []
    assert ddsp("models", "check-vst", str(exported["file"])).returncode == 0
    # 1. the interpreter's tensor details (TensorFlow's interpreter and schema reader here,
    # independent of vst_check's LiteRT ones)
    interpreter = tf.lite.Interpreter(model_content=payload)
    got_in = {d["name"]: (tuple(d["shape"]), d["dtype"]) for d in interpreter.get_input_details()}
    got_out = {d["name"]: (tuple(d["shape"]), d["dtype"]) for d in interpreter.get_output_details()}
    assert got_in == {"call_f0_scaled:0": ((1,), np.float32),
                      "call_pw_scaled:0": ((1,), np.float32),
                      "call_state:0": ((512,), np.float32)}  # fmt: skip
    assert got_out == {f"StatefulPartitionedCall:{i}": ((n,), np.float32)
                       for i, n in enumerate((1, 60, 65, 512))}  # fmt: skip
    # 2. the flatbuffer's operator codes: builtin only (CUSTOM = 32 would carry a Flex op)
    from tensorflow.lite.python import schema_py_generated as schema

    flat = schema.Model.GetRootAsModel(payload, 0)
    codes = [flat.OperatorCodes(i) for i in range(flat.OperatorCodesLength())]
    assert codes and all(c.CustomCode() is None for c in codes)
    assert all(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) != 32 for c in codes)
    # 3. zipfile, and the central directory where the plugin's reader looks (absolute offset)
    meta = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("metadata.json"))
    assert meta["mean_min_pitch_note"] == RANGES["mean_min_pitch_note"]
    assert meta["mean_max_pitch_note_hz"] == pytest.approx(440 * 2 ** ((76.5 - 69) / 12))
    assert meta["mean_min_power_note"] == -48.0 and meta["export_time"] and meta["version"]
    assert (meta["num_harmonics"], meta["num_noise_amps"], meta["frame_rate"],
            meta["frame_size"], meta["sample_rate"]) == (60, 65, 50, 1024, 16000)  # fmt: skip
    eocd = payload.rfind(b"PK\x05\x06")
    offset = struct.unpack("<I", payload[eocd + 16 : eocd + 20])[0]
    assert payload[offset : offset + 4] == b"PK\x01\x02"


def test_the_file_run_frame_by_frame_reproduces_the_models_controls(exported):
    rng = np.random.default_rng(1)
    frames = 120
    f0 = 220 * 2 ** (np.cumsum(rng.normal(0, 0.3, frames)) / 12)
    f0[:4] = 0.0  # unvoiced start
    level = np.clip(-60 + np.cumsum(rng.normal(0, 3, frames)), -80, -5)
    ref, _ = exported["model"].controls(
        {"f0_hz": f0[None].astype(np.float32), "loudness_db": level[None].astype(np.float32)}
    )
    plugin = vst_check.PluginModel(exported["bytes"])
    got = plugin.run(*vst_check.scaled_inputs(f0, level))
    for key in ("amplitudes", "harmonic_distribution", "noise_magnitudes"):
        want = ref[key].numpy()[0]
        assert np.ptp(want) > 1e-4  # the controls move: the comparison means something
        np.testing.assert_allclose(got[key], want, atol=2e-5 * max(1.0, np.abs(want).max()))
    assert np.abs(plugin.state).max() > 1e-3  # the state was fed back and evolved


@pytest.mark.parametrize("case", ["name", "size", "flex"])
def test_check_vst_names_each_violation(case, tmp_path, exported):
    names, state = ("f0_scaled", "pw_scaled", "state"), 512
    if case == "name":
        names = ("f0_scaled", "loudness_scaled", "state")
    elif case == "size":
        state = 256
    payload = _tiny_tflite(names, state, flex=case == "flex")
    meta = vst_check.read_metadata(exported["file"])
    bad = tmp_path / f"{case}.tflite"
    bad.write_bytes(vst.append_metadata(payload, meta))
    run = ddsp("models", "check-vst", str(bad))
    assert run.returncode == 5
    lines = run.stderr.decode().strip().splitlines()
    expected = {
        "name": ["input tensor 'call_loudness_scaled:0' is not one the plugin knows",
                 "input tensor call_pw_scaled:0 is missing"],
        "size": ["input tensor call_state:0 has 256 values; the plugin needs 512",
                 "output tensor StatefulPartitionedCall:3 has 256 values; the plugin needs 512"],
        "flex": ["operator FlexCumprod needs the Flex delegate"],
    }[case]
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"ddsp: error: {bad}: ") and want in line, line


def test_check_vst_missing_metadata_not_tflite_truncated(exported, tmp_path):
    payload = exported["bytes"]
    model_only = payload[: payload.find(b"PK\x03\x04")]
    cases = {
        "nometa.tflite": (model_only, "no metadata.json"),
        "notes.tflite": (b"just some text\n" * 10, "not a TFLite model"),
        "cut.tflite": (payload[: len(model_only) // 3], "not a loadable TFLite model"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        run = ddsp("models", "check-vst", str(tmp_path / name))
        lines = run.stderr.decode().strip().splitlines()
        assert run.returncode == 5 and len(lines) == 1 and message in lines[0], (name, lines)
    meta = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("metadata.json"))
    del meta["export_time"]
    (tmp_path / "noid.tflite").write_bytes(vst.append_metadata(model_only, meta))
    assert vst_check.check_file(tmp_path / "noid.tflite") == ["metadata.json lacks export_time"]


def test_export_refuses_a_non_vst_model_and_writes_nothing(tmp_path, exported):
    violin = Path(__file__).resolve().parents[1] / "ddspcli/models/violin"
    out = tmp_path / "v.tflite"
    run = ddsp("models", "export", str(violin), "--format", "vst", "-o", str(out))
    lines = run.stderr.decode().strip().splitlines()
    assert run.returncode == 5 and len(lines) == 1 and not out.exists()
    assert "not a DDSP-VST model: its variant is 'tiny'" in lines[0]
    assert "--preset vst" in lines[0] and "--variant vst" in lines[0]
    again = ddsp("models", "export", str(exported["run"]), "--format", "vst", "-o",
                 str(exported["file"]))  # fmt: skip
    assert again.returncode == 4 and exported["file"].read_bytes() == exported["bytes"]
    wrong = ddsp("models", "export", str(exported["run"]), "--format", "vst", "-o",
                 str(tmp_path / "x.bin"))  # fmt: skip
    assert wrong.returncode == 2 and not (tmp_path / "x.bin").exists()


def test_a_vst_model_transfers_like_any_other(exported, tmp_path, crepe_weights):
    crepe_weights("tiny")
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 262 * t)).astype(np.float32), 16000)
    out = tmp_path / "out.wav"
    run = ddsp("transfer", str(tmp_path / "in.wav"), "--model", str(exported["run"]), "-o",
               str(out), "--no-auto-adjust")  # fmt: skip
    assert run.returncode == 0, run.stderr
    audio, rate = sf.read(out)
    assert rate == 16000 and len(audio) == 16000 and np.isfinite(audio).all()


def test_a_vst_model_plays_live_on_its_own_features(exported, tmp_path, crepe_weights):
    """`live` drives a power model with power (not A-weighted loudness) on 20 ms pitch frames."""
    from ddspcli.engine import live

    crepe_weights("tiny")
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 262 * t)).astype(np.float32)
    sf.write(tmp_path / "in.wav", tone, 16000)
    stats = tmp_path / "stats.json"
    run = ddsp("live", "-m", str(exported["run"]), "-i", str(tmp_path / "in.wav"),
               "-o", str(tmp_path / "out.wav"), "--no-auto-adjust",
               "--stats-json", str(stats))  # fmt: skip
    assert run.returncode == 0, run.stderr
    audio, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and len(audio) >= 16000 and np.isfinite(audio).all()
    assert json.loads(stats.read_text())["pitch_hop_ms"] == 20.0  # 16 ms rounded to whole frames

    settings = features.FeatureSettings.vst()
    tracker = live.CausalFeatures(lambda x: x, settings, 1)
    padded = np.pad(tone, (settings.n_fft // 2, 0))[: 9 * settings.hop + settings.n_fft]
    expected = features.compute_power(tone, settings)[:10]
    np.testing.assert_allclose(tracker.loudness(padded), expected, atol=1e-4)
