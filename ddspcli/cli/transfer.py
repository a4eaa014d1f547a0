"""`ddsp transfer`: recordings resynthesized by an instrument model."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import app
from ddspcli.cli._common import (
    ForceOpt,
    LoudnessShiftOpt,
    NormalizeOpt,
    OctaveOpt,
    PeakDbOpt,
    PitchHopOpt,
    PitchModelOpt,
    QuietDbOpt,
    ReverbOpt,
    RoomMixOpt,
    RoomOpt,
    SampleRateOpt,
    SemitonesOpt,
    emit_json,
    open_instrument,
    open_room,
    room_plays,
    stdout_conflict,
    usage_errors,
)


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
    octave: OctaveOpt = 0,
    semitones: SemitonesOpt = 0.0,
    loudness_shift: LoudnessShiftOpt = 0.0,
    autotune: Annotated[
        float,
        typer.Option(help="0..1: pull the pitch towards the best-fitting scale.", min=0.0, max=1.0),
    ] = 0.0,
    auto_adjust: Annotated[
        bool,
        typer.Option(help="Move pitch by octaves and map loudness onto the model's training data."),
    ] = True,
    quiet_db: QuietDbOpt = 20.0,
    note_confidence: Annotated[
        float, typer.Option(help="Pitch confidence (0..1) a note needs.", min=0.0, max=1.0)
    ] = 0.7,
    reverb: ReverbOpt = True,
    room: RoomOpt = None,
    room_mix: RoomMixOpt = choices.ROOM_MIX_DB,
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
    pitch_model: PitchModelOpt = choices.TRANSFER_PITCH_MODEL,
    pitch_hop_ms: PitchHopOpt = None,
    block_secs: Annotated[
        float, typer.Option(help="Seconds synthesized per block (memory).", min=0.1)
    ] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of summaries (one per input).")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Turn recordings into an instrument: extract features, adjust them, resynthesize.

    Example: [bold]ddsp transfer speech.wav --model violin --octave 1[/bold]. Works in pipes:
    [bold]sox in.mp3 -t wav - | ddsp transfer - -o - | sox - out.flac[/bold].
    """
    from ddspcli import storage
    from ddspcli.engine import adjust as adjust_lib
    from ddspcli.engine import audio, features, transfer

    stdout_conflict(json_out, output)
    files = audio.find_audio(inputs) if inputs else []
    with usage_errors():  # checked before any model is fetched
        tracker = features.FeatureSettings(pitch_model=pitch_model.value, pitch_hop_ms=pitch_hop_ms)
        tracker.validate()
        transfer.check_job_options(files, features_in, output, save_features, plot)
    plays = room_plays(room, room_mix, reverb)
    storage.protect_inputs([*files, *([features_in] if features_in else [])])
    with ui.DownloadProgress() as progress:
        player = open_instrument(model, progress, pitch_model=pitch_model.value,
                                 pitch_hop_ms=pitch_hop_ms, load_pitch=not features_in)  # fmt: skip
        room_ir = open_room(player, room, room_mix, progress) if plays else None
        jobs = transfer.plan_jobs(
            files, player.name, features_in=features_in, output=output, out_dir=out_dir,
            save_features=save_features, plot=plot, stems_dir=stems,
        )  # fmt: skip
        transfer.check_outputs(jobs, player.name, out_dir, force=force)
    adjustments = adjust_lib.Adjustments(
        auto=auto_adjust, quiet_db=quiet_db, octaves=octave, semitones=semitones,
        loudness_shift_db=loudness_shift, autotune=autotune, note_confidence=note_confidence,
    )  # fmt: skip
    rsettings = transfer.RenderSettings(
        reverb=plays, room=room_ir, room_mix_db=room_mix, sample_rate=sample_rate,
        peak_db=peak_db, normalize=normalize, seed=seed, block_s=block_secs,
    )  # fmt: skip

    def done(summary: dict) -> None:
        for line in summary["warnings"]:
            ui.warn(line)
        ui.info(_transfer_line(summary))

    with ui.CountProgress("transfer", 0, show_count=False) as bar:

        def sized(total: int):
            bar.set_total(total)
            return bar.advance

        pipeline = transfer.Pipeline(player, player.name, adjustments, rsettings)
        summaries = transfer.run_jobs(jobs, pipeline, force=force, progress=sized, on_done=done)
    if json_out:
        emit_json(summaries)


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


