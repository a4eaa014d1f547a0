"""Pure, differentiable DSP functions in TensorFlow (float32, batch first).

Shapes use ``b`` for batch, ``t`` for control frames, ``n`` for audio samples and ``k`` for
harmonics or filter bins. Frequencies are in Hz, phases in radians, levels in dB.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ddspcli.engine._tensorflow import tf

TWO_PI = 2.0 * math.pi


def tf_float32(x: tf.Tensor | tf.Variable | np.ndarray | float) -> tf.Tensor:
    """Cast anything array-like (tensors and variables keep their gradient) to float32."""
    x = tf.convert_to_tensor(x)
    return x if x.dtype == tf.float32 else tf.cast(x, tf.float32)


def exp_sigmoid(
    x: tf.Tensor,
    exponent: float = 10.0,
    max_value: float = 2.0,
    threshold: float = 1e-7,
) -> tf.Tensor:
    """Positive scaling for network outputs: ``max_value * sigmoid(x)**ln(exponent) + threshold``.

    Args:
        x: any shape, unbounded.
    Returns:
        Same shape, in ``(threshold, max_value + threshold)``.
    """
    x = tf_float32(x)
    return max_value * tf.nn.sigmoid(x) ** math.log(exponent) + threshold


def hz_to_midi(hz: tf.Tensor) -> tf.Tensor:
    """Frequency in Hz to MIDI note number (69 = A4 = 440 Hz); 0 Hz or less maps to 0."""
    hz = tf_float32(hz)
    safe = tf.maximum(hz, 1e-5)
    notes = 12.0 * (tf.math.log(safe) - math.log(440.0)) / math.log(2.0) + 69.0
    return tf.where(hz <= 0.0, tf.zeros_like(notes), notes)


def midi_to_hz(notes: tf.Tensor) -> tf.Tensor:
    """MIDI note number to frequency in Hz."""
    return 440.0 * 2.0 ** ((tf_float32(notes) - 69.0) / 12.0)


# ---------------------------------------------------------------------------------------------
# Control-rate to audio-rate upsampling.


def resample_linear(inputs: tf.Tensor, n_samples: int) -> tf.Tensor:
    """Linear interpolation from frames to samples, holding the last frame.

    Sample ``i`` reads frame position ``i * t / n_samples`` (frame ``j`` starts at sample
    ``j * n_samples / t``), so the last ``n_samples / t`` samples hold the last frame.

    Args:
        inputs: ``[b, t, c]`` control signal.
        n_samples: output length.
    Returns:
        ``[b, n_samples, c]``.
    """
    inputs = tf_float32(inputs)
    n_frames = int(inputs.shape[1])
    pos = np.arange(n_samples, dtype=np.float64) * n_frames / n_samples
    lo = np.floor(pos).astype(np.int32)
    hi = np.minimum(lo + 1, n_frames - 1)
    frac = tf.constant((pos - lo).astype(np.float32)[None, :, None])
    a = tf.gather(inputs, lo, axis=1)
    b = tf.gather(inputs, hi, axis=1)
    return a + (b - a) * frac


def upsample_with_windows(inputs: tf.Tensor, n_samples: int) -> tf.Tensor:
    """Upsample by overlap-adding Hann windows centred on each frame (smooth amplitudes).

    Frame ``j`` is a Hann window of length ``2 * hop`` (``hop = n_samples / t``) peaking at
    sample ``j * hop``; consecutive windows sum to one, so a constant input stays constant.
    After the last frame the value is held (the window for a repeated endpoint).

    Args:
        inputs: ``[b, t, c]`` control signal, e.g. harmonic amplitudes.
        n_samples: output length; must be a multiple of ``t``.
    Returns:
        ``[b, n_samples, c]``.
    """
    inputs = tf_float32(inputs)
    n_frames = int(inputs.shape[1])
    if n_samples % n_frames:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of frames ({n_frames})")
    hop = n_samples // n_frames
    held = tf.concat([inputs, inputs[:, -1:, :]], axis=1)  # [b, t + 1, c]
    window = tf.signal.hann_window(2 * hop)  # periodic: overlapping halves sum to 1
    frames = tf.transpose(held, [0, 2, 1])[..., None] * window  # [b, c, t + 1, 2 hop]
    out = tf.signal.overlap_and_add(frames, hop)  # [b, c, (t + 2) hop]
    return tf.transpose(out[:, :, hop : hop + n_samples], [0, 2, 1])


def upsample(inputs: tf.Tensor, n_samples: int, method: str = "window") -> tf.Tensor:
    """Dispatch to `upsample_with_windows` (``window``) or `resample_linear` (``linear``)."""
    if method == "window":
        return upsample_with_windows(inputs, n_samples)
    if method == "linear":
        return resample_linear(inputs, n_samples)
    raise ValueError(f"unknown upsampling method {method!r}; use 'window' or 'linear'")


# ---------------------------------------------------------------------------------------------
# Oscillators.


def harmonic_numbers(n_harmonics: int) -> tf.Tensor:
    """``[1, 2, ..., n_harmonics]`` as float32 ``[k]``."""
    return tf.range(1, n_harmonics + 1, dtype=tf.float32)


def remove_above_nyquist(
    frequencies: tf.Tensor, amplitudes: tf.Tensor, sample_rate: float
) -> tf.Tensor:
    """Zero the amplitudes of oscillators at or above Nyquist (they would alias).

    Args:
        frequencies: ``[..., k]`` in Hz.
        amplitudes: same shape as `frequencies`.
    Returns:
        `amplitudes` with entries at ``frequency >= sample_rate / 2`` set to 0.
    """
    amplitudes = tf_float32(amplitudes)
    return tf.where(frequencies >= sample_rate / 2.0, tf.zeros_like(amplitudes), amplitudes)


def normalize_harmonics(
    harmonic_distribution: tf.Tensor, f0_hz: tf.Tensor, sample_rate: float
) -> tf.Tensor:
    """Silence harmonics at or above Nyquist, then renormalise the rest to sum to one.

    Args:
        harmonic_distribution: ``[b, t, k]`` non-negative weights.
        f0_hz: ``[b, t, 1]`` fundamental in Hz.
    Returns:
        ``[b, t, k]`` weights summing to 1 over ``k`` (0 where no harmonic is left).
    """
    n_harmonics = int(harmonic_distribution.shape[-1])
    frequencies = tf_float32(f0_hz) * harmonic_numbers(n_harmonics)
    dist = remove_above_nyquist(frequencies, harmonic_distribution, sample_rate)
    return tf.math.divide_no_nan(dist, tf.reduce_sum(dist, axis=-1, keepdims=True))


def accumulate_phase(
    frequency: tf.Tensor,
    sample_rate: float,
    initial_phase: tf.Tensor | None = None,
    final_index: int = -1,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Running phase of an oscillator, accumulated in float64 and wrapped to [0, 2 pi).

    ``phase[n] = initial_phase + 2 pi / sample_rate * sum_{m <= n} frequency[m]``. The sum is
    taken in float64 so the phase stays exact to ~1e-9 rad for hours of audio (a float32
    cumulative sum drifts by radians within minutes; see BENCHMARKS.md).

    Args:
        frequency: ``[b, n, c]`` instantaneous frequency in Hz.
        sample_rate: Hz.
        initial_phase: ``[b, 1, c]`` phase before the first sample (radians), e.g. the
            `final_phase` of the previous block; default 0.
        final_index: the sample whose phase is returned as `final_phase` (default the last;
            earlier when the samples after it are a lookahead that the next block renders).
    Returns:
        ``(phase, final_phase)``: float32 ``[b, n, c]`` in [0, 2 pi) and float64
        ``[b, 1, c]``, the wrapped phase at `final_index`, for the next block.
    """
    omega = tf.cast(frequency, tf.float64) * (TWO_PI / sample_rate)
    phase = tf.cumsum(omega, axis=1)
    if initial_phase is not None:
        phase = phase + tf.cast(initial_phase, tf.float64)
    phase = tf.math.floormod(phase, TWO_PI)
    end = final_index % int(phase.shape[1]) + 1
    return tf.cast(phase, tf.float32), phase[:, end - 1 : end, :]


