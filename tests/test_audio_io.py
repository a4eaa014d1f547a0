"""Audio decoding, mixing, resampling and atomic writing."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import soundfile as sf
from badaudio import bad_inputs

from ddspcli.engine import audio
from ddspcli.errors import InputError, OutputError


def stereo_sine(sr: int, seconds: float = 1.0, f: float = 1000.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    left = 0.5 * np.sin(2 * np.pi * f * t)
    return np.stack([left, 0.5 * left], axis=1).astype(np.float32)  # right at half level


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext", "sr", "tolerance"),
    [
        ("WAV", "PCM_16", "wav", 44100, 1e-3),
        ("WAV", "FLOAT", "wav", 16000, 1e-6),
        ("FLAC", "PCM_24", "flac", 22050, 1e-3),
        ("OGG", "VORBIS", "ogg", 44100, 0.05),
        ("MP3", "MPEG_LAYER_III", "mp3", 44100, 0.05),
    ],
)
def test_decode_mix_and_resample(tmp_path, fmt, subtype, ext, sr, tolerance):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, stereo_sine(sr), sr, format=fmt, subtype=subtype)
    before = path.read_bytes()
    mono, info = audio.read_audio(path, 16000)
    assert path.read_bytes() == before  # inputs are never modified
    assert info.format == fmt and info.channels == 2 and info.sample_rate == sr
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) - 16000) <= 1200  # MP3 encoders add padding frames
    assert peak_hz(mono, 16000) == pytest.approx(1000.0, abs=2.0)
    core = mono[2000:14000]
    # Mono is the channel mean: 0.5 and 0.25 amplitude -> 0.375.
    assert np.sqrt(2 * np.mean(core**2)) == pytest.approx(0.375, abs=tolerance * 2 + 2e-3)


def test_keep_channels_and_rate(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, stereo_sine(8000), 8000, subtype="FLOAT")
    data, info = audio.read_audio(path, None, mono=False)
    assert data.shape == (8000, 2) and info.sample_rate == 8000
    np.testing.assert_allclose(data, stereo_sine(8000), atol=1e-7)


@pytest.mark.parametrize("rates", [(48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000),
                                   (16000, 44100)])  # fmt: skip
@pytest.mark.parametrize("channels", [0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resample_gives_librosas_samples(rates, channels, dtype):
    """The runtime resamples with soxr directly; librosa (installed with the training extra)
    is the reference: the same samples, bit for bit, and the same length."""
    librosa = pytest.importorskip("librosa")
    orig, target = rates
    rng = np.random.default_rng(3)
    x = rng.standard_normal((orig + 37, channels) if channels else orig + 37).astype(dtype)
    want = librosa.resample(x, orig_sr=orig, target_sr=target, res_type="soxr_hq", axis=0)
    got = audio.resample(x, orig, target)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_resample_preserves_frequency_and_length():
    x = stereo_sine(48000, 2.0, 3000.0)[:, 0]
    y = audio.resample(x, 48000, 16000)
    assert len(y) == 32000
    assert peak_hz(y, 16000) == pytest.approx(3000.0, abs=1.0)


def test_bad_inputs_raise_one_clear_input_error(tmp_path):
    for path, expected in bad_inputs(tmp_path):
        with pytest.raises(InputError) as err:
            audio.read_audio(path)
        message = str(err.value)
        assert expected in message, (path, message)
        assert "\n" not in message


def test_write_wav_is_atomic_and_refuses_to_overwrite(tmp_path):
    dest = tmp_path / "out.wav"
    x = np.linspace(-1, 1, 1600, dtype=np.float32)
    assert audio.write_wav(dest, x, 16000) == 0
    y, info = audio.read_audio(dest, None)
    assert info.subtype == "PCM_16"
    np.testing.assert_allclose(y, x, atol=1 / 32768 + 1e-6)
    mode = stat.S_IMODE(os.stat(dest).st_mode)
    assert mode & 0o044  # readable by others under a normal umask, not mkstemp's 0600

    with pytest.raises(OutputError, match="already exists; pass --force"):
        audio.write_wav(dest, x * 0, 16000)
    np.testing.assert_allclose(audio.read_audio(dest, None)[0], y)  # untouched
    assert audio.write_wav(dest, x * 2, 16000, force=True) > 0  # clipped samples reported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp files left


def test_write_wav_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "out.wav"
    bad = np.array([0.0, np.inf], np.float32)
    with pytest.raises(InputError):
        audio.write_wav(dest, bad, 16000)
    with pytest.raises(OutputError, match="does not exist"):
        audio.write_wav(tmp_path / "nope" / "out.wav", np.zeros(10), 16000)
    with pytest.raises(OutputError):
        audio.write_wav(dest, np.zeros(10), 16000, subtype="NOT_A_SUBTYPE")
    assert list(tmp_path.iterdir()) == []


def test_write_wav_to_stdout(capfdbinary):
    audio.write_wav("-", np.zeros(160, np.float32), 16000)
    out = capfdbinary.readouterr().out
    assert out[:4] == b"RIFF" and out[8:12] == b"WAVE"
    assert len(out) == 44 + 320


def test_sniff_format():
    assert audio.sniff_format(b"RIFF\x00\x00\x00\x00WAVE") == "WAV"
    assert audio.sniff_format(b"fLaC") == "FLAC"
    assert audio.sniff_format(b"ID3\x04") == "MP3"
    assert audio.sniff_format(b"\xff\xfb\x90") == "MP3"
    assert audio.sniff_format(b"\xff\xf1\x50") == "AAC (ADTS)"
    assert audio.sniff_format(b"hello") is None
