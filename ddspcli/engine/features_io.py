"""Writing feature dicts as CSV, JSON or NPZ, and plotting them (I/O at the edge)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ddspcli import storage
from ddspcli.engine.audio import AUDIO_SUFFIXES
from ddspcli.engine.features import FEATURE_KEYS

FORMATS = ("csv", "json", "npz")
# Suffixes that promise audio (or a picture): feature text or arrays must not be written there.
_NOT_FEATURES = (*AUDIO_SUFFIXES, ".png")


def output_format(output: str | None, fmt: str | None) -> str:
    """The format of a features output: `fmt` if given, else from `output`'s suffix, else CSV.

    Raises:
        ValueError: an unknown `fmt`; an `output` whose suffix names audio or an image (its
            reader would be misled), or names another feature format than `fmt`.
    """
    suffix = Path(output).suffix.lower() if output and output != "-" else ""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if suffix in _NOT_FEATURES:
        raise ValueError(
            f"-o {output} names a {suffix[1:].upper()} file but features are written as "
            f"{fmt or 'csv'}; give a .csv, .json or .npz name"
        )
    if fmt is not None and suffix[1:] in FORMATS and suffix[1:] != fmt:
        raise ValueError(f"-o {output} ends in {suffix} but --format is {fmt}; make them agree")
    return fmt or (suffix[1:] if suffix[1:] in FORMATS else "csv")


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
    """Write bytes atomically to `dest`, or to stdout for ``-`` (see `storage.atomic_write`)."""
    storage.write_bytes(dest, data, force=force)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def expected_frames(source: str, settings, decoded: np.ndarray | None = None) -> int:
    """Feature frames `source` will give (from its header; `decoded` when already read),
    0 when it cannot be read (the decoding error is reported when its turn comes)."""
    import soundfile as sf

    from ddspcli.engine import features

    if decoded is not None:
        return features.n_frames(len(decoded), settings.hop)
    try:
        info = sf.info(source)
    except Exception:  # any unreadable file: reported with a clear message by read_audio
        return 0
    samples = round(info.frames * settings.sample_rate / info.samplerate)
    return features.n_frames(samples, settings.hop)


def output_targets(files: list[str], output: str | None, fmt: str) -> dict[str, str]:
    """Where each input's features go: `output` (a file, ``-`` or None: stdout) for one input,
    else ``OUTPUT/<stem>.features.<fmt>`` (the folder is created).

    Raises:
        ValueError: several inputs and no folder to put their files in (a usage error).
        OutputError: the folder cannot be created.
    """
    if len(files) == 1 and (output is None or output == "-" or not Path(output).is_dir()):
        return {files[0]: output or "-"}
    if output is None or output == "-":
        raise ValueError("several inputs need -o FOLDER for their feature files")
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage.output_error(folder, err) from None
    targets, seen = {}, set()
    for name in files:
        stem = "stdin" if name == "-" else Path(name).stem
        while stem in seen:
            stem += "_"
        seen.add(stem)
        targets[name] = str(folder / f"{stem}.features.{fmt}")
    return targets


def check_targets(targets: dict[str, str], plot_png: str | Path | None, *, force: bool) -> None:
    """Fail before any work when a features output must not or cannot be written."""
    for target in [*targets.values(), *([plot_png] if plot_png is not None else [])]:
        storage.check_output(target, force=force)


def extract_to_files(
    files: list[str],
    targets: dict[str, str],
    fmt: str,
    settings,
    weights: str,
    *,
    plot_png: str | Path | None = None,
    force: bool = False,
    progress=None,
) -> list[dict]:
    """`ddsp features`: compute each file's features and write them to its target.

    Files are decoded one at a time, so a folder of long recordings stays within memory; stdin
    (``-``) is read once. Outputs are checked before any work (`storage.check_output`).

    Args:
        targets: input -> output path or ``-`` (see `output_targets`).
        settings: `features.FeatureSettings`. weights: the CREPE checkpoint.
        plot_png: a PNG of the (single) input's features.
        progress: ``(total_frames) -> callback(frames_done)``, or None.
    Returns:
        One record per input: source, output, frames.
    """
    from ddspcli.engine import audio, features

    check_targets(targets, plot_png, force=force)
    stdin = {n: audio.read_audio(n, settings.sample_rate)[0] for n in files if n == "-"}
    total = sum(expected_frames(n, settings, stdin.get(n)) for n in files)
    advance = progress(total) if progress is not None else None
    records = []
    for name in files:
        samples = stdin[name] if name in stdin else audio.read_audio(name, settings.sample_rate)[0]
        feats = features.compute_features(samples, weights, settings, advance)
        meta = {"source": name, "sample_rate": settings.sample_rate,
                "frame_rate": settings.frame_rate, "settings": settings.to_dict()}  # fmt: skip
        write(encode(feats, fmt, meta), targets[name], force=force)
        if plot_png is not None:
            plot(samples, feats, settings.sample_rate, settings.frame_rate, plot_png,
                 title=Path(name).name, force=force)  # fmt: skip
        records.append({"source": name, "output": targets[name], "frames": len(feats["f0_hz"])})
    return records


def save_png(fig, dest: str | Path, *, force: bool, dpi: int) -> None:
    """Write a matplotlib figure as PNG through `storage.atomic_write`, then close it."""
    import matplotlib.pyplot as plt

    try:
        with storage.atomic_write(dest, force=force) as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        plt.close(fig)


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
    save_png(fig, dest, force=force, dpi=100)


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
    save_png(fig, dest, force=force, dpi=100)


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
    save_png(fig, dest, force=force, dpi=90)
