"""Feature adjustments for timbre transfer: pure functions on the feature dict.

A feature dict holds ``f0_hz`` (Hz), ``f0_confidence`` (0..1) and ``loudness_db`` (dB), each
``[frames]``. The model's dataset statistics (``statistics.json``, see
`ddspcli.engine.data.compute_statistics`) drive the automatic adjustments:

1. `features.detect_notes`: frames where a note sounds (confident pitch, loud enough, smoothed);
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

from ddspcli.engine.features import detect_notes

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


# ---------------------------------------------------------------------------------------------
# The transfer pipeline: features, adjustment, rendering, writing (model names are resolved
# to folders by `ddspcli.pretrained.resolve_instrument`, outside the engine).
# TensorFlow and the I/O modules are imported inside the functions (this module's adjustments
# are also used by `data`, which must not pay for them).

PART_NAMES = ("harmonic", "noise", "reverb")
FEATURE_COST = {"tiny": 1.0, "full": 8.0}  # relative wall time per frame (see BENCHMARKS.md)
RENDER_COST = 1.0


@dataclass(frozen=True)
class RenderSettings:
    """How audio is rendered and written."""

    reverb: bool = True  # False: the dry signal (harmonic + noise)
    sample_rate: int | None = None  # output rate; None: the model's
    peak_db: float = -1.0  # ceiling (dBFS) of the peak-safe gain
    normalize: bool = False  # scale the peak to exactly `peak_db`
    seed: int = 0  # noise
    block_s: float = 10.0  # seconds decoded per block
    subtype: str = "PCM_16"


def feature_settings(info: dict, pitch_model: str, pitch_hop_ms: float | None):
    """The model's feature definition (rate, frame rate, loudness) with the chosen tracker.

    Everything that changes the numbers the model was trained on comes from ``model.json``;
    only the pitch tracker's speed/accuracy trade-off is the user's choice.
    """
    from ddspcli.engine.features import FeatureSettings

    stored = dict(info.get("features") or {})
    keep = ("n_fft", "range_db", "ref_db", "silence_db")
    settings = FeatureSettings(
        sample_rate=int(info["sample_rate"]),
        frame_rate=int(info["frame_rate"]),
        pitch_model=pitch_model,
        pitch_hop_ms=pitch_hop_ms,
        **{k: stored[k] for k in keep if k in stored},
    )
    settings.validate()
    return settings


def read_features(path: str, settings) -> tuple[dict[str, np.ndarray], dict]:
    """Load an NPZ written by ``ddsp features -f npz`` or ``--save-features``.

    Raises:
        InputError: unreadable file, missing arrays, or features computed at another sample
            rate, frame rate or loudness definition than the model's.
    """
    import json
    import zipfile

    from ddspcli.engine.features import FEATURE_KEYS
    from ddspcli.errors import InputError

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], np.float32) for k in FEATURE_KEYS if k in data}
            meta = json.loads(str(data["meta"])) if "meta" in data else {}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read features from {path}: {err}") from None
    missing = [k for k in FEATURE_KEYS if k not in arrays]
    if missing:
        raise InputError(f"{path} lacks {', '.join(missing)}; write it with `ddsp features -f npz`")
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise InputError(f"{path}: the feature arrays are empty or of different lengths")
    stored = {
        **meta.get("settings", {}),
        **{k: meta[k] for k in ("sample_rate", "frame_rate") if k in meta},
    }
    for key in ("sample_rate", "frame_rate", "n_fft", "range_db", "ref_db"):
        if key in stored and float(stored[key]) != float(getattr(settings, key)):
            raise InputError(
                f"{path} was computed with {key} = {stored[key]} but the model uses "
                f"{getattr(settings, key)}; recompute it (or omit --features)"
            )
    return arrays, meta


def _stem(source: str) -> str:
    """The name outputs are derived from: the file's stem, ``stdin`` for ``-``."""
    from pathlib import Path

    return "stdin" if source == "-" else Path(source).stem


