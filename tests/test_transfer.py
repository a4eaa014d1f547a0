"""`ddsp transfer` and its engine: adjustments, block-by-block rendering, the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from clirun import ddsp
from toneset import tone, write_tone_dataset

from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import dsp, features, streaming, train
from ddspcli.engine import model as model_lib
from ddspcli.errors import EXIT_MODEL, EXIT_OUTPUT, EXIT_USAGE

SR, HOP = 16000, 64


def melody_f0() -> np.ndarray:
    """Frame-rate f0 (Hz, 0 = rest) of a 3 s test phrase inside the tone model's range."""
    parts = [
        np.full(250, 330.0),
        np.geomspace(300.0, 400.0, 250),
        np.zeros(63),
        np.full(187, 280.0),
    ]
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture(scope="module")
def phrase(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A WAV of harmonic tones following `melody_f0` and the f0 per frame."""
    f0 = melody_f0()
    rng = np.random.default_rng(1)
    audio = tone(np.where(f0 > 0, f0, 300.0), SR, HOP, rng) * 2.0
    audio[np.repeat(f0 == 0, HOP)] = 0.0
    path = tmp_path_factory.mktemp("phrase") / "phrase.wav"
    sf.write(path, audio, SR, subtype="FLOAT")
    return path, f0


def measured_f0(audio: np.ndarray, weights: Path) -> tuple[np.ndarray, np.ndarray]:
    settings = features.FeatureSettings(pitch_model="tiny", pitch_hop_ms=4.0)
    got = features.compute_features(audio, str(weights), settings)
    return got["f0_hz"], got["f0_confidence"]


def steady_frames(f0: np.ndarray, margin: int = 12) -> np.ndarray:
    """Voiced frames at least `margin` frames (48 ms) away from any onset or offset."""
    voiced = f0 > 0
    keep = voiced.copy()
    for shift in range(1, margin + 1):
        keep[shift:] &= voiced[:-shift]
        keep[:-shift] &= voiced[shift:]
    keep[:margin] = False
    return keep


def cents_off(out_f0: np.ndarray, target: np.ndarray, frames: np.ndarray) -> np.ndarray:
    n = min(len(out_f0), len(target), len(frames))
    frames = frames[:n]
    return 1200.0 * np.log2(np.maximum(out_f0[:n][frames], 1e-3) / target[:n][frames])


# ---------------------------------------------------------------------------------------------
# Adjustments (pure functions).


def test_octave_shift_and_loudness_quantile_mapping():
    f0 = np.full(1000, 110.0, np.float32)  # MIDI 45
    notes = np.ones(1000, bool)
    notes[:100] = False
    assert adjust_lib.octave_shift_towards(f0, notes, 69.0) == 2  # 24 semitones is nearest
    assert adjust_lib.octave_shift_towards(f0, np.zeros(1000, bool), 69.0) == 0
    rng = np.random.default_rng(0)
    loudness = rng.normal(-30, 5, 1000).astype(np.float32)
    target = np.quantile(rng.normal(-10, 2, 5000), np.linspace(0, 1, 101))
    mapped = adjust_lib.match_loudness(loudness, notes, target.tolist(), quiet_db=20.0)
    # The note-on frames now have the target's distribution (their quantiles are the target's).
    np.testing.assert_allclose(
        np.quantile(mapped[notes], np.linspace(0, 1, 101)), target, atol=0.05
    )
    # Frames without notes keep their order relative to the notes' range and drop 20 dB.
    lowest = loudness[notes].min()
    below = ~notes & (loudness < lowest)
    np.testing.assert_allclose(
        mapped[below], target[0] + loudness[below] - lowest - 20.0, atol=1e-4
    )


def test_pitch_shift_clips_to_the_model_range_and_keeps_rests():
    limits = adjust_lib.f0_limits(16000)
    assert limits == pytest.approx((8.1758, 8000.0), rel=1e-4)
    f0 = np.array([0.0, 100.0, 3000.0], np.float32)
    np.testing.assert_allclose(adjust_lib.shift_pitch(f0, 12.0, limits), [0.0, 200.0, 6000.0])
    np.testing.assert_allclose(adjust_lib.shift_pitch(f0, 24.0, limits), [0.0, 400.0, 8000.0])
    np.testing.assert_allclose(adjust_lib.shift_pitch(f0, -7.0, limits)[1], 100 * 2 ** (-7 / 12))


def test_autotune_finds_tuning_and_scale_and_snaps_by_amount():
    # A D major melody (D E F# G A B C#) played 30 cents sharp with a small wobble.
    notes_midi = np.repeat([62, 64, 66, 67, 69, 71, 73, 74], 100).astype(float)
    wobble = 0.15 * np.sin(np.arange(len(notes_midi)) / 7.0)
    f0 = adjust_lib.midi_to_hz(notes_midi + 0.3 + wobble).astype(np.float32)
    on = np.ones(len(f0), bool)
    snapped, tuning, root = adjust_lib.autotune(f0, on, 1.0)
    assert tuning == pytest.approx(0.3, abs=0.03)
    assert adjust_lib.scale_name(root) == "D major / B minor"
    np.testing.assert_allclose(adjust_lib.hz_to_midi(snapped), notes_midi + tuning, atol=1e-3)
    half, _, _ = adjust_lib.autotune(f0, on, 0.5)
    np.testing.assert_allclose(
        adjust_lib.hz_to_midi(half), notes_midi + tuning + 0.5 * (0.3 - tuning + wobble), atol=1e-3
    )
    unchanged, _, _ = adjust_lib.autotune(f0, on, 0.0)
    np.testing.assert_allclose(unchanged, f0, rtol=1e-6)
    with pytest.raises(ValueError):
        adjust_lib.autotune(f0, on, 1.5)


def test_adjust_reports_and_orders_the_steps():
    n = 500
    feats = {
        "f0_hz": np.full(n, 110.0, np.float32),
        "f0_confidence": np.r_[np.zeros(50), np.ones(n - 50)].astype(np.float32),
        "loudness_db": np.full(n, -30.0, np.float32),
    }
    stats = {"mean_pitch": 69.0, "loudness_quantiles": list(np.linspace(-20, -5, 101))}
    settings = adjust_lib.Adjustments(octaves=-1, semitones=2.0, loudness_shift_db=3.0)
    out, report = adjust_lib.adjust(feats, stats, settings, adjust_lib.f0_limits(SR))
    assert report["auto_octaves"] == 2 and report["semitones"] == 14.0
    np.testing.assert_allclose(out["f0_hz"][100], 110.0 * 2 ** (14 / 12), rtol=1e-5)
    assert report["note_fraction"] == pytest.approx(0.9, abs=0.01)
    # Without statistics there is no auto-adjust: only the requested shifts.
    out, report = adjust_lib.adjust(feats, {}, settings, adjust_lib.f0_limits(SR))
    assert not report["auto_adjusted"] and report["semitones"] == -10.0
    np.testing.assert_allclose(out["loudness_db"], -27.0)


def test_peak_gain():
    x = np.array([0.0, 0.5, -2.0], np.float32)
    assert adjust_lib.peak_gain(x, -1.0, False) == pytest.approx(10 ** (-1 / 20) / 2.0)
    assert adjust_lib.peak_gain(x * 0.1, -1.0, False) == 1.0
    assert adjust_lib.peak_gain(x * 0.1, -1.0, True) == pytest.approx(10 ** (-1 / 20) / 0.2)
    assert adjust_lib.peak_gain(np.zeros(4), -1.0, True) == 1.0


# ---------------------------------------------------------------------------------------------
# Block-by-block rendering.


def test_blocked_rendering_equals_one_shot_rendering():
    config = model_lib.config_text(
        "tiny", [], ["Autoencoder.n_noise_bands = 200", "Autoencoder.reverb_length = 3000"], False
    )
    model = model_lib.build_model(config)
    rng = np.random.default_rng(0)
    # An audible reverb, so that its carried tail matters.
    model.reverb.ir.assign(
        rng.normal(0, 0.05, 3000).astype(np.float32) * np.exp(-np.arange(3000) / 600)
    )
    n_frames = 433
    feats = {
        "f0_hz": (220 * 2 ** np.cumsum(rng.normal(0, 0.01, n_frames))).astype(np.float32),
        "loudness_db": (-30 + 10 * np.sin(np.arange(n_frames) / 20)).astype(np.float32),
    }
    white = dsp.white_noise(7, 0, n_frames * HOP)[None]
    one_shot = model({k: tf.constant(v[None]) for k, v in feats.items()}, white=white)
    parts = ("audio", "harmonic", "noise", "dry")
    for block in (2, 37, 250, 1000):
        out = streaming.StreamRenderer(model, seed=7, block_frames=block).render(feats, None, parts)
        for part in parts:
            reference = one_shot[part][0].numpy()
            assert out[part].shape == reference.shape
            np.testing.assert_allclose(out[part], reference, atol=1e-4 * np.abs(reference).max())
        # No discontinuity: the largest sample-to-sample step across a block boundary is no
        # larger than the largest step elsewhere.
        steps = np.abs(np.diff(out["audio"]))
        boundaries = np.arange(block, n_frames, block) * HOP - 1
        if boundaries.size:
            assert steps[boundaries].max() <= np.delete(steps, boundaries).max()
    assert np.abs(one_shot["audio"] - one_shot["dry"]).max() > 1e-3  # the reverb is audible
    assert streaming.StreamRenderer(model).lag == 2  # the noise filter needs 2 frames ahead


def test_white_noise_stream_is_independent_of_the_split():
    whole = dsp.white_noise(3, 0, 200_000)
    pieces = np.concatenate(
        [dsp.white_noise(3, a, b - a) for a, b in ((0, 1), (1, 65537), (65537, 200_000))]
    )
    np.testing.assert_array_equal(whole, pieces)
    assert whole.min() >= -1.0 and whole.max() < 1.0 and abs(whole.mean()) < 0.01


# ---------------------------------------------------------------------------------------------
# The command, with the tiny tone model trained in the session.


def test_transfer_follows_the_input_pitch_an_octave_up(tone_model, phrase, tmp_path, crepe_weights):
    wav, f0 = phrase
    out = tmp_path / "up.wav"
    plot = tmp_path / "up.png"
    run = ddsp("transfer", str(wav), "--model", str(tone_model["run"]), "--octave", "1",
               "-o", str(out), "--plot", str(plot), "--stems", str(tmp_path / "stems"),
               "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    [summary] = json.loads(run.stdout)  # a list, one object per input
    assert summary["adjustments"]["auto_octaves"] == 0 and summary["adjustments"]["semitones"] == 12
    audio, rate = sf.read(out, dtype="float32")
    source, _ = sf.read(wav, dtype="float32")
    assert rate == SR and len(audio) == len(source)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    out_f0, _ = measured_f0(audio, crepe_weights("tiny"))
    cents = cents_off(out_f0, 2.0 * f0, steady_frames(f0))
    assert np.mean(np.abs(cents) < 50) >= 0.9, np.percentile(np.abs(cents), [50, 90])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stems = {p: sf.read(tmp_path / "stems" / f"phrase.run.{p}.wav", dtype="float32")[0]
             for p in ("harmonic", "noise")}  # fmt: skip
    np.testing.assert_allclose(stems["harmonic"] + stems["noise"], audio, atol=2 / 32768)


def test_semitone_and_loudness_shifts_move_the_output(tone_model, phrase, tmp_path, crepe_weights):
    wav, f0 = phrase
    common = ["transfer", str(wav), "--model", str(tone_model["run"])]
    results = {}
    for name, extra in (("base", []), ("down", ["--semitones", "-3"]),
                        ("soft", ["--loudness-shift", "-12"])):  # fmt: skip
        out = tmp_path / f"{name}.wav"
        run = ddsp(*common, *extra, "-o", str(out))
        assert run.returncode == 0, run.stderr.decode()
        results[name] = sf.read(out, dtype="float32")[0]
    frames = steady_frames(f0)
    base_f0, _ = measured_f0(results["base"], crepe_weights("tiny"))
    down_f0, _ = measured_f0(results["down"], crepe_weights("tiny"))
    assert np.mean(np.abs(cents_off(base_f0, f0, frames)) < 50) >= 0.9
    shift = np.median(cents_off(down_f0, base_f0, frames))
    assert shift == pytest.approx(-300, abs=25)
    settings = features.FeatureSettings()
    loud = {k: features.compute_loudness(v, settings) for k, v in results.items()}
    n = min(len(frames), len(loud["base"]))
    drop = np.median(loud["base"][:n][frames[:n]] - loud["soft"][:n][frames[:n]])
    assert 6.0 <= drop <= 18.0, drop


def test_stdin_to_stdout_round_trip_equals_the_file_route(tone_model, phrase, tmp_path):
    wav, _ = phrase
    model = str(tone_model["run"])
    piped = ddsp("-q", "transfer", "-", "--model", model, "-o", "-", stdin=wav.read_bytes())
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stderr == b""  # quiet: nothing but data
    (tmp_path / "piped.wav").write_bytes(piped.stdout)
    default = wav.parent / "phrase.run.wav"  # the default name, beside the input
    run = ddsp("-q", "transfer", str(wav), "--model", model)
    assert run.returncode == 0, run.stderr.decode()
    a, rate_a = sf.read(tmp_path / "piped.wav", dtype="int16")
    b, rate_b = sf.read(default, dtype="int16")
    assert rate_a == rate_b == SR
    np.testing.assert_array_equal(a, b)
    # The existing default output is protected; --force overwrites it.
    before = default.read_bytes()
    again = ddsp("transfer", str(wav), "--model", model, "--semitones", "2")
    assert again.returncode == EXIT_OUTPUT
    assert "already exists" in again.stderr.decode() and "--force" in again.stderr.decode()
    assert default.read_bytes() == before
    forced = ddsp("-q", "transfer", str(wav), "--model", model, "--semitones", "2", "--force")
    assert forced.returncode == 0 and default.read_bytes() != before


def test_saved_features_reproduce_the_output_and_resampling(tone_model, phrase, tmp_path):
    wav, _ = phrase
    model = str(tone_model["run"])
    npz = tmp_path / "adjusted.npz"
    first = ddsp("-q", "transfer", str(wav), "--model", model, "--octave", "1",
                 "--save-features", str(npz), "-o", str(tmp_path / "a.wav"))  # fmt: skip
    assert first.returncode == 0, first.stderr.decode()
    # The saved features are already adjusted: reuse them as they are.
    second = ddsp("-q", "transfer", "--features", str(npz), "--model", model, "--no-auto-adjust",
                  "-o", str(tmp_path / "b.wav"), "--sample-rate", "44100")  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    a, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    b, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    assert rate == 44100 and abs(len(b) - len(a) * 44100 / SR) <= 1
    back = dsp_resample(b, 44100, SR)[: len(a)]
    assert np.corrcoef(a[1000:-1000], back[1000:-1000])[0, 1] > 0.99


def dsp_resample(x: np.ndarray, a: int, b: int) -> np.ndarray:
    from ddspcli.engine import audio

    return audio.resample(x, a, b)


def test_no_voiced_frames_warn_and_write_silence(tone_model, tmp_path):
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, SR).astype(np.float32)
    wav = tmp_path / "noise.wav"
    sf.write(wav, noise, SR)
    run = ddsp(
        "transfer", str(wav), "--model", str(tone_model["run"]), "-o", str(tmp_path / "o.wav")
    )
    assert run.returncode == 0, run.stderr.decode()
    assert "no notes found" in run.stderr.decode()
    out, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    assert len(out) == len(noise) and np.abs(out).max() < 1e-3


def test_broken_model_directories_are_refused(tone_model, phrase, tmp_path):
    wav, _ = phrase
    for damage in ("missing", "corrupt"):
        broken = tmp_path / damage
        shutil.copytree(tone_model["run"], broken)
        info = json.loads((broken / "model.json").read_text())
        data_file = next((broken / info["checkpoint"]).parent.glob("*.data-*"))
        if damage == "missing":
            data_file.unlink()
        else:
            data_file.write_bytes(data_file.read_bytes()[:100])
        run = ddsp("transfer", str(wav), "--model", str(broken), "-o", str(tmp_path / "x.wav"))
        assert run.returncode == EXIT_MODEL, run.stderr.decode()
        lines = run.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "checkpoint" in lines[0] and "unreadable" in lines[0]
        assert not (tmp_path / "x.wav").exists()
    run = ddsp("transfer", str(wav), "--model", str(tmp_path / "nowhere"), "-o", "x.wav")
    assert run.returncode == EXIT_MODEL and "does not exist" in run.stderr.decode()
    run = ddsp("transfer", str(wav), "--model", "no-such-model", "-o", "x.wav")
    assert run.returncode == EXIT_MODEL and "unknown model" in run.stderr.decode()


def test_a_model_at_another_sample_rate_gets_features_at_its_rate(phrase, tmp_path):
    tones = write_tone_dataset(tmp_path / "tones32", n_train=4, n_eval=1, sample_rate=32000)
    settings = train.TrainSettings(steps=2, batch_size=2, checkpoint_every=2)
    params = ["Autoencoder.sample_rate = 32000", "Autoencoder.rnn_units = 16",
              "Autoencoder.n_harmonics = 8", "Autoencoder.n_noise_bands = 8",
              "Autoencoder.reverb_length = 0"]  # fmt: skip
    trainer, _ = train.open_run(
        tmp_path / "r32", str(tones), settings, variant="tiny", gin_params=params, steps_given=True
    )
    train.fit(trainer, lambda s: None, lambda: False)
    wav, _ = phrase
    out = tmp_path / "o32.wav"
    run = ddsp("transfer", str(wav), "--model", str(tmp_path / "r32"), "-o", str(out), "--json")
    assert run.returncode == 0, run.stderr.decode()
    audio, rate = sf.read(out, dtype="float32")
    source, _ = sf.read(wav, dtype="float32")
    assert rate == 32000 and len(audio) == 2 * len(source)
    assert np.isfinite(audio).all()
    assert json.loads(run.stdout)[0]["adjustments"]["note_fraction"] > 0.5  # pitch was tracked


def test_a_folder_of_inputs_goes_to_out_dir(tone_model, phrase, tmp_path):
    wav, _ = phrase
    takes = tmp_path / "takes"
    takes.mkdir()
    data, rate = sf.read(wav, dtype="float32")
    sf.write(takes / "a.wav", data[: rate // 2], rate)
    sf.write(takes / "b.flac", data[rate // 2 : 2 * rate], rate)
    refused = ddsp("transfer", str(takes), "--model", str(tone_model["run"]), "-o", "x.wav")
    assert refused.returncode == EXIT_USAGE and "--out-dir" in refused.stderr.decode()
    run = ddsp("transfer", str(takes), "--model", str(tone_model["run"]),
               "--out-dir", str(tmp_path / "out"), "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    summaries = json.loads(run.stdout)
    assert [Path(s["output"]).name for s in summaries] == ["a.run.wav", "b.run.wav"]
    for name, n in (("a.run.wav", rate // 2), ("b.run.wav", 3 * rate // 2)):
        out, out_rate = sf.read(tmp_path / "out" / name, dtype="float32")
        assert out_rate == SR and len(out) == n


def test_a_z_model_trains_and_transfers_with_the_audio(tone_model, phrase, tmp_path):
    wav, _ = phrase
    settings = train.TrainSettings(steps=2, batch_size=2, checkpoint_every=2)
    params = ["Autoencoder.rnn_units = 16", "Autoencoder.n_harmonics = 8",
              "Autoencoder.n_noise_bands = 8", "Autoencoder.reverb_length = 0"]  # fmt: skip
    trainer, _ = train.open_run(
        tmp_path / "z",
        str(tone_model["tones"]),
        settings,
        variant="tiny",
        gin_params=params,
        z=True,
        steps_given=True,
    )
    assert train.fit(trainer, lambda s: None, lambda: False) == "done"
    loaded = model_lib.load_model_dir(str(tmp_path / "z"))
    assert loaded.model.encoder is not None and loaded.info["z_dims"] == 16
    npz = tmp_path / "f.npz"
    run = ddsp("-q", "transfer", str(wav), "--model", str(tmp_path / "z"), "-o",
               str(tmp_path / "z.wav"), "--save-features", str(npz))  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    audio, rate = sf.read(tmp_path / "z.wav", dtype="float32")
    assert rate == SR and len(audio) == len(sf.read(wav)[0]) and np.isfinite(audio).all()
    # Features alone are not enough for a z model: it encodes the audio too.
    alone = ddsp("transfer", "--features", str(npz), "--model", str(tmp_path / "z"),
                 "-o", str(tmp_path / "z2.wav"))  # fmt: skip
    assert alone.returncode == 3 and "z encoder" in alone.stderr.decode()
