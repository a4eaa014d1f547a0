"""`ddsp features`: f0, confidence and loudness as CSV, JSON or NPZ."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import app
from ddspcli.cli._common import (
    ForceOpt,
    PitchHopOpt,
    PitchModelOpt,
    usage_errors,
)


@app.command("features")
def features_command(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders, globs, or - (stdin).")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File (one input; - for stdout) or folder (several)."),
    ] = None,
    fmt: Annotated[
        choices.FeatureFormat | None,
        typer.Option("--format", "-f", help="File format (default: from -o's suffix, else csv)."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw a PNG (one input only).")
    ] = None,
    pitch_model: PitchModelOpt = choices.FEATURES_PITCH_MODEL,
    pitch_hop_ms: PitchHopOpt = None,
    viterbi: Annotated[bool, typer.Option(help="Viterbi-smooth the pitch.")] = True,
    force: ForceOpt = False,
) -> None:
    """f0 (CREPE), confidence and A-weighted loudness at 250 frames/s, as CSV, JSON or NPZ."""
    from ddspcli import instrument, storage
    from ddspcli.engine import audio, features, features_io

    files = audio.find_audio(inputs)
    storage.protect_inputs(files)
    settings = features.FeatureSettings(
        pitch_model=pitch_model.value, pitch_hop_ms=pitch_hop_ms, viterbi=viterbi
    )
    with usage_errors():
        settings.validate()
        fmt_name = features_io.output_format(output, fmt.value if fmt else None)
        if plot is not None and len(files) > 1:
            raise ValueError("--plot draws one input; give a single file")
        targets = features_io.output_targets(files, output, fmt_name)
    features_io.check_targets(targets, plot, force=force)
    with ui.DownloadProgress() as progress:
        # CREPE as .tflite in LiteRT: no TensorFlow (full's is built once, see models pull)
        weights = instrument.pitch_tracker_file(settings.pitch_model, progress)
    with ui.FrameProgress("features", 0, settings.frame_rate) as bar:

        def progress_for(total: int):
            bar.set_total(total)
            return bar.advance

        records = features_io.extract_to_files(
            files, targets, fmt_name, settings, str(weights), plot_png=plot, force=force,
            progress=progress_for,
        )  # fmt: skip
    for record in records:
        ui.debug(f"{record['source']}: {record['frames']} frames -> {record['output']}")
