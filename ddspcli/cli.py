"""The `ddsp` command: one thin Typer function per subcommand, calling the shared engine.

No math lives here: options are parsed, engine functions are called, results are printed
(data on stdout, messages on stderr), and errors become one line plus an exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ddspcli import __version__, ui
from ddspcli.errors import EXIT_INTERNAL, DdspError

app = typer.Typer(
    name="ddsp",
    help="Timbre transfer with DDSP: turn any recording into an instrument.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ddsp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and warnings on stderr.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr.")
    ] = False,
) -> None:
    """Timbre transfer with DDSP. Data goes to stdout, messages to stderr."""
    ui.set_verbosity(quiet, verbose)


@app.command("info")
def info_command(
    files: Annotated[list[str], typer.Argument(help="Audio files, or - for stdin.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    sample_rate: Annotated[
        int, typer.Option(help="Rate (Hz) the loudness is measured at.", min=8000)
    ] = 16000,
) -> None:
    """Decode audio files and report format, duration, level and A-weighted loudness."""
    from ddspcli.engine import analysis  # lazy: imports TensorFlow

    reports = []
    for name in files:
        ui.debug(f"reading {name}")
        reports.append(analysis.describe_audio(name, sample_rate))
    if json_out:
        json.dump(reports if len(files) > 1 else reports[0], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    ui.out_console.print(_info_table(reports))


def _info_table(reports: list[dict[str, object]]) -> object:
    from rich.table import Table

    table = Table(title=None, show_edge=False)
    for column in ("file", "format", "rate", "ch", "seconds", "peak dBFS", "loudness dB"):
        table.add_column(column, justify="left" if column in ("file", "format") else "right")
    for r in reports:
        table.add_row(
            str(Path(str(r["source"])).name),
            f"{r['format']}/{r['subtype']}",
            str(r["sample_rate"]),
            str(r["channels"]),
            f"{r['duration_s']:.2f}",
            f"{r['peak_dbfs']:.1f}",
            f"{r['loudness_db_median']:.1f}",
        )
    return table


def _protect_model(folder: str | Path) -> None:
    """No output of this run may be written onto a file of the model in use."""
    from ddspcli import storage

    storage.protect_inputs(p for p in Path(folder).rglob("*") if p.is_file())


def _pitch_weights(model: str, progress: ui.DownloadProgress) -> Path:
    """Resolve ``crepe-<model>`` through the manifest (downloading if needed) to a file."""
    from ddspcli import pretrained

    spec = pretrained.get_spec(f"crepe-{model}")
    return pretrained.pull(spec, progress) / spec.files[0].name


@app.command("features")
def features_command(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders, globs, or - (stdin).")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File (one input; - for stdout) or folder (several)."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="csv, json or npz (default: from -o, csv).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw a PNG (one input only).")
    ] = None,
    pitch_model: Annotated[str, typer.Option(help="CREPE capacity: full or tiny.")] = "full",
    pitch_hop_ms: Annotated[
        float | None,
        typer.Option(
            help="Run CREPE every N ms and interpolate (multiple of 4; default 20 for "
            "full, 4 for tiny)."
        ),
    ] = None,
    viterbi: Annotated[bool, typer.Option(help="Viterbi-smooth the pitch.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """f0 (CREPE), confidence and A-weighted loudness at 250 frames/s, as CSV, JSON or NPZ."""
    from ddspcli import storage
    from ddspcli.engine import audio, features, features_io
    from ddspcli.errors import InputError, OutputError

    files = audio.find_audio(inputs)
    storage.protect_inputs(files)
    settings = features.FeatureSettings(
        pitch_model=pitch_model, pitch_hop_ms=pitch_hop_ms, viterbi=viterbi
    )
    try:
        settings.validate()
        fmt = features_io.output_format(output, fmt)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if len(files) > 1 and (output is None or output == "-"):
        raise OutputError("several inputs need -o FOLDER for their feature files")
    if plot is not None and len(files) > 1:
        raise InputError("--plot draws one input; give a single file")
    targets = _feature_targets(files, output, fmt)
    for target in targets.values():
        audio.check_output(target, force=force)
    if plot is not None:
        audio.check_output(plot, force=force)
    with ui.DownloadProgress() as progress:
        weights = _pitch_weights(pitch_model, progress)
    stdin = {name: audio.read_audio(name, settings.sample_rate)[0] for name in files if name == "-"}
    total = sum(_expected_frames(name, stdin, settings) for name in files)
    with ui.FrameProgress("features", total, settings.frame_rate) as bar:
        for name in files:  # decoded one at a time: a folder of long files stays within memory
            samples = (
                stdin[name] if name in stdin else audio.read_audio(name, settings.sample_rate)[0]
            )
            feats = features.compute_features(samples, weights, settings, bar.advance)
            meta = {"source": name, "sample_rate": settings.sample_rate,
                    "frame_rate": settings.frame_rate, "settings": settings.to_dict()}  # fmt: skip
            features_io.write(features_io.encode(feats, fmt, meta), targets[name], force=force)
            if plot is not None:
                features_io.plot(samples, feats, settings.sample_rate, settings.frame_rate, plot,
                                 title=Path(name).name, force=force)  # fmt: skip
            ui.debug(f"{name}: {len(feats['f0_hz'])} frames -> {targets[name]}")


def _expected_frames(name: str, stdin: dict, settings) -> int:
    """Feature frames a file will give, from its header (0 when it cannot be read: the
    decoding error is reported when its turn comes)."""
    import soundfile as sf

    from ddspcli.engine import features

    if name in stdin:
        return features.n_frames(len(stdin[name]), settings.hop)
    try:
        info = sf.info(name)
    except Exception:  # any unreadable file: reported with a clear message by read_audio
        return 0
    samples = round(info.frames * settings.sample_rate / info.samplerate)
    return features.n_frames(samples, settings.hop)


def _feature_targets(files: list[str], output: str | None, fmt: str) -> dict[str, str]:
    """Where each input's features go: -o file/stdout for one input, else -o DIR/<stem>.<fmt>."""
    if len(files) == 1 and (output is None or output == "-" or not Path(output).is_dir()):
        return {files[0]: output or "-"}
    folder = Path(output or ".")
    folder.mkdir(parents=True, exist_ok=True)
    targets, seen = {}, set()
    for name in files:
        stem = "stdin" if name == "-" else Path(name).stem
        while stem in seen:
            stem += "_"
        seen.add(stem)
        targets[name] = str(folder / f"{stem}.features.{fmt}")
    return targets


