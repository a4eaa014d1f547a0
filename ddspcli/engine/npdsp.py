"""NumPy twins of `dsp`'s harmonic synthesis and FIR noise filter, for blocks of a few frames.

`ddsp live` synthesises 5 frames (320 samples) every 20 ms. At that size TensorFlow's fixed
cost per graph run is most of the work (harmonic 1.1-1.3 ms, noise filter 0.7-0.8 ms a block
on one thread), while the same arithmetic in NumPy takes about a fifth of the time (both with
noise drawing and glue: 2.6-3.0 -> 0.46-0.53 ms). These functions compute what
`dsp.harmonic_synthesis` (``window`` amplitude upsampling, with ``lookahead``) and
`dsp.frequency_impulse_response` + `dsp.fft_convolve` (``valid``, one IR per frame) compute,
with the same float32 / float64 choices, so a stream rendered with them equals the TensorFlow
render to float32 rounding (`tests/test_npdsp.py` checks them against `dsp`,
`tests/test_live.py` the live output against the offline render). Inputs are single-example
arrays without the batch axis.
"""

from __future__ import annotations

import functools

import numpy as np

TWO_PI = 2.0 * np.pi


@functools.lru_cache(maxsize=8)
def _hann(size: int) -> np.ndarray:
    """Hann window ``[size]`` as `tf.signal.hann_window` makes it: periodic for even sizes,
    symmetric for odd ones (TensorFlow ignores ``periodic`` there), float32."""
    period = size if size % 2 == 0 else max(size - 1, 1)
    return (0.5 - 0.5 * np.cos(TWO_PI * np.arange(size) / period)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _frame_positions(n_frames: int, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`dsp.resample_linear`'s lower / upper frame index and float32 fraction per sample."""
    pos = np.arange(n_samples, dtype=np.float64) * n_frames / n_samples
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_frames - 1)
    return lo, hi, (pos - lo).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _harmonic_numbers(n_harmonics: int) -> np.ndarray:
    """``[1, 2, ..., n_harmonics]`` float32 (read only)."""
    numbers = np.arange(1, n_harmonics + 1, dtype=np.float32)
    numbers.flags.writeable = False
    return numbers


def harmonic_synthesis(
    f0_hz: np.ndarray,
    amplitudes: np.ndarray,
    harmonic_distribution: np.ndarray,
    hop: int,
    sample_rate: float,
    initial_phase: float = 0.0,
) -> tuple[np.ndarray, float]:
    """`dsp.harmonic_synthesis` with ``window`` upsampling and ``lookahead=True``.

    Args:
        f0_hz: ``[t]`` fundamental in Hz (``t >= 2``: the last frame only shapes the crossfade).
        amplitudes: ``[t]`` overall linear amplitude.
        harmonic_distribution: ``[t, k]`` normalised harmonic weights.
        hop: samples per frame.
        sample_rate: Hz.
        initial_phase: phase of the fundamental before the first sample (radians, float64).
    Returns:
        ``(audio float32 [(t - 1) * hop], final_phase)``: the samples of the first ``t - 1``
        frames and the wrapped phase (float64) at the last of them.
    """
    n_frames, n_harmonics = harmonic_distribution.shape
    n_samples = n_frames * hop
    n_out = n_samples - hop
    f0 = np.asarray(f0_hz, np.float32)
    lo, hi, frac = _frame_positions(n_frames, n_samples)
    f0_env = f0[lo] + (f0[hi] - f0[lo]) * frac  # [n] float32, as resample_linear
    phase = np.cumsum(f0_env[:n_out].astype(np.float64) * (TWO_PI / sample_rate))
    phase = np.mod(phase + initial_phase, TWO_PI)
    numbers = _harmonic_numbers(n_harmonics)
    sinusoids = np.sin(phase.astype(np.float32)[:, None] * numbers)  # [n_out, k]
    sinusoids *= f0_env[:n_out, None] * numbers < sample_rate / 2.0  # silent above Nyquist
    amps = np.asarray(amplitudes, np.float32)[:, None] * np.asarray(harmonic_distribution,
                                                                     np.float32)  # fmt: skip
    blocks = sinusoids.reshape(n_frames - 1, hop, n_harmonics)
    window = _hann(2 * hop)
    current = np.einsum("trk,tk->tr", blocks, amps[:-1]) * window[hop:]
    upcoming = np.einsum("trk,tk->tr", blocks, amps[1:]) * window[:hop]
    return (current + upcoming).reshape(-1).astype(np.float32), float(phase[-1])


@functools.lru_cache(maxsize=8)
def _shifted_hann(size: int) -> np.ndarray:
    """``np.fft.fftshift(_hann(size))``."""
    return np.fft.fftshift(_hann(size))


def _rotate_half(x: np.ndarray) -> np.ndarray:
    """``np.fft.fftshift(x, axes=-1)``, as two slices (the same values, without `np.roll`'s
    generic path)."""
    split = x.shape[-1] - x.shape[-1] // 2
    return np.concatenate([x[..., split:], x[..., :split]], axis=-1)


def impulse_responses(magnitudes: np.ndarray, window_size: int = 0) -> np.ndarray:
    """`dsp.frequency_impulse_response`: ``[t, k]`` magnitudes -> ``[t, m]`` causal linear-phase
    FIRs (``m = 2 (k - 1)`` unwindowed, else the odd `window_size`-tap form)."""
    ir = np.fft.irfft(np.asarray(magnitudes, np.float32), axis=-1).astype(np.float32)
    ir_size = ir.shape[-1]
    if window_size <= 0 or window_size > ir_size:
        window_size = ir_size
    if window_size == ir_size:
        return _rotate_half(ir * _shifted_hann(window_size))
    window = _hann(window_size)
    half = (window_size + 1) // 2
    window = np.concatenate([window[half:], np.zeros(ir_size - window_size, np.float32),
                             window[:half]])  # fmt: skip
    ir = ir * window
    return np.concatenate([ir[..., ir_size - half + 2 :], ir[..., : half + 1]], axis=-1)


def filter_blocks(audio: np.ndarray, irs: np.ndarray) -> np.ndarray:
    """`dsp.fft_convolve` with ``valid`` padding and one IR per block: ``[t * hop]`` audio and
    ``[t, m]`` IRs -> the full convolution ``[t * hop + m - 1]``, float32."""
    n_blocks, ir_size = irs.shape
    hop = len(audio) // n_blocks
    fft_size = 1 << (hop + ir_size - 2).bit_length()  # dsp.fft_size_for
    spectra = np.fft.rfft(audio.reshape(n_blocks, hop), fft_size) * np.fft.rfft(irs, fft_size)
    pieces = np.fft.irfft(spectra, fft_size)[:, : hop + ir_size - 1]
    out = np.zeros((n_blocks - 1) * hop + hop + ir_size - 1)
    for i, piece in enumerate(pieces):
        out[i * hop : i * hop + len(piece)] += piece
    return out.astype(np.float32)
