"""The TensorFlow-free runtime (issue 28, item 3) against the TensorFlow path it replaces.

Every comparison renders the same features through `engine.streaming.render` (TensorFlow: the
decoder as a `tf.Module`, `streaming.StreamRenderer`) and through `ddspcli.runtime` (LiteRT
decoder, NumPy synthesis) from files `engine.tflite_export` just wrote, so each test fails if
either side changes. Tolerance: max |diff| <= 1e-4 of the TensorFlow peak (float32 rounding of
two implementations; measured 1e-6 to 2e-6 relative), z models 1e-3 of the peak and SNR >= 60 dB
(their MFCCs go through another FFT and a DCT matrix; measured 1.5e-5 and 2.7e-4 relative).
Clips are 2 s so that the file runs in a few tens of seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddspcli import runtime
from ddspcli.engine import crepe_tf, dsp, pitch, streaming, tflite_export, transfer
from ddspcli.engine import model as model_lib
from ddspcli.engine import npnoise as noise
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.graph import reverb as synth
from ddspcli.errors import ModelError
from ddspcli.runtime import crepe as rt_crepe

MODELS = Path(__file__).resolve().parents[1] / "ddspcli" / "models"
SHIPPED = ("violin", "tenor_sax", "flute-sf", "cello-sf", "trumpet-sf")
FRAMES = 500  # 2 s at 250 frames/s
REL_TOL = 1e-4
STEMS = ("harmonic", "noise", "reverb")


def _features(n: int = FRAMES, frame_rate: int = 250) -> dict[str, np.ndarray]:
    """A gliding tone whose loudness swells: f0 200-420 Hz, -60..-15 dB, ``[n]`` each."""
    t = np.arange(n) / frame_rate
    f0 = 290.0 * 2.0 ** (0.5 * np.sin(2 * np.pi * 0.7 * t) + 0.1 * np.sin(2 * np.pi * 5 * t))
    ld = -37.5 + 22.5 * np.sin(2 * np.pi * 1.3 * t)
    return {"f0_hz": f0.astype(np.float32), "loudness_db": ld.astype(np.float32)}


def _input_audio(f0_hz: np.ndarray, hop: int, rate: int = 16000) -> np.ndarray:
    """A sine following `f0_hz` (the z encoder's input)."""
    phase = 2 * np.pi * np.cumsum(np.repeat(f0_hz, hop)) / rate
    return (0.3 * np.sin(phase)).astype(np.float32)


def assert_close(ours: np.ndarray, ref: np.ndarray, rel: float = REL_TOL, snr_db: float = 0.0):
    """Same length; max |diff| <= `rel` * peak of `ref`; SNR >= `snr_db`."""
    assert ours.shape == ref.shape
    peak = float(np.abs(ref).max())
    assert peak > 0
    diff = float(np.abs(ours - ref).max())
    assert diff <= rel * peak, f"max |diff| {diff:.3g} > {rel:g} of peak {peak:.3g}"
    if snr_db:
        snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ours - ref) ** 2.0))
        assert snr >= snr_db, f"SNR {snr:.1f} dB < {snr_db} dB"


def _tf_render(loaded, feats, audio=None, block_s=10.0, parts=STEMS, reverb=True):
    settings = transfer.RenderSettings(block_s=block_s, reverb=reverb)
    return streaming.render(loaded, feats, audio, settings, parts=parts)


def _exported(folder: Path, loaded) -> runtime.Runtime:
    tflite_export.write_runtime_files(loaded, folder)
    return runtime.load(folder)


