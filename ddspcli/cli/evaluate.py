"""`ddsp eval`: resynthesis scores of models on a prepared split."""

from __future__ import annotations

from typing import Annotated

import typer

from ddspcli import ui
from ddspcli.cli._app import app
from ddspcli.cli._common import JsonOpt, emit_json, pitch_weights, resolve_model


@app.command("eval")
def eval_command(
    models: Annotated[list[str], typer.Argument(help="Model names or model directories.")],
    data_dir: Annotated[str, typer.Option("--data", help="A folder written by `ddsp prepare`.")],
    split: Annotated[str, typer.Option(help="Split to score.")] = "eval",
    max_examples: Annotated[
        int | None, typer.Option(help="Score at most N examples.", min=1)
    ] = None,
    json_out: JsonOpt = False,
    plot: Annotated[
        str | None, typer.Option(help="PNG: spectrograms of the best and worst example.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the plot.")] = False,
) -> None:
    """Resynthesize a prepared split with each model and score the reconstruction.

    Per model: multi-scale spectral loss, loudness L1 (dB), f0 L1 (semitones, frames whose
    recorded confidence is >= 0.85) and the share of f0 outliers (> 1 semitone), with the
    output's features extracted again by the dataset's own pitch settings; and the real-time
    factor of the synthesis. --json: a list, one object per model.
    """
    from ddspcli import storage
    from ddspcli.engine import data, evaluate
    from ddspcli.engine import model as model_lib

    if plot is not None:
        storage.check_output(plot, force=force)
    settings = evaluate.dataset_feature_settings(data_dir)
    info = data.read_info(data_dir)
    with ui.DownloadProgress() as progress:
        folders = [resolve_model(m, progress) for m in models]
        loaded_models = [(model_lib.load_model_dir(f), name) for f, name in folders]
        for loaded, name in loaded_models:  # every model checked before CREPE is fetched
            evaluate.check_rate(loaded, name, data_dir, info)
        weights = str(pitch_weights(settings.pitch_model, progress))
    if plot is not None:
        storage.check_output(plot, force=force)
    results = []
    total = evaluate.count_examples(data_dir, split, None, max_examples) * len(models)
    with ui.CountProgress("eval", total) as bar:
        for loaded, name in loaded_models:
            scores = evaluate.evaluate(loaded, data_dir, weights, split, None, max_examples,
                                       progress=lambda n, m=name: bar.advance(n, m))  # fmt: skip
            results.append((name, loaded, scores))
    if json_out:
        emit_json([{"model": n, "steps": ld.info.get("steps"), **s.to_dict()}
                   for n, ld, s in results])  # fmt: skip
    else:
        ui.out_console.print(_eval_table(results))
    if plot is not None:
        evaluate.plot_best_and_worst(results, data_dir, split, max_examples, plot, force=force)


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
