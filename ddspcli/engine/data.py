"""Datasets on disk: TFRecord schema, example cutting, statistics, and the `tf.data` reader.

A prepared dataset folder holds ``train-XXXXX-of-NNNNN.tfrecord`` / ``eval-...`` shards of
`tf.train.Example`s with the keys magenta's trainer reads (``audio`` ``[n_samples]``,
``f0_hz``, ``f0_confidence``, ``loudness_db`` ``[n_frames]``, all float), ``dataset.json``
(settings, shapes, counts, shards, per-file provenance) and ``statistics.json``. The reader is
built from ``dataset.json`` alone, so shapes never have to be passed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddspcli import storage
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.adjust import detect_notes, hz_to_midi
from ddspcli.engine.features import FEATURE_KEYS
from ddspcli.errors import InputError

DATASET_JSON = "dataset.json"
STATISTICS_JSON = "statistics.json"
FORMAT_VERSION = 1
SPLITS = ("train", "eval")


# ---------------------------------------------------------------------------------------------
# Examples.


def example_windows(
    n_audio: int,
    loudness_db: np.ndarray,
    n_samples: int,
    hop_samples: int,
    frame_hop: int,
    start_sample: int = 0,
    stop_sample: int | None = None,
    silence_db: float = -60.0,
) -> list[tuple[int, int]]:
    """``(start, length)`` of each example window in samples.

    Windows of `n_samples` start every `hop_samples` from `start_sample` and end by
    `stop_sample`. The tail after the last full window becomes one more window (``length <
    n_samples``, zero-padded when cut) only if at least half a window of it is non-silent
    (loudness above `silence_db`).
    """
    if n_samples % frame_hop or hop_samples % frame_hop:
        raise ValueError("example length and hop must be whole numbers of frames")
    stop = n_audio if stop_sample is None else min(stop_sample, n_audio)
    windows, start = [], start_sample
    while start + n_samples <= stop:
        windows.append((start, n_samples))
        start += hop_samples
    tail = stop - start
    if 0 < tail < n_samples:
        active = np.count_nonzero(loudness_db[start // frame_hop : stop // frame_hop] > silence_db)
        if active * frame_hop >= n_samples // 2:
            windows.append((start, tail))
    return windows


def cut_example(
    audio: np.ndarray,
    feats: dict[str, np.ndarray],
    start: int,
    length: int,
    n_samples: int,
    frame_hop: int,
) -> dict[str, np.ndarray]:
    """One example: `n_samples` of audio from `start` (zeros after `length`) and its
    ``n_samples // frame_hop`` feature frames (after the tail: last f0, confidence 0, the
    file's quietest loudness).
    """
    n_frames = n_samples // frame_hop
    clip = np.zeros(n_samples, np.float32)
    clip[:length] = audio[start : start + length]
    first = start // frame_hop
    used = n_frames if length == n_samples else -(-length // frame_hop)
    example = {"audio": clip}
    for key in FEATURE_KEYS:
        values = np.asarray(feats[key][first : first + used], np.float32)
        fill = {
            "f0_hz": values[-1] if len(values) else 0.0,
            "f0_confidence": 0.0,
            "loudness_db": float(np.min(feats["loudness_db"])),
        }[key]
        pad = np.full(n_frames - len(values), fill, np.float32)
        example[key] = np.concatenate([values, pad])
    return example


def serialize(example: dict[str, np.ndarray]) -> bytes:
    """A `tf.train.Example` with one float list per key (magenta's layout)."""
    feature = {
        key: tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(value).ravel()))
        for key, value in example.items()
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # sorted map keys: stable bytes


def shard_names(split: str, n_shards: int) -> list[str]:
    """``split-00000-of-NNNNN.tfrecord`` names."""
    return [f"{split}-{i:05d}-of-{n_shards:05d}.tfrecord" for i in range(n_shards)]


# ---------------------------------------------------------------------------------------------
# Statistics.


def note_range_statistics(per_file: list[dict[str, np.ndarray]], frames: int) -> dict:
    """The official DDSP statistics a DDSP-VST model's ``metadata.json`` carries.

    Each file's frames are cut into non-overlapping pieces of `frames` (an example's length;
    a shorter last piece too); in each piece with note-on frames (`detect_notes`) the lowest
    and highest pitch (MIDI) and level (dB) of those frames are taken, and averaged over
    pieces, as the official ``compute_dataset_statistics`` does per example.

    Returns:
        ``mean_min_pitch_note``, ``mean_max_pitch_note`` (MIDI), ``mean_min_power_note``,
        ``mean_max_power_note`` (dB), ``pieces`` (how many had notes); ``{}`` without notes.
    """
    lows, highs, quiet, loud = [], [], [], []
    for feats in per_file:
        on = detect_notes(feats["loudness_db"], feats["f0_confidence"])
        for start in range(0, len(on), max(1, frames)):
            mask = on[start : start + frames]
            if not mask.any():
                continue
            f0 = feats["f0_hz"][start : start + frames][mask]
            level = feats["loudness_db"][start : start + frames][mask]
            midi = hz_to_midi(f0)
            lows.append(midi.min())
            highs.append(midi.max())
            quiet.append(level.min())
            loud.append(level.max())
    if not lows:
        return {}
    return {
        "mean_min_pitch_note": float(np.mean(lows)),
        "mean_max_pitch_note": float(np.mean(highs)),
        "mean_min_power_note": float(np.mean(quiet)),
        "mean_max_power_note": float(np.mean(loud)),
        "pieces": len(lows),
    }


