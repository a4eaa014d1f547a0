"""f0, confidence and loudness for audio of any length, in bounded memory.

Frames are centred on multiples of the hop (64 samples = 4 ms at 16 kHz and 250 frames/s):
``n // 64 + 1`` frames for ``n`` samples, identical for pitch and loudness.

Speed (see BENCHMARKS.md): CREPE runs on every ``k``-th frame (``pitch_hop_ms``), its decoded
pitch is interpolated in cents (and its confidence linearly) back to every frame; frames whose
whole CREPE window is digitally silent by loudness are not run at all. Long inputs are processed
in blocks of frames with context on both sides so that the Viterbi path is unaffected by block
edges.

No TensorFlow: loudness is NumPy (`a_weighted_db`, TensorFlow's `dsp.compute_loudness` to
float32 rounding), CREPE is any `Tracker`: a ``.tflite`` run by LiteRT (`ddspcli.runtime.crepe`,
the inference path) or, for a ``.pth``/``.npz`` checkpoint, the TensorFlow network
(`ddspcli.engine.crepe_tf`, imported only then; see `load_tracker`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ddspcli import choices, tfimport
from ddspcli.engine import pitch
from ddspcli.errors import ModelError
from ddspcli.runtime import crepe as lite_crepe

FEATURE_KEYS = ("f0_hz", "f0_confidence", "loudness_db")
DEFAULT_PITCH_HOP_MS = choices.PITCH_HOP_MS  # by pitch model


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed; stored with datasets and models so they can be recomputed."""

    sample_rate: int = 16000
    frame_rate: int = 250
    n_fft: int = 512  # loudness STFT size (power: the frame size)
    loudness: str = choices.Loudness.A_WEIGHTED.value  # what ``loudness_db`` measures
    range_db: float = 80.0
    ref_db: float = 0.0
    pitch_model: str = choices.FEATURES_PITCH_MODEL.value
    pitch_hop_ms: float | None = None  # None: DEFAULT_PITCH_HOP_MS[pitch_model]
    viterbi: bool = True
    silence_db: float = -70.0  # skip CREPE where all loudness in its window is below this
    refine_cents: float | None = 50.0  # recompute skipped frames where pitch jumps more
    block_s: float = 60.0
    context_s: float = 1.0
    batch_size: int = 128

    @property
    def hop(self) -> int:
        """Samples between feature frames."""
        return self.sample_rate // self.frame_rate

    @property
    def pitch_stride(self) -> int:
        """Feature frames between CREPE frames."""
        hop_ms = self.pitch_hop_ms or DEFAULT_PITCH_HOP_MS[self.pitch_model]
        stride = hop_ms * self.frame_rate / 1000.0
        if stride < 1 or abs(stride - round(stride)) > 1e-6:
            frame_ms = 1000.0 / self.frame_rate
            raise ValueError(f"pitch hop {hop_ms} ms must be a multiple of {frame_ms:g} ms")
        return round(stride)

    def validate(self) -> None:
        """Raise ValueError for settings the engine cannot honour."""
        for rate in (self.sample_rate, pitch.SAMPLE_RATE):  # pitch is tracked at 16 kHz
            if rate % self.frame_rate:
                raise ValueError(f"frame rate {self.frame_rate} does not divide {rate} Hz")
        if self.loudness not in choices.values(choices.Loudness):
            raise ValueError(f"loudness must be one of {choices.values(choices.Loudness)}")
        if self.pitch_model not in DEFAULT_PITCH_HOP_MS:
            raise ValueError(f"pitch model must be one of {sorted(DEFAULT_PITCH_HOP_MS)}")
        _ = self.pitch_stride

    @classmethod
    def vst(cls, **changes: object) -> FeatureSettings:
        """The DDSP-VST plugin's features (``prepare --preset vst``): 16 kHz, 50 frames/s,
        power over 1024-sample frames (dB, floor -80), CREPE on every 20 ms frame without
        Viterbi smoothing, as the plugin's extractor (with it, CREPE full held the previous
        pitch into speech's glides: 94.7% of voiced frames within 50 cents of the plugin's f0
        against 100% without; see BENCHMARKS.md)."""
        values = dict(
            sample_rate=choices.VST_SAMPLE_RATE, frame_rate=choices.VST_FRAME_RATE,
            n_fft=choices.VST_FRAME_SIZE, loudness=choices.Loudness.POWER.value,
            range_db=80.0, ref_db=0.0, pitch_hop_ms=choices.VST_PITCH_HOP_MS, viterbi=False,
        )  # fmt: skip
        values.update(changes)
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict) -> FeatureSettings:
        """Settings as stored in ``dataset.json`` (unknown keys from other versions ignored)."""
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        """JSON-ready, with the pitch hop resolved."""
        return {**asdict(self), "pitch_hop_ms": self.pitch_stride * 1000.0 / self.frame_rate}