def _write_seeded(folder: Path, params: list[str], z: bool = False) -> model_lib.LoadedModel:
    """A small untrained model folder (seeded weights); a reverb gets a loud decaying IR."""
    folder.mkdir(parents=True)
    config = model_lib.config_text("tiny", [], params, z)
    m = model_lib.build_model(config, seed=1)
    if m.reverb is not None:
        n = m.reverb.reverb_length
        ir = np.random.default_rng(1).normal(size=n) * np.exp(-np.arange(n) / 800.0) * 0.3
        m.reverb.ir.assign(ir.astype(np.float32))
    tf.train.Checkpoint(model=m).write(str(folder / "ckpt"))
    (folder / "config.gin").write_text(config)
    info = {"sample_rate": 16000, "frame_rate": 250, "z_dims": m.z_dims, "checkpoint": "ckpt"}
    (folder / "model.json").write_text(json.dumps(info))
    return model_lib.load_model_dir(str(folder))


def _live_stream(rt: runtime.Runtime, feats: dict, block_ms: float) -> np.ndarray:
    """The stream fed as a live engine feeds it: the frames each `block_ms` block completes
    (2-3 frames for 10 ms at 250 frames/s, 5 for 20 ms, 10 for 40 ms)."""
    stream, pieces = rt.stream(), []
    n, per_block, k, first = len(feats["f0_hz"]), block_ms * rt.frame_rate / 1000.0, 0, 0
    while first < n:
        k += 1
        last = min(n, int(k * per_block))
        pieces.append(stream.push(feats["f0_hz"][first:last], feats["loudness_db"][first:last]))
        first = last
    pieces.append(stream.finish())
    return np.concatenate(pieces)


# ---------------------------------------------------------------------------------------------
# Pieces.


def test_the_runtime_never_imports_tensorflow():
    code = ("import sys, ddspcli.runtime, ddspcli.runtime.crepe; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(("seed", "start", "n"), [(0, 0, 1000), (3, 65000, 2000), (7, 327697, 7e4)])
def test_the_noise_stream_is_tensorflows_bit_for_bit(seed, start, n):
    n = int(n)
    np.testing.assert_array_equal(noise.white_noise(seed, start, n),
                                  dsp.white_noise(seed, start, n))  # fmt: skip


@pytest.mark.parametrize("block", [1, 7, 160, 1024, 5000])
def test_the_partitioned_convolver_is_a_full_convolution_for_any_block(block):
    rng = np.random.default_rng(0)
    x, ir = rng.normal(size=6000).astype(np.float32), rng.normal(size=3000).astype(np.float32)
    conv = synth.PartitionedConvolver(ir, partition=256)
    out = np.concatenate([conv.push(x[i : i + block]) for i in range(0, len(x), block)])
    np.testing.assert_allclose(out, np.convolve(x, ir)[: len(x)], atol=2e-4)


# ---------------------------------------------------------------------------------------------
# Shipped models.


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request, tmp_path_factory):
    loaded = model_lib.load_model_dir(str(MODELS / request.param))
    rt = _exported(tmp_path_factory.mktemp(request.param), loaded)
    feats = _features()
    return {"loaded": loaded, "rt": rt, "feats": feats, "ref": _tf_render(loaded, feats)}


def test_a_shipped_model_renders_a_whole_file_and_its_stems_as_tensorflow(shipped):
    out = shipped["rt"].render(**shipped["feats"], stems=True)
    ref = shipped["ref"]
    assert set(out) == set(ref)
    for part in ref:
        assert_close(out[part], ref[part])


def test_a_shipped_model_renders_in_blocks_as_tensorflow(shipped):
    # 10 s blocks scaled down to the 2 s clip: blocks of 0.5 s on both sides.
    ref = _tf_render(shipped["loaded"], shipped["feats"], block_s=0.5, parts=())
    out = shipped["rt"].render(**shipped["feats"], block_frames=125)
    assert_close(out["audio"], ref["audio"])
    assert_close(out["audio"], shipped["ref"]["audio"])


@pytest.mark.parametrize("block_ms", [10, 20, 40])
def test_a_shipped_model_streams_live_blocks_as_tensorflow_renders(shipped, block_ms):
    assert_close(_live_stream(shipped["rt"], shipped["feats"], block_ms), shipped["ref"]["audio"])