def compute_statistics(per_file: list[dict[str, np.ndarray]], n_quantiles: int = 101) -> dict:
    """Dataset statistics over note-on frames (for `transfer`'s automatic adjustments).

    Returns:
        ``mean_pitch`` (MIDI), ``pitch_range`` (MIDI 5th and 95th percentile), ``f0_hz_range``
        (min, max), ``loudness_quantiles`` (`n_quantiles` values, dB, for quantile mapping),
        ``note_on_loudness`` (mean, std, min, max dB), ``note_on_fraction`` and frame counts.
    """
    f0 = np.concatenate([f["f0_hz"] for f in per_file]) if per_file else np.zeros(0)
    ld = np.concatenate([f["loudness_db"] for f in per_file]) if per_file else np.zeros(0)
    on = (
        np.concatenate([detect_notes(f["loudness_db"], f["f0_confidence"]) for f in per_file])
        if per_file
        else np.zeros(0, bool)
    )
    stats: dict = {"frames": len(f0), "note_on_frames": int(on.sum())}
    stats["note_on_fraction"] = float(on.mean()) if len(on) else 0.0
    if not on.any():
        return stats
    midi = 69.0 + 12.0 * np.log2(f0[on] / 440.0)
    loud = ld[on]
    stats.update(
        mean_pitch=float(midi.mean()),
        pitch_range=[float(np.percentile(midi, 5)), float(np.percentile(midi, 95))],
        f0_hz_range=[float(f0[on].min()), float(f0[on].max())],
        loudness_quantiles=np.quantile(loud, np.linspace(0, 1, n_quantiles)).tolist(),
        note_on_loudness={
            "mean": float(loud.mean()),
            "std": float(loud.std()),
            "min": float(loud.min()),
            "max": float(loud.max()),
        },
    )
    return stats


# ---------------------------------------------------------------------------------------------
# Reader.


def read_info(folder: str | Path) -> dict:
    """``dataset.json`` of a prepared folder, checked for the fields the reader needs."""
    path = storage.join(folder, DATASET_JSON)
    if not storage.exists(path):
        raise InputError(
            f"{folder} is not a prepared dataset (no {DATASET_JSON}); run `ddsp prepare`"
        )
    try:
        info = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is damaged: {err}") from None
    for key in ("n_samples", "n_frames", "splits"):
        if key not in info:
            raise InputError(f"{path} lacks '{key}'; prepare the dataset again")
    return info


def parse_example(n_samples: int, n_frames: int):
    """A function parsing one serialized example into fixed-shape float32 tensors."""
    spec = {"audio": tf.io.FixedLenFeature([n_samples], tf.float32)}
    spec.update({key: tf.io.FixedLenFeature([n_frames], tf.float32) for key in FEATURE_KEYS})
    return lambda record: tf.io.parse_single_example(record, spec)


def make_dataset(
    folder: str | Path,
    split: str = "train",
    batch_size: int = 16,
    shuffle: bool = True,
    repeat: bool = True,
    seed: int | None = None,
    shuffle_buffer: int = 1000,
    skip: int = 0,
) -> tf.data.Dataset:
    """``tf.data`` pipeline over a prepared split: parse, shuffle, repeat, batch, prefetch.

    With a `seed`, the order is a pure function of the seed, so a resumed run that skips the
    `skip` examples it already used continues the exact sequence.

    Returns:
        batches of ``{"audio": [b, n_samples], "f0_hz": [b, n_frames], ...}``.
    """
    info = read_info(folder)
    names = info["splits"].get(split, {}).get("shards", [])
    shards = [storage.join(folder, name) for name in names]
    if not shards:
        raise InputError(f"{folder} has no '{split}' examples")
    ds = tf.data.TFRecordDataset(shards)
    ds = ds.map(
        parse_example(info["n_samples"], info["n_frames"]), num_parallel_calls=tf.data.AUTOTUNE
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if skip:
        ds = ds.skip(skip)  # resume: the same seeded order, continued where it stopped
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
