"""Melody -> control curves (`engine/generate.py`)."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.engine import features, generate, latent
from ddspcli.errors import EXIT_INPUT, EXIT_USAGE, InputError

TINY_Z = ["--gin-param", "Autoencoder.rnn_units = 16", "--gin-param",
          "Autoencoder.n_harmonics = 8", "--gin-param", "Autoencoder.n_noise_bands = 8",
          "--gin-param", "Autoencoder.reverb_length = 0"]  # fmt: skip


def write_midi(path, events, tempo=500_000, ticks=480):
    """events: (beat_start, beats, pitch, velocity, channel)."""
    midi = mido.MidiFile(ticks_per_beat=ticks)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    timeline = []
    for start, beats, pitch, velocity, channel in events:
        timeline.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity,
                                                channel=channel)))  # fmt: skip
        timeline.append((start + beats, 0, mido.Message("note_off", note=pitch, channel=channel)))
    now = 0.0
    for when, _, message in sorted(timeline, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=round((when - now) * ticks)))
        now = when
    midi.save(path)
    return path


def test_three_notes_at_120_bpm(tmp_path):
    path = write_midi(tmp_path / "m.mid", [(0, 1, 60, 100, 0), (1, 1, 64, 80, 0),
                                           (2.5, 0.5, 67, 120, 0), (0, 4, 36, 100, 9)])  # fmt: skip
    notes = generate.read_midi(str(path))
    assert [(n.pitch, n.velocity) for n in notes] == [(60, 100), (64, 80), (67, 120)]
    np.testing.assert_allclose([(n.start_s, n.end_s) for n in notes],
                               [(0, 0.5), (0.5, 1.0), (1.25, 1.5)], atol=1e-6)  # fmt: skip


def test_overlaps_resolve_by_last_note_priority():
    notes = [generate.Note(0.0, 1.0, 60, 90), generate.Note(0.5, 1.5, 64, 90),
             generate.Note(2.0, 3.0, 67, 90)]  # fmt: skip
    mono, cut = generate.monophonic(notes)
    assert cut == 1
    assert [(n.start_s, n.end_s, n.pitch) for n in mono] == [
        (0.0, 0.5, 60), (0.5, 1.5, 64), (2.0, 3.0, 67)]  # fmt: skip


def test_empty_and_drum_only_files_are_refused(tmp_path):
    drums = write_midi(tmp_path / "d.mid", [(0, 1, 36, 100, 9), (1, 1, 38, 100, 9)])
    with pytest.raises(InputError, match="only drum notes"):
        generate.read_midi(str(drums))
    empty = write_midi(tmp_path / "e.mid", [])
    with pytest.raises(InputError, match="no notes"):
        generate.read_midi(str(empty))
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    with pytest.raises(InputError, match="cannot read MIDI"):
        generate.read_midi(str(tmp_path / "bad.mid"))


def test_curves_follow_the_notes_with_envelopes():
    notes = [generate.Note(0.2, 0.7, 69, 127), generate.Note(0.7, 1.0, 57, 1)]
    quantiles = list(np.linspace(-30.0, -10.0, 101))
    c = generate.note_curves(notes, 250, quantiles, attack_s=0.04, release_s=0.1,
                             vibrato_cents=0.0, tail_s=0.5)  # fmt: skip
    t = np.arange(len(c["f0_hz"])) / 250
    assert len(t) == int(np.ceil(1.5 * 250)) + 1
    np.testing.assert_allclose(c["f0_hz"][(t >= 0.2) & (t < 0.7)], 440.0, rtol=1e-6)
    np.testing.assert_allclose(c["f0_hz"][t >= 0.7], 220.0, rtol=1e-6)
    np.testing.assert_allclose(c["f0_hz"][t < 0.2], 440.0, rtol=1e-6)  # held before the first
    # velocity 127 -> the loudest quantile; velocity 1 -> the 25th percentile
    assert c["loudness_db"][np.searchsorted(t, 0.5)] == pytest.approx(-10.0, abs=1e-4)
    assert c["loudness_db"][np.searchsorted(t, 0.9)] == pytest.approx(-25.0, abs=1e-4)
    assert c["loudness_db"][0] == pytest.approx(generate.SILENCE_DB)
    # the attack: half the peak amplitude 20 ms after the onset (-6 dB); silent after release
    half = c["loudness_db"][np.searchsorted(t, 0.22)]
    assert half == pytest.approx(-10.0 + 20 * np.log10(0.5), abs=0.2)
    assert c["loudness_db"][t > 1.11].max() == pytest.approx(generate.SILENCE_DB)
    vib = generate.note_curves(notes, 250, quantiles, vibrato_cents=30.0, vibrato_hz=5.0)
    cents = 1200 * np.log2(vib["f0_hz"][(t > 0.3) & (t < 0.7)] / 440.0)
    assert cents.max() == pytest.approx(30.0, abs=1.0) and cents.min() == pytest.approx(-30, abs=1)


# ---------------------------------------------------------------------------------------------
# Profiles (CSV).


def test_profile_curves_interpolate_pitch_and_loudness(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("f0_hz,time_s,loudness_db,comment\n220,0.0,-30,a\n440,1.0,-10,b\n")
    c = generate.profile_curves(generate.read_profile(str(path)), 250)
    assert len(c["f0_hz"]) == 251
    # half-way in time is half-way in pitch (311.1 Hz = 220 * 2 ** 0.5) and in dB
    assert c["f0_hz"][125] == pytest.approx(220 * 2**0.5, rel=1e-5)
    assert c["loudness_db"][125] == pytest.approx(-20.0, abs=1e-4)
    assert c["f0_hz"][-1] == pytest.approx(440.0) and (c["f0_confidence"] == 1).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time_s,f0_hz\n0,220\n", "lacks column(s) loudness_db"),
        ("time_s,f0_hz,loudness_db\n0,220,-20\n0.5,nan,-20\n", "row 3: f0_hz is 'nan'"),
        ("time_s,f0_hz,loudness_db\n0,220,-20\n0.5,,-20\n", "row 3: f0_hz is 'empty'"),
        ("time_s,f0_hz,loudness_db\n0,-220,-20\n", "row 2: f0_hz is -220"),
        (
            "time_s,f0_hz,loudness_db\n0,220,-20\n1,230,-20\n0.5,240,-20\n",
            "row 4: time_s 0.5 does not come after 1",
        ),
        ("time_s,f0_hz,loudness_db\n", "no rows"),
        ("", "is empty"),
    ],
)
def test_bad_profiles_are_refused_with_the_row(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        generate.read_profile(str(path))
    assert message in str(err.value)


def test_generate_command_refuses_bad_inputs(tone_model, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,f0_hz,loudness_db\n0,220,-20\n0.5,-3,-20\n")
    run = ddsp("generate", "--model", str(tone_model["run"]), "--profile", str(bad),
               "-o", str(tmp_path / "x.wav"))  # fmt: skip
    lines = run.stderr.decode().strip().splitlines()
    assert run.returncode == EXIT_INPUT and len(lines) == 1 and "row 3" in lines[0], lines
    drums = write_midi(tmp_path / "d.mid", [(0, 1, 36, 100, 9)])
    run = ddsp("generate", "--model", str(tone_model["run"]), "--midi", str(drums),
               "-o", str(tmp_path / "x.wav"))  # fmt: skip
    assert run.returncode == EXIT_INPUT and "only drum notes" in run.stderr.decode()
    both = ddsp("generate", "--model", str(tone_model["run"]), "--midi", str(drums),
                "--profile", str(bad))  # fmt: skip
    assert both.returncode == EXIT_USAGE and "exactly one" in both.stderr.decode()
    assert not (tmp_path / "x.wav").exists()


# ---------------------------------------------------------------------------------------------
# The command, end to end.


def onsets(audio: np.ndarray, sample_rate: int, floor_db: float = -20.0) -> np.ndarray:
    """Times (s) where a 10 ms RMS envelope (1 ms grid, centred) rises through `floor_db`
    below its peak after at least 50 ms under it."""
    power = np.convolve(
        audio.astype(np.float64) ** 2, np.ones(sample_rate // 100) / (sample_rate // 100), "same"
    )
    env = 10 * np.log10(np.maximum(power[:: sample_rate // 1000], 1e-18))
    above = env > env.max() + floor_db
    quiet_before = np.convolve(~above, np.ones(50), "full")[: len(above)] >= 50
    rising = np.flatnonzero(above[1:] & quiet_before[:-1]) + 1
    return rising / 1000.0


def test_generate_plays_a_midi_melody_on_pitch_and_on_time(tone_model, tmp_path, crepe_weights):
    # 3 notes at 120 bpm with rests between them: A3, D4, G4 (220, 293.7, 392 Hz).
    midi = write_midi(tmp_path / "m.mid", [(0.5, 0.8, 57, 100, 0), (1.5, 0.8, 62, 90, 0),
                                           (2.5, 0.8, 67, 110, 0)])  # fmt: skip
    out = tmp_path / "m.wav"
    run = ddsp("generate", "--model", str(tone_model["run"]), "--midi", str(midi),
               "-o", str(out), "--attack", "0.01", "--release", "0.05", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    summary = json.loads(run.stdout)
    assert summary["notes"] == 3 and summary["cut_notes"] == 0
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and np.isfinite(audio).all()
    assert len(audio) == 539 * 64  # frames to 1.65 s (the last note's end) + 0.5 s tail, + 1
    starts = np.array([0.25, 0.75, 1.25])  # beats 0.5, 1.5, 2.5 at 0.5 s per beat
    found = onsets(audio, rate)
    assert len(found) == 3, found
    np.testing.assert_allclose(found, starts, atol=0.020)
    settings = features.FeatureSettings(pitch_model="tiny", pitch_hop_ms=4.0)
    got = features.compute_features(audio, str(crepe_weights("tiny")), settings)
    t = np.arange(len(got["f0_hz"])) / 250
    for start, pitch in zip(starts, (57, 62, 67), strict=True):
        held = (t > start + 0.06) & (t < start + 0.36)  # the held part of each 0.4 s note
        cents = 1200 * np.log2(got["f0_hz"][held] / (440 * 2 ** ((pitch - 69) / 12)))
        assert np.median(np.abs(cents)) < 30 and np.mean(np.abs(cents) < 30) > 0.9, (pitch, cents)


def test_generate_from_a_profile_on_stdin_to_stdout(tone_model, tmp_path):
    csv_text = b"time_s,f0_hz,loudness_db\n0,300,-40\n0.2,300,-15\n0.8,330,-15\n1.0,330,-60\n"
    run = ddsp("-q", "generate", "--model", str(tone_model["run"]), "--profile", "-", "-o", "-",
               stdin=csv_text)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    path = tmp_path / "out.wav"
    path.write_bytes(run.stdout)
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and len(audio) == 251 * 64
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01


def test_z_model_gets_a_mixture_and_generates_repeatably(tone_model, tmp_path):
    run_dir = tmp_path / "z"
    fit = ddsp("-q", "fit", str(tone_model["tones"]), "-o", str(run_dir), "--variant", "tiny",
               "--z", "--steps", "2", "--batch-size", "2", *TINY_Z)  # fmt: skip
    assert fit.returncode == 0, fit.stderr.decode()
    mixture = latent.Mixture.load(run_dir / latent.MIXTURE_FILE)
    assert mixture.dims == 16 and 1 <= mixture.components <= latent.MAX_COMPONENTS
    assert mixture.weights.sum() == pytest.approx(1.0)
    a, b = mixture.sample(500, 250, seed=3), mixture.sample(500, 250, seed=3)
    assert a.shape == (500, 16) and np.array_equal(a, b)
    assert not np.array_equal(a, mixture.sample(500, 250, seed=4))
    midi = write_midi(tmp_path / "m.mid", [(0, 1, 60, 100, 0)])
    outs = []
    for name, extra in (("a", []), ("b", []), ("mean", ["--z-mode", "mean"])):
        out = tmp_path / f"{name}.wav"
        run = ddsp("-q", "generate", "--model", str(run_dir), "--midi", str(midi), "-o", str(out),
                   "--seed", "7", *extra)  # fmt: skip
        assert run.returncode == 0, run.stderr.decode()
        outs.append(sf.read(out, dtype="float32")[0])
    assert np.array_equal(outs[0], outs[1]) and np.isfinite(outs[0]).all()
    assert not np.array_equal(outs[0], outs[2])


def test_mixture_is_chosen_by_bic_and_samples_follow_it():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-3, 0.5, (2000, 2)), rng.normal(3, 0.5, (2000, 2))])
    mixture = latent.fit_mixture(z, max_components=4, seed=0)
    assert mixture.components == 2 and int(np.argmin(mixture.bic)) == 1
    np.testing.assert_allclose(np.sort(mixture.means[:, 0]), [-3, 3], atol=0.1)
    path_z = mixture.sample(20000, 250, seed=1, segment_s=2.0, smooth_s=0.25)
    # away from the crossfades between segments (every 500 frames, ~+-60 frames wide), every
    # frame lies near one of the two clusters with the cluster's spread
    away = np.abs((np.arange(20000) + 250) % 500 - 250) > 70
    near = np.min(np.abs(path_z[:, :1] - mixture.means[:, 0][None]), axis=1)
    assert np.mean(near[away] < 1.5) > 0.99
    assert path_z[away, 1].std() == pytest.approx(3.0, rel=0.15)  # +-3 means, spread 0.5
    steps = np.abs(np.diff(path_z, axis=0))
    assert np.median(steps) < 0.1  # smooth in time (independent draws would step ~0.4)
