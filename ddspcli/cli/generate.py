"""`ddsp generate`: play a model from a MIDI melody or a pitch/loudness profile."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import app
from ddspcli.cli._common import (
    ForceOpt,
    NormalizeOpt,
    PeakDbOpt,
    ReverbOpt,
    RoomMixOpt,
    RoomOpt,
    SampleRateOpt,
    emit_json,
    open_instrument,
    open_room,
    room_plays,
    stdout_conflict,
    usage_errors,
)


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
    transpose: Annotated[
        float,
        typer.Option(help="Semitones added to every pitch.", min=-choices.MAX_SHIFT_SEMITONES,
                     max=choices.MAX_SHIFT_SEMITONES),
    ] = 0.0,
    attack: Annotated[float, typer.Option(help="Note attack in seconds.", min=0.0)] = 0.03,
    release: Annotated[
        float, typer.Option(help="Note release in seconds.", min=0.0, max=choices.MAX_TAIL_S)
    ] = 0.15,
    vibrato: Annotated[float, typer.Option(help="Vibrato depth in cents.", min=0.0)] = 0.0,
    vibrato_rate: Annotated[float, typer.Option(help="Vibrato rate in Hz.", min=0.0)] = 5.5,
    tail: Annotated[
        float,
        typer.Option(help="Seconds rendered after the last note.", min=0.0,
                     max=choices.MAX_TAIL_S),
    ] = 0.5,
    z_mode: Annotated[
        choices.ZMode,
        typer.Option(help="--z models: sample a smooth z path, or hold a mixture mean."),
    ] = choices.ZMode.SAMPLE,
    z_component: Annotated[
        int | None, typer.Option(help="Mixture component for --z-mode mean.", min=0)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise and of the z path.")] = 0,
    reverb: ReverbOpt = True,
    room: RoomOpt = None,
    room_mix: RoomMixOpt = choices.ROOM_MIX_DB,
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
    force: ForceOpt = False,
) -> None:
    """Play a model from a melody: a MIDI file or a CSV of pitch and loudness breakpoints.

    Example: [bold]ddsp generate --model violin --midi tune.mid --vibrato 20 -o tune.wav[/bold].
    MIDI velocity maps onto the loudness the model was trained on.
    """
    from ddspcli import storage
    from ddspcli.engine import adjust as adjust_lib
    from ddspcli.engine import generate, transfer

    with usage_errors():
        if (midi is None) == (profile is None):
            raise ValueError("give exactly one of --midi FILE and --profile CSV")
    stdout_conflict(json_out, output)
    plays = room_plays(room, room_mix, reverb)
    source = midi or profile
    storage.protect_inputs([source])
    with ui.DownloadProgress() as progress:
        player = open_instrument(model, progress, load_pitch=False)
        room_ir = open_room(player, room, room_mix, progress) if plays else None
    name = player.name
    target = output or transfer.default_output(source, name, None)
    transfer.check_render_outputs(
        [("the audio output", target)], [("--plot", plot), ("--save-features", save_features)],
        force=force,
    )
    shape = generate.Shape(attack_s=attack, release_s=release, vibrato_cents=vibrato,
                           vibrato_hz=vibrato_rate, tail_s=tail, transpose=transpose)  # fmt: skip
    controls, warnings, report = generate.melody_controls(
        midi, profile, player.frame_rate, player.statistics, shape,
        adjust_lib.f0_limits(player.sample_rate),
    )  # fmt: skip
    for line in warnings:
        ui.warn(line)
    n_frames = len(controls["f0_hz"])
    z = generate.latent_trajectory(player, n_frames, z_mode.value, seed, z_component)
    rsettings = transfer.RenderSettings(reverb=plays, room=room_ir, room_mix_db=room_mix,
                                        sample_rate=sample_rate, peak_db=peak_db,
                                        normalize=normalize, seed=seed)  # fmt: skip
    total = generate.frames_to_render(n_frames, player.frame_rate)
    with ui.CountProgress("generate", total, show_count=False) as bar:
        summary = generate.run(player, name, controls, target, rsettings, z, plot, save_features,
                               force, lambda n: bar.advance(n, "synthesis"))  # fmt: skip
    summary = {"input": source, **summary, **report, "warnings": warnings}
    where = "stdout" if target == "-" else target
    ui.info(f"{source} -> {where} ({summary['seconds']:.1f} s, {summary['wall_s']:.1f} s wall)")
    if json_out:
        emit_json(summary)


