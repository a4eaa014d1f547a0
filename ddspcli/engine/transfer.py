"""The transfer pipeline: features -> `adjust` -> rendering -> files, one job per input.

`plan_jobs` names each input's outputs, `check_outputs` refuses bad ones before any work,
`run_jobs` runs them (stdin read once) on an instrument (the LiteRT runtime: no TensorFlow),
and `write_rendered` (shared with `generate`) applies the peak-safe gain, resamples and
writes. TensorFlow's render of the same features is `streaming.render`.
Model names are resolved to folders by `ddspcli.pretrained.resolve_instrument`, outside the
engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ddspcli.engine.adjust import Adjustments, adjust, f0_limits, peak_gain

PART_NAMES = ("harmonic", "noise", "reverb")
FEATURE_COST = {"tiny": 1.0, "full": 8.0}  # relative wall time per frame (see BENCHMARKS.md)
RENDER_COST = 1.0


@dataclass(frozen=True)
class RenderSettings:
    """How audio is rendered and written."""

    reverb: bool = True  # False: the dry signal (harmonic + noise)
    # The room: a wet IR [m] at the model's rate instead of the model's own (None), and the
    # level of the wet path in dB (`Instrument.room_ir`).
    room: np.ndarray | None = field(default=None, compare=False)
    room_mix_db: float = 0.0
    sample_rate: int | None = None  # output rate; None: the model's
    peak_db: float = -1.0  # ceiling (dBFS) of the peak-safe gain
    normalize: bool = False  # scale the peak to exactly `peak_db`
    seed: int = 0  # noise
    block_s: float = 10.0  # seconds decoded per block
    subtype: str = "PCM_16"


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
    stored.setdefault("loudness", "a_weighted")
    for key in ("sample_rate", "frame_rate", "n_fft", "range_db", "ref_db", "loudness"):
        if key in stored and _differs(stored[key], getattr(settings, key)):
            raise InputError(
                f"{path} was computed with {key} = {stored[key]} but the model uses "
                f"{getattr(settings, key)}; recompute it (or omit --features)"
            )
    return arrays, meta


def _differs(stored: object, wanted: object) -> bool:
    """Whether a stored feature setting differs from the model's (numbers compared as floats)."""
    if isinstance(wanted, str):
        return str(stored) != wanted
    return float(stored) != float(wanted)


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


@dataclass(frozen=True)
class Job:
    """One input of ``ddsp transfer`` and where its results go."""

    source: str | None  # audio file or "-"; None when only `features_in` is given
    output: str  # WAV path or "-"
    features_in: str | None = None
    save_features: str | None = None
    plot: str | None = None
    stems_dir: str | None = None
    label: str | None = None  # what the plot's title calls the input (default: its path)


def stem_paths(job: Job, model_name: str, parts: tuple[str, ...]) -> dict[str, str]:
    """``DIR/<input stem>.<model>.<part>.wav`` for each stem."""
    from pathlib import Path

    if job.stems_dir is None:
        return {}
    stem = _stem(job.source or job.features_in or "-")
    return {p: str(Path(job.stems_dir) / f"{stem}.{model_name}.{p}.wav") for p in parts}


def check_job_options(
    files: list[str],
    features_in: str | None,
    output: str | None,
    save_features: str | None,
    plot: str | None,
) -> None:
    """Raise `ValueError` (a usage error) for no input at all, or for the per-input options
    (-o, --plot, --save-features, --features) with several inputs."""
    if not files and features_in is None:
        raise ValueError("give an audio file, a folder, - for stdin, or --features NPZ")
    if len(files) > 1 and (output is not None or plot or save_features or features_in):
        raise ValueError(
            "-o, --plot, --save-features and --features take one input; use --out-dir for several"
        )
    if output is not None:
        from ddspcli.engine import audio

        audio.output_format(output)  # `-o out.csv`: refused before any model is fetched


def plan_jobs(
    files: list[str],
    model_name: str,
    *,
    features_in: str | None = None,
    output: str | None = None,
    out_dir: str | None = None,
    save_features: str | None = None,
    plot: str | None = None,
    stems_dir: str | None = None,
) -> list[Job]:
    """One `Job` per input, with its output named (`default_output`) unless `output` is given.

    Raises:
        ValueError: see `check_job_options`.
    """
    check_job_options(files, features_in, output, save_features, plot)
    return [
        Job(src, output or default_output(src or features_in, model_name, out_dir), features_in,
            save_features, plot, stems_dir)
        for src in (files or [None])
    ]  # fmt: skip