@app.command("prepare")
def prepare_command(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders (recursive), globs.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Dataset folder to write (or gs://..., s3://...).")
    ],
    example_secs: Annotated[float, typer.Option(help="Example length (s).", min=0.1)] = 4.0,
    hop_secs: Annotated[float, typer.Option(help="Hop between examples (s).", min=0.004)] = 1.0,
    eval_fraction: Annotated[
        float, typer.Option(help="Share held out for evaluation (by file).", min=0.0, max=0.9)
    ] = 0.1,
    sample_rate: Annotated[
        int,
        typer.Option(help="Audio rate (Hz) of the dataset (pitch is tracked on a 16 kHz copy)."),
    ] = 16000,
    frame_rate: Annotated[int, typer.Option(help="Feature frames per second.")] = 250,
    pitch_model: Annotated[str, typer.Option(help="CREPE capacity: full or tiny.")] = "full",
    pitch_hop_ms: Annotated[
        float | None, typer.Option(help="Run CREPE every N ms (see `ddsp features`).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local worker processes (default: cores / 2).", min=1)
    ] = None,
    runner: Annotated[str, typer.Option(help="local or beam.")] = "local",
    beam_options: Annotated[
        str, typer.Option(help='Options for Beam, e.g. "--runner=DataflowRunner --project=p".')
    ] = "",
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Exit 0 even when some inputs were skipped.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo a finished dataset.")] = False,
) -> None:
    """Audio -> sharded TFRecords (audio, f0_hz, f0_confidence, loudness_db) + statistics.

    Interrupted runs resume: rerun the same command and finished files are not recomputed.
    """
    import os
    import shlex

    from ddspcli import storage
    from ddspcli.engine import audio, features, prepare
    from ddspcli.errors import EXIT_INPUT

    if runner not in ("local", "beam"):
        raise typer.BadParameter("--runner must be local or beam")
    feature_settings = features.FeatureSettings(
        sample_rate=sample_rate, frame_rate=frame_rate, pitch_model=pitch_model,
        pitch_hop_ms=pitch_hop_ms,
    )  # fmt: skip
    settings = prepare.PrepareSettings(
        example_secs, hop_secs, eval_fraction, features=feature_settings
    )
    try:
        feature_settings.validate()
        settings.samples(example_secs)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    files = [f for f in audio.find_audio(inputs) if f != "-"]
    storage.check_output_folder(output, [*files, *inputs])
    prepare.check_outdir(output, force)
    with ui.DownloadProgress() as download:
        weights = _pitch_weights(pitch_model, download)
    workers = workers or max(1, (os.cpu_count() or 1) // 2)
    minutes = {"done": 0.0}
    with ui.CountProgress("features", len(files)) as bar:

        def on_file(record: dict) -> None:
            minutes["done"] += record["duration_s"] / 60.0
            bar.advance(1, f"{minutes['done']:.1f} audio min")
            if record["status"] != "ok":
                ui.warn(f"skipped {record['path']}: {record['reason']}")

        info, records = prepare.prepare(
            files, output, str(weights), settings, runner=runner, workers=workers,
            beam_options=shlex.split(beam_options), force=force, on_file=on_file,
        )  # fmt: skip
    report = _prepare_report(info, records)
    if json_out:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_prepare_report(report)
    if report["skipped"] and not skip_bad:
        ui.error(
            f"{len(report['skipped'])} of {len(records)} inputs skipped (see above); "
            "pass --skip-bad to accept a partial dataset"
        )
        raise typer.Exit(EXIT_INPUT)


def _prepare_report(info: dict, records: list) -> dict:
    used = [r for r in records if r.status == "ok"]
    return {
        "output": info["splits"],
        "files_used": len(used),
        "skipped": [{"path": r.path, "reason": r.reason} for r in records if r.status != "ok"],
        "minutes": round(sum(r.duration_s for r in used) / 60.0, 3),
        "examples": {s: info["splits"][s]["examples"] for s in info["splits"]},
        "split_by": info["split_by"],
    }


def _print_prepare_report(report: dict) -> None:
    from rich.table import Table

    table = Table(show_edge=False, show_header=False)
    table.add_row("files used", str(report["files_used"]))
    table.add_row("files skipped", str(len(report["skipped"])))
    table.add_row("audio minutes", f"{report['minutes']:.2f}")
    table.add_row("train examples", str(report["examples"]["train"]))
    table.add_row("eval examples", f"{report['examples']['eval']} (split by {report['split_by']})")
    ui.err_console.print(table)


@app.command("fit")
def fit_command(
    dataset: Annotated[str, typer.Argument(help="A folder written by `ddsp prepare`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder (resumes one).")],
    variant: Annotated[
        str, typer.Option(help="harmonic, harmonic+noise, harmonic+noise+reverb or tiny.")
    ] = "harmonic+noise+reverb",
    z: Annotated[bool, typer.Option("--z", help="Add the MFCC -> GRU -> z (16) encoder.")] = False,
    gin_file: Annotated[
        list[str] | None, typer.Option("--gin-file", help="Extra gin files, in order.")
    ] = None,
    gin_param: Annotated[
        list[str] | None, typer.Option("--gin-param", help="'Autoencoder.rnn_units = 256'.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Total steps (default 30000).", min=1)] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.", min=1)] = 16,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.", min=0.0)] = 3e-4,
    seed: Annotated[int, typer.Option(help="Weights, data order and noise.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.", min=1)] = 500,
    keep: Annotated[int, typer.Option(help="Checkpoints kept (plus the best).", min=1)] = 3,
    eval_batches: Annotated[int, typer.Option(help="Eval batches (0: all).", min=0)] = 0,
    summary_every: Annotated[int, typer.Option(help="Steps between summaries.", min=1)] = 50,
    stop_loss: Annotated[
        float | None, typer.Option(help="Stop once the eval loss is at or below this.")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after N checkpoints without a better eval loss.")
    ] = None,
    jit: Annotated[bool, typer.Option("--jit/--no-jit", help="XLA-compile the step.")] = False,
    strategy: Annotated[
        str, typer.Option(help="auto, default, mirrored or multiworker (TF_CONFIG).")
    ] = "auto",
    json_log: Annotated[
        bool, typer.Option("--json-log", help="One JSON line per summary on stdout.")
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="Also write an inference-only copy here at the end.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start the run over.")] = False,
) -> None:
    """Train a DDSP autoencoder on a prepared dataset; rerun the same command to resume.

    Ctrl-C or SIGTERM saves a checkpoint and stops (exit 130). The run folder is a model
    directory for `ddsp transfer --model RUN`; TensorBoard logs are in RUN/logs.
    """
    from dataclasses import asdict

    from ddspcli import storage
    from ddspcli.engine import train
    from ddspcli.errors import EXIT_INTERRUPTED

    storage.check_output_folder(output, [dataset])
    if export is not None:
        storage.check_output_folder(export, [dataset, output])

    settings = train.TrainSettings(
        steps=steps or train.TrainSettings.steps, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, checkpoint_every=checkpoint_every, keep=keep,
        eval_batches=eval_batches, summary_every=summary_every, stop_loss=stop_loss,
        patience=patience, jit=jit, strategy=strategy,
    )  # fmt: skip
    trainer, resumed = train.open_run(
        output, dataset, variant, gin_file or [], gin_param or [], z, settings, force,
        steps_given=steps is not None,
    )  # fmt: skip
    settings = trainer.settings
    start = int(trainer.step.numpy())
    if resumed:
        ui.info(f"resuming {output} at step {start} of {settings.steps}")
    if start >= settings.steps:
        ui.info(f"{output} is already trained to step {start}; pass --steps N to continue")
    else:
        with train.StopFlag() as stop, ui.TrainDisplay(settings.steps, start) as display:

            def report(summary: train.Summary) -> None:
                display.update(summary)
                if json_log:
                    print(json.dumps(asdict(summary)), flush=True)

            reason = trainer.fit(report, stop)
        if reason == "interrupted":
            ui.warn(f"stopped at step {int(trainer.step.numpy())}; checkpoint saved in "
                    f"{output}; rerun the same command to resume")  # fmt: skip
            raise typer.Exit(EXIT_INTERRUPTED)
        ui.info(f"finished ({reason}) at step {int(trainer.step.numpy())}: model in {output}")
    if trainer.model.encoder is not None and (start < settings.steps
                                              or not train.has_mixture(output)):  # fmt: skip
        ui.info("fitting a Gaussian mixture over the training set's z frames")
        mixture = train.fit_z_mixture(output, dataset, seed)
        ui.info(f"z mixture: {mixture.components} component(s) by BIC, in {output}")
    if export is not None:
        train.export_model(output, export, force=force)
        ui.info(f"inference-only copy in {export}")


