"""Reverberation time read from a recording: the free decays after note offsets.

A room's impulse response gives its RT60 directly (`acoustics.rt60`); a recording only gives
the decays where the sound stops: after a note ends, the level in each octave band falls
along the room's decay (and the instrument's own release, whichever is longer). This module
finds those stretches and fits their slope, the way a listener hears a hall at the end of a
phrase.

Per octave band (`acoustics.octave_filter`), the energy envelope in frames of `FRAME_S`
(dB) is searched for *free decays*: from a local peak, frames that never rise more than
`RISE_DB` above the lowest level so far, for at least `MIN_DROP_DB` of fall, with the start
at least `MIN_DROP_DB + FLOOR_MARGIN_DB` above the band's noise floor (its 5th percentile).
Each decay's slope is the least-squares line through the frames between 5 and 20 dB below its
start (T15: music rarely falls further freely), extrapolated to 60 dB. A band's estimate is
the median over its decays.

Pure NumPy/SciPy: ``ddsp`` uses it at inference and in benchmarks, without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddspcli.engine import acoustics

FRAME_S = 0.010  # envelope frame (s)
MIN_DROP_DB = 20.0  # a decay must fall at least this far (the fit range ends at -20 dB)
SMOOTH_S = 0.040  # the envelope's power is averaged over this long (noise-like bands wobble)
RISE_DB = 2.0  # a decay may wobble up this much above its lowest level so far
FLOOR_MARGIN_DB = 3.0  # the decay's end stays this far above the band's noise floor
MAX_DECAY_S = 3.0  # the longest stretch followed from one peak
FIT_DB = (-5.0, -20.0)  # the part of each decay fitted (dB below its start): T15


@dataclass(frozen=True)
class BandDecay:
    """One band's estimate: ``rt60_s`` the median over ``decays`` free decays (None if none),
    and the spread of those estimates (25th and 75th percentiles, s)."""

    centre_hz: float
    rt60_s: float | None
    decays: int
    quartiles_s: tuple[float, float] | None


def envelope_db(x: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean power per frame in dB, ``[frames]`` (frames of `frame_s` s, no overlap), the
    power averaged over `SMOOTH_S` (centred) before the logarithm."""
    size = max(1, round(frame_s * sample_rate))
    frames = len(x) // size
    power = np.mean(np.square(x[: frames * size].reshape(frames, size), dtype=np.float64), 1)
    width = max(1, round(SMOOTH_S / frame_s))
    power = np.convolve(power, np.full(width, 1.0 / width), mode="same")
    return 10.0 * np.log10(power + 1e-20)


def free_decays(
    env_db: np.ndarray, frame_s: float = FRAME_S, min_drop_db: float = MIN_DROP_DB
) -> list[tuple[int, int]]:
    """``[(start, stop)]`` frame ranges of `env_db` that fall freely by `min_drop_db` or more
    (see the module docstring), in order, not overlapping; ``stop`` is exclusive."""
    floor = float(np.percentile(env_db, 5)) if len(env_db) else 0.0
    longest = max(2, round(MAX_DECAY_S / frame_s))
    found: list[tuple[int, int]] = []
    start = 1
    while start < len(env_db) - 1:
        if not _is_peak(env_db, start) or env_db[start] - floor < min_drop_db + FLOOR_MARGIN_DB:
            start += 1
            continue
        window = env_db[start : start + longest]
        lowest = np.minimum.accumulate(window)
        rises = np.nonzero(window > lowest + RISE_DB)[0]
        length = int(rises[0]) if len(rises) else len(window)
        if window[0] - lowest[length - 1] >= min_drop_db:
            found.append((start, start + length))
            start += length
        else:
            start += 1
    return found


def _is_peak(env_db: np.ndarray, i: int) -> bool:
    return bool(env_db[i] >= env_db[i - 1] and env_db[i] > env_db[i + 1])


def decay_rt60(segment_db: np.ndarray, frame_s: float = FRAME_S) -> float | None:
    """RT60 (s) of one free decay ``[frames]`` (dB): the T15 slope extrapolated to 60 dB, or
    None if the fit range holds fewer than 3 frames or the slope does not fall."""
    relative = segment_db - segment_db[0]
    upper, lower = FIT_DB
    inside = np.nonzero((relative <= upper) & (relative >= lower))[0]
    if len(inside) < 3:
        return None
    first, last = inside[0], inside[-1] + 1
    t = np.arange(first, last) * frame_s
    slope = np.polyfit(t, segment_db[first:last], 1)[0]  # dB/s
    return float(-60.0 / slope) if slope < 0 else None


def band_decays(
    audio: np.ndarray,
    sample_rate: int,
    bands_hz: tuple[float, ...] = acoustics.ANALYSIS_BANDS_HZ,
    frame_s: float = FRAME_S,
) -> list[BandDecay]:
    """The RT60 heard in a recording ``[n]`` (mono, `sample_rate` Hz), per octave band."""
    out = []
    for centre in bands_hz:
        env = envelope_db(acoustics.octave_filter(audio, centre, sample_rate), sample_rate,
                          frame_s)  # fmt: skip
        times = [decay_rt60(env[a:b], frame_s) for a, b in free_decays(env, frame_s)]
        times = np.array([t for t in times if t is not None])
        if len(times):
            q1, median, q3 = np.percentile(times, [25, 50, 75])
            out.append(BandDecay(centre, float(median), len(times), (float(q1), float(q3))))
        else:
            out.append(BandDecay(centre, None, 0, None))
    return out
