"""Summaries of an audio file for `ddsp info` (level, loudness, format)."""

from __future__ import annotations

import numpy as np

from ddspcli.engine import audio


def level_dbfs(x: np.ndarray) -> tuple[float, float]:
    """``(peak, rms)`` of `x` in dB relative to full scale (-inf for digital silence)."""
    with np.errstate(divide="ignore"):
        peak = 20.0 * np.log10(float(np.max(np.abs(x))))
        rms = 10.0 * np.log10(float(np.mean(np.square(x, dtype=np.float64))))
    return peak, rms


def describe_audio(source: str, sample_rate: int = audio.DEFAULT_SAMPLE_RATE) -> dict:
    """Decode `source` and summarise it.

    Returns:
        dict with the file's format fields (see `audio.AudioInfo`), ``peak_dbfs``,
        ``rms_dbfs`` (of the mono mix at `sample_rate`) and A-weighted loudness statistics in
        dB at 250 frames/s: ``loudness_db_median``, ``loudness_db_max`` and
        ``active_fraction`` (share of frames above -60 dB).
    """
    mono, info = audio.read_audio(source, sample_rate)
    from ddspcli.engine import dsp  # TensorFlow: imported after the input is known to be good

    peak, rms = level_dbfs(mono)
    frame_rate = 250 if sample_rate % 250 == 0 else 100
    loudness = dsp.compute_loudness(mono, sample_rate, frame_rate).numpy()
    return {
        **info.to_dict(),
        "peak_dbfs": round(peak, 2),
        "rms_dbfs": round(rms, 2),
        "loudness_db_median": round(float(np.median(loudness)), 2),
        "loudness_db_max": round(float(np.max(loudness)), 2),
        "active_fraction": round(float(np.mean(loudness > -60.0)), 4),
    }