# Rendering options shared by `transfer` and `generate`.
ReverbOpt = Annotated[bool, typer.Option(help="Apply the model's reverb.")]
SampleRateOpt = Annotated[
    int | None, typer.Option(help="Output rate in Hz (default: the model's).", min=8000)
]
PeakDbOpt = Annotated[
    float,
    typer.Option(help="Peak ceiling in dBFS (at most 0): louder output is turned down.", max=0.0),
]
NormalizeOpt = Annotated[
    bool, typer.Option("--normalize", help="Scale the peak to exactly --peak-db.")
]


@app.command("transfer")
def transfer_command(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Audio files, folders, globs, or - (stdin).", show_default=False),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name (`ddsp models list`) or directory.")
    ] = "violin",
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="WAV file or - (default: <input>.<model>.wav)."),
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option(help="Folder for the outputs of several inputs.")
    ] = None,
    octave: Annotated[int, typer.Option(help="Octaves to shift (after auto-adjust).")] = 0,
    semitones: Annotated[float, typer.Option(help="Semitones to shift (after auto-adjust).")] = 0.0,
    loudness_shift: Annotated[float, typer.Option(help="dB added to the loudness.")] = 0.0,
    autotune: Annotated[
        float,
        typer.Option(help="0..1: pull the pitch towards the best-fitting scale.", min=0.0, max=1.0),
    ] = 0.0,
    auto_adjust: Annotated[
        bool,
        typer.Option(help="Move pitch by octaves and map loudness onto the model's training data."),
    ] = True,
    quiet_db: Annotated[
        float,
        typer.Option(
            "--quiet", "--quiet-db", help="dB to turn down frames without notes (auto-adjust)."
        ),
    ] = 20.0,
    note_confidence: Annotated[
        float, typer.Option(help="Pitch confidence (0..1) a note needs.", min=0.0, max=1.0)
    ] = 0.7,
    reverb: ReverbOpt = True,
    stems: Annotated[
        str | None, typer.Option(help="Folder for the harmonic, noise and reverb parts.")
    ] = None,
    sample_rate: SampleRateOpt = None,
    peak_db: PeakDbOpt = -1.0,
    normalize: NormalizeOpt = False,
    plot: Annotated[str | None, typer.Option(help="PNG of features and spectrograms.")] = None,
    save_features: Annotated[
        str | None, typer.Option(help="NPZ of the adjusted features (for --features).")
    ] = None,
    features_in: Annotated[
        str | None,
        typer.Option("--features", help="NPZ features to use instead of extracting them."),
    ] = None,
    pitch_model: Annotated[
        str, typer.Option(help="CREPE capacity for the input's pitch: tiny or full.")
    ] = "tiny",
    pitch_hop_ms: Annotated[
        float | None, typer.Option(help="Run CREPE every N ms (multiple of 4).")
    ] = None,
    block_secs: Annotated[
        float, typer.Option(help="Seconds synthesized per block (memory).", min=0.1)
    ] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Turn recordings into an instrument: extract features, adjust them, resynthesize.

    Example: [bold]ddsp transfer speech.wav --model violin --octave 1[/bold]. Works in pipes:
    [bold]sox in.mp3 -t wav - | ddsp transfer - -o - | sox - out.flac[/bold].
    """
    from ddspcli import pretrained, storage
    from ddspcli.engine import audio, features, transfer
    from ddspcli.engine import model as model_lib
    from ddspcli.errors import InputError, OutputError

    try:  # the tracker options, checked before any model is fetched
        features.FeatureSettings(pitch_model=pitch_model, pitch_hop_ms=pitch_hop_ms).validate()
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    files = audio.find_audio(inputs) if inputs else []
    storage.protect_inputs([*files, *([features_in] if features_in else [])])
    if not files and features_in is None:
        raise InputError("give an audio file, a folder, - for stdin, or --features NPZ")
    single = len(files) <= 1
    if not single and (output is not None or plot or save_features or features_in):
        raise OutputError(
            "-o, --plot, --save-features and --features take one input; use --out-dir for several"
        )
    if json_out and output == "-":
        raise OutputError("--json and -o - both use stdout; write the audio to a file")
    with ui.DownloadProgress() as progress:
        model_dir, name = pretrained.resolve_instrument(model, progress)
        _protect_model(model_dir)
        loaded = model_lib.load_model_dir(model_dir)
        try:
            fsettings = transfer.feature_settings(loaded.info, pitch_model, pitch_hop_ms)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        weights = None if features_in else str(_pitch_weights(pitch_model, progress))
    sources = files or [None]
    jobs = [
        transfer.Job(src, output or transfer.default_output(src or features_in, name, out_dir),
                     features_in, save_features, plot, stems)
        for src in sources
    ]  # fmt: skip
    _check_transfer_outputs(jobs, name, out_dir, force)
    adjustments = transfer.Adjustments(
        auto=auto_adjust, quiet_db=quiet_db, octaves=octave, semitones=semitones,
        loudness_shift_db=loudness_shift, autotune=autotune, note_confidence=note_confidence,
    )  # fmt: skip
    rsettings = transfer.RenderSettings(
        reverb=reverb, sample_rate=sample_rate, peak_db=peak_db, normalize=normalize,
        seed=seed, block_s=block_secs,
    )  # fmt: skip
    stdin = {"-": audio.read_audio("-", fsettings.sample_rate)[0]} if "-" in files else {}
    cost = transfer.FEATURE_COST.get(pitch_model, 1.0) + transfer.RENDER_COST
    total = sum(_expected_frames(f, stdin, fsettings) for f in files if f) or 1
    summaries = []
    with ui.CountProgress("transfer", round(cost * total), show_count=False) as bar:
        for job in jobs:
            summary = transfer.run_job(
                job, loaded, name, fsettings, adjustments, rsettings, weights,
                bar.advance, force=force, stdin=stdin.get(job.source),
            )  # fmt: skip
            for line in summary["warnings"]:
                ui.warn(line)
            ui.info(_transfer_line(summary))
            summaries.append(summary)
    if json_out:
        json.dump(summaries[0] if single else summaries, sys.stdout, indent=2)
        sys.stdout.write("\n")


def _check_transfer_outputs(jobs: list, model_name: str, out_dir: str | None, force: bool) -> None:
    """Fail before any work when an output exists (without --force) or cannot be written.

    The folders named by --out-dir and --stems are created; other outputs need their folder.
    """
    from ddspcli.engine import audio, transfer
    from ddspcli.errors import OutputError

    for folder in {out_dir, *(j.stems_dir for j in jobs)} - {None}:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create folder {folder}: {err.strerror or err}") from None
    seen: set[str] = set()
    for job in jobs:
        parts = transfer.stem_paths(job, model_name, transfer.PART_NAMES).values()
        for path in (job.output, job.plot, job.save_features, *parts):
            if path is None:
                continue
            if path in seen and path != "-":
                raise OutputError(f"two outputs would be written to {path}; use --out-dir")
            seen.add(path)
            audio.check_output(path, force=force)


def _transfer_line(summary: dict) -> str:
    """``speech.wav (12.3 s) -> speech.violin.wav  +12 semitones  0.41 s/s``."""
    target = "stdout" if summary["output"] == "-" else summary["output"]
    shift = summary["adjustments"].get("semitones", 0.0)
    rtf = summary["real_time_factor"]
    return (
        f"{summary['input']} ({summary['seconds']:.1f} s) -> {target}  "
        f"{shift:+g} semitones  {summary['wall_s']:.1f} s wall"
        + (f" ({rtf:.2f} s per audio s)" if rtf is not None else "")
    )


@app.command("eval")
def eval_command(
    models: Annotated[list[str], typer.Argument(help="Model names or model directories.")],
    data_dir: Annotated[str, typer.Option("--data", help="A folder written by `ddsp prepare`.")],
    split: Annotated[str, typer.Option(help="Split to score.")] = "eval",
    max_examples: Annotated[
        int | None, typer.Option(help="Score at most N examples.", min=1)
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    plot: Annotated[
        str | None, typer.Option(help="PNG: spectrograms of the best and worst example.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the plot.")] = False,
) -> None:
    """Resynthesize a prepared split with each model and score the reconstruction.

    Per model: multi-scale spectral loss, loudness L1 (dB), f0 L1 (semitones, frames whose
    recorded confidence is >= 0.85) and the share of f0 outliers (> 1 semitone), with the
    output's features extracted again by the dataset's own pitch settings; and the real-time
    factor of the synthesis.
    """
    from ddspcli import pretrained
    from ddspcli.engine import audio, data, evaluate
    from ddspcli.engine import model as model_lib
    from ddspcli.errors import InputError

    if plot is not None:
        audio.check_output(plot, force=force)
    settings = evaluate.dataset_feature_settings(data_dir)
    info = data.read_info(data_dir)
    with ui.DownloadProgress() as progress:
        weights = str(_pitch_weights(settings.pitch_model, progress))
        folders = [pretrained.resolve_instrument(m, progress) for m in models]
    for folder, _ in folders:
        _protect_model(folder)
    if plot is not None:
        audio.check_output(plot, force=force)
    results = []
    total = evaluate.count_examples(data_dir, split, None, max_examples) * len(models)
    with ui.CountProgress("eval", total) as bar:
        for folder, name in folders:
            loaded = model_lib.load_model_dir(folder)
            if int(loaded.info["sample_rate"]) != int(info["sample_rate"]):
                raise InputError(
                    f"{name} works at {loaded.info['sample_rate']} Hz but {data_dir} holds "
                    f"{info['sample_rate']} Hz audio; evaluate it on data prepared at its rate"
                )
            scores = evaluate.evaluate(loaded, data_dir, weights, split, None, max_examples,
                                       progress=lambda n, m=name: bar.advance(n, m))  # fmt: skip
            results.append((name, loaded, scores))
    if json_out:
        payload = [{"model": n, "steps": ld.info.get("steps"), **s.to_dict()}
                   for n, ld, s in results]  # fmt: skip
        json.dump(payload if len(payload) > 1 else payload[0], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        ui.out_console.print(_eval_table(results))
    if plot is not None:
        _plot_best_and_worst(results, data_dir, split, max_examples, plot, force)


@app.command("generate")
def generate_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name (`ddsp models list`) or directory.")
    ] = "violin",
    midi: Annotated[
        str | None, typer.Option(help="MIDI melody (overlaps: last note wins).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="CSV with time_s,f0_hz,loudness_db rows, or - (stdin).")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="WAV file or - (default: <input>.<model>.wav)."),
    ] = None,
    transpose: Annotated[float, typer.Option(help="Semitones added to every pitch.")] = 0.0,
    attack: Annotated[float, typer.Option(help="Note attack in seconds.", min=0.0)] = 0.03,
    release: Annotated[float, typer.Option(help="Note release in seconds.", min=0.0)] = 0.15,
    vibrato: Annotated[float, typer.Option(help="Vibrato depth in cents.", min=0.0)] = 0.0,
    vibrato_rate: Annotated[float, typer.Option(help="Vibrato rate in Hz.", min=0.0)] = 5.5,
    tail: Annotated[
        float, typer.Option(help="Seconds rendered after the last note.", min=0.0)
    ] = 0.5,
    z_mode: Annotated[
        str, typer.Option(help="--z models: sample a smooth z path, or hold a mixture mean.")
    ] = "sample",
    z_component: Annotated[
        int | None, typer.Option(help="Mixture component for --z-mode mean.", min=0)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise and of the z path.")] = 0,
    reverb: ReverbOpt = True,
    sample_rate: SampleRateOpt = None,
    peak_db: PeakDbOpt = -1.0,
    normalize: NormalizeOpt = False,
    plot: Annotated[str | None, typer.Option(help="PNG of the curves and spectrogram.")] = None,
    save_features: Annotated[
        str | None, typer.Option(help="NPZ of the curves (for `ddsp transfer --features`).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Play a model from a melody: a MIDI file or a CSV of pitch and loudness breakpoints.

    Example: [bold]ddsp generate --model violin --midi tune.mid --vibrato 20 -o tune.wav[/bold].
    MIDI velocity maps onto the loudness the model was trained on.
    """
    from ddspcli import pretrained, storage
    from ddspcli.engine import audio, generate, transfer
    from ddspcli.engine import model as model_lib
    from ddspcli.errors import InputError, OutputError

    if (midi is None) == (profile is None):
        raise InputError("give exactly one of --midi FILE and --profile CSV")
    if z_mode not in ("sample", "mean"):
        raise typer.BadParameter(f"--z-mode is sample or mean, not {z_mode!r}")
    source = midi or profile
    storage.protect_inputs([source])
    if json_out and output == "-":
        raise OutputError("--json and -o - both use stdout; write the audio to a file")
    with ui.DownloadProgress() as progress:
        model_dir, name = pretrained.resolve_instrument(model, progress)
    _protect_model(model_dir)
    target = output or transfer.default_output(source, name, None)
    for path in (target, plot, save_features):
        if path is not None:
            audio.check_output(path, force=force)
    loaded = model_lib.load_model_dir(model_dir)
    shape = generate.Shape(attack_s=attack, release_s=release, vibrato_cents=vibrato,
                           vibrato_hz=vibrato_rate, tail_s=tail, transpose=transpose)  # fmt: skip
    controls, warnings, report = generate.melody_controls(
        midi, profile, loaded.model.frame_rate, loaded.statistics, shape,
        transfer.f0_limits(loaded.model.sample_rate),
    )  # fmt: skip
    for line in warnings:
        ui.warn(line)
    n_frames = len(controls["f0_hz"])
    z = generate.latent_trajectory(loaded, n_frames, z_mode, seed, z_component)
    rsettings = transfer.RenderSettings(reverb=reverb, sample_rate=sample_rate, peak_db=peak_db,
                                        normalize=normalize, seed=seed)  # fmt: skip
    total = generate.frames_to_render(n_frames, loaded.model.frame_rate)
    with ui.CountProgress("generate", total, show_count=False) as bar:
        summary = generate.run(loaded, name, controls, target, rsettings, z, plot, save_features,
                               force, lambda n: bar.advance(n, "synthesis"))  # fmt: skip
    summary = {"input": source, **summary, **report, "warnings": warnings}
    where = "stdout" if target == "-" else target
    ui.info(f"{source} -> {where} ({summary['seconds']:.1f} s, {summary['wall_s']:.1f} s wall)")
    if json_out:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")