def default_output(source: str, model_name: str, out_dir: str | None) -> str:
    """``<input stem>.<model>.wav`` in `out_dir` or beside the input; stdin -> stdout."""
    from pathlib import Path

    if source == "-" and out_dir is None:
        return "-"
    folder = Path(out_dir) if out_dir is not None else Path(source).parent
    return str(folder / f"{_stem(source)}.{model_name}.wav")


def render(
    loaded,
    features: dict[str, np.ndarray],
    audio: np.ndarray | None,
    settings: RenderSettings,
    parts: tuple[str, ...] = (),
    progress=None,
) -> dict[str, np.ndarray]:
    """Model audio for adjusted features: ``{"audio": [n]}`` plus any of `PART_NAMES`.

    ``audio`` is the final mix (dry when ``settings.reverb`` is off); ``reverb`` is the wet
    part alone, so ``harmonic + noise + reverb == audio``.
    """
    from ddspcli.engine import streaming

    model = loaded.model
    block = max(1, round(settings.block_s * model.frame_rate))
    wet = settings.reverb and model.reverb is not None
    final = "audio" if wet else "dry"
    wanted = {final} | ({"dry"} if wet and "reverb" in parts else set())
    wanted |= {p for p in parts if p in ("harmonic", "noise") and (p != "noise" or model.noise)}
    renderer = streaming.StreamRenderer(model, settings.seed, block)
    out = renderer.render(features, audio, tuple(sorted(wanted)), progress)
    result = {"audio": out.pop(final)}
    if "dry" in out:
        result["reverb"] = result["audio"] - out.pop("dry")
    result.update(out)
    return result


@dataclass(frozen=True)
class Job:
    """One input of ``ddsp transfer`` and where its results go."""

    source: str | None  # audio file or "-"; None when only `features_in` is given
    output: str  # WAV path or "-"
    features_in: str | None = None
    save_features: str | None = None
    plot: str | None = None
    stems_dir: str | None = None


def stem_paths(job: Job, model_name: str, parts: tuple[str, ...]) -> dict[str, str]:
    """``DIR/<input stem>.<model>.<part>.wav`` for each stem."""
    from pathlib import Path

    if job.stems_dir is None:
        return {}
    stem = _stem(job.source or job.features_in or "-")
    return {p: str(Path(job.stems_dir) / f"{stem}.{model_name}.{p}.wav") for p in parts}


