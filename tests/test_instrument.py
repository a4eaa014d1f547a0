"""`ddspcli.instrument.Instrument` (issue 28, item 2) against the TensorFlow pipeline it replaces.

The reference is what ``ddsp transfer`` computes today: features with CREPE in TensorFlow
(`crepe_tf.Crepe` from ``tiny.pth``) and `dsp.compute_loudness`, `adjust.adjust`, and
`engine.streaming.render` (the TensorFlow decoder and `streaming.StreamRenderer`). The
Instrument runs CREPE from ``tiny.tflite`` in LiteRT, loudness in NumPy and the model from its
runtime files. Tolerances (measured figures in the test docstrings): loudness within 1e-5 dB,
confidence within 1e-5, f0 within 0.01 cent on confident frames (1 cent on every frame);
rendering the same features max |diff| <= 1e-4 of the TensorFlow peak (as
`tests/test_runtime.py`); end to end (features, adjust, render) SNR >= 50 dB and max |diff|
<= 5e-3 of the peak.

Light-install behaviour runs in subprocesses with TensorFlow blocked (``sys.modules
["tensorflow"] = None``: importing it fails, `tfimport.available` says False).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import audio as audio_io
from ddspcli.engine import crepe_tf, dsp, features, pitch, streaming, tflite_export, transfer
from ddspcli.engine import model as model_lib
from ddspcli.errors import EXIT_MODEL, ModelError
from ddspcli.instrument import Instrument, runtime_folder

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "ddspcli" / "models"
CLIP = ROOT / "examples" / "speech_198-209-0000.wav"
CUT = (2 * 16000, 6 * 16000)  # 4 s of speech from the example clip
REL_TOL = 1e-4
BLOCK_TF = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"


def _clip() -> np.ndarray:
    x, _ = audio_io.read_audio(str(CLIP), 16000)
    return x[CUT[0] : CUT[1]]


def _cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200.0 * np.abs(np.log2(np.asarray(a, np.float64) / np.asarray(b, np.float64)))


def assert_close(ours: np.ndarray, ref: np.ndarray, rel: float = REL_TOL) -> None:
    assert ours.shape == ref.shape
    peak = float(np.abs(ref).max())
    assert peak > 0
    diff = float(np.abs(ours - ref).max())
    assert diff <= rel * peak, f"max |diff| {diff:.3g} > {rel:g} of peak {peak:.3g}"


def _run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def violin() -> Instrument:
    return Instrument.open("violin")


@pytest.fixture(scope="module")
def tf_path() -> dict:
    """The TensorFlow pipeline of ``ddsp transfer --model violin --octave 1`` on the cut."""
    loaded = model_lib.load_model_dir(str(MODELS / "violin"))
    x = _clip()
    settings = features.model_settings(loaded.info, "tiny", None)
    tracker = crepe_tf.Crepe(pitch.load_weights(MODELS / "crepe-tiny" / "tiny.pth"))
    feats = features.compute_features(x, tracker, settings)
    feats["loudness_db"] = dsp.compute_loudness(x, 16000, 250, settings.n_fft).numpy()
    octave = adjust_lib.Adjustments(octaves=1)
    adjusted, report = adjust_lib.adjust(feats, loaded.statistics, octave,
                                         adjust_lib.f0_limits(16000))  # fmt: skip
    parts = ("harmonic", "noise")
    ref = streaming.render(loaded, adjusted, x, transfer.RenderSettings(), parts=parts)
    return {"x": x, "feats": feats, "adjusted": adjusted, "report": report, "ref": ref,
            "tracker": tracker}  # fmt: skip


def test_features_through_litert_equal_tensorflows(violin, tf_path):
    """Measured on the 4 s cut: loudness 7.6e-6 dB, confidence 4.8e-7, f0 0.0009 cent."""
    ours, ref = violin.features(tf_path["x"], 16000), tf_path["feats"]
    assert set(ours) == set(features.FEATURE_KEYS)
    for key in features.FEATURE_KEYS:
        assert ours[key].shape == ref[key].shape == (len(tf_path["x"]) // 64 + 1,)
    np.testing.assert_allclose(ours["loudness_db"], ref["loudness_db"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours["f0_confidence"], ref["f0_confidence"], atol=1e-5, rtol=0)
    confident = ref["f0_confidence"] > 0.5
    assert confident.mean() > 0.2  # the cut holds speech
    assert _cents(ours["f0_hz"], ref["f0_hz"])[confident].max() < 0.01
    assert _cents(ours["f0_hz"], ref["f0_hz"]).max() < 1.0  # every frame within a cent


def test_the_numpy_a_weighting_is_librosas():
    freqs = np.concatenate([[0.0], np.fft.rfftfreq(512, 1 / 16000), np.geomspace(1, 24000, 50)])
    np.testing.assert_array_equal(features.a_weighting_db(freqs), dsp.a_weighting_db(freqs))


def test_adjust_reports_as_the_pipeline_does(violin, tf_path):
    adjusted, report = violin.adjust(tf_path["feats"], octaves=1)
    assert report == tf_path["report"]
    assert report["semitones"] % 12 == 0 and report["semitones"] >= 12
    np.testing.assert_array_equal(adjusted["f0_hz"], tf_path["adjusted"]["f0_hz"])
    np.testing.assert_array_equal(adjusted["loudness_db"], tf_path["adjusted"]["loudness_db"])
    with pytest.raises(TypeError):
        violin.adjust(tf_path["feats"], octave=1)  # a misspelt adjustment is refused


def test_render_equals_the_tensorflow_render_with_stems(violin, tf_path):
    """The same features: measured max |diff| 8.4e-7 of the peak (noise stem 2.4e-6)."""
    out = violin.render(tf_path["adjusted"], stems=True)
    assert set(out) == {"audio", "harmonic", "noise"}
    for part, ref in tf_path["ref"].items():
        assert_close(out[part], ref)
    np.testing.assert_allclose(out["harmonic"] + out["noise"], out["audio"], atol=1e-6)
    streamed = violin.stream()
    f0, ld = tf_path["adjusted"]["f0_hz"], tf_path["adjusted"]["loudness_db"]
    pieces = [streamed.push(f0[i : i + 5], ld[i : i + 5]) for i in range(0, len(f0), 5)]
    assert_close(np.concatenate([*pieces, streamed.finish()]), tf_path["ref"]["audio"])


def test_transfer_equals_the_pipeline_end_to_end(violin, tf_path):
    """Features, adjustments and rendering together; the output has the input's length.
    The f0 differences (0.0009 cent) move the oscillator phases a little: measured max |diff|
    1.8e-3 of the peak, SNR 62.8 dB (the whole 13.9 s clip: 1.7e-3, 61.6 dB; the same features
    rendered both ways: 1.1e-6)."""
    x = tf_path["x"]
    out, report = violin.transfer(x, 16000, octaves=1)
    ref = tf_path["ref"]["audio"][: len(x)]
    assert out["audio"].shape == (len(x),)
    assert report["semitones"] == tf_path["report"]["semitones"] and report["warnings"] == []
    err = out["audio"] - ref
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum(err.astype(np.float64) ** 2))
    assert snr >= 50.0, f"SNR {snr:.1f} dB"
    assert_close(out["audio"], ref, rel=5e-3)


def test_other_rates_and_channels_are_mixed_and_resampled(violin, tf_path):
    at_44k = audio_io.resample(tf_path["x"], 16000, 44100)
    feats = violin.features(np.stack([at_44k, at_44k], axis=1), 44100)
    back = audio_io.resample(at_44k, 44100, 16000)
    expected = violin.features(back, 16000)
    for key in features.FEATURE_KEYS:
        np.testing.assert_array_equal(feats[key], expected[key])


def test_an_input_without_notes_renders_silence_with_a_warning(violin):
    out, report = violin.transfer(np.zeros(16000, np.float32), 16000, stems=True)
    assert set(out) == {"audio", "harmonic", "noise"}
    assert all(not v.any() and len(v) == 16000 for v in out.values())
    assert "no notes" in report["warnings"][0]


# ---------------------------------------------------------------------------------------------
# Without TensorFlow.


PLAY = """
import sys, json
from ddspcli.engine import audio
from ddspcli.instrument import Instrument
x = audio.read_audio("examples/speech_198-209-0000.wav", 16000)[0][:48000]
for name in NAMES:
    out, report = Instrument.open(name).transfer(x, 16000, octaves=1)
    assert len(out["audio"]) == len(x) and abs(out["audio"]).max() > 0, name