def _eval_table(results: list) -> object:
    from rich.table import Table

    table = Table(show_edge=False)
    # Short headers: the table must fit 80 columns when stdout is not a terminal.
    columns = ("model", "steps", "examples", "loss", "loud dB", "f0 st", "f0 out", "RTF")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    table.caption = (
        "loss: multi-scale spectral; loud dB: loudness L1; f0 st: f0 L1 in semitones; "
        "f0 out: share > 1 semitone off; RTF: synthesis s per audio s"
    )
    for name, loaded, s in results:
        table.add_row(
            name, str(loaded.info.get("steps", "?")), str(s.examples), f"{s.spectral_loss:.3f}",
            f"{s.loudness_l1_db:.2f}", f"{s.f0_l1_semitones:.3f}", f"{100 * s.f0_outliers:.2f}%",
            f"{s.real_time_factor:.3f}",
        )  # fmt: skip
    return table


def _plot_best_and_worst(results, data_dir, split, max_examples, plot, force) -> None:
    """Render the best and worst example of each model again and draw them."""
    import numpy as np

    from ddspcli.engine import evaluate, features_io

    picks = [(int(np.argmin(s.per_example_loss)), int(np.argmax(s.per_example_loss)))
             for _, _, s in results]  # fmt: skip
    wanted = {i for pair in picks for i in pair}
    # One pass over the split, keeping only the examples that are drawn.
    chosen = {i: example for i, example in
              enumerate(evaluate.examples(data_dir, split, None, max_examples))
              if i in wanted}  # fmt: skip
    rows = []
    for (name, loaded, scores), (best, worst) in zip(results, picks, strict=True):
        examples = []
        for label, index in (("best", best), ("worst", worst)):
            loss = scores.per_example_loss[index]
            examples.append((f"{label} (loss {loss:.2f})", chosen[index]["audio"].numpy(),
                             evaluate.render_example(loaded, chosen[index])))  # fmt: skip
        rows.append((name, examples))
    features_io.plot_examples(rows, int(results[0][1].model.sample_rate), plot, force=force)


