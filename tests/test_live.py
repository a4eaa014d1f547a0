"""`ddsp live`: the causal engine equals an offline render of its own features, whatever the
block size; it follows the player's pitch; no clicks; pipes, files, and bad input."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ddspcli.engine import live, liveio, streaming
from ddspcli.engine import model as model_lib
from ddspcli.instrument import Instrument

SR = 16000
MODELS = Path(__file__).resolve().parents[1] / "ddspcli" / "models"


@pytest.fixture(scope="module")
def crepe_tiny():
    return str(next((MODELS / "crepe-tiny").glob("*.pth")))


def player(folder: str | Path) -> Instrument:
    """A model folder as the engine plays it (LiteRT runtime, CREPE tiny as .tflite)."""
    return Instrument.open(str(folder), pitch_model="tiny")


@pytest.fixture(scope="module")
def reverb_model(tmp_path_factory):
    """A small model with noise and a 0.2 s reverb (no shipped model has one), weights random
    but fixed, and statistics so auto-adjust runs: ``(TF LoadedModel, its Instrument)``, the
    instrument playing the model's runtime files (`tflite_export.write_runtime_files`)."""
    from ddspcli import runtime
    from ddspcli.engine import features, tflite_export

    model = model_lib.build_model(
        "Autoencoder.rnn_units = 32\nAutoencoder.mlp_units = 16\nAutoencoder.mlp_layers = 1\n"
        "Autoencoder.reverb_length = 3200\nAutoencoder.n_harmonics = 20\n"
        "Autoencoder.n_noise_bands = 16\nAutoencoder.seed = 3\n")  # fmt: skip
    model.reverb.ir.assign(np.exp(-np.arange(3200) / 400.0).astype(np.float32) * 0.05)
    stats = {"mean_pitch": 62.0, "loudness_quantiles": list(np.linspace(-50, -10, 11))}
    info = {"sample_rate": SR, "frame_rate": 250, "features": {}}
    loaded = model_lib.LoadedModel(model, info, stats, "<test>")
    folder = tmp_path_factory.mktemp("reverb_model")
    tflite_export.write_runtime_files(loaded, folder)
    tracker = next((MODELS / "crepe-tiny").glob("*.tflite"))
    instrument = Instrument("reverb", folder, info, stats, runtime.load(folder),
                            features.model_settings(info, "tiny"), tracker)  # fmt: skip
    return loaded, instrument


