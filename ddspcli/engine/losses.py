"""Training losses."""

from __future__ import annotations

from collections.abc import Sequence

from ddspcli.engine import dsp
from ddspcli.engine._tensorflow import tf

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def spectral_loss_per_scale(
    target: tf.Tensor,
    value: tf.Tensor,
    fft_sizes: Sequence[int] = FFT_SIZES,
    mag_weight: float = 1.0,
    logmag_weight: float = 1.0,
    overlap: float = 0.75,
    log_eps: float = 1e-5,
) -> list[tf.Tensor]:
    """Multi-scale spectral L1 distance, one scalar per FFT size.

    For each size: ``mag_weight * mean|S_t - S_v| + logmag_weight * mean|L(S_t) - L(S_v)|``
    where ``S = |STFT|`` (Hann, hop ``size * (1 - overlap)``, end padded) and ``L`` is
    `dsp.safe_log` (exact zeros read as `log_eps`), the official library's definition.

    Args:
        target, value: ``[b, n]`` audio.
    Returns:
        list of scalars, in the order of `fft_sizes`.
    """
    losses = []
    for size in fft_sizes:
        mag_t = dsp.magnitude_spectrogram(target, size, overlap)
        mag_v = dsp.magnitude_spectrogram(value, size, overlap)
        loss = tf.constant(0.0)
        if mag_weight:
            loss += mag_weight * tf.reduce_mean(tf.abs(mag_t - mag_v))
        if logmag_weight:
            diff = dsp.safe_log(mag_t, log_eps) - dsp.safe_log(mag_v, log_eps)
            loss += logmag_weight * tf.reduce_mean(tf.abs(diff))
        losses.append(loss)
    return losses


def spectral_loss(
    target: tf.Tensor,
    value: tf.Tensor,
    fft_sizes: Sequence[int] = FFT_SIZES,
    mag_weight: float = 1.0,
    logmag_weight: float = 1.0,
    overlap: float = 0.75,
) -> tf.Tensor:
    """Sum over scales of `spectral_loss_per_scale`: a scalar, 0 for identical signals."""
    return tf.add_n(
        spectral_loss_per_scale(target, value, fft_sizes, mag_weight, logmag_weight, overlap)
    )