models_app = typer.Typer(
    help="List, download, verify and remove pretrained models (pretrained_manifest.toml).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def _human_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.1f} kB"


@models_app.command("list")
def models_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Table of known models: name, kind, size, whether usable offline (no hashing; see verify)."""
    from ddspcli import pretrained

    rows = []
    for spec in pretrained.load_manifest().values():
        state = "shipped" if spec.bundled_dir() else pretrained.cached_state(spec)
        rows.append({
            "name": spec.name, "kind": spec.kind, "version": spec.version, "size": spec.size,
            "cached": state, "offline": state in ("shipped", "yes"),
            "path": str(pretrained.model_dir(spec)), "description": spec.description,
            "license": spec.license,
        })  # fmt: skip
    if json_out:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("name", "kind", "size", "here", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    labels = {"shipped": "shipped", "yes": "cached", "partial": "partial", "no": "-"}
    for r in rows:
        table.add_row(r["name"], r["kind"], _human_size(r["size"]), labels[r["cached"]],
                      r["description"])  # fmt: skip
    table.caption = (
        "here: shipped in the package or cached = usable offline; - = `ddsp models pull`"
    )
    ui.out_console.print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str], typer.Argument(help="Model names (see `ddsp models list`).")],
) -> None:
    """Download models into the cache (verified by sha256; resumable; safe to run twice)."""
    from ddspcli import pretrained

    specs = [pretrained.get_spec(name) for name in names]
    with ui.DownloadProgress() as progress:
        for spec in specs:
            folder = pretrained.pull(spec, progress)
            ui.info(f"[green]ok[/green] {spec.name} -> {folder}")


@models_app.command("verify")
def models_verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to check (default: all cached).")
    ] = None,
) -> None:
    """Re-hash cached files against the manifest; exit 5 on any missing or changed file."""
    from ddspcli import pretrained
    from ddspcli.errors import ModelError

    manifest = pretrained.load_manifest()
    if names:
        specs = [pretrained.get_spec(name, manifest) for name in names]
    else:
        specs = [s for s in manifest.values() if pretrained.cached_state(s) != "no"]
        if not specs:
            ui.info("no models are cached; nothing to verify")
            return
    failed = []
    for spec in specs:
        problems = pretrained.verify(spec)
        for problem in problems:
            ui.warn(f"{spec.name}: {problem}")
        if problems:
            failed.append(spec.name)
        else:
            ui.info(f"[green]ok[/green] {spec.name} ({len(spec.files)} files, sha256 verified)")
    if failed:
        raise ModelError(
            f"verification failed for {', '.join(failed)}; run `ddsp models pull` to repair"
        )


@models_app.command("path")
def models_path(
    name: Annotated[str, typer.Argument(help="Model name.")],
    pull: Annotated[bool, typer.Option("--pull", help="Download it first if needed.")] = False,
) -> None:
    """Print a model's local folder on stdout (for shell pipelines)."""
    from ddspcli import pretrained

    if pull:
        with ui.DownloadProgress() as progress:
            folder = pretrained.resolve(name, progress=progress)
    else:
        folder = pretrained.resolve(name, download=False)
    typer.echo(str(folder))


@models_app.command("rm")
def models_rm(
    names: Annotated[list[str], typer.Argument(help="Models to delete from the cache.")],
) -> None:
    """Delete models from the cache (shipped models cannot be removed)."""
    from ddspcli import pretrained

    for spec in [pretrained.get_spec(name) for name in names]:
        removed = pretrained.remove(spec)
        ui.info(f"{'removed' if removed else 'not cached:'} {spec.name}")


@models_app.command("export")
def models_export(
    run: Annotated[Path, typer.Argument(help="A run folder or model directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
    name: Annotated[str | None, typer.Option(help="Model name stored in model.json.")] = None,
    description: Annotated[str | None, typer.Option(help="One line about the model.")] = None,
    license_: Annotated[
        str | None, typer.Option("--license", help="Licence of the model (and its data).")
    ] = None,
    attribution: Annotated[
        str | None, typer.Option(help="Attribution the training data's licence requires.")
    ] = None,
    manifest_source: Annotated[
        str | None,
        typer.Option(help="Print a manifest entry: 'bundled:DIR' or the URL the files go to."),
    ] = None,
    version: Annotated[str, typer.Option(help="Version in the manifest entry.")] = "1",
) -> None:
    """Write an inference-only copy of a model (no optimizer state: about a third the size).

    The copy is flat (model.json, config.gin, statistics.json, ckpt.*), ready to be listed in a
    manifest; --name, --description, --license and --attribution are stored in its model.json.
    With --manifest-source, the manifest table for the copy (sha256 and size of each file) is
    printed on stdout.
    """
    from ddspcli import pretrained, storage
    from ddspcli.engine import train

    if manifest_source is not None and not manifest_source.startswith(pretrained.SCHEMES):
        raise typer.BadParameter(
            f"--manifest-source must start with one of {', '.join(pretrained.SCHEMES)}"
        )
    storage.check_output_folder(output, [run])
    fields = {"name": name, "description": description, "license": license_,
              "attribution": attribution}  # fmt: skip
    extra = {k: v for k, v in fields.items() if v is not None}
    info = train.export_model(run, output, force=force, extra=extra)
    ui.info(f"exported {run} (step {info.get('steps')}) to {output}")
    if manifest_source is not None:
        entry_name = name or output.name
        sys.stdout.write(pretrained.manifest_entry(output, entry_name, version, manifest_source))


def build_command():
    """The click command tree of `app`, with every float option checked to be finite.

    Checking the parsed values of every command in one place means no float option, present
    or future, can let NaN or infinity through (``--semitones nan`` would render silence).
    """
    import functools
    import math

    from ddspcli.errors import OutputClosed

    click = _click()
    command = typer.main.get_command(app)

    def checked(sub):
        original = sub.callback

        @functools.wraps(original)
        def callback(**kwargs):
            ctx = click.get_current_context()
            for param in ctx.command.params:
                value = kwargs.get(param.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise typer.BadParameter(f"{value} is not a finite number", ctx, param)
            try:
                return original(**kwargs)
            except BrokenPipeError:  # not an OSError for Typer, which would exit 1
                raise OutputClosed("stdout was closed by its reader; output cut short") from None

        sub.callback = callback

    stack = [command]
    while stack:
        group = stack.pop()
        for sub in getattr(group, "commands", {}).values():
            stack.append(sub)
            if sub.callback is not None:
                checked(sub)
    return command


def run(argv: list[str] | None = None) -> int:
    """Run ``ddsp`` with `argv` (default: the process's) and return its exit code.

    The one place where outcomes become exit codes: usage errors one line and 2, `DdspError`s
    one line and their code, a reader that closed stdout 141 (quietly, as a process killed
    by SIGPIPE), Ctrl-C 130, anything else a bug (1; the traceback with ``-v``). Warnings
    the engine raises as `DdspWarning` are printed as ``warning:`` lines.
    """
    import warnings

    from ddspcli import storage
    from ddspcli.errors import EXIT_INTERRUPTED, EXIT_USAGE, DdspWarning, OutputClosed

    storage.forget_inputs()
    ui.state.verbosity = ui.NORMAL
    show = warnings.showwarning

    def show_warning(message, category, *args, **kwargs):
        if issubclass(category, DdspWarning):
            ui.warn(str(message))
        else:
            show(message, category, *args, **kwargs)

    click = _click()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", DdspWarning)
            warnings.showwarning = show_warning
            code = build_command().main(args=argv, prog_name="ddsp", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.NoArgsIsHelpError as err:
        print(err.ctx.get_help(), file=sys.stderr)
        return EXIT_USAGE
    except click.UsageError as err:
        ui.error(_usage_line(err))
        return EXIT_USAGE
    except click.ClickException as err:
        ui.error(err.format_message())
        return err.exit_code
    except (click.Abort, typer.Abort):
        return EXIT_INTERRUPTED
    except (OutputClosed, BrokenPipeError):
        return _stdout_closed()
    except DdspError as err:
        ui.error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug: say so in one line, traceback with --verbose
        if ui.state.verbosity >= ui.VERBOSE:
            raise
        ui.error(f"internal error: {type(err).__name__}: {err} (rerun with -v for a traceback)")
        return EXIT_INTERNAL


def _click():
    """The click that Typer runs on: vendored as ``typer._click`` since Typer 0.22, the click
    package before. Returns a namespace with the exceptions and `get_current_context`."""
    from types import SimpleNamespace

    try:
        from typer._click import exceptions, globals
    except ImportError:  # an older Typer on the click package
        import click

        exceptions = globals = click
    names = ("UsageError", "ClickException", "NoArgsIsHelpError")
    return SimpleNamespace(get_current_context=globals.get_current_context,
                           Abort=getattr(exceptions, "Abort", typer.Abort),
                           **{n: getattr(exceptions, n) for n in names})  # fmt: skip


def _usage_line(err) -> str:
    """A usage error as one line, with the command's --help hint."""
    message = " ".join(err.format_message().split())
    where = err.ctx.command_path if err.ctx is not None else "ddsp"
    return f"{message} (see `{where} --help`)"


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly, like a SIGPIPE'd process.

    stdout is pointed at /dev/null so that the interpreter's final flush cannot fail again.
    """
    import os

    from ddspcli.errors import EXIT_PIPE

    ui.debug("stdout was closed by its reader; output cut short")
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (an in-process test): nothing to protect
        pass
    return EXIT_PIPE


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
