"""Feature adjustments for timbre transfer: pure functions on the feature dict.

A feature dict holds ``f0_hz`` (Hz), ``f0_confidence`` (0..1) and ``loudness_db`` (dB), each
``[frames]``. The model's dataset statistics (``statistics.json``, see
`ddspcli.engine.data.compute_statistics`) drive the automatic adjustments:

1. `detect_notes`: frames where a note sounds (confident pitch, loud enough, smoothed);
2. `auto_adjust`: shift note-on pitch by whole octaves towards the model's mean pitch, map
   note-on loudness onto the training loudness distribution (quantile mapping) and turn the
   frames between notes down by ``quiet_db``;
3. `shift_pitch` (octaves/semitones, clipped to the model's range), `autotune` (towards the
   best-fitting major/minor scale after estimating the tuning offset), and a loudness shift.

`adjust` applies them in that order and reports what it did.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)  # a natural minor scale is its relative major's set


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
    """Hz -> MIDI note numbers (float); 0 Hz or less -> 0."""
    f0 = np.asarray(f0_hz, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        midi = 69.0 + 12.0 * np.log2(f0 / 440.0)
    return np.where(f0 > 0, midi, 0.0)


def midi_to_hz(midi: np.ndarray) -> np.ndarray:
    """MIDI note numbers -> Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def octave_shift_towards(f0_hz: np.ndarray, notes: np.ndarray, target_midi: float) -> int:
    """Whole octaves that bring the mean note-on pitch closest to `target_midi` (0 if none)."""
    if not notes.any():
        return 0
    mean = float(hz_to_midi(f0_hz[notes]).mean())
    return round((target_midi - mean) / 12.0)


def match_loudness(
    loudness_db: np.ndarray, notes: np.ndarray, target_quantiles: list[float], quiet_db: float
) -> np.ndarray:
    """Quantile-map note-on loudness onto a target distribution; turn the rest down.

    The note-on frames' own quantiles (at the same probabilities as `target_quantiles`, evenly
    spaced from 0 to 1) are mapped piecewise linearly onto the target quantiles. Levels outside
    the note-on range keep their distance to its ends, so quiet frames stay quieter; frames
    without a note are then lowered by `quiet_db`.

    Args:
        loudness_db: ``[frames]`` dB. notes: bool ``[frames]``.
        target_quantiles: the training set's note-on loudness quantiles (dB, ascending).
        quiet_db: attenuation (dB) of frames without a note.
    Returns:
        float32 ``[frames]`` dB.
    """
    loudness = np.asarray(loudness_db, np.float64)
    target = np.asarray(target_quantiles, np.float64)
    if notes.any() and len(target) >= 2:
        source = np.quantile(loudness[notes], np.linspace(0.0, 1.0, len(target)))
        mapped = np.interp(loudness, source, target)
        mapped = np.where(loudness < source[0], target[0] + loudness - source[0], mapped)
        mapped = np.where(loudness > source[-1], target[-1] + loudness - source[-1], mapped)
    else:
        mapped = loudness
    return np.where(notes, mapped, mapped - quiet_db).astype(np.float32)


def f0_limits(sample_rate: int) -> tuple[float, float]:
    """The f0 range (Hz) a model can render: MIDI 0 up to MIDI 127 or Nyquist."""
    return float(midi_to_hz(0.0)), float(min(midi_to_hz(127.0), sample_rate / 2.0))


def shift_pitch(f0_hz: np.ndarray, semitones: float, limits: tuple[float, float]) -> np.ndarray:
    """Transpose by `semitones` and clip to `limits` (Hz); unvoiced (0 Hz) frames stay 0."""
    f0 = np.asarray(f0_hz, np.float64) * 2.0 ** (semitones / 12.0)
    return np.where(f0 > 0, np.clip(f0, *limits), 0.0).astype(np.float32)


def estimate_tuning(f0_hz: np.ndarray, notes: np.ndarray) -> float:
    """Tuning offset of the note-on pitch from A440 equal temperament, in semitones [-0.5, 0.5).

    The circular mean of each frame's position within its semitone (vibrato around a note
    averages out; a histogram mode would pick the vibrato's turning points).
    """
    voiced = f0_hz[notes & (f0_hz > 0)]
    if voiced.size == 0:
        return 0.0
    angle = np.angle(np.mean(np.exp(2j * np.pi * hz_to_midi(voiced))))
    return float(angle / (2 * np.pi))


def nearest_in_scale(midi: np.ndarray, root: int) -> np.ndarray:
    """The nearest note (integer MIDI) of the major scale on `root` (0 = C) for each value."""
    degrees = np.array([(root + s) % 12 for s in MAJOR_STEPS])
    base = np.round(midi)
    candidates = base[..., None] + np.arange(-2, 3)  # scale steps are at most 2 semitones
    in_scale = np.isin(np.mod(candidates, 12), degrees)
    distance = np.where(in_scale, np.abs(candidates - midi[..., None]), np.inf)
    return np.take_along_axis(candidates, distance.argmin(axis=-1)[..., None], -1)[..., 0]


def best_scale(midi: np.ndarray) -> int:
    """Root (0 = C) of the major scale (or its relative minor) nearest to the given notes:
    the one with the smallest mean distance from each value to its nearest scale note."""
    if midi.size == 0:
        return 0
    costs = [np.abs(nearest_in_scale(midi, root) - midi).mean() for root in range(12)]
    return int(np.argmin(costs))