def check_outputs(jobs: list[Job], model_name: str, out_dir: str | None, *, force: bool) -> None:
    """Fail before any work when an output must not or cannot be written (see
    `check_render_outputs`). The folders named by ``--out-dir`` and ``--stems`` are created
    (their parents must exist)."""
    from pathlib import Path

    from ddspcli import storage

    sounds, others = [], []
    for job in jobs:
        of = f" of {job.source or job.features_in}" if len(jobs) > 1 else ""
        sounds.append((f"the audio output{of}", job.output))
        parts = stem_paths(job, model_name, PART_NAMES)
        sounds += [(f"the {part} stem{of}", path) for part, path in parts.items()]
        others += [(f"--plot{of}", job.plot), (f"--save-features{of}", job.save_features)]
    check_render_outputs(sounds, others, force=force, check_files=False)  # folders may be new
    made = []
    try:
        for folder in sorted({out_dir, *(j.stems_dir for j in jobs)} - {None}):
            if not Path(folder).is_dir():
                storage.make_output_folder(folder)
                made.append(Path(folder))
        check_render_outputs(sounds, others, force=force)
    except BaseException:  # a refused run leaves no folder behind
        for folder in reversed(made):
            folder.rmdir()
        raise


def check_render_outputs(
    sounds: list[tuple[str, str | None]], others: list[tuple[str, str | None]], *, force: bool,
    check_files: bool = True,
) -> None:
    """The outputs of a rendering command, ``(what, path)`` pairs (None: not asked for): each
    audio output in `sounds` named as `audio.output_format` writes, no two outputs the same
    file, each one writable (that last check skipped without `check_files`).

    Raises:
        UsageError: an audio output named for another format (``-o out.csv``).
        OutputError: see `storage.check_distinct` and `storage.check_output`.
    """
    from ddspcli import storage
    from ddspcli.engine import audio

    for _, path in sounds:
        if path is not None:
            audio.output_format(path)
    storage.check_distinct([*sounds, *others])
    for _, path in [*sounds, *others] if check_files else []:
        if path is not None:
            storage.check_output(path, force=force)


@dataclass(frozen=True)
class Pipeline:
    """What every job of one `ddsp transfer` run shares: the model and how it is driven.

    `player` is a `ddspcli.instrument.Instrument` (or anything with its `statistics`,
    `sample_rate`, `has_z`, `tracker()`, `stem_names()` and `render()`): the LiteRT runtime,
    no TensorFlow. Its `feature_settings` (the model's definition with the chosen tracker)
    are `fsettings`.
    """

    player: object
    model_name: str
    adjustments: Adjustments
    rsettings: RenderSettings

    @property
    def fsettings(self):
        return self.player.feature_settings


def run_jobs(
    jobs: list[Job],
    pipeline: Pipeline,
    *,
    force: bool = False,
    progress=None,
    on_done=None,
) -> list[dict]:
    """`ddsp transfer`: every job in turn (stdin read once, the work sized for a progress bar).

    Args:
        progress: ``(total units) -> advance(units, status)``, or None (see `run_job`).
        on_done: called with each job's summary as soon as it is written.
    Returns:
        The summaries, one per job.
    """
    from ddspcli.engine import audio as audio_io
    from ddspcli.engine import features_io

    fsettings = pipeline.fsettings
    stdin = {"-": audio_io.read_audio("-", fsettings.sample_rate)[0]} if any(
        j.source == "-" for j in jobs) else {}  # fmt: skip
    cost = FEATURE_COST.get(fsettings.pitch_model, 1.0) + RENDER_COST
    frames = sum(features_io.expected_frames(j.source, fsettings, stdin.get(j.source))
                 for j in jobs if j.source)  # fmt: skip
    advance = progress(round(cost * (frames or 1))) if progress is not None else None
    summaries = []
    for job in jobs:
        summary = run_job(job, pipeline, advance, force=force, stdin=stdin.get(job.source))
        if on_done is not None:
            on_done(summary)
        summaries.append(summary)
    return summaries


