"""Reconstruction quality of a model on a prepared split.

Each example is resynthesized from its own features; the output is compared with the recorded
audio (multi-scale spectral loss) and its features are extracted again and compared with the
example's (loudness L1 in dB on every frame; f0 L1 in semitones and the share of outliers more
than a semitone off, on frames whose recorded pitch confidence is at least 0.85).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ddspcli.engine import acoustics, data, features, losses
from ddspcli.engine._tensorflow import tf

CONFIDENT = 0.85  # f0 is scored where the recording's own pitch confidence is at least this
OUTLIER_SEMITONES = 1.0


@dataclass
class Scores:
    """Reconstruction scores of one model on one split (means over examples or frames)."""

    examples: int
    seconds: float
    spectral_loss: float  # mean over examples
    loudness_l1_db: float  # mean over all frames
    f0_l1_semitones: float  # mean over confident frames
    f0_outliers: float  # share of confident frames more than 1 semitone off
    f0_frames: int  # confident frames scored
    real_time_factor: float  # synthesis wall seconds per second of audio (after tracing)
    per_example_loss: list[float]
    # energy of the dry synthesizers over the reverb's (wet) part, whole split, dB (positive:
    # the dry note carries the sound); None for a model without a reverb
    dry_wet_db: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready (the per-example list included)."""
        return asdict(self)


