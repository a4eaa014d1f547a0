"""DSP core against analytic expectations (no reference library involved)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from ddspcli.engine import dsp, losses, synths

SR = 16000


def spectrum_db(x: np.ndarray) -> np.ndarray:
    """Blackman-Harris windowed magnitude spectrum in dB re the strongest bin (1 Hz bins/s)."""
    window = scipy.signal.get_window("blackmanharris", len(x))
    mag = np.abs(np.fft.rfft(x * window))
    return 20 * np.log10(mag / mag.max() + 1e-20)


def constant_controls(n_frames: int, f0: float, amp: float, weights: list[float]):
    f0_hz = np.full([1, n_frames, 1], f0, np.float32)
    amps = np.full([1, n_frames, 1], amp, np.float32)
    dist = np.tile(np.asarray(weights, np.float32), [1, n_frames, 1])
    return amps, dist, f0_hz


def test_harmonic_tone_peaks_at_multiples_of_f0():
    synth = synths.Harmonic(SR, SR, scale_fn=None)
    audio = synth(*constant_controls(250, 440.0, 1.0, [1.0] * 10)).numpy()[0]
    spec = spectrum_db(audio)  # 1 s -> 1 Hz per bin
    peaks, _ = scipy.signal.find_peaks(spec, height=-40)
    assert len(peaks) == 10
    np.testing.assert_allclose(peaks, 440 * np.arange(1, 11), atol=1)


def test_harmonics_at_or_above_nyquist_are_silenced_and_renormalised():
    # f0 3 kHz, 5 harmonics: 9, 12 and 15 kHz would alias to 7, 4 and 1 kHz.
    synth = synths.Harmonic(SR, SR, scale_fn=None)
    controls = synth.get_controls(*constant_controls(250, 3000.0, 1.0, [1.0] * 5))
    np.testing.assert_allclose(
        controls["harmonic_distribution"].numpy()[0, 0], [0.5, 0.5, 0, 0, 0], atol=1e-7
    )
    audio = synth.get_signal(**controls)[0].numpy()[0]
    spec = spectrum_db(audio)
    assert spec[3000] > -1 and spec[6000] > -1  # equal levels: both near the maximum
    for alias in (1000, 4000, 7000):
        assert spec[alias - 5 : alias + 6].max() < -100, alias
    # Amplitude of each kept harmonic is 0.5 (a sinusoid's peak amplitude).
    mid = audio[4000:12000]
    for f in (3000, 6000):
        ref = np.exp(-2j * np.pi * f * np.arange(len(mid)) / SR)
        assert abs(2 * np.mean(mid * ref)) == pytest.approx(0.5, abs=1e-3)


def test_oscillator_bank_silences_frequencies_at_or_above_nyquist():
    n = 1600
    freqs = np.tile(np.array([1000.0, 8000.0, 9000.0], np.float32), [1, n, 1])
    audio, _ = dsp.oscillator_bank(freqs, np.ones_like(freqs), SR)
    expected = np.sin(2 * np.pi * 1000.0 * np.arange(1, n + 1) / SR)
    np.testing.assert_allclose(audio.numpy()[0], expected, atol=1e-4)


@pytest.mark.parametrize("method", ["linear", "window"])
def test_amplitude_envelope_is_followed(method):
    n_frames = 250
    ramp = np.linspace(0.0, 1.0, n_frames, dtype=np.float32)[None, :, None]
    _, dist, f0 = constant_controls(n_frames, 1000.0, 1.0, [1.0])
    synth = synths.Harmonic(SR, SR, scale_fn=None, amp_resample_method=method)
    audio = synth.get_signal(ramp, dist, f0)[0].numpy()[0]
    envelope = np.abs(scipy.signal.hilbert(audio))
    expected = np.interp(np.arange(SR) / 64.0, np.arange(n_frames), ramp[0, :, 0])
    core = slice(800, SR - 800)  # Hilbert transform edge effects
    np.testing.assert_allclose(envelope[core], expected[core], atol=0.01)


def test_window_upsampling_keeps_constants_and_hits_frame_values():
    x = np.random.default_rng(0).uniform(0, 1, [2, 10, 3]).astype(np.float32)
    up = dsp.upsample_with_windows(x, 640).numpy()
    assert up.shape == (2, 640, 3)
    np.testing.assert_allclose(up[:, ::64, :], x, atol=1e-6)  # window peaks on frame starts
    const = dsp.upsample_with_windows(np.full([1, 5, 1], 0.3, np.float32), 320).numpy()
    np.testing.assert_allclose(const, 0.3, atol=1e-6)


def test_blockwise_window_sum_equals_the_upsampled_envelope_formula():
    """The fast path (two matmuls per frame block) is the envelope formula, values and grads."""
    rng = np.random.default_rng(3)
    f0 = tf.constant(rng.uniform(80, 3000, [2, 50, 1]), tf.float32)
    amps = tf.Variable(rng.uniform(0, 1, [2, 50, 1]).astype(np.float32))
    dist = tf.Variable(rng.uniform(0, 1, [2, 50, 12]).astype(np.float32))
    n = 50 * 64

    def envelope_formula():
        f0_env = dsp.resample_linear(f0, n)
        numbers = dsp.harmonic_numbers(12)
        env = dsp.upsample_with_windows(amps * dist, n)
        env = dsp.remove_above_nyquist(f0_env * numbers, env, 16000)
        phase, _ = dsp.accumulate_phase(f0_env, 16000)
        return tf.reduce_sum(env * tf.sin(phase * numbers), axis=-1)

    results = []
    for fn in (envelope_formula, lambda: dsp.harmonic_synthesis(f0, amps, dist, n, 16000)[0]):
        with tf.GradientTape() as tape:
            audio = fn()
            loss = tf.reduce_sum(audio * tf.sin(tf.range(n, dtype=tf.float32)))
        results.append([audio, *tape.gradient(loss, [amps, dist])])
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_phase_stays_accurate_for_ten_minutes():
    minutes = 10
    n_frames = 250 * 60 * minutes
    t = np.arange(n_frames) / 250.0
    f0 = (440.0 + 30.0 * np.sin(2 * np.pi * 5.0 * t)).astype(np.float32)[None, :, None]
    f0_env = dsp.resample_linear(f0, n_frames * 64)  # 9.6 M samples
    phase, _ = dsp.accumulate_phase(f0_env, SR)
    reference = np.mod(
        np.cumsum(f0_env.numpy()[0, :, 0].astype(np.float64) * 2 * np.pi / SR), 2 * np.pi
    )
    error = np.angle(np.exp(1j * (phase.numpy()[0, :, 0] - reference)))
    assert np.abs(error).max() < 1e-3
    # The test can fail: a plain float32 cumulative sum drifts by far more than 1e-3 rad.
    naive = tf.cumsum(f0_env * (2 * np.pi / SR), axis=1).numpy()[0, :, 0]
    assert np.abs(np.angle(np.exp(1j * (naive - reference)))).max() > 1e-2


def test_blocks_with_carried_phase_equal_one_shot():
    rng = np.random.default_rng(1)
    f0 = rng.uniform(200, 400, [1, 40, 1]).astype(np.float32)
    amps = np.ones([1, 40, 1], np.float32)
    dist = np.ones([1, 40, 3], np.float32) / 3
    whole, _ = dsp.harmonic_synthesis(f0, amps, dist, 40 * 64, SR, "linear")
    # Linear interpolation needs the next frame, so blocks overlap by one frame of controls.
    first, phase = dsp.harmonic_synthesis(
        f0[:, :21], amps[:, :21], dist[:, :21], 21 * 64, SR, "linear"
    )
    second, _ = dsp.harmonic_synthesis(
        f0[:, 20:],
        amps[:, 20:],
        dist[:, 20:],
        20 * 64,
        SR,
        "linear",
        initial_phase=phase - 2 * np.pi * np.float64(f0[0, 20, 0]) * 64 / SR,
    )
    joined = np.concatenate([first.numpy()[0, : 20 * 64], second.numpy()[0]])
    np.testing.assert_allclose(joined, whole.numpy()[0], atol=1e-4)


def test_filtered_noise_matches_requested_magnitude_response():
    n_bins = 65
    freqs = np.linspace(0, SR / 2, n_bins)
    target_db = -30.0 + 30.0 * np.exp(-(((freqs - 3000.0) / 1500.0) ** 2))  # a 30 dB bump
    mags = np.tile((10 ** (target_db / 20)).astype(np.float32), [1, 500, 1])
    noise = np.random.default_rng(2).uniform(-1, 1, [1, 500 * 64]).astype(np.float32)
    synth = synths.FilteredNoise(n_samples=noise.shape[1], window_size=257, scale_fn=None)
    audio = synth.get_signal(mags, noise=noise).numpy()[0]
    _, psd = scipy.signal.welch(audio, fs=SR, nperseg=128)  # 65 bins, like the filter
    expected = 10 * np.log10(2 * (1 / 3) / SR) + target_db  # uniform noise variance 1/3
    inner = slice(1, -1)  # DC and Nyquist are one-sided edge bins
    diff = 10 * np.log10(psd[inner]) - expected[inner]
    assert np.mean(np.abs(diff)) < 1.5


def test_reverb_equals_numpy_convolve():
    rng = np.random.default_rng(3)
    dry = rng.normal(size=[2, 3000]).astype(np.float32)
    ir = rng.normal(size=[2, 700]).astype(np.float32) * np.exp(-np.arange(700) / 100)
    wet = synths.Reverb(trainable=False, add_dry=True)(dry, ir.astype(np.float32)).numpy()
    for b in range(2):
        masked = ir[b].copy()
        masked[0] = 0.0  # the dry path carries the direct sound
        expected = np.convolve(dry[b], masked)[:3000] + dry[b]
        np.testing.assert_allclose(wet[b], expected, atol=2e-4)


def test_trainable_reverb_has_a_variable_of_the_right_length():
    reverb = synths.Reverb(reverb_length=1000)
    assert [v.shape.as_list() for v in reverb.trainable_variables] == [[1000]]
    out = reverb(np.zeros([3, 2000], np.float32))
    assert out.shape == (3, 2000)


def a_weighting_iec_db(f: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting, written out from the standard's formula."""
    f2 = np.asarray(f, np.float64) ** 2
    ra = (12194.0**2 * f2**2) / (
        (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    )
    return 20 * np.log10(ra) + 2.0


@pytest.mark.parametrize("amplitude", [1.0, 0.5])
def test_loudness_of_a_1khz_sine_matches_hand_computation(amplitude):
    # 1 kHz is bin 32 of a 512-point FFT at 16 kHz. A periodic Hann window puts |X| = A N / 4
    # in that bin and A N / 8 in each neighbour; A-weight each, average over the 257 bins.
    n = 512
    x = amplitude * np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR).astype(np.float32)
    loudness = dsp.compute_loudness(x, SR, 250, n_fft=n).numpy()
    bins = np.array([31, 32, 33]) * SR / n
    power = (amplitude * n / 8) ** 2 * np.array([1, 4, 1]) * 10 ** (a_weighting_iec_db(bins) / 10)
    expected = 10 * np.log10(power.sum() / (n // 2 + 1))
    assert loudness.shape == (251,)
    np.testing.assert_allclose(loudness[5:-5], expected, atol=0.02)
    if amplitude == 1.0:
        assert expected == pytest.approx(19.8, abs=0.1)


def test_loudness_of_silence_is_the_floor():
    loudness = dsp.compute_loudness(np.zeros([2, 6400], np.float32)).numpy()
    assert loudness.shape == (2, 101)
    np.testing.assert_array_equal(loudness, -80.0)


def test_spectral_loss_zero_for_identical_positive_otherwise_and_differentiable():
    rng = np.random.default_rng(4)
    target = rng.normal(size=[2, 8000]).astype(np.float32) * 0.1
    assert float(losses.spectral_loss(target, target)) == 0.0
    assert float(losses.spectral_loss(target, target * 0.5)) > 0.1

    harmonic = synths.Harmonic(n_samples=8000, sample_rate=SR)
    noise = synths.FilteredNoise(n_samples=8000)
    amps = tf.Variable(tf.zeros([2, 125, 1]))
    dist = tf.Variable(tf.zeros([2, 125, 20]))
    mags = tf.Variable(tf.zeros([2, 125, 65]))
    f0 = tf.fill([2, 125, 1], 220.0)
    with tf.GradientTape() as tape:
        audio = harmonic(amps, dist, f0) + noise(mags)
        loss = losses.spectral_loss(target, audio)
    grads = tape.gradient(loss, [amps, dist, mags])
    for grad in grads:
        assert grad is not None
        g = grad.numpy()
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_exp_sigmoid_and_midi_conversions():
    np.testing.assert_allclose(
        dsp.exp_sigmoid(np.array([0.0])).numpy(), 2 * 0.5 ** np.log(10) + 1e-7
    )
    assert float(dsp.exp_sigmoid(np.array([50.0]))[0]) == pytest.approx(2.0, rel=1e-6)
    midi = dsp.hz_to_midi(np.array([440.0, 880.0, 261.6256, 0.0])).numpy()
    np.testing.assert_allclose(midi, [69.0, 81.0, 60.0, 0.0], atol=1e-4)
    hz = dsp.midi_to_hz(np.array([69.0, 57.0, 60.0])).numpy()
    np.testing.assert_allclose(hz, [440.0, 220.0, 261.6256], rtol=1e-5)
