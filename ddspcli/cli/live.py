"""`ddsp live`: play a model in real time from a sound card, a WAV pipe or a file."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import app
from ddspcli.cli._common import (
    ForceOpt,
    LoudnessShiftOpt,
    OctaveOpt,
    PitchHopOpt,
    PitchModelOpt,
    QuietDbOpt,
    ReverbOpt,
    RoomMixOpt,
    RoomOpt,
    SemitonesOpt,
    open_instrument,
    open_room,
    room_plays,
    usage_errors,
)

INPUT_HELP = "default, a device (index or name), - (WAV on stdin) or a file."
OUTPUT_HELP = "default, a device (index or name), - (WAV on stdout) or a WAV file."
MEASURE_HELP = "Play an impulse on -o, find it on -i (a loopback), print the round trip (ms)."
RATE_HELP = "Device sample rate (default: 16000 if the device takes it, else its own)."


@app.command("live")
def live_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name (`ddsp models list`) or directory.")
    ] = "violin",
    input_: Annotated[str, typer.Option("--input", "-i", help=INPUT_HELP)] = "default",
    output: Annotated[str, typer.Option("--output", "-o", help=OUTPUT_HELP)] = "default",
    list_devices: Annotated[
        bool, typer.Option("--list-devices", help="List the sound devices and exit.")
    ] = False,
    measure_latency: Annotated[
        bool, typer.Option("--measure-latency", help=MEASURE_HELP)
    ] = False,
    octave: OctaveOpt = 0,
    semitones: SemitonesOpt = 0.0,
    loudness_shift: LoudnessShiftOpt = 0.0,
    autotune: Annotated[
        float,
        typer.Option(help="0..1: pull the pitch towards the nearest semitone.", min=0.0, max=1.0),
    ] = 0.0,
    auto_adjust: Annotated[
        bool,
        typer.Option(help="Octave per note and loudness mapping from the model's training data."),
    ] = True,
    quiet_db: QuietDbOpt = 20.0,
    note_confidence: Annotated[
        float, typer.Option(help="Pitch confidence (0..1) that starts a note.", min=0.0, max=1.0)
    ] = 0.7,
    block_ms: Annotated[
        float,
        typer.Option(help="Milliseconds of audio per block (latency vs. CPU).", min=2.0,
                     max=choices.MAX_LIVE_BLOCK_MS),
    ] = 20.0,
    pitch_model: PitchModelOpt = choices.LIVE_PITCH_MODEL,
    pitch_hop_ms: PitchHopOpt = None,
    reverb: ReverbOpt = True,
    room: RoomOpt = None,
    room_mix: RoomMixOpt = choices.ROOM_MIX_DB,
    pace: Annotated[
        choices.Pace,
        typer.Option(help="Files and pipes: as fast as possible, or wait for the clock."),
    ] = choices.Pace.FAST,
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of input.", min=0.1)
    ] = None,
    rate: Annotated[int | None, typer.Option(help=RATE_HELP, min=8000)] = None,
    stats_json: Annotated[
        str | None, typer.Option(help="Write the run's statistics (JSON) here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Play a model live: a microphone (or a pipe, or a file) in, the instrument out.

    Example: [bold]ddsp live -m violin[/bold] (default input -> default output);
    [bold]arecord -f FLOAT_LE -r 16000 -t wav - | ddsp live -m violin -i - -o - | aplay[/bold].
    Ctrl-C stops (a file output and --stats-json are completed, exit 130), SIGTERM too (exit
    143). Blocks are processed causally with the state carried, so a file gives exactly what
    a device run would.
    """
    from ddspcli import storage
    from ddspcli.engine import audio, live, liveio

    if list_devices:
        for d in liveio.list_devices():
            ui.info(f"{d['index']:3d}  {d['name']}  ({d['hostapi']}; in {d['inputs']}, "
                    f"out {d['outputs']}; {d['default_samplerate']:g} Hz)")  # fmt: skip
        return
    kinds = {"input": liveio.classify(input_), "output": liveio.classify(output)}
    if measure_latency:
        if set(kinds.values()) != {"device"}:
            raise typer.BadParameter("--measure-latency needs devices for -i and -o")
        devices = liveio.find_device(input_, "input"), liveio.find_device(output, "output")
        ms = live.measure_round_trip(*devices, rate or 16000)
        typer.echo(f"{ms:.1f}")
        return
    plays = room_plays(room, room_mix, reverb)
    if kinds["output"] == "file":
        audio.output_format(output)  # WAV or FLAC; a device or FIFO (/dev/null) gets WAV
    settings = live.LiveSettings(
        block_ms=block_ms, pitch_model=pitch_model.value, pitch_hop_ms=pitch_hop_ms,
        auto=auto_adjust, octaves=octave, semitones=semitones, loudness_shift_db=loudness_shift,
        autotune=autotune, quiet_db=quiet_db, note_on_confidence=note_confidence,
        reverb=plays, room_mix_db=room_mix, seed=seed,
    )  # fmt: skip
    if kinds["input"] == "file":
        storage.protect_inputs([input_])
    written = [("-o", output if kinds["output"] != "device" else None),
               ("--stats-json", stats_json)]  # fmt: skip
    storage.check_distinct(written)  # `-o take.wav --stats-json take.wav` would lose the take
    for _, target in written:
        if target is not None:
            storage.check_output(target, force=force)
    with ui.DownloadProgress() as progress:
        player = open_instrument(model, progress, pitch_model=settings.pitch_model, num_threads=1)
        room_ir = open_room(player, room, room_mix, progress) if plays else None
    name = player.name
    with usage_errors():
        engine = live.LiveEngine(player, settings, live.block_samples(settings, player), room_ir)
    engine.warm_up()
    stats, interrupted = live.run(engine, input_, output, kinds, force=force, rate=rate,
                                  pace=pace == choices.Pace.REALTIME, seconds=seconds)  # fmt: skip
    summary = stats.to_dict(engine)
    ui.info(f"{name}: {summary['blocks']} blocks, {summary['xruns']} xruns, latency "
            f"{summary['latency_ms']:.0f} ms, compute p50 {summary['compute_ms_p50']:.1f} ms / "
            f"p99 {summary['compute_ms_p99']:.1f} ms per {block_ms:g} ms block, real-time factor "
            f"{summary['real_time_factor']:.2f}, shift {summary['pitch_shift_semitones']:+g} st")
    if stats_json:
        storage.write_bytes(stats_json, (json.dumps(summary, indent=2) + "\n").encode(),
                            force=force)  # fmt: skip
    if interrupted is not None:
        raise interrupted  # 130 (Ctrl-C) or 143 (SIGTERM), after the take and its statistics
