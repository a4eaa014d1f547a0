"""`ddsp fit`: train a model on a prepared dataset (resumable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ddspcli import choices as c
from ddspcli import ui
from ddspcli.cli._app import app

GIN_PARAM_HELP = (
    "A binding of Autoencoder, the one configurable (rnn_units, mlp_units, mlp_layers, "
    "n_harmonics, n_noise_bands, reverb_length, z_dims), e.g. 'Autoencoder.rnn_units = 256'."
)


@app.command("fit")
def fit_command(
    dataset: Annotated[str, typer.Argument(help="A folder written by `ddsp prepare`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder (resumes one).")],
    variant: Annotated[c.Variant, typer.Option(help="Synthesis graph.")] = c.DEFAULT_VARIANT,
    z: Annotated[bool, typer.Option("--z", help="Add the MFCC -> GRU -> z (16) encoder.")] = False,
    gin_file: Annotated[
        list[str] | None, typer.Option("--gin-file", help="Extra gin files, in order.")
    ] = None,
    gin_param: Annotated[list[str] | None, typer.Option("--gin-param", help=GIN_PARAM_HELP)] = None,
    steps: Annotated[
        int | None, typer.Option(help=f"Total steps (default {c.TRAIN_STEPS}).", min=1)
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.", min=1)] = (
        c.TRAIN_BATCH_SIZE
    ),
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.", min=0.0)] = (
        c.TRAIN_LEARNING_RATE
    ),
    seed: Annotated[int, typer.Option(help="Weights, data order and noise.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.", min=1)] = (
        c.TRAIN_CHECKPOINT_EVERY
    ),
    keep: Annotated[int, typer.Option(help="Checkpoints kept (plus the best).", min=1)] = (
        c.TRAIN_KEEP
    ),
    eval_batches: Annotated[int, typer.Option(help="Eval batches (0: all).", min=0)] = 0,
    summary_every: Annotated[int, typer.Option(help="Steps between summaries.", min=1)] = (
        c.TRAIN_SUMMARY_EVERY
    ),
    stop_loss: Annotated[
        float | None, typer.Option(help="Stop once the eval loss is at or below this.")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after N checkpoints without a better eval loss.")
    ] = None,
    jit: Annotated[bool, typer.Option("--jit/--no-jit", help="XLA-compile the step.")] = False,
    strategy: Annotated[
        c.Strategy, typer.Option(help="tf.distribute strategy (multiworker: TF_CONFIG).")
    ] = c.Strategy.AUTO,
    cluster_timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds every multiworker worker has to start before the "
                     "others give up (exit 6)."),
    ] = c.CLUSTER_TIMEOUT_S,
    json_log: Annotated[
        bool, typer.Option("--json-log", help="One JSON line per summary on stdout.")
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="Also write an inference-only copy here at the end.")
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(help="Start a new run from this model's weights (a name or a folder; "
                     "what it lacks, e.g. a room, starts afresh)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start the run over.")] = False,
) -> None:
    """Train a DDSP autoencoder on a prepared dataset; rerun the same command to resume.

    Ctrl-C or SIGTERM saves a checkpoint and stops (exit 130); a diverging loss stops with
    exit 6. The run folder is a model directory for `ddsp transfer --model RUN`; TensorBoard
    logs are in RUN/logs. --strategy multiworker: run the same command on every worker with its
    own TF_CONFIG; only the chief writes RUN (README, "Running on a cluster").
    """
    from dataclasses import asdict

    from ddspcli import storage
    from ddspcli.cli._common import resolve_model
    from ddspcli.engine import modeldir, train

    storage.check_output_folder(output, [dataset])
    if export is not None:
        storage.check_output_folder(export, [dataset, output])
    settings = train.TrainSettings(
        steps=steps or c.TRAIN_STEPS, batch_size=batch_size, learning_rate=learning_rate,
        seed=seed, checkpoint_every=checkpoint_every, keep=keep, eval_batches=eval_batches,
        summary_every=summary_every, stop_loss=stop_loss, patience=patience, jit=jit,
        strategy=strategy.value, cluster_timeout=cluster_timeout,
    )  # fmt: skip
    source = None
    if init_from is not None:
        with ui.DownloadProgress() as progress:
            source = resolve_model(init_from, progress)[0]
    trainer, resumed = train.open_run(
        output, dataset, settings, variant=variant.value, gin_files=gin_file or (),
        gin_params=gin_param or (), z=z, force=force, steps_given=steps is not None,
        init_from=source,
    )  # fmt: skip
    settings = trainer.settings
    if trainer.initialised is not None:
        origin, copied, kept = trainer.initialised
        ui.info(f"starting from {origin}: {copied} weight variables copied, {kept} new")
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

            reason = train.fit(trainer, report, stop)
        if reason == "interrupted":
            ui.warn(f"stopped at step {int(trainer.step.numpy())}; checkpoint saved in "
                    f"{output}; rerun the same command to resume")  # fmt: skip
            raise KeyboardInterrupt  # 130, or 143 after SIGTERM (`_run`)
        if not trainer.chief:
            ui.info(f"{trainer.role.name} finished ({reason}) at step "
                    f"{int(trainer.step.numpy())}; the chief writes {output}")  # fmt: skip
            return
        ui.info(f"finished ({reason}) at step {int(trainer.step.numpy())}: model in {output}")
    if not trainer.chief:
        return
    mixture = modeldir.update_mixture(output, dataset, seed, trained_now=start < settings.steps)
    if mixture is not None:
        ui.info(f"z mixture: {mixture.components} component(s) by BIC, in {output}")
    if modeldir.refresh_runtime_files(output) is not None:
        ui.info(f"runtime files (decoder.tflite, runtime.json) in {output}")
    if export is not None:
        modeldir.export_model(output, export, force=force)
        ui.info(f"inference-only copy in {export}")