def model_settings(
    info: dict, pitch_model: str, pitch_hop_ms: float | None = None
) -> FeatureSettings:
    """A model's feature definition (``model.json``: rate, frame rate, loudness) with the
    chosen pitch tracker: everything that changes the numbers the model was trained on comes
    from the model; only the tracker's speed/accuracy trade-off is the caller's.

    Args:
        info: ``model.json``. pitch_model: ``tiny`` or ``full``.
        pitch_hop_ms: ms between CREPE frames; None: the tracker's default on the model's
            frame grid (`pitch_hop_on_frames`; 16 ms at 50 frames/s -> 20 ms).
    Raises:
        ValueError: settings the engine cannot honour (see `FeatureSettings.validate`).
    """
    stored = dict(info.get("features") or {})
    if pitch_hop_ms is None:
        default = DEFAULT_PITCH_HOP_MS[pitch_model]
        pitch_hop_ms = pitch_hop_on_frames(default, int(info["frame_rate"]))
    keep = ("n_fft", "range_db", "ref_db", "silence_db", "loudness")
    settings = FeatureSettings(
        sample_rate=int(info["sample_rate"]), frame_rate=int(info["frame_rate"]),
        pitch_model=pitch_model, pitch_hop_ms=pitch_hop_ms,
        **{k: stored[k] for k in keep if k in stored},
    )  # fmt: skip
    settings.validate()
    return settings


def n_frames(n_samples: int, hop: int) -> int:
    """Centred frames for `n_samples`: ``n // hop + 1``."""
    return n_samples // hop + 1


class Tracker(Protocol):
    """A CREPE network: ``[n, 1024]`` float32 frames at 16 kHz -> ``[n, 360]`` activations
    (an array or anything `numpy.asarray` reads, such as a TensorFlow tensor)."""

    def activations(self, frames: np.ndarray) -> object: ...


TFLITE_SUFFIX = ".tflite"


@functools.lru_cache(maxsize=4)
def load_tracker(weights_path: str) -> Tracker:
    """A CREPE network from a file (cached per process).

    A ``.tflite`` (with its ``.json`` beside it) runs in LiteRT (`runtime.crepe.Crepe`); a torch
    ``.pth`` or converted ``.npz`` checkpoint builds the TensorFlow network
    (`crepe_tf.Crepe`, the only path here that imports TensorFlow).

    Raises:
        ModelError: a damaged ``.tflite``, or a checkpoint without TensorFlow installed.
    """
    if weights_path.endswith(TFLITE_SUFFIX):
        return lite_crepe.Crepe(weights_path)
    if not tfimport.available():
        raise ModelError(f"CREPE from {weights_path} needs TensorFlow ({tfimport.TRAIN_EXTRA}); "
                         "give its .tflite instead")  # fmt: skip
    return tfimport.engine_module("crepe_tf").Crepe(pitch.load_weights(weights_path))


def pitch_hop_on_frames(hop_ms: float, frame_rate: int) -> float:
    """`hop_ms` rounded to a whole number (at least one) of frame periods at `frame_rate`, in
    ms: a tracker's default hop on a model's frame grid (16 ms at 50 frames/s: 20 ms)."""
    frame_ms = 1000.0 / frame_rate
    return max(1, round(hop_ms / frame_ms)) * frame_ms


