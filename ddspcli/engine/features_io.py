"""Writing feature dicts as CSV, JSON or NPZ, and plotting them (I/O at the edge)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np

from ddspcli.engine.audio import STDIO
from ddspcli.engine.features import FEATURE_KEYS
from ddspcli.fsutil import atomic_path

FORMATS = ("csv", "json", "npz")


def encode(features: dict[str, np.ndarray], fmt: str, meta: dict) -> bytes:
    """Serialise ``{f0_hz, f0_confidence, loudness_db}`` plus a ``time_s`` column.

    Args:
        features: arrays ``[frames]``.
        fmt: ``csv`` (columns ``time_s,f0_hz,f0_confidence,loudness_db``), ``json`` (`meta` plus
            one list per column) or ``npz`` (one array per column plus ``meta`` as JSON text).
        meta: must hold ``frame_rate``; stored in JSON/NPZ.
    """
    time_s = np.arange(len(features["f0_hz"])) / float(meta["frame_rate"])
    columns = {"time_s": time_s, **{k: features[k] for k in FEATURE_KEYS}}
    if fmt == "csv":
        table = np.stack([columns[k] for k in columns], axis=1)
        buffer = io.StringIO()
        np.savetxt(buffer, table, fmt=["%.3f", "%.3f", "%.4f", "%.3f"], delimiter=",",
                   header=",".join(columns), comments="")  # fmt: skip
        return buffer.getvalue().encode()
    if fmt == "json":
        payload = {**meta, **{k: np.round(v.astype(float), 4).tolist() for k, v in columns.items()}}
        return (json.dumps(payload) + "\n").encode()
    if fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, meta=json.dumps(meta), **{k: np.asarray(v) for k, v in columns.items()})
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def write(data: bytes, dest: str | Path, *, force: bool) -> None:
    """Write bytes atomically to `dest`, or to stdout for ``-``."""
    if str(dest) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with atomic_path(dest, force=force) as tmp:
        tmp.write_bytes(data)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _spectrogram(ax, signal: np.ndarray, sample_rate: int) -> None:
    """The spectrogram every plot uses: 1024-point frames, 75% overlap, dB floor -120."""
    ax.specgram(signal, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-120)


def plot(
    audio: np.ndarray,
    features: dict[str, np.ndarray],
    sample_rate: int,
    frame_rate: int,
    dest: str | Path,
    *,
    title: str = "",
    force: bool = False,
) -> None:
    """PNG with the spectrogram, f0 (MIDI, shaded by confidence) and loudness over time."""
    plt = _pyplot()

    time_s = np.arange(len(features["f0_hz"])) / frame_rate
    fig, axes = plt.subplots(
        3, 1, figsize=(10, 7), sharex=True, height_ratios=[2, 2, 1], layout="constrained"
    )
    _spectrogram(axes[0], audio, sample_rate)
    axes[0].set_ylabel("Hz")
    axes[0].set_title(title)
    with np.errstate(divide="ignore"):
        midi = 69 + 12 * np.log2(np.maximum(features["f0_hz"], 1e-3) / 440.0)
    conf = np.clip(features["f0_confidence"], 0, 1)
    points = axes[1].scatter(time_s, midi, c=conf, s=2, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(points, ax=axes.tolist(), label="f0 confidence", pad=0.01, fraction=0.03)
    confident = midi[conf > 0.5]
    if confident.size:
        axes[1].set_ylim(confident.min() - 3, confident.max() + 3)
    axes[1].set_ylabel("f0 (MIDI)")
    axes[2].plot(time_s, features["loudness_db"], lw=0.8)
    axes[2].set_ylabel("loudness (dB)")
    axes[2].set_xlabel("time (s)")
    with atomic_path(dest, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_transfer(
    audio_in: np.ndarray | None,
    audio_out: np.ndarray,
    original: dict[str, np.ndarray],
    adjusted: dict[str, np.ndarray],
    sample_rate: int,
    out_rate: int,
    frame_rate: int,
    dest: str | Path,
    *,
    title: str = "",
    force: bool = False,
) -> None:
    """PNG of a transfer: input and output spectrograms, original vs adjusted f0 (MIDI) and
    loudness (dB), with the detected notes shaded.

    Args:
        audio_in: ``[n]`` at `sample_rate` (None: its panel is left out).
        audio_out: ``[m]`` at `out_rate`.
        original, adjusted: feature dicts ``[frames]``; `adjusted` holds the bool ``notes``.
    """
    plt = _pyplot()

    spectra = [("input", audio_in, sample_rate)] if audio_in is not None else []
    spectra.append(("output", audio_out, out_rate))
    rows = len(spectra) + 2
    fig, axes = plt.subplots(
        rows, 1, figsize=(10, 2.2 * rows), sharex=True, layout="constrained",
        height_ratios=[2] * len(spectra) + [2, 1.5],
    )  # fmt: skip
    for ax, (label, signal, rate) in zip(axes, spectra, strict=False):
        _spectrogram(ax, signal, rate)
        ax.set_ylabel(f"{label} (Hz)")
    axes[0].set_title(title)
    time_s = np.arange(len(original["f0_hz"])) / frame_rate
    notes = np.asarray(adjusted["notes"], bool)
    f0_ax, ld_ax = axes[-2], axes[-1]
    with np.errstate(divide="ignore"):
        midi = {k: 69 + 12 * np.log2(np.maximum(d["f0_hz"], 1e-3) / 440.0)
                for k, d in (("original", original), ("adjusted", adjusted))}  # fmt: skip
    for key, style in (("original", ":"), ("adjusted", "-")):
        f0_ax.plot(time_s, np.where(notes, midi[key], np.nan), style, lw=1, label=f"{key} f0")
        ld_ax.plot(time_s, {"original": original, "adjusted": adjusted}[key]["loudness_db"],
                   style, lw=0.8, label=f"{key} loudness")  # fmt: skip
    for ax in (f0_ax, ld_ax):
        ax.fill_between(time_s, 0, 1, where=notes, color="tab:green", alpha=0.12,
                        transform=ax.get_xaxis_transform(), label="notes")  # fmt: skip
        ax.legend(loc="upper right", fontsize="small")
    f0_ax.set_ylabel("f0 (MIDI)")
    ld_ax.set_ylabel("loudness (dB)")
    ld_ax.set_xlabel("time (s)")
    with atomic_path(dest, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_examples(
    rows: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]],
    sample_rate: int,
    dest: str | Path,
    *,
    force: bool = False,
) -> None:
    """PNG grid of spectrograms: one row per model, original | resynthesis per example.

    Args:
        rows: ``[(model name, [(example label, original [n], resynthesis [n]), ...]), ...]``.
    """
    plt = _pyplot()

    cols = max(2 * len(examples) for _, examples in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.2 * cols, 2.6 * len(rows)),
                             squeeze=False, layout="constrained")  # fmt: skip
    for r, (model_name, examples) in enumerate(rows):
        for e, (label, original, resynthesis) in enumerate(examples):
            for c, (kind, signal) in enumerate(
                (("original", original), ("resynthesis", resynthesis))
            ):
                ax = axes[r, 2 * e + c]
                _spectrogram(ax, signal, sample_rate)
                ax.set_title(f"{model_name}: {label}, {kind}", fontsize="small")
                ax.set_xlabel("time (s)")
        axes[r, 0].set_ylabel("Hz")
    with atomic_path(dest, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