def run_job(
    job: Job,
    pipeline: Pipeline,
    advance=None,
    *,
    force: bool = False,
    stdin: np.ndarray | None = None,
) -> dict:
    """Features -> adjustments -> rendering -> files, for one input.

    Args:
        pipeline: the model, its feature settings, the adjustments, the render settings and
            the CREPE checkpoint (unused when `job.features_in` is given).
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
    player, model_name, fsettings = pipeline.player, pipeline.model_name, pipeline.fsettings
    adjustments, rsettings = pipeline.adjustments, pipeline.rsettings
    advance = advance or (lambda n, stage: None)
    label = (job.source or job.features_in).rsplit("/", 1)[-1]
    sr, hop = fsettings.sample_rate, fsettings.hop
    samples = stdin
    if samples is None and job.source is not None:
        samples = audio_io.read_audio(job.source, sr)[0]
    if player.has_z and samples is None:
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
            samples, player.tracker(), fsettings, lambda n: advance(cost * n, f"{label}: features")
        )
    n_frames = len(feats["f0_hz"])
    n_samples = (
        len(samples) if samples is not None else int(meta.get("n_samples", (n_frames - 1) * hop))
    )
    adjusted, report = adjust(feats, player.statistics, adjustments, f0_limits(player.sample_rate))
    warnings = []
    parts = player.stem_names(rsettings.reverb, rsettings.room) if job.stems_dir else ()
    if not adjusted["notes"].any():
        warnings.append(
            f"{job.source or job.features_in}: no notes found (no frame with pitch confidence "
            f">= {adjustments.note_confidence} above {adjustments.note_floor_db} dB); "
            "writing silence. Lower --note-confidence if the input does hold notes"
        )
        rendered = {p: np.zeros(n_frames * hop, np.float32) for p in ("audio", *parts)}
        advance(RENDER_COST * n_frames, f"{label}: silent")
    else:
        rendered = player.render(
            {**adjusted, "audio": samples}, stems=bool(parts), reverb=rsettings.reverb,
            room=rsettings.room, room_mix_db=rsettings.room_mix_db, seed=rsettings.seed,
            block_s=rsettings.block_s,
            progress=lambda n: advance(RENDER_COST * n, f"{label}: synthesis"),
        )  # fmt: skip
        rendered = {k: rendered[k] for k in ("audio", *parts)}
    rendered = {k: v[:n_samples] for k, v in rendered.items()}
    targets = {"audio": job.output, **stem_paths(job, model_name, parts)}
    gain, out_rate = write_rendered(rendered, targets, sr, rsettings, force=force)
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
            job.plot, title=f"{job.label or job.source or job.features_in} -> {model_name}",
            force=force,
        )  # fmt: skip
    wall = time.perf_counter() - start
    summary = output_summary(job.output, model_name, rendered["audio"], n_samples / sr, out_rate,
                             wall, gain)  # fmt: skip
    return {"input": job.source or job.features_in, **summary, "adjustments": report,
            "warnings": warnings}  # fmt: skip


def write_rendered(
    parts: dict[str, np.ndarray],
    targets: dict[str, str],
    sample_rate: int,
    rsettings: RenderSettings,
    *,
    force: bool = False,
) -> tuple[float, int]:
    """The tail every rendering command shares: gain, rate, files.

    Every part is scaled by the peak-safe gain of ``parts["audio"]`` (`peak_gain`; in place:
    long outputs are the largest arrays held), resampled from `sample_rate` to the output
    rate, and written as WAV to ``targets[part]``; `parts` then holds what was written.

    Returns:
        ``(gain, output rate in Hz)``.
    """
    from ddspcli.engine import audio as audio_io

    gain = peak_gain(parts["audio"], rsettings.peak_db, rsettings.normalize)
    out_rate = rsettings.sample_rate or sample_rate
    for key, value in parts.items():
        value *= np.float32(gain)
        if out_rate != sample_rate:
            parts[key] = audio_io.resample(value, sample_rate, out_rate)
    for part, path in targets.items():
        audio_io.write_wav(path, parts[part], out_rate, force=force, subtype=rsettings.subtype)
    return gain, out_rate


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