def frame_errors(
    reference: dict[str, np.ndarray], measured: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``(|loudness difference| dB [frames], |f0 difference| semitones [confident frames])``.

    Both dicts hold ``f0_hz``, ``f0_confidence``, ``loudness_db`` ``[frames]`` (the shorter
    length is used). f0 is compared where the reference confidence is >= `CONFIDENT`; a
    measurement of 0 Hz there counts as 12 semitones off (an outlier).
    """
    n = min(len(reference["f0_hz"]), len(measured["f0_hz"]))
    loud = np.abs(reference["loudness_db"][:n] - measured["loudness_db"][:n])
    keep = (reference["f0_confidence"][:n] >= CONFIDENT) & (reference["f0_hz"][:n] > 0)
    ref_f0, got_f0 = reference["f0_hz"][:n][keep], measured["f0_hz"][:n][keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        semis = np.abs(12.0 * np.log2(got_f0 / ref_f0))
    return loud, np.where(got_f0 > 0, semis, 12.0)


def dataset_feature_settings(folder: str) -> features.FeatureSettings:
    """The feature settings a prepared dataset was made with (its `dataset.json`)."""
    stored = data.read_info(folder).get("settings", {}).get("features", {})
    return features.FeatureSettings.from_dict(stored)


def _stride(info: dict, stride: int | None) -> int:
    """`stride`, or by default the example length over the hop (no audio scored twice)."""
    if stride is not None:
        return stride
    hop = float(info.get("hop_secs") or info["example_secs"])
    return max(1, round(float(info["example_secs"]) / hop))


def examples(
    folder: str, split: str = "eval", stride: int | None = None, limit: int | None = None
) -> tf.data.Dataset:
    """The scored examples of a split, in file order: every `stride`-th (default: the
    example length over the hop, so overlapping examples are not scored twice), at most
    `limit`."""
    stride = _stride(data.read_info(folder), stride)
    ds = data.make_dataset(folder, split, 1, shuffle=False, repeat=False).unbatch()
    ds = ds.shard(stride, 0) if stride > 1 else ds
    return ds.take(limit) if limit is not None else ds


def count_examples(
    folder: str, split: str = "eval", stride: int | None = None, limit: int | None = None
) -> int:
    """How many examples `examples` yields, from ``dataset.json`` (no records read)."""
    info = data.read_info(folder)
    total = int(info["splits"].get(split, {}).get("examples", 0))
    scored = -(-total // _stride(info, stride))  # shard(k, 0) keeps indices 0, k, 2k, ...
    return scored if limit is None else min(scored, limit)


def render_example(loaded, example: dict[str, tf.Tensor], seed: int = 0) -> np.ndarray:
    """One example's resynthesis ``[n]`` (for plots)."""
    inputs = {k: example[k][None] for k in ("f0_hz", "loudness_db", "audio")}
    return loaded.model(inputs, noise_seed=tf.constant([seed, 0], tf.int32))["audio"][0].numpy()


def evaluate(
    loaded,
    folder: str,
    weights_path: str,
    split: str = "eval",
    stride: int | None = None,
    max_examples: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """Score `loaded` (a `model.LoadedModel`) on `split` of the prepared dataset `folder`.

    Args:
        weights_path: CREPE checkpoint for re-extracting f0 (the dataset's pitch model).
        stride: score every `stride`-th example; default ``example_secs / hop_secs`` so that
            overlapping examples are not scored twice.
        max_examples: stop after this many examples.
        progress: called with the number of examples finished.
    """
    fsettings = dataset_feature_settings(folder)
    ds = examples(folder, split, stride, max_examples)
    model = loaded.model
    render = tf.function(lambda batch, s: _audio_and_dry(model(batch, noise_seed=s)))
    example_losses, loud_errors, f0_errors = [], [], []
    seconds = synth_wall = dry_energy = wet_energy = 0.0
    for step, batch in enumerate(ds.batch(batch_size)):
        inputs = {k: batch[k] for k in ("f0_hz", "loudness_db", "audio")}
        if step == 0:  # trace first: the real-time factor is the steady-state speed
            render(inputs, tf.constant([seed, step], tf.int32))
        start = time.perf_counter()
        audio, dry = (x.numpy() for x in render(inputs, tf.constant([seed, step], tf.int32)))
        synth_wall += time.perf_counter() - start
        dry_energy += float(np.sum(np.square(dry, dtype=np.float64)))
        wet_energy += float(np.sum(np.square(audio - dry, dtype=np.float64)))
        for i in range(audio.shape[0]):
            target = batch["audio"][i].numpy()
            loss = losses.spectral_loss(target[None], audio[i][None])
            example_losses.append(float(loss))
            measured = features.compute_features(audio[i], weights_path, fsettings)
            reference = {k: batch[k][i].numpy() for k in features.FEATURE_KEYS}
            loud, semis = frame_errors(reference, measured)
            loud_errors.append(loud)
            f0_errors.append(semis)
            seconds += len(target) / model.sample_rate
        if progress is not None:
            progress(audio.shape[0])
    if not example_losses:
        raise ValueError(f"{folder} has no '{split}' examples to evaluate")
    loud_all, f0_all = np.concatenate(loud_errors), np.concatenate(f0_errors)
    return Scores(
        examples=len(example_losses),
        seconds=round(seconds, 3),
        spectral_loss=float(np.mean(example_losses)),
        loudness_l1_db=float(loud_all.mean()),
        f0_l1_semitones=float(f0_all.mean()) if f0_all.size else float("nan"),
        f0_outliers=float((f0_all > OUTLIER_SEMITONES).mean()) if f0_all.size else float("nan"),
        f0_frames=int(f0_all.size),
        real_time_factor=synth_wall / seconds,
        per_example_loss=example_losses,
        dry_wet_db=None if not model.graph.effects
        else acoustics.energy_ratio_db(dry_energy, wet_energy),
    )


def _audio_and_dry(out: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """A model's output -> ``(audio [b, n], dry [b, n])`` (the mix and its dry synthesizers)."""
    return out["audio"], out["dry"]


def check_rate(loaded, name: str, data_dir: str, info: dict) -> None:
    """A model scores only data prepared at its own sample and frame rates (`InputError`
    otherwise: a ``--preset vst`` dataset has 50 frames/s, the default models 250)."""
    from ddspcli.errors import InputError

    if int(loaded.info["sample_rate"]) != int(info["sample_rate"]):
        raise InputError(
            f"{name} works at {loaded.info['sample_rate']} Hz but {data_dir} holds "
            f"{info['sample_rate']} Hz audio; evaluate it on data prepared at its rate"
        )
    want, have = int(loaded.model.frame_rate), int(info.get("frame_rate", -1))
    if want != have:
        raise InputError(
            f"{name} works at {want} frames/s but {data_dir} was prepared at {have} frames/s"
            + (" (--preset vst)" if have == 50 else "")
            + "; evaluate it on data prepared with the model's settings"
        )


def plot_best_and_worst(
    results: list, data_dir: str, split: str, max_examples: int | None, plot: str, *,
    force: bool = False,
) -> None:  # fmt: skip
    """Render the best and worst example of each model again and draw them (one PNG).

    Args:
        results: ``(name, loaded model, Scores)`` per model, as `evaluate` scored them.
    """
    from ddspcli.engine import features_io

    picks = [(int(np.argmin(s.per_example_loss)), int(np.argmax(s.per_example_loss)))
             for _, _, s in results]  # fmt: skip
    wanted = {i for pair in picks for i in pair}
    # One pass over the split, keeping only the examples that are drawn.
    chosen = {i: example for i, example in
              enumerate(examples(data_dir, split, None, max_examples))
              if i in wanted}  # fmt: skip
    rows = []
    for (name, loaded, scores), (best, worst) in zip(results, picks, strict=True):
        drawn = []
        for label, index in (("best", best), ("worst", worst)):
            loss = scores.per_example_loss[index]
            drawn.append((f"{label} (loss {loss:.2f})", chosen[index]["audio"].numpy(),
                          render_example(loaded, chosen[index])))  # fmt: skip
        rows.append((name, drawn))
    features_io.plot_examples(rows, int(results[0][1].model.sample_rate), plot, force=force)