def test_the_shipped_plugin_model_renders_as_its_file_and_tensorflows_synthesis(tmp_path):
    """violin-vst is a DDSP-VST file (no checkpoint): the reference is the file run by
    LiteRT's builtin kernels (`vst_check.PluginModel`, no delegate), its controls synthesised
    by TensorFlow (`streaming.reference_stream` of a vst-variant model), frames streamed as live
    feeds them."""
    from ddspcli.engine import streaming, vst_check

    folder = _copy(MODELS / "violin-vst", tmp_path / "vst")
    tflite_export.write_plugin_runtime_json(folder, json.loads((folder / "model.json").read_text()))
    rt = runtime.load(folder)
    feats = _features(100, frame_rate=50)  # 2 s at 50 frames/s
    controls = vst_check.PluginModel(folder / "violin-vst.tflite").run(
        *vst_check.scaled_inputs(feats["f0_hz"], feats["loudness_db"])
    )
    tf_synth = streaming.reference_stream(
        model_lib.build_model(model_lib.config_text("vst", [], [], False)), reverb=False
    )
    batch = {"f0_hz": feats["f0_hz"], **controls}
    parts = [tf_synth.push(batch), tf_synth.finish()]
    ref = {k: np.concatenate([p[k] for p in parts]) for k in ("harmonic", "noise", "dry")}
    out = rt.render(**feats, stems=True)
    assert_close(out["audio"], ref["dry"])
    assert_close(out["harmonic"], ref["harmonic"])
    assert_close(out["noise"], ref["noise"])
    assert_close(_live_stream(rt, feats, 20), ref["dry"])


# ---------------------------------------------------------------------------------------------
# A reverb and z models (built from seeds: the shipped models have neither).


def test_a_reverb_model_renders_streams_and_splits_stems_as_tensorflow(tmp_path):
    loaded = _write_seeded(tmp_path / "m", ["Autoencoder.rnn_units = 32",
                                            "Autoencoder.reverb_length = 5000"])  # fmt: skip
    rt = _exported(tmp_path / "m", loaded)
    feats = _features()
    ref = _tf_render(loaded, feats)
    out = rt.render(**feats, stems=True)
    for part in ("audio", *STEMS):
        assert_close(out[part], ref[part])
    assert_close(_live_stream(rt, feats, 20), ref["audio"])
    dry = rt.render(**feats, reverb=False)["audio"]
    assert_close(dry, _tf_render(loaded, feats, parts=(), reverb=False)["audio"])


@pytest.mark.parametrize("style", ["ddspcli", "ddsp"])
def test_a_z_model_encodes_and_renders_as_tensorflow(tmp_path, style):
    params = ["Autoencoder.rnn_units = 32", "Autoencoder.reverb_length = 0",
              f"Autoencoder.z_style = '{style}'"]  # fmt: skip
    loaded = _write_seeded(tmp_path / "z", params, z=True)
    rt = _exported(tmp_path / "z", loaded)
    feats = _features()
    audio = _input_audio(feats["f0_hz"], rt.hop)
    for block_s in (10.0, 0.5):
        ref = _tf_render(loaded, feats, audio, block_s=block_s)
        out = rt.render(**feats, audio=audio, stems=True, block_frames=round(block_s * 250))
        for part in ref:
            assert_close(out[part], ref[part], rel=1e-3, snr_db=60.0)


# ---------------------------------------------------------------------------------------------
# CREPE.


def _crepe_check(checkpoint: Path, folder: Path) -> None:
    tflite_export.write_crepe_file(checkpoint, folder / "crepe.tflite")
    lite = rt_crepe.Crepe(folder / "crepe.tflite", num_threads=2)
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)
    frames = rt_crepe.frame_audio(audio, 160)
    np.testing.assert_array_equal(frames, pitch.frame_audio(audio, 160))
    net = crepe_tf.Crepe(pitch.load_weights(checkpoint))  # held: its tf.function keeps a weak ref
    ref = net.activations(np.array(frames)).numpy()
    ours = lite.activations(frames, batch=16)  # several batches, the last one shorter
    assert ours.shape == ref.shape == (51, 360)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