def oscillator_bank(
    frequency_envelopes: tf.Tensor,
    amplitude_envelopes: tf.Tensor,
    sample_rate: float,
    initial_phase: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Sum of sinusoids with per-sample frequencies and amplitudes (any frequencies).

    Args:
        frequency_envelopes: ``[b, n, k]`` in Hz.
        amplitude_envelopes: ``[b, n, k]`` linear amplitude.
        initial_phase: ``[b, 1, k]`` radians.
    Returns:
        ``(audio [b, n], final_phase [b, 1, k] float64)``. Oscillators at or above Nyquist
        are silent.
    """
    amps = remove_above_nyquist(frequency_envelopes, amplitude_envelopes, sample_rate)
    phase, final_phase = accumulate_phase(frequency_envelopes, sample_rate, initial_phase)
    return tf.reduce_sum(amps * tf.sin(phase), axis=-1), final_phase


def harmonic_synthesis(
    f0_hz: tf.Tensor,
    amplitudes: tf.Tensor,
    harmonic_distribution: tf.Tensor,
    n_samples: int,
    sample_rate: float,
    amp_resample_method: str = "window",
    initial_phase: tf.Tensor | None = None,
    lookahead: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Additive synthesis of a harmonic tone from frame-rate controls.

    The fundamental's phase is accumulated once (float64, see `accumulate_phase`); harmonic
    ``h`` uses ``h * phase``, which equals integrating ``h * f0`` exactly, so harmonics stay
    phase-locked. Harmonics at or above Nyquist are silenced sample by sample.

    Args:
        f0_hz: ``[b, t, 1]`` fundamental frequency in Hz.
        amplitudes: ``[b, t, 1]`` overall linear amplitude.
        harmonic_distribution: ``[b, t, k]`` weight of each harmonic (already normalised,
            see `normalize_harmonics`).
        n_samples: output length, a multiple of ``t`` for ``window`` upsampling.
        sample_rate: Hz.
        amp_resample_method: ``window`` (Hann overlap-add) or ``linear``.
        initial_phase: ``[b, 1, 1]`` phase of the fundamental before the first sample.
        lookahead: the last frame only shapes the crossfade into it: render the samples of the
            first ``t - 1`` frames, ``n_samples * (t - 1) / t`` of them, exactly as a longer
            render would (for block-by-block synthesis of long inputs).
    Returns:
        ``(audio [b, n], final_phase [b, 1, 1] float64)``: ``n = n_samples`` (less one frame
        with `lookahead`); the phase at the last returned sample.
    """
    n_harmonics = int(harmonic_distribution.shape[-1])
    harmonic_amps = tf_float32(amplitudes) * tf_float32(harmonic_distribution)  # [b, t, k]
    f0_env = resample_linear(f0_hz, n_samples)  # [b, n, 1]
    numbers = harmonic_numbers(n_harmonics)
    n_out = n_samples - (n_samples // int(f0_hz.shape[1]) if lookahead else 0)
    phase, final_phase = accumulate_phase(f0_env, sample_rate, initial_phase, n_out - 1)
    # h * phase in float32: error <= h * 2 pi * 2^-24 ~ 2e-5 rad at h = 60. The sinusoids
    # depend on f0 only (an input, never trained), so they carry no gradient.
    below = tf.cast(f0_env * numbers < sample_rate / 2.0, tf.float32)
    sinusoids = tf.stop_gradient(tf.sin(phase * numbers) * below)  # [b, n, k]
    if amp_resample_method == "window":
        audio = _window_weighted_sum(sinusoids, harmonic_amps)
    else:
        amp_env = upsample(harmonic_amps, n_samples, amp_resample_method)  # [b, n, k]
        audio = tf.reduce_sum(amp_env * sinusoids, axis=-1)
    return audio[:, :n_out], final_phase


def _window_weighted_sum(sinusoids: tf.Tensor, amps: tf.Tensor) -> tf.Tensor:
    """``sum_k upsample_with_windows(amps)[:, n, k] * sinusoids[:, n, k]`` without the
    ``[b, n, k]`` amplitude envelope.

    Sample ``r`` of frame block ``f`` sees two Hann windows: ``w[hop + r] * amps[f]`` and
    ``w[r] * amps[f + 1]`` (the last frame held). So the sum is two batched matrix products of
    the block's sinusoids ``[hop, k]`` with two amplitude vectors ``[k]``, then a crossfade.
    This does the same arithmetic with far less memory traffic, forward and backward.

    Args:
        sinusoids: ``[b, n, k]``, ``n = t * hop``.
        amps: ``[b, t, k]`` frame-rate amplitudes.
    Returns:
        ``[b, n]``.
    """
    n_frames, n_harmonics = int(amps.shape[1]), int(amps.shape[2])
    n_samples = int(sinusoids.shape[1])
    if n_samples % n_frames:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of frames ({n_frames})")
    hop = n_samples // n_frames
    blocks = tf.reshape(sinusoids, [-1, n_frames, hop, n_harmonics])
    following = tf.concat([amps[:, 1:], amps[:, -1:]], axis=1)
    window = tf.signal.hann_window(2 * hop)
    current = tf.einsum("btrk,btk->btr", blocks, amps) * window[hop:]
    upcoming = tf.einsum("btrk,btk->btr", blocks, following) * window[:hop]
    return tf.reshape(current + upcoming, [-1, n_samples])


def white_noise(seed: int, start: int, n_samples: int, chunk: int = 65536) -> np.ndarray:
    """Samples ``[start, start + n_samples)`` of an endless seeded stream of uniform noise.

    The stream is made of `chunk`-sample pieces, each drawn from a stateless generator keyed
    by ``(seed, piece index)``, so cutting the stream into blocks of any size gives the same
    samples (block-by-block synthesis equals one-shot synthesis).

    Returns:
        float32 ``[n_samples]`` in [-1, 1).
    """
    first, last = start // chunk, (start + max(n_samples, 1) - 1) // chunk
    pieces = [_noise_chunk(seed, i, chunk) for i in range(first, last + 1)]
    offset = start - first * chunk
    return np.concatenate(pieces)[offset : offset + n_samples]


@functools.lru_cache(maxsize=4)
def _noise_chunk(seed: int, index: int, chunk: int) -> np.ndarray:
    """One piece of `white_noise`'s stream (kept: small blocks read the same piece often)."""
    noise = tf.random.stateless_uniform([chunk], tf.constant([seed, index], tf.int64), -1.0, 1.0)
    return noise.numpy()


# ---------------------------------------------------------------------------------------------
# Filters and convolution.


def fft_size_for(frame_size: int, ir_size: int) -> int:
    """Smallest power of two holding a linear convolution of the two lengths."""
    return 2 ** math.ceil(math.log2(frame_size + ir_size - 1))


def fft_convolve(
    audio: tf.Tensor,
    impulse_response: tf.Tensor,
    padding: str = "same",
    delay_compensation: int = -1,
) -> tf.Tensor:
    """Filter audio with one impulse response, or one per equal-length block of audio.

    The audio is cut into as many non-overlapping blocks as there are impulse responses;
    each block is convolved with its IR in the frequency domain and the results are
    overlap-added (a time-varying FIR filter).

    Args:
        audio: ``[b, n]``.
        impulse_response: ``[b, ir]`` (or ``[1, ir]``, shared by the batch: one FFT) or
            ``[b, t, ir]`` (one IR per block of ``ceil(n / t)`` samples).
        padding: ``same`` (output length n, cropped around the filter delay) or ``valid``
            (full convolution, length ``n + ir - 1``).
        delay_compensation: samples to drop from the start for ``same``; -1 means
            `filter_delay` of the IR size.
    Returns:
        ``[b, n]`` for ``same``, ``[b, n + ir - 1]`` for ``valid``.
    """
    audio = tf_float32(audio)
    ir = tf_float32(impulse_response)
    audio_size = int(audio.shape[1])
    if ir.shape.rank == 2:  # one IR for the whole signal: a single FFT product, no framing
        ir_size = int(ir.shape[1])
        fft_size = fft_size_for(audio_size, ir_size)
        spectrum = tf.signal.rfft(audio, [fft_size]) * tf.signal.rfft(ir, [fft_size])
        out = tf.signal.irfft(spectrum, [fft_size])
        return _crop(out, audio_size, ir_size, padding, delay_compensation)
    n_blocks, ir_size = int(ir.shape[1]), int(ir.shape[2])
    block = -(-audio_size // n_blocks)  # ceil
    blocks = tf.signal.frame(audio, block, block, pad_end=True)  # [b, t, block]
    if int(blocks.shape[1]) != n_blocks:
        raise ValueError(
            f"{audio_size} samples in blocks of {block} give {blocks.shape[1]} blocks, "
            f"but there are {n_blocks} impulse responses"
        )
    fft_size = fft_size_for(block, ir_size)
    spectrum = tf.signal.rfft(blocks, [fft_size]) * tf.signal.rfft(ir, [fft_size])
    out = tf.signal.overlap_and_add(tf.signal.irfft(spectrum, [fft_size]), block)
    return _crop(out, audio_size, ir_size, padding, delay_compensation)


def _crop(
    out: tf.Tensor, audio_size: int, ir_size: int, padding: str, delay_compensation: int
) -> tf.Tensor:
    """Cut a full linear convolution ``[b, >= n + ir - 1]`` to `fft_convolve`'s `padding`."""
    if padding == "valid":
        return out[:, : audio_size + ir_size - 1]
    if padding != "same":
        raise ValueError(f"unknown padding {padding!r}; use 'same' or 'valid'")
    start = filter_delay(ir_size) if delay_compensation < 0 else delay_compensation
    return out[:, start : start + audio_size]


def filter_delay(ir_size: int) -> int:
    """Samples ``same`` padding drops by default: ``(ir - 1) // 2 - 1``, the centre of a
    linear-phase IR from `frequency_impulse_response` (the official library's convention)."""
    return (ir_size - 1) // 2 - 1


def frequency_impulse_response(magnitudes: tf.Tensor, window_size: int = 0) -> tf.Tensor:
    """Linear-phase FIR filters designed by frequency sampling.

    Each frame's magnitude response (bins evenly spaced from 0 Hz to Nyquist) is turned into a
    zero-phase impulse response by an inverse real FFT, shortened with a Hann window of
    `window_size` taps (0 or too large: the full length), and shifted to be causal.

    Args:
        magnitudes: ``[b, t, k]`` linear magnitudes, ``k`` bins from 0 to Nyquist.
        window_size: taps kept (odd sizes give a symmetric filter with integer delay).
    Returns:
        ``[b, t, m]`` causal impulse responses with their peak at ``(m - 1) / 2``:
        ``m = 2 ((window_size + 1) // 2) - 1`` (``window_size`` when odd), or ``2 (k - 1)``
        without windowing.
    """
    magnitudes = tf_float32(magnitudes)
    ir = tf.signal.irfft(tf.complex(magnitudes, tf.zeros_like(magnitudes)))  # zero phase
    ir_size = int(ir.shape[-1])
    if window_size <= 0 or window_size > ir_size:
        window_size = ir_size
    window = tf.signal.hann_window(window_size)
    pad = ir_size - window_size
    if pad == 0:
        return tf.signal.fftshift(ir * tf.signal.fftshift(window), axes=-1)
    # Window in zero-phase form (centre at index 0, wrapping), zeros in the middle.
    half = (window_size + 1) // 2
    window = tf.concat([window[half:], tf.zeros([pad]), window[:half]], axis=0)
    ir = ir * window
    # Rotate to causal form and drop the zeroed middle: keep the last half-1 taps + first half.
    return tf.concat([ir[..., ir_size - half + 2 :], ir[..., : half + 1]], axis=-1)


def frequency_filter(
    audio: tf.Tensor, magnitudes: tf.Tensor, window_size: int = 0, padding: str = "same"
) -> tf.Tensor:
    """Time-varying linear-phase filter: `frequency_impulse_response` + `fft_convolve`.

    Args:
        audio: ``[b, n]``.
        magnitudes: ``[b, t, k]`` linear magnitude response per block of ``n / t`` samples.
    Returns:
        ``[b, n]`` (``same``) with the filter delay compensated.
    """
    ir = frequency_impulse_response(magnitudes, window_size)
    return fft_convolve(audio, ir, padding=padding)


# ---------------------------------------------------------------------------------------------
# Spectra and loudness.


def stft(audio: tf.Tensor, frame_size: int, hop_size: int, pad_end: bool = True) -> tf.Tensor:
    """Complex STFT with a periodic Hann window (frames start at sample 0).

    Args:
        audio: ``[b, n]``.
    Returns:
        complex64 ``[b, frames, frame_size // 2 + 1]``; with `pad_end` the last partial frame
        is zero-padded (``frames = ceil(n / hop)``), else ``1 + (n - frame_size) // hop``.
    """
    return tf.signal.stft(
        tf_float32(audio),
        frame_length=frame_size,
        frame_step=hop_size,
        fft_length=frame_size,
        pad_end=pad_end,
    )


def safe_log(x: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    """Natural log with non-positive entries replaced by `eps` (finite value and gradient)."""
    x = tf_float32(x)
    return tf.math.log(tf.where(x <= 0.0, eps, x))


def magnitude_spectrogram(audio: tf.Tensor, fft_size: int, overlap: float = 0.75) -> tf.Tensor:
    """``|STFT|`` with hop ``fft_size * (1 - overlap)``: ``[b, n] -> [b, frames, fft/2 + 1]``."""
    return tf.abs(stft(audio, fft_size, int(fft_size * (1.0 - overlap)), pad_end=True))


def a_weighting_db(frequencies: np.ndarray, min_db: float = -80.0) -> np.ndarray:
    """IEC 61672 A-weighting in dB at `frequencies` (Hz), floored at `min_db` (librosa's)."""
    import librosa

    with np.errstate(divide="ignore"):  # 0 Hz: log10(0) = -inf, floored to min_db
        weights = librosa.A_weighting(frequencies, min_db=min_db)
    return np.asarray(weights, dtype=np.float64)


def power_to_db(
    power: tf.Tensor, ref_db: float = 0.0, range_db: float = 80.0, amin: float = 1e-8
) -> tf.Tensor:
    """``10 log10(max(power, amin)) - ref_db``, floored at ``-range_db`` dB."""
    db = 10.0 * tf.math.log(tf.maximum(tf_float32(power), amin)) / math.log(10.0)
    return tf.maximum(db - ref_db, -range_db)


def compute_loudness(
    audio: tf.Tensor,
    sample_rate: int = 16000,
    frame_rate: int = 250,
    n_fft: int = 512,
    range_db: float = 80.0,
    ref_db: float = 0.0,
    center: bool = True,
) -> tf.Tensor:
    """A-weighted loudness in dB, one value per frame, frames centred on multiples of the hop.

    ``|STFT|^2`` (periodic Hann, `n_fft`, hop ``sample_rate / frame_rate``, audio zero-padded by
    ``n_fft / 2`` on both sides), times the A-weighting as linear power, averaged over bins,
    in dB relative to `ref_db` and floored at ``-range_db``. A full-scale sine at 1 kHz reads
    about +19.8 dB; digital silence reads ``-range_db``.

    Args:
        audio: ``[b, n]`` or ``[n]``.
        center: pad as described; False reads the audio as already padded (for blocks):
            ``1 + (n - n_fft) // hop`` frames.
    Returns:
        ``[b, n // hop + 1]`` (or ``[n // hop + 1]``) in dB.
    """
    if sample_rate % frame_rate:
        raise ValueError(f"sample_rate {sample_rate} is not a multiple of frame_rate {frame_rate}")
    audio = tf_float32(audio)
    is_1d = audio.shape.rank == 1
    if is_1d:
        audio = audio[None, :]
    hop = sample_rate // frame_rate
    padded = tf.pad(audio, [[0, 0], [n_fft // 2, n_fft // 2]]) if center else audio
    power = tf.abs(stft(padded, n_fft, hop, pad_end=False)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    weighting = tf.constant((10.0 ** (a_weighting_db(freqs) / 10.0)).astype(np.float32))
    loudness = power_to_db(tf.reduce_mean(power * weighting, axis=-1), ref_db, range_db)
    return loudness[0] if is_1d else loudness