def run_job(
    job: Job,
    loaded,
    model_name: str,
    fsettings,
    adjustments: Adjustments,
    rsettings: RenderSettings,
    weights_path: str | None,
    advance=None,
    force: bool = False,
    stdin: np.ndarray | None = None,
) -> dict:
    """Features -> adjustments -> rendering -> files, for one input.

    Args:
        loaded: `model.LoadedModel`. fsettings: `features.FeatureSettings` of the model.
        weights_path: CREPE checkpoint (unused when `job.features_in` is given).
        advance: progress callback taking work units (`FEATURE_COST` per feature frame,
            `RENDER_COST` per rendered frame) and a status text.
        stdin: the decoded audio when `job.source` is ``-`` (read before, to size the bar).
    Returns:
        A summary: input, output, seconds of audio, wall seconds, real-time factor, gain (dB),
        the adjustment report and any warnings.
    """
    import time

    from ddspcli.engine import audio as audio_io
    from ddspcli.engine import features as features_lib
    from ddspcli.engine import features_io
    from ddspcli.errors import InputError

    start = time.perf_counter()
    advance = advance or (lambda n, stage: None)
    label = (job.source or job.features_in).rsplit("/", 1)[-1]
    sr, hop = fsettings.sample_rate, fsettings.hop
    samples = stdin
    if samples is None and job.source is not None:
        samples = audio_io.read_audio(job.source, sr)[0]
    if loaded.model.encoder is not None and samples is None:
        raise InputError("this model has a z encoder (trained with --z): give the audio too")
    cost = FEATURE_COST.get(fsettings.pitch_model, 1.0)
    meta: dict = {}
    if job.features_in is not None:
        feats, meta = read_features(job.features_in, fsettings)
        if samples is not None and features_lib.n_frames(len(samples), hop) != len(feats["f0_hz"]):
            raise InputError(
                f"{job.features_in} has {len(feats['f0_hz'])} frames but {job.source} gives "
                f"{features_lib.n_frames(len(samples), hop)}; they are not from the same audio"
            )
        advance(cost * len(feats["f0_hz"]), f"{label}: features read")
    else:
        feats = features_lib.compute_features(
            samples, weights_path, fsettings, lambda n: advance(cost * n, f"{label}: features")
        )
    n_frames = len(feats["f0_hz"])
    n_samples = (
        len(samples) if samples is not None else int(meta.get("n_samples", (n_frames - 1) * hop))
    )
    adjusted, report = adjust(
        feats, loaded.statistics, adjustments, f0_limits(loaded.model.sample_rate)
    )
    warnings = []
    parts = PART_NAMES if rsettings.reverb and loaded.model.reverb is not None else PART_NAMES[:2]
    parts = parts if job.stems_dir else ()
    if not adjusted["notes"].any():
        warnings.append(
            f"{job.source or job.features_in}: no notes found (no frame with pitch confidence "
            f">= {adjustments.note_confidence} above {adjustments.note_floor_db} dB); "
            "writing silence. Lower --note-confidence if the input does hold notes"
        )
        rendered = {p: np.zeros(n_frames * hop, np.float32) for p in ("audio", *parts)}
        advance(RENDER_COST * n_frames, f"{label}: silent")
    else:
        rendered = render(
            loaded, adjusted, samples, rsettings, parts,
            lambda n: advance(RENDER_COST * n, f"{label}: synthesis"),
        )  # fmt: skip
    rendered = {k: v[:n_samples] for k, v in rendered.items()}
    gain = peak_gain(rendered["audio"], rsettings.peak_db, rsettings.normalize)
    out_rate = rsettings.sample_rate or sr
    for key, value in rendered.items():
        value *= np.float32(gain)  # in place: long outputs are the largest arrays held
        rendered[key] = audio_io.resample(value, sr, out_rate) if out_rate != sr else value
    targets = {"audio": job.output, **stem_paths(job, model_name, parts)}
    for part, path in targets.items():
        audio_io.write_wav(path, rendered[part], out_rate, force=force, subtype=rsettings.subtype)
    if job.save_features is not None:
        meta_out = {"source": job.source, "sample_rate": sr, "frame_rate": fsettings.frame_rate,
                    "settings": fsettings.to_dict(), "n_samples": n_samples, "model": model_name,
                    "adjustments": report}  # fmt: skip
        features_io.write(
            features_io.encode(adjusted, "npz", meta_out), job.save_features, force=force
        )
    if job.plot is not None:
        features_io.plot_transfer(
            samples, rendered["audio"], feats, adjusted, sr, out_rate, fsettings.frame_rate,
            job.plot, title=f"{job.source or job.features_in} -> {model_name}", force=force,
        )  # fmt: skip
    wall = time.perf_counter() - start
    summary = output_summary(job.output, model_name, rendered["audio"], n_samples / sr, out_rate,
                             wall, gain)  # fmt: skip
    return {"input": job.source or job.features_in, **summary, "adjustments": report,
            "warnings": warnings}  # fmt: skip


def output_summary(
    output: str, model_name: str, audio: np.ndarray, seconds: float, out_rate: int, wall: float,
    gain: float,
) -> dict:  # fmt: skip
    """The summary fields every rendering command reports about its output `audio` ``[n]``."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return {
        "output": output,
        "model": model_name,
        "seconds": round(seconds, 3),
        "sample_rate": out_rate,
        "wall_s": round(wall, 3),
        "real_time_factor": round(wall / seconds, 4) if seconds else None,
        "gain_db": round(20.0 * math.log10(gain), 2),
        "peak_dbfs": round(20.0 * math.log10(peak), 2) if peak > 0 else None,
    }
