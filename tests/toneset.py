"""A prepared dataset of synthetic harmonic tones with exactly known f0 (for fit/transfer tests).

Written in the format `ddsp prepare` writes (shards, dataset.json, statistics.json), without
running CREPE: f0 is known by construction, so the confidence is 1 on every frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from ddspcli.engine import data, dsp


def tone(f0: np.ndarray, sample_rate: int, hop: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic tone (8 harmonics, amplitudes 1/h) following frame-rate `f0` ``[t]``."""
    f0_env = np.repeat(f0, hop)
    phase = 2 * np.pi * np.cumsum(f0_env) / sample_rate
    n = len(f0_env)
    # A 50 ms attack, then a crescendo or diminuendo between two levels 0.02..0.5 apart (up to
    # 28 dB), so that a model learns how loudness sets the amplitude.
    levels = np.exp(rng.uniform(np.log(0.02), np.log(0.5), 2))
    envelope = np.minimum(1.0, np.arange(n) / (0.05 * sample_rate)) * np.geomspace(*levels, n)
    audio = sum(np.sin(h * phase) / h for h in range(1, 9) if h * f0_env.max() < sample_rate / 2)
    return (envelope * audio / 2).astype(np.float32)


def write_tone_dataset(
    folder: Path,
    n_train: int = 32,
    n_eval: int = 4,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    frame_rate: int = 250,
    seed: int = 0,
) -> Path:
    """Examples of steady or gliding tones between 200 and 500 Hz. Returns `folder`."""
    rng = np.random.default_rng(seed)
    hop = sample_rate // frame_rate
    n_frames = round(seconds * frame_rate)
    n_samples = n_frames * hop
    folder.mkdir(parents=True, exist_ok=True)
    splits, train_feats = {}, []
    for split, count in (("train", n_train), ("eval", n_eval)):
        names = data.shard_names(split, 1) if count else []
        if count:
            with tf.io.TFRecordWriter(str(folder / names[0])) as writer:
                for _ in range(count):
                    start, stop = rng.uniform(200, 500, 2)
                    glide = rng.random() < 0.5
                    f0 = np.geomspace(start, stop if glide else start, n_frames).astype(np.float32)
                    audio = tone(f0, sample_rate, hop, rng)
                    loud = dsp.compute_loudness(audio, sample_rate, frame_rate).numpy()[:n_frames]
                    example = {
                        "audio": audio,
                        "f0_hz": f0,
                        "f0_confidence": np.ones(n_frames, np.float32),
                        "loudness_db": loud.astype(np.float32),
                    }
                    writer.write(data.serialize(example))
                    if split == "train":
                        train_feats.append({k: v for k, v in example.items() if k != "audio"})
        splits[split] = {"examples": count, "shards": names}
    info = {
        "format_version": data.FORMAT_VERSION,
        "sample_rate": sample_rate,
        "frame_rate": frame_rate,
        "example_secs": seconds,
        "n_samples": n_samples,
        "n_frames": n_frames,
        "split_by": "file",
        "splits": splits,
        "settings": {"features": {"sample_rate": sample_rate, "frame_rate": frame_rate}},
    }
    (folder / data.STATISTICS_JSON).write_text(json.dumps(data.compute_statistics(train_feats)))
    (folder / data.DATASET_JSON).write_text(json.dumps(info, indent=2))
    return folder