def frame_power_db(frames: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """``[k, n_fft]`` frames -> ``[k]`` float32 power in dB: ``10 log10(mean(x**2))`` (summed in
    float64), floored at ``-range_db``, minus ``ref_db``."""
    mean_square = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[-1]
    floor = 10.0 ** (-settings.range_db / 10.0)
    return (10.0 * np.log10(np.maximum(mean_square, floor)) - settings.ref_db).astype(np.float32)


def compute_power(audio: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Power ``[n // hop + 1]`` in dB: ``10 log10(mean(x**2))`` over the `n_fft` samples
    centred on each frame (zeros beyond the ends), floored at ``-range_db``, minus ``ref_db``.

    DDSP-VST's extractor computes exactly this on its 1024-sample frames (``pw_db``; measured
    on its ``extract_features_micro.tflite``: sines, noise, DC and silence agree to 1e-5 dB).
    """
    hop, size = settings.hop, settings.n_fft
    total = n_frames(len(audio), hop)
    padded = np.pad(np.asarray(audio, np.float32), (size // 2, size // 2 + hop))
    block = max(1, int(settings.block_s * settings.frame_rate))
    out = np.empty(total, np.float32)
    for start in range(0, total, block):
        stop = min(total, start + block)
        piece = padded[start * hop : (stop - 1) * hop + size]
        out[start:stop] = frame_power_db(
            np.lib.stride_tricks.sliding_window_view(piece, size)[::hop], settings
        )
    return out


A_WEIGHTING_POLES_HZ = (12194.217, 20.598997, 107.65265, 737.86223)  # IEC 61672, as librosa's


def a_weighting_db(frequencies: np.ndarray, min_db: float = -80.0) -> np.ndarray:
    """IEC 61672 A-weighting in dB at `frequencies` (Hz), floored at `min_db`: librosa's
    ``A_weighting`` term for term (same constants and order, so the same float64 values;
    `tests/test_instrument.py`), without importing librosa (scipy) on the inference path."""
    f_sq = np.asarray(frequencies, np.float64) ** 2.0
    c = np.array(A_WEIGHTING_POLES_HZ) ** 2.0
    with np.errstate(divide="ignore"):  # 0 Hz: log10(0) = -inf, floored to min_db
        weights = 2.0 + 20.0 * (
            np.log10(c[0]) + 2 * np.log10(f_sq) - np.log10(f_sq + c[0]) - np.log10(f_sq + c[1])
            - 0.5 * np.log10(f_sq + c[2]) - 0.5 * np.log10(f_sq + c[3])
        )  # fmt: skip
    return np.maximum(min_db, weights)


@functools.lru_cache(maxsize=8)
def _a_weighting(n_fft: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The periodic Hann window ``[n_fft]`` (as `tf.signal.stft`'s) and the A-weighting as
    linear power ``[n_fft // 2 + 1]`` (`a_weighting_db`, floored at -80 dB as
    `dsp.a_weighting_db`), float64."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return window, 10.0 ** (a_weighting_db(freqs) / 10.0)


def a_weighted_db(frames: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """``[k, n_fft]`` frames -> ``[k]`` float32 A-weighted loudness in dB: the mean over bins of
    the periodic-Hann ``|rfft|^2`` times the A-weighting (float64), ``10 log10(max(., 1e-8))``
    minus ``ref_db``, floored at ``-range_db`` (TensorFlow's `dsp.compute_loudness`; a
    full-scale 1 kHz sine reads about +19.8 dB)."""
    window, weighting = _a_weighting(settings.n_fft, settings.sample_rate)
    spectrum = np.fft.rfft(np.asarray(frames, np.float64) * window, axis=-1)
    mean = np.mean((spectrum.real**2 + spectrum.imag**2) * weighting, axis=-1)
    db = 10.0 * np.log10(np.maximum(mean, 1e-8)) - settings.ref_db
    return np.maximum(db, -settings.range_db).astype(np.float32)


LOUDNESS_CHUNK = 2048  # frames per FFT call (bounds the float64 spectra to ~8 MB)


def compute_loudness(audio: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """The level feature ``[n // hop + 1]`` in dB, computed in blocks (bounded memory):
    A-weighted loudness (`a_weighted_db` of the `n_fft` samples centred on each frame, zeros
    beyond the ends), or with ``settings.loudness == "power"`` `compute_power`."""
    if settings.loudness == choices.Loudness.POWER.value:
        return compute_power(audio, settings)
    hop, n_fft = settings.hop, settings.n_fft
    total = n_frames(len(audio), hop)
    padded = np.pad(np.asarray(audio, np.float32), n_fft // 2)
    out = np.empty(total, np.float32)
    for start in range(0, total, LOUDNESS_CHUNK):
        stop = min(total, start + LOUDNESS_CHUNK)
        piece = padded[start * hop : (stop - 1) * hop + n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(piece, n_fft)[::hop]
        out[start:stop] = a_weighted_db(frames, settings)
    return out


def _voiced_mask(loudness: np.ndarray, stride: int, n_coarse: int, settings: FeatureSettings):
    """True for CREPE frames whose 1024-sample window has any loudness above silence_db."""
    reach = pitch.FRAME_SIZE // 2 // settings.hop  # feature frames within half a CREPE window
    loud = loudness > settings.silence_db
    # Any loud frame within +-reach: dilate with a cumulative sum.
    csum = np.concatenate([[0], np.cumsum(loud)])
    centers = np.arange(n_coarse) * stride
    lo = np.clip(centers - reach, 0, len(loud))
    hi = np.clip(centers + reach + 1, 0, len(loud))
    return (csum[hi] - csum[lo]) > 0


def _activations(
    padded: np.ndarray, tracker: Tracker, coarse: np.ndarray, hop: int, batch: int
) -> np.ndarray:
    """CREPE activations ``[len(coarse), 360]`` for frames centred on sample ``coarse * hop``.

    `padded` is the audio with 512 zeros before it and enough zeros after the last frame.
    """
    out = np.zeros((len(coarse), pitch.N_BINS), np.float32)
    window = np.arange(pitch.FRAME_SIZE)[None, :]
    for i in range(0, len(coarse), batch):
        starts = coarse[i : i + batch] * hop
        frames = np.ascontiguousarray(padded[starts[:, None] + window])
        out[i : i + len(starts)] = np.asarray(tracker.activations(frames))
    return out


def compute_pitch(
    audio: np.ndarray,
    tracker: Tracker,
    settings: FeatureSettings,
    loudness: np.ndarray,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and confidence ``[n // hop + 1]`` each, blockwise with Viterbi context.

    Args:
        audio: ``[n]`` at 16 kHz.
        loudness: ``[n // hop + 1]`` dB, for skipping silent CREPE frames.
        progress: called with the number of feature frames finished after each block.
    """
    hop, stride = settings.hop, settings.pitch_stride
    total = n_frames(len(audio), hop)
    n_coarse = -(-(total - 1) // stride) + 1  # the last frame has a CREPE frame at or after it
    voiced = _voiced_mask(loudness, stride, n_coarse, settings)
    block = max(1, int(settings.block_s * settings.frame_rate / stride))
    context = int(np.ceil(settings.context_s * settings.frame_rate / stride))
    cents = np.empty(n_coarse)
    confidence = np.zeros(n_coarse, np.float32)
    half = pitch.FRAME_SIZE // 2
    # Every CREPE frame's window lies inside: the last frame's centre is at most one stride past
    # the audio's end (not the audio's length again: that doubled the input's memory).
    padded = np.zeros(max(len(audio), (n_coarse - 1) * stride * hop) + pitch.FRAME_SIZE, np.float32)
    padded[half : half + len(audio)] = audio
    for start in range(0, n_coarse, block):
        stop = min(n_coarse, start + block)
        lo, hi = max(0, start - context), min(n_coarse, stop + context)
        idx = np.arange(lo, hi)
        act = np.zeros((hi - lo, pitch.N_BINS), np.float32)
        on = voiced[lo:hi]
        if on.any():
            act[on] = _activations(padded, tracker, idx[on] * stride, hop, settings.batch_size)
        centers = pitch.viterbi_path(act, on, steps=stride) if settings.viterbi else None
        keep = slice(start - lo, stop - lo)
        cents[start:stop] = pitch.local_average_cents(act, centers)[keep]
        confidence[start:stop] = act.max(axis=1)[keep]
        if progress is not None:
            progress(min(total, stop * stride) - min(total, start * stride))
    coarse_idx = np.arange(n_coarse) * stride
    if stride > 1 and settings.refine_cents is not None:
        coarse_idx, cents, confidence = _refine_jumps(
            padded, tracker, settings, coarse_idx, cents, confidence, voiced
        )
    fine = np.arange(total)
    f0 = pitch.cents_to_hz(np.interp(fine, coarse_idx, cents)).astype(np.float32)
    conf = np.interp(fine, coarse_idx, confidence).astype(np.float32)
    return f0, conf


def _refine_jumps(
    padded: np.ndarray,
    tracker: Tracker,
    settings: FeatureSettings,
    idx: np.ndarray,
    cents: np.ndarray,
    confidence: np.ndarray,
    voiced: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locate pitch jumps (note changes) between CREPE frames by bisection.

    Interpolating across a jump would draw a glide where the pitch steps. For each pair of
    neighbouring CREPE frames whose pitch differs by more than ``refine_cents`` (one of them
    confident), the frame halfway is computed (decoded by local average around its argmax),
    and the half that still holds the jump is split again, until the jump lies between two
    adjacent frames: about log2(stride) extra frames per note change.

    Args:
        idx: ``[m]`` sorted feature-frame indices with known ``cents`` and ``confidence``.
    Returns:
        ``(idx, cents, confidence)`` with the refined frames merged in, sorted.
    """
    threshold = settings.refine_cents

    def jumps(a: np.ndarray, b: np.ndarray, ca, cb, fa, fb) -> np.ndarray:
        return (b - a > 1) & (np.abs(cb - ca) > threshold) & (np.maximum(fa, fb) > 0.5)

    on = voiced[:-1] | voiced[1:]
    mask = jumps(idx[:-1], idx[1:], cents[:-1], cents[1:], confidence[:-1], confidence[1:]) & on
    a, b = idx[:-1][mask], idx[1:][mask]
    ca, cb, fa, fb = cents[:-1][mask], cents[1:][mask], confidence[:-1][mask], confidence[1:][mask]
    new_idx, new_cents, new_conf = [idx], [cents], [confidence]
    while len(a):
        mid = (a + b) // 2
        act = _activations(padded, tracker, mid, settings.hop, settings.batch_size)
        cm, fm = pitch.local_average_cents(act), act.max(axis=1)
        new_idx.append(mid)
        new_cents.append(cm)
        new_conf.append(fm)
        left, right = jumps(a, mid, ca, cm, fa, fm), jumps(mid, b, cm, cb, fm, fb)
        a = np.concatenate([a[left], mid[right]])
        b = np.concatenate([mid[left], b[right]])
        ca, cb = np.concatenate([ca[left], cm[right]]), np.concatenate([cm[left], cb[right]])
        fa, fb = np.concatenate([fa[left], fm[right]]), np.concatenate([fm[left], fb[right]])
    idx, cents, confidence = (np.concatenate(x) for x in (new_idx, new_cents, new_conf))
    order = np.argsort(idx, kind="stable")
    return idx[order], cents[order], confidence[order]


def compute_features(
    audio: np.ndarray,
    weights_path: str | Path | Tracker,
    settings: FeatureSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The feature dict for 16 kHz mono audio.

    Args:
        audio: ``[n]`` float32 at ``settings.sample_rate`` (CREPE runs on a 16 kHz copy when
            that is another rate).
        weights_path: the pitch model: a CREPE ``.tflite`` (LiteRT), a checkpoint (``.pth`` or
            converted ``.npz``: TensorFlow), or a loaded `Tracker` (see `load_tracker`).
        settings: defaults to `FeatureSettings()`.
        progress: called with feature frames done (pitch is the slow part).
    Returns:
        ``{"f0_hz", "f0_confidence", "loudness_db"}``, float32 ``[n // hop + 1]`` each.
    """
    settings = settings or FeatureSettings()
    settings.validate()
    audio = np.asarray(audio, np.float32)
    loudness = compute_loudness(audio, settings)
    tracker = weights_path if hasattr(weights_path, "activations") else load_tracker(
        str(weights_path))  # fmt: skip
    if settings.sample_rate == pitch.SAMPLE_RATE:
        f0, conf = compute_pitch(audio, tracker, settings, loudness, progress)
    else:  # CREPE hears a 16 kHz copy; its frames fall at the same times
        from ddspcli.engine.audio import resample

        at_16k = replace(settings, sample_rate=pitch.SAMPLE_RATE)
        audio_16k = resample(audio, settings.sample_rate, pitch.SAMPLE_RATE)
        loud_16k = compute_loudness(audio_16k, at_16k)
        f0, conf = (
            _fit_length(x, len(loudness))
            for x in compute_pitch(audio_16k, tracker, at_16k, loud_16k, progress)
        )
    return {"f0_hz": f0, "f0_confidence": conf, "loudness_db": loudness}


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or extend (holding the last value) a frame array to `n` frames."""
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)), mode="edge")
