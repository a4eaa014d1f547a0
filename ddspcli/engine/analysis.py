"""Summaries of an audio file for `ddsp info` (level, loudness, format), in bounded memory."""

from __future__ import annotations

import numpy as np

from ddspcli.engine import audio


def level_dbfs(x: np.ndarray) -> tuple[float, float]:
    """``(peak, rms)`` of `x` in dB relative to full scale (-inf for digital silence)."""
    with np.errstate(divide="ignore"):
        peak = 20.0 * np.log10(float(np.max(np.abs(x))))
        rms = 10.0 * np.log10(float(np.mean(np.square(x, dtype=np.float64))))
    return peak, rms


class LoudnessStream:
    """A-weighted loudness (as `dsp.compute_loudness`, in NumPy) of a signal in blocks.

    The frames are exactly those of a one-shot computation on the whole signal (frames centred
    on multiples of the hop, ``n_fft / 2`` zeros before the first and after the last sample),
    while memory holds one block and the per-frame dB values (4 bytes per frame).
    """

    def __init__(self, sample_rate: int, frame_rate: int, n_fft: int = 512) -> None:
        self.sample_rate, self.frame_rate, self.n_fft = sample_rate, frame_rate, n_fft
        self.hop = sample_rate // frame_rate
        self._pending = np.zeros(n_fft // 2, np.float32)  # the leading padding
        self._frames: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        """Add samples ``[n]``; computes every frame whose window is complete."""
        self._pending = np.concatenate([self._pending, block.astype(np.float32, copy=False)])
        if len(self._pending) < self.n_fft:
            return
        count = 1 + (len(self._pending) - self.n_fft) // self.hop
        self._compute(self._pending[: (count - 1) * self.hop + self.n_fft])
        self._pending = self._pending[count * self.hop :]

    def finish(self) -> np.ndarray:
        """The trailing padding, the last frames, and every frame in dB ``[n // hop + 1]``."""
        self.push(np.zeros(self.n_fft // 2, np.float32))
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    def _compute(self, padded: np.ndarray) -> None:
        """The frames of ``padded`` (``[(k - 1) * hop + n_fft]``) in dB: `features.a_weighted_db`,
        the NumPy twin of TensorFlow's `dsp.compute_loudness` (no TensorFlow: `info` runs on
        the light install)."""
        from ddspcli.engine import features

        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop]
        settings = features.FeatureSettings(
            sample_rate=self.sample_rate, frame_rate=self.frame_rate, n_fft=self.n_fft
        )
        self._frames.append(features.a_weighted_db(frames, settings))


def describe_audio(source: str, sample_rate: int = audio.DEFAULT_SAMPLE_RATE) -> dict:
    """Decode `source` block by block and summarise it (memory does not grow with its length).

    Returns:
        dict with the file's format fields (see `audio.AudioInfo`), ``peak_dbfs``,
        ``rms_dbfs`` (of the mono mix at `sample_rate`) and A-weighted loudness statistics in
        dB at 250 frames/s (100 when the rate is not a multiple of 250): ``loudness_db_median``,
        ``loudness_db_max`` and ``active_fraction`` (share of frames above -60 dB).
    """
    frame_rate = 250 if sample_rate % 250 == 0 else 100
    peak, energy, count = 0.0, 0.0, 0
    loudness = LoudnessStream(sample_rate, frame_rate)
    with audio.open_mono_stream(source, sample_rate) as (info, blocks):
        for block in blocks:
            if len(block):
                peak = max(peak, float(np.max(np.abs(block))))
                energy += float(np.sum(np.square(block, dtype=np.float64)))
                count += len(block)
            loudness.push(block)
    if count == 0:
        from ddspcli.errors import InputError

        raise InputError(f"{info.source} contains no audio samples; give a file with sound in it")
    frames = loudness.finish()
    with np.errstate(divide="ignore"):
        peak_db, rms_db = 20.0 * np.log10(peak), 10.0 * np.log10(energy / count)
    return {
        **info.to_dict(),
        "peak_dbfs": round(float(peak_db), 2),
        "rms_dbfs": round(float(rms_db), 2),
        "loudness_db_median": round(float(np.median(frames)), 2),
        "loudness_db_max": round(float(np.max(frames)), 2),
        "active_fraction": round(float(np.mean(frames > -60.0)), 4),
    }