def test_crepe_tiny_through_litert_gives_tensorflows_activations(tmp_path):
    _crepe_check(MODELS / "crepe-tiny" / "tiny.pth", tmp_path)


@pytest.mark.slow
def test_crepe_full_through_litert_gives_tensorflows_activations(crepe_weights, tmp_path):
    _crepe_check(crepe_weights("full"), tmp_path)  # about 20 s: converting 22 M weights


# ---------------------------------------------------------------------------------------------
# Bad files: one line, naming the file.


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "m"
    loaded = _write_seeded(folder, ["Autoencoder.rnn_units = 16", "Autoencoder.reverb_length = 0",
                                    "Autoencoder.n_harmonics = 8",
                                    "Autoencoder.n_noise_bands = 8"])  # fmt: skip
    tflite_export.write_runtime_files(loaded, folder)
    return folder


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _refused(folder: Path) -> str:
    with pytest.raises(ModelError) as err:
        runtime.load(folder)
    message = str(err.value)
    assert "\n" not in message and "ddsp models export" in message
    return message


def test_a_missing_runtime_file_is_one_line(small_export, tmp_path):
    folder = _copy(small_export, tmp_path / "c")
    (folder / "decoder.tflite").unlink()
    assert "decoder.tflite is missing" in _refused(folder)
    (folder / "runtime.json").unlink()
    assert "no runtime files" in _refused(folder)


def test_a_damaged_runtime_file_is_one_line(small_export, tmp_path):
    folder = _copy(small_export, tmp_path / "c")
    content = (folder / "decoder.tflite").read_bytes()
    (folder / "decoder.tflite").write_bytes(content[: len(content) // 2])
    assert "damaged" in _refused(folder)
    # Without a recorded sha256 the interpreter itself refuses the truncated file.
    desc = json.loads((folder / "runtime.json").read_text())
    del desc["decoder"]["sha256"]
    (folder / "runtime.json").write_text(json.dumps(desc))
    assert "not a loadable TFLite model" in _refused(folder)


def test_a_runtime_file_of_the_wrong_shape_is_one_line(small_export, tmp_path):
    folder = _copy(small_export, tmp_path / "c")
    desc = json.loads((folder / "runtime.json").read_text())
    desc["decoder"]["signatures"]["frames_1"]["outputs"]["harmonic_distribution"] = [1, 1, 60]
    (folder / "runtime.json").write_text(json.dumps(desc))
    message = _refused(folder)
    assert "harmonic_distribution" in message and "[1, 1, 8]" in message
    # Another model's decoder in its place: the state size differs.
    other = _write_seeded(tmp_path / "o", ["Autoencoder.rnn_units = 24",
                                           "Autoencoder.reverb_length = 0",
                                           "Autoencoder.n_harmonics = 8",
                                           "Autoencoder.n_noise_bands = 8"])  # fmt: skip
    tflite_export.write_runtime_files(other, tmp_path / "o")
    folder = _copy(small_export, tmp_path / "d")
    (folder / "decoder.tflite").write_bytes((tmp_path / "o" / "decoder.tflite").read_bytes())
    desc = json.loads((folder / "runtime.json").read_text())
    del desc["decoder"]["sha256"]
    (folder / "runtime.json").write_text(json.dumps(desc))
    assert "state" in _refused(folder)


def test_the_exported_files_use_builtin_operators_only(small_export):
    from ddspcli.engine import vst_check

    assert vst_check.operator_problems((small_export / "decoder.tflite").read_bytes()) == []
    codes = vst_check.operator_codes((small_export / "decoder.tflite").read_bytes())
    assert vst_check.CUSTOM_OPCODE not in {c for c, _ in codes}
