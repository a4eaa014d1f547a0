"""`ddsp prepare`: audio files -> a sharded TFRecord dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import app
from ddspcli.cli._common import (
    JsonOpt,
    PitchHopOpt,
    PitchModelOpt,
    emit_json,
    pitch_weights,
    usage_errors,
)


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
    preset: Annotated[
        choices.Preset | None,
        typer.Option(help="vst: the DDSP-VST plugin's features (16 kHz, 50 frames/s, power over "
                     "1024-sample frames, CREPE every frame without Viterbi) for `fit --variant "
                     "vst`."),
    ] = None,
    pitch_model: PitchModelOpt = choices.FEATURES_PITCH_MODEL,
    pitch_hop_ms: PitchHopOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Local worker processes (default: cores / 2).", min=1)
    ] = None,
    runner: Annotated[choices.Runner, typer.Option(help="Where the features are computed.")] = (
        choices.Runner.LOCAL
    ),
    beam_options: Annotated[
        str, typer.Option(help='Options for Beam, e.g. "--runner=DataflowRunner --project=p".')
    ] = "",
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address for --runner dask, e.g. tcp://10.0.0.5:8786.",
            envvar="DASK_SCHEDULER_ADDRESS",
        ),
    ] = None,
    scheduler_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the Dask scheduler to answer.", min=0.1)
    ] = choices.SCHEDULER_TIMEOUT_S,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Exit 0 even when some inputs were skipped.")
    ] = False,
    json_out: JsonOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Redo a finished dataset.")] = False,
) -> None:
    """Audio -> sharded TFRecords (audio, f0_hz, f0_confidence, loudness_db) + statistics.

    Interrupted runs resume: rerun the same command and finished files are not recomputed.
    Inputs are files (stdin cannot be read twice; save it to a file first). --json: one object.
    --runner dask --scheduler ADDR: on a Dask cluster (README, "Running on a cluster").
    """
    import os
    import shlex

    from ddspcli import storage
    from ddspcli.engine import audio, prepare
    from ddspcli.errors import EXIT_INPUT

    with usage_errors():
        feature_settings = _feature_settings(
            preset, sample_rate, frame_rate, pitch_model.value, pitch_hop_ms
        )
    settings = prepare.PrepareSettings(
        example_secs, hop_secs, eval_fraction, features=feature_settings
    )
    with usage_errors():
        feature_settings.validate()
        settings.samples(example_secs)
        if "-" in inputs:
            raise ValueError("prepare reads its inputs more than once, so not from stdin: "
                             "save the audio to a file and give its path")  # fmt: skip
        if runner == choices.Runner.DASK and not scheduler:
            raise ValueError("--runner dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    files = audio.find_audio(inputs)
    storage.check_output_folder(output, [*files, *inputs])
    prepare.check_outdir(output, force)
    with usage_errors():
        beam_args = shlex.split(beam_options)
    with ui.DownloadProgress() as download:
        weights = pitch_weights(feature_settings.pitch_model, download)
    workers = workers or max(1, (os.cpu_count() or 1) // 2)
    minutes = {"done": 0.0}
    with ui.CountProgress("features", len(files)) as bar:

        def on_file(record: dict) -> None:
            minutes["done"] += record["duration_s"] / 60.0
            bar.advance(1, f"{minutes['done']:.1f} audio min")
            if record["status"] != "ok":
                ui.warn(f"skipped {record['path']}: {record['reason']}")

        info, records = prepare.prepare(
            files, output, str(weights), settings, runner=runner.value, workers=workers,
            beam_options=beam_args, scheduler=scheduler,
            scheduler_timeout_s=scheduler_timeout, force=force, on_file=on_file,
        )  # fmt: skip
    summary = prepare.report(info, records)
    if json_out:
        emit_json(summary)
    else:
        _print_report(summary)
    if summary["skipped"] and not skip_bad:
        ui.error(
            f"{len(summary['skipped'])} of {len(records)} inputs skipped (see above); "
            "pass --skip-bad to accept a partial dataset"
        )
        raise typer.Exit(EXIT_INPUT)


def _feature_settings(
    preset: choices.Preset | None, sample_rate: int, frame_rate: int, pitch_model: str,
    pitch_hop_ms: float | None,
):  # fmt: skip
    """The feature settings of the options; a preset fixes the rates (ValueError if others)."""
    from ddspcli.engine import features

    if preset is None:
        return features.FeatureSettings(sample_rate=sample_rate, frame_rate=frame_rate,
                                        pitch_model=pitch_model, pitch_hop_ms=pitch_hop_ms)
    if sample_rate != choices.VST_SAMPLE_RATE or frame_rate not in (250, choices.VST_FRAME_RATE):
        raise ValueError(f"--preset {preset.value} fixes --sample-rate "
                         f"{choices.VST_SAMPLE_RATE} and --frame-rate {choices.VST_FRAME_RATE}; "
                         "leave them out")  # fmt: skip
    hop = pitch_hop_ms or choices.VST_PITCH_HOP_MS
    return features.FeatureSettings.vst(pitch_model=pitch_model, pitch_hop_ms=hop)


def _print_report(report: dict) -> None:
    from rich.table import Table

    table = Table(show_edge=False, show_header=False)
    table.add_row("files used", str(report["files_used"]))
    table.add_row("files skipped", str(len(report["skipped"])))
    table.add_row("audio minutes", f"{report['minutes']:.2f}")
    table.add_row("train examples", str(report["examples"]["train"]))
    table.add_row("eval examples", f"{report['examples']['eval']} (split by {report['split_by']})")
    ui.err_console.print(table)