def glide(seconds: float = 3.0, f0_from: float = 180.0, f0_to: float = 360.0, gap=True):
    """A harmonic tone gliding exponentially (known f0), with a silent gap in the middle."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f0_from * (f0_to / f0_from) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    envelope = np.ones_like(t)
    if gap:
        envelope[(t > 1.4) & (t < 1.6)] = 0.0
    return (tone * envelope).astype(np.float32), f0


def stream(engine: live.LiveEngine, audio: np.ndarray) -> np.ndarray:
    """`run_stream` over in-memory audio; returns the output (input length + delay)."""

    class Source(liveio.Source):
        def __init__(self):
            self.sample_rate, self.name, self.at = SR, "mem", 0

        def read(self, frames):
            piece = audio[self.at : self.at + frames]
            self.at += len(piece)
            return piece

    class Sink(liveio.Sink):
        def __init__(self):
            self.sample_rate, self.parts = SR, []

        def write(self, block):
            self.parts.append(np.array(block))

    sink = Sink()
    live.run_stream(engine, Source(), sink)
    return np.concatenate(sink.parts)


@pytest.mark.parametrize("block_ms", [10, 20, 40])
def test_streaming_equals_an_offline_render_of_the_causal_features(reverb_model, block_ms):
    """The live engine (LiteRT + NumPy) against TensorFlow's offline render of the frames it
    decoded: the same audio, reverb included, within 1e-5, at every block size."""
    audio, _ = glide(1.2)
    settings = live.LiveSettings(block_ms=block_ms)
    loaded, instrument = reverb_model
    engine = live.LiveEngine(instrument, settings, block_ms * SR // 1000)
    engine.recorded = []
    out = stream(engine, audio)
    assert len(out) == len(audio) + engine.delay
    feats = {k: np.concatenate([r[k] for r in engine.recorded]) for k in ("f0_hz", "loudness_db")}
    offline = streaming.StreamRenderer(loaded.model, seed=0).render(feats)["audio"]
    n = len(audio)
    np.testing.assert_allclose(out[engine.delay : engine.delay + n], offline[:n], atol=1e-5)
    assert np.abs(offline[:n]).max() > 0.01  # not a comparison of silences
    assert np.abs(out[: engine.delay - 64]).max() < 1e-9  # the delay line: silence first


def test_the_delay_is_the_shortest_that_never_runs_dry():
    for block in (160, 320, 640, 100):
        delay = live.pipeline_delay(block, 64, 2)
        # shorter by one sample: some block boundary finds the delay line empty
        shortfalls = [m * block - max(0, ((m * block - 512) // 64 + 1 if m * block >= 512 else 0)
                                      - 2) * 64 for m in range(1, 200)]  # fmt: skip
        assert max(shortfalls) == delay


def test_the_output_follows_the_input_pitch():
    """pyin (not CREPE) on input and output: within 50 cents of input x 2^(12/12) on >= 85%
    of the frames voiced in both, after the reported latency."""
    import librosa

    audio, _ = glide(3.0, 196.0, 392.0)
    settings = live.LiveSettings(auto=False, octaves=1)
    engine = live.LiveEngine(player(MODELS / "violin"), settings, 320)
    out = stream(engine, audio)[engine.delay :][: len(audio)]

    def track(x):
        f0, voiced, _ = librosa.pyin(x, fmin=100, fmax=1600, sr=SR, frame_length=1024,
                                     hop_length=160)  # fmt: skip
        return f0, voiced

    f_in, v_in = track(audio)
    f_out, v_out = track(out)
    both = v_in & v_out & np.isfinite(f_in) & np.isfinite(f_out)
    assert both.sum() > 0.6 * len(both)
    cents = 1200 * np.log2(f_out[both] / (f_in[both] * 2.0))
    assert np.mean(np.abs(cents) <= 50) >= 0.85, np.percentile(np.abs(cents), [50, 90])


def test_no_clicks_at_block_boundaries():
    """A steady tone: sample-to-sample jumps at block boundaries are no larger than the
    largest jump elsewhere (the signal's own)."""
    t = np.arange(2 * SR) / SR
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    engine = live.LiveEngine(player(MODELS / "flute-sf"), live.LiveSettings(auto=False), 320)
    out = stream(engine, audio)[SR // 2 : 2 * SR]  # steady state
    jumps = np.abs(np.diff(out))
    at_boundary = np.zeros(len(jumps), bool)
    at_boundary[(320 - (SR // 2) % 320 - 1) :: 320] = True
    assert np.abs(out).max() > 0.05
    assert jumps[at_boundary].max() <= 1.05 * jumps[~at_boundary].max()


def test_the_gate_has_hysteresis_and_the_octave_changes_only_between_notes():
    stats = {"mean_pitch": 72.0, "loudness_quantiles": list(np.linspace(-40, -10, 5))}
    settings = live.LiveSettings(release_ms=40.0)
    adjuster = live.LiveAdjuster(stats, settings, 250, (8.0, 8000.0))
    # confidence hovering between the off (0.5) and on (0.7) thresholds: one note, no chatter
    conf = np.r_[np.full(10, 0.9), 0.6 + 0.05 * np.sin(np.arange(200)), np.zeros(20)]
    f0 = np.r_[np.full(10, 220.0), np.linspace(220, 110, 200), np.full(20, 110.0)]
    out = adjuster.process({"f0_hz": f0.astype(np.float32),
                            "f0_confidence": conf.astype(np.float32),
                            "loudness_db": np.full(len(f0), -20, np.float32)})  # fmt: skip
    changes = np.flatnonzero(np.diff(out["notes"].astype(int)))
    assert len(changes) == 1 and adjuster.notes_started == 1  # on at 0, off once after release
    ratio = out["f0_hz"][out["notes"]] / f0[out["notes"]]
    assert np.allclose(ratio, ratio[0])  # one octave choice for the whole note (+1 octave here)
    assert ratio[0] == pytest.approx(2.0)


def _wav(data: np.ndarray, subtype: str, unknown: bool = False) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, SR, format="WAV", subtype=subtype)
    raw = bytearray(buffer.getvalue())
    if unknown:  # as streaming writers leave the lengths
        at = raw.find(b"data")
        raw[4:8] = raw[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    return bytes(raw)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"])
def test_wav_streams_decode_like_libsndfile(subtype):
    x = np.random.default_rng(1).uniform(-0.9, 0.9, (1000, 2))
    raw = _wav(x, subtype, unknown=True)
    expected = sf.read(io.BytesIO(_wav(x, subtype)), dtype="float32")[0]
    reader = liveio.WavStreamReader(io.BytesIO(raw))
    got = np.concatenate([reader.read(300) for _ in range(5)])
    assert reader.format.channels == 2 and len(got) == 1000
    np.testing.assert_allclose(got, expected, atol=1e-7)


@pytest.fixture(scope="module")
def short_clip(data_dir, tmp_path_factory):
    """The first 1.5 s of the speech clip (CLI tests pay for every second of audio)."""
    path = tmp_path_factory.mktemp("clip") / "speech_1500ms.wav"
    x, rate = sf.read(data_dir / "speech_arctic_a0001.wav", dtype="float32")
    sf.write(path, x[: int(1.5 * rate)], rate, subtype="PCM_16")
    return path


def test_pipe_equals_file_and_bad_input_is_one_line(tmp_path, short_clip):
    from clirun import ddsp

    from ddspcli.errors import EXIT_INPUT, EXIT_USAGE

    clip = short_clip
    wav = clip.read_bytes()
    piped = ddsp("live", "-m", "tenor_sax", "-i", "-", "-o", "-", stdin=wav)
    assert piped.returncode == 0, piped.stderr
    run = ddsp("live", "-m", "tenor_sax", "-i", clip, "-o", tmp_path / "f.wav",
               "--stats-json", tmp_path / "s.json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    from_pipe = liveio.WavStreamReader(io.BytesIO(piped.stdout)).read(10**7)[:, 0]
    from_file = sf.read(tmp_path / "f.wav", dtype="float32")[0]
    np.testing.assert_array_equal(from_pipe, from_file)
    stats = __import__("json").loads((tmp_path / "s.json").read_text())
    assert stats["blocks"] == -(-len(from_file) // 320) and stats["latency_ms"] <= 64
    for stdin, message in ((b"ID3\x03 not a wav at all", "not WAV"), (b"", "empty")):
        bad = ddsp("live", "-m", "tenor_sax", "-i", "-", "-o", tmp_path / "x.wav", stdin=stdin)
        assert bad.returncode == EXIT_INPUT and message.encode() in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.wav").exists()
    for name in ("x.flac", "x.wav"):  # FLAC by its name (24-bit): the WAV take, quantised
        assert ddsp("live", "-i", clip, "-o", tmp_path / name).returncode == 0
    assert sf.info(tmp_path / "x.flac").format == "FLAC"
    np.testing.assert_allclose(sf.read(tmp_path / "x.flac", dtype="float32")[0],
                               np.clip(sf.read(tmp_path / "x.wav", dtype="float32")[0], -1, 1),
                               atol=2.0**-22)  # fmt: skip
    (tmp_path / "x.wav").unlink()
    bad = ddsp("live", "-i", clip, "-o", tmp_path / "x.ogg")
    assert bad.returncode == EXIT_USAGE and b"WAV or FLAC" in bad.stderr
    bad = ddsp("live", "-i", clip, "-o", tmp_path / "y.wav", "--block-ms", "10.03")
    assert bad.returncode == EXIT_USAGE and b"whole number" in bad.stderr


def test_a_reader_closing_stdout_and_ctrl_c(tmp_path, data_dir, short_clip):
    """``| head -c 1000``: exit 141, no traceback. SIGINT in a paced run: exit 130 and the
    output file complete (a valid WAV under its name, no temporary left)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from clirun import ddsp

    from ddspcli.errors import EXIT_INTERRUPTED, EXIT_PIPE

    cmd = [sys.executable, "-m", "ddspcli", "live", "-m", "tenor_sax"]
    head = subprocess.run(f"{' '.join(cmd)} -i {short_clip} -o - | head -c 1000 > /dev/null; "
                          "echo ${PIPESTATUS[0]}", shell=True, capture_output=True,
                          executable="/bin/bash", timeout=120)  # fmt: skip
    assert head.stdout.decode().strip() == str(EXIT_PIPE) and b"Traceback" not in head.stderr
    out = tmp_path / "take.wav"

    def interrupt_when_running() -> None:  # the temporary output exists: the engine runs
        deadline = time.time() + 60
        while time.time() < deadline and not list(tmp_path.glob(".take.wav.*")):
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    # pytest-xdist's workers ignore SIGINT: let it raise KeyboardInterrupt here, as in a shell.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_when_running, daemon=True).start()
    try:
        run = ddsp("live", "-m", "tenor_sax", "-i", data_dir / "speech_arctic_a0001.wav", "-o",
                   out, "--pace", "realtime", "--stats-json", tmp_path / "s.json")  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, saved)
    assert run.returncode == EXIT_INTERRUPTED, run.stderr
    info = sf.info(out)
    assert 0.2 < info.duration < 3.5 and not list(tmp_path.glob(".take.wav.*"))
    assert (tmp_path / "s.json").exists()


def test_crepe_through_tflite_equals_tensorflow(crepe_tiny):
    """The shipped CREPE tiny .tflite (what live runs, in LiteRT) against the TF network."""
    from ddspcli.engine import features
    from ddspcli.engine._tensorflow import tf

    crepe = features.load_tracker(crepe_tiny)
    lite = features.load_tracker(str(next((MODELS / "crepe-tiny").glob("*.tflite"))))
    frames = glide(0.3)[0][: 3 * 1024].reshape(3, 1024)
    for batch in (frames[:1], frames):  # the interpreter resizes between batch sizes
        np.testing.assert_allclose(lite.activations(batch),
                                   crepe.activations(tf.constant(batch)).numpy(), atol=1e-5)


def test_the_numpy_loudness_equals_the_engine_loudness(crepe_tiny):
    from ddspcli.engine import dsp, features

    settings = features.FeatureSettings()
    tracker = live.CausalFeatures(lambda x: x, settings, 4)
    audio = glide(0.5)[0]
    piece = audio[: 9 * 64 + 512]
    expected = dsp.compute_loudness(piece, 16000, 250, 512, center=False).numpy()
    got = tracker.loudness(piece)
    assert got.shape == expected.shape == (10,)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    np.testing.assert_allclose(tracker.loudness(np.zeros(512, np.float32)), [-80.0])


def test_live_and_transfer_share_the_runtime_convolver(reverb_model):
    """One convolver: the live engine's reverb is the runtime's `PartitionedConvolver` (the
    offline comparison above checks its output); live keeps none of its own."""
    from ddspcli.engine.graph import reverb

    _, instrument = reverb_model
    engine = live.LiveEngine(instrument, live.LiveSettings(), 320)
    assert isinstance(engine._stream.synth.streams["reverb"], reverb.PartitionedConvolver)
    assert not hasattr(live, "PartitionedConvolver")