def scale_name(root: int) -> str:
    """``"D major / B minor"`` for root 2."""
    return f"{NOTE_NAMES[root]} major / {NOTE_NAMES[(root + 9) % 12]} minor"


def autotune(f0_hz: np.ndarray, notes: np.ndarray, amount: float) -> tuple[np.ndarray, float, int]:
    """Pull pitch towards the best-fitting scale.

    The tuning offset is estimated first, the scale is fitted to the note-on frames in that
    tuning, and every voiced frame moves `amount` (0: unchanged, 1: exactly on the note) of the
    way to its nearest scale note.

    Returns:
        ``(f0_hz float32 [frames], tuning in semitones, scale root 0..11)``.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"autotune amount must be within 0..1, not {amount}")
    tuning = estimate_tuning(f0_hz, notes)
    midi = hz_to_midi(f0_hz) - tuning
    root = best_scale(midi[notes & (f0_hz > 0)])
    target = nearest_in_scale(midi, root)
    tuned = midi_to_hz(midi + amount * (target - midi) + tuning)
    return np.where(f0_hz > 0, tuned, 0.0).astype(np.float32), tuning, root


@dataclass(frozen=True)
class Adjustments:
    """What `adjust` does; every field maps to a `ddsp transfer` option."""

    auto: bool = True  # octave + loudness matching from the model's statistics
    quiet_db: float = 20.0  # attenuation of frames without notes (auto only)
    octaves: int = 0
    semitones: float = 0.0
    loudness_shift_db: float = 0.0
    autotune: float = 0.0  # 0..1
    note_confidence: float = 0.7
    note_floor_db: float = -60.0
    note_smoothing: int = 9


def adjust(
    features: dict[str, np.ndarray],
    statistics: dict,
    settings: Adjustments,
    limits: tuple[float, float],
) -> tuple[dict[str, np.ndarray], dict]:
    """Apply note detection, auto-adjust, shifts and autotune (in that order).

    Args:
        features: ``f0_hz``, ``f0_confidence``, ``loudness_db`` ``[frames]``.
        statistics: the model's dataset statistics (may be empty: auto-adjust is skipped).
        settings: see `Adjustments`.
        limits: f0 range (Hz) of the model, see `f0_limits`.
    Returns:
        ``(adjusted features (same keys plus bool ``notes``), report)``; the report holds the
        note-on share, the octaves and semitones applied, the tuning and scale when autotuned,
        and whether auto-adjust ran.
    """
    f0 = np.asarray(features["f0_hz"], np.float32)
    loudness = np.asarray(features["loudness_db"], np.float32)
    notes = detect_notes(
        loudness, features["f0_confidence"], settings.note_confidence,
        settings.note_floor_db, settings.note_smoothing,
    )  # fmt: skip
    report: dict = {
        "settings": asdict(settings),
        "note_fraction": float(notes.mean()) if len(notes) else 0.0,
    }
    auto = settings.auto and "mean_pitch" in statistics and bool(notes.any())
    report["auto_adjusted"] = auto
    octaves = settings.octaves
    if auto:
        report["auto_octaves"] = octave_shift_towards(f0, notes, statistics["mean_pitch"])
        octaves += report["auto_octaves"]
        loudness = match_loudness(
            loudness, notes, statistics["loudness_quantiles"], settings.quiet_db
        )
    semitones = 12.0 * octaves + settings.semitones
    report["semitones"] = semitones
    f0 = shift_pitch(f0, semitones, limits)
    if settings.autotune > 0:
        f0, tuning, root = autotune(f0, notes, settings.autotune)
        report["tuning_cents"] = round(100.0 * tuning, 1)
        report["scale"] = scale_name(root)
    loudness = (loudness + settings.loudness_shift_db).astype(np.float32)
    out = {**features, "f0_hz": f0, "loudness_db": loudness, "notes": notes}
    return out, report


def peak_gain(audio: np.ndarray, peak_db: float, normalize: bool) -> float:
    """Linear gain that keeps the peak at or below `peak_db` dBFS (or sets it there).

    Without `normalize` the gain is 1 unless the peak is above the ceiling (peak-safe); with it
    the peak is scaled to exactly `peak_db`. Silence gets gain 1.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    ceiling = 10.0 ** (peak_db / 20.0)
    if peak <= 0.0 or not math.isfinite(peak):
        return 1.0
    return ceiling / peak if normalize or peak > ceiling else 1.0


def detect_notes(
    loudness_db: np.ndarray,
    f0_confidence: np.ndarray,
    confidence_threshold: float = 0.7,
    loudness_floor_db: float = -60.0,
    smoothing: int = 9,
) -> np.ndarray:
    """Frames where a note sounds: confident pitch and loudness above a floor, smoothed.

    Args:
        loudness_db, f0_confidence: ``[frames]``.
        confidence_threshold: minimum f0 confidence (0..1).
        loudness_floor_db: minimum loudness (dB).
        smoothing: frames of a moving majority filter (odd) that removes flicker.
    Returns:
        bool ``[frames]``.
    """
    on = (np.asarray(f0_confidence) >= confidence_threshold) & (
        np.asarray(loudness_db) > loudness_floor_db
    )
    if smoothing > 1 and len(on) >= smoothing:
        kernel = np.ones(smoothing) / smoothing
        on = np.convolve(on.astype(float), kernel, mode="same") > 0.5
    return on