print(json.dumps(sorted(m for m, mod in sys.modules.items()
                        if m.split(".")[0] in ("tensorflow", "keras") and mod is not None)))
"""


def test_the_instrument_never_imports_tensorflow():
    run = _run_python("NAMES = ['violin']\n" + PLAY, {"DDSP_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == []


def test_a_light_install_plays_every_shipped_model(tmp_path):
    """TensorFlow blocked: the shipped folders carry their runtime files, CREPE tiny ships."""
    names = ["violin", "tenor_sax", "flute-sf", "cello-sf", "trumpet-sf"]
    home = tmp_path / "home"
    run = _run_python(BLOCK_TF + f"NAMES = {names!r}\n" + PLAY,
                      {"DDSP_OFFLINE": "1", "DDSP_HOME": str(home)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == []
    assert not (home / "runtime").exists()  # nothing converted


# ---------------------------------------------------------------------------------------------
# Model folders without (good) runtime files.


def _old_folder(dest: Path) -> Path:
    """The shipped violin as a folder written before the runtime files existed."""
    shutil.copytree(MODELS / "violin", dest)
    for name in ("runtime.json", "decoder.tflite"):
        (dest / name).unlink()
    return dest


def test_an_old_folder_is_converted_once_and_cached(tmp_path, monkeypatch, violin, tf_path):
    monkeypatch.setenv("DDSP_HOME", str(tmp_path / "home"))
    folder = _old_folder(tmp_path / "old")
    messages = []

    class Progress:
        def message(self, text: str) -> None:
            messages.append(text)

    before = sorted(p.name for p in folder.iterdir())
    inst = Instrument.open(str(folder), progress=Progress(), load_pitch=False)
    cached = inst.runtime.folder
    assert cached.parent == tmp_path / "home" / "runtime" and len(messages) == 1
    assert sorted(p.name for p in folder.iterdir()) == before  # the folder is left as it was
    again = Instrument.open(str(folder), progress=Progress(), load_pitch=False)
    assert again.runtime.folder == cached and len(messages) == 1  # no second conversion
    assert_close(again.render(tf_path["adjusted"])["audio"], tf_path["ref"]["audio"])
    # Retrained (its checkpoint changed): its stale runtime files are not played.
    copy = shutil.copytree(MODELS / "violin", tmp_path / "retrained")
    (copy / "config.gin").write_text((copy / "config.gin").read_text() + "\n")
    assert runtime_folder(copy) != copy


def _light(code: str, home: Path) -> subprocess.CompletedProcess:
    return _run_python(BLOCK_TF + code, {"DDSP_OFFLINE": "1", "DDSP_HOME": str(home)})


OPEN = """
from ddspcli.errors import ModelError
from ddspcli.instrument import Instrument
try:
    Instrument.open(FOLDER, load_pitch=False)
except ModelError as err:
    print("ModelError", err.exit_code, str(err).count(chr(10)), err, sep="|")
"""


def _refused_light(folder: Path, home: Path) -> str:
    run = _light(f"FOLDER = {str(folder)!r}\n" + OPEN, home)
    assert run.returncode == 0, run.stderr
    kind, code, newlines, message = run.stdout.strip().split("|", 3)
    assert (kind, int(code), int(newlines)) == ("ModelError", EXIT_MODEL, 0)
    assert not home.exists() or not any(home.rglob("*.tflite"))  # nothing written
    return message


def test_a_light_install_refuses_an_old_folder_in_one_line(tmp_path):
    folder = _old_folder(tmp_path / "old")
    before = sorted(p.name for p in folder.iterdir())
    message = _refused_light(folder, tmp_path / "home")
    assert "no runtime files" in message
    assert "ddsp models export" in message and "pip install 'ddspcli[train]'" in message
    assert sorted(p.name for p in folder.iterdir()) == before
    copy = shutil.copytree(MODELS / "violin", tmp_path / "retrained")
    (copy / "config.gin").write_text((copy / "config.gin").read_text() + "\n")
    assert "older than its checkpoint" in _refused_light(copy, tmp_path / "home")


@pytest.fixture(scope="module")
def other_decoder(tmp_path_factory) -> bytes:
    """The decoder of a smaller (untrained) model: GRU 24, 8 harmonics and noise bands."""
    params = ["Autoencoder.rnn_units = 24", "Autoencoder.reverb_length = 0",
              "Autoencoder.n_harmonics = 8", "Autoencoder.n_noise_bands = 8"]  # fmt: skip
    m = model_lib.build_model(model_lib.config_text("tiny", [], params, False), seed=1)
    folder = tmp_path_factory.mktemp("other")
    tflite_export.write_runtime_files(m, folder)
    return (folder / "decoder.tflite").read_bytes()


def _broken(tmp_path: Path, how: str, other_decoder: bytes) -> Path:
    folder = shutil.copytree(MODELS / "violin", tmp_path / how)
    decoder = folder / "decoder.tflite"
    desc = json.loads((folder / "runtime.json").read_text())
    if how == "missing":
        decoder.unlink()
    elif how == "damaged":
        decoder.write_bytes(decoder.read_bytes()[:5000])
    elif how == "shapes":  # another model's decoder in its place (no sha256 to catch it)
        decoder.write_bytes(other_decoder)
        del desc["decoder"]["sha256"]
    elif how == "shapes-described":  # runtime.json and the file disagree on a tensor's shape
        desc["decoder"]["signatures"]["frames_1"]["inputs"]["state"] = [1, 999]
    (folder / "runtime.json").write_text(json.dumps(desc))
    return folder


@pytest.mark.parametrize(
    ("how", "says"),
    [("missing", "decoder.tflite is missing"), ("damaged", "is damaged"),
     ("shapes", "has shape [1, 24], not [1, 256]"), ("shapes-described", "[1, 999]")],
)  # fmt: skip
def test_a_bad_runtime_file_is_one_line_and_writes_nothing(
    tmp_path, monkeypatch, other_decoder, how, says
):
    folder = _broken(tmp_path, how, other_decoder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setenv("DDSP_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError) as err:
        Instrument.open(str(folder), load_pitch=False)  # TensorFlow installed: no fallback
    message = str(err.value)
    assert "\n" not in message and says in message and "ddsp models export" in message
    assert err.value.exit_code == EXIT_MODEL
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "home" / "runtime").exists()
    assert says in _refused_light(folder, tmp_path / "light")  # the same without TensorFlow


@pytest.mark.slow
def test_crepe_full_is_built_once_and_tracks_as_tensorflow(crepe_weights):
    """``crepe-full`` has no .tflite source: built on first use into its cache folder
    (`runtime.crepe_build`, about 1.5 s on 2 cores), its sha256 recorded in the JSON beside it."""
    from ddspcli.instrument import pitch_tracker_file

    checkpoint = crepe_weights("full")
    path = pitch_tracker_file("full")
    assert path.parent == checkpoint.parent and path.name == "full.tflite"
    assert json.loads(path.with_suffix(".json").read_text())["capacity"] == "full"
    assert pitch_tracker_file("full") == path  # cached
    x = _clip()[:16000]
    settings = features.FeatureSettings(pitch_model="full")
    ours = features.compute_features(x, str(path), settings)
    ref = features.compute_features(x, crepe_tf.Crepe(pitch.load_weights(checkpoint)), settings)
    np.testing.assert_allclose(ours["f0_confidence"], ref["f0_confidence"], atol=1e-5, rtol=0)
    assert _cents(ours["f0_hz"], ref["f0_hz"]).max() < 1.0


# ---------------------------------------------------------------------------------------------
# The same through the command line (``ddsp transfer``, which opens an `Instrument`).


def _transfer_cli(folder: Path, out: Path, *, light: bool, home: Path):
    args = ["transfer", str(CLIP), "--model", str(folder), "-o", str(out)]
    code = f"import sys\nfrom ddspcli.cli import run\nsys.exit(run({args!r}))\n"
    code = (BLOCK_TF if light else "") + code
    return _run_python(code, {"DDSP_OFFLINE": "1", "DDSP_HOME": str(home)})


@pytest.mark.parametrize("how", ["missing", "damaged", "shapes", "old-light"])
def test_transfer_with_a_bad_model_folder_is_one_line_exit_5_nothing_written(
    tmp_path, other_decoder, how
):
    if how == "old-light":
        folder, says = _old_folder(tmp_path / "old"), "pip install 'ddspcli[train]'"
    else:
        folder = _broken(tmp_path, how, other_decoder)
        says = {"missing": "is missing", "damaged": "is damaged", "shapes": "has shape"}[how]
    out = tmp_path / "out.wav"
    run = _transfer_cli(folder, out, light=how == "old-light", home=tmp_path / "home")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == EXIT_MODEL, run.stderr
    assert len(lines) == 1 and lines[0].startswith("ddsp: error:") and says in lines[0]
    assert "ddsp models export" in lines[0]
    assert not out.exists() and not (tmp_path / "home" / "runtime").exists()


def test_the_module_docstring_example_runs_without_tensorflow(tmp_path):
    """The example at the top of `ddspcli.instrument` (README's "Python API"), as written."""
    import ddspcli.instrument

    doc = ddspcli.instrument.__doc__
    example = doc[doc.index("    import soundfile") : doc.index("\n\n`open`")]
    code = "\n".join(line[4:] for line in example.splitlines())
    code = code.replace('"examples/', f'"{ROOT}/examples/')
    run = subprocess.run([sys.executable, "-c", BLOCK_TF + code], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "DDSP_OFFLINE": "1"},
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    written = audio_io.read_audio(str(tmp_path / "speech.violin.wav"), 16000)[0]
    assert len(written) == 222561 and np.abs(written).max() > 0.01  # the clip's length


def test_features_run_on_a_light_install(tmp_path):
    """``ddsp features`` with TensorFlow blocked, CREPE tiny from the package (CREPE full,
    built on first use without TensorFlow: tests/test_crepe_build.py)."""
    out = tmp_path / "f.csv"
    code = BLOCK_TF + "import sys\nfrom ddspcli.cli import run\nsys.exit(run(sys.argv[1:]))\n"
    home = {"DDSP_HOME": str(tmp_path / "home"), "DDSP_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", code, "features", str(CLIP), "--pitch-model",
                          "tiny", "-o", str(out)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, env={**os.environ, **home})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(out.read_text().splitlines()) == 222561 // 64 + 2  # header + frames
