"""`ddsp models ...`: the manifest, the cache and exports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ddspcli import choices, ui
from ddspcli.cli._app import models_app
from ddspcli.cli._common import JsonOpt, emit_json


def _human_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.1f} kB"


@models_app.command("list")
def models_list(
    json_out: JsonOpt = False,
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
        emit_json(rows)
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
    """Download models into the cache (verified by sha256; resumable; safe to run twice).

    CREPE full has no .tflite to download: the first pull builds one from its checkpoint
    (once, without TensorFlow), with its sha256 recorded beside it."""
    from ddspcli import pretrained

    specs = [pretrained.get_spec(name) for name in names]
    with ui.DownloadProgress() as progress:
        for spec in specs:
            folder = pretrained.pull(spec, progress)
            ui.info(f"[green]ok[/green] {spec.name} -> {folder}")
            if spec.kind == "pitch":
                _pitch_tracker_file(spec.name.removeprefix("crepe-"), progress)


def _pitch_tracker_file(model: str, progress: ui.DownloadProgress) -> None:
    """CREPE as the runtime's .tflite (crepe-full's is built once from its checkpoint; if that
    fails a warning says why, the checkpoint stays pulled)."""
    from ddspcli import instrument
    from ddspcli.errors import ModelError

    try:
        path = instrument.pitch_tracker_file(model, progress)
    except ModelError as err:
        ui.warn(f"crepe-{model}: {err}; the runtime (transfer, live) cannot use it until then")
        return
    ui.info(f"[green]ok[/green] crepe-{model} for the runtime -> {path}")


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
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write (--format vst: a .tflite).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    format_: Annotated[
        choices.ExportFormat,
        typer.Option("--format", help="folder: a model folder; vst: the DDSP-VST plugin's "
                     ".tflite (vst-variant models)."),
    ] = choices.ExportFormat.FOLDER,
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
    from ddspcli.engine import modeldir

    if format_ == choices.ExportFormat.VST:
        _export_vst(run, output, force, manifest_source)
        return
    if manifest_source is not None and not manifest_source.startswith(pretrained.SCHEMES):
        raise typer.BadParameter(
            f"--manifest-source must start with one of {', '.join(pretrained.SCHEMES)}"
        )
    storage.check_output_folder(output, [run])
    fields = {"name": name, "description": description, "license": license_,
              "attribution": attribution}  # fmt: skip
    extra = {k: v for k, v in fields.items() if v is not None}
    info = modeldir.export_model(run, output, force=force, extra=extra)
    ui.info(f"exported {run} (step {info.get('steps')}) to {output}")
    if manifest_source is not None:
        entry_name = name or output.name
        sys.stdout.write(pretrained.manifest_entry(output, entry_name, version, manifest_source))




def _export_vst(run: Path, output: Path, force: bool, manifest_source: str | None) -> None:
    """`models export --format vst`: the plugin's single file."""
    from ddspcli import storage
    from ddspcli.engine import vst

    if output.suffix != ".tflite":
        raise typer.BadParameter(f"--format vst writes one .tflite file, not {output.name!r}")
    if manifest_source is not None:
        raise typer.BadParameter("--manifest-source lists a model folder; export --format folder")
    storage.protect_inputs(storage.walk_files(str(run)) if run.is_dir() else [])
    meta = vst.export(run, output, force=force)
    ui.info(f"exported {run} (step {meta.get('steps')}) for DDSP-VST to {output}: "
            f"pitch {meta['mean_min_pitch_note_hz']:.0f}-{meta['mean_max_pitch_note_hz']:.0f} Hz, "
            f"power {meta['mean_min_power_note']:.0f} to {meta['mean_max_power_note']:.0f} dB; "
            "copy it into ~/Documents/Magenta/DDSP/Models/")  # fmt: skip


@models_app.command("check-vst")
def models_check_vst(
    file: Annotated[Path, typer.Argument(help="A .tflite file meant for DDSP-VST.")],
) -> None:
    """Check a .tflite against the DDSP-VST plugin's contract (its own load-time checks and
    metadata): every problem on one line each, exit 5 if there is any."""
    from ddspcli.engine import vst_check
    from ddspcli.errors import ModelError

    problems = vst_check.check_file(file)
    if not problems:
        meta = vst_check.read_metadata(file)
        ui.info(f"[green]ok[/green] {file}: 3 inputs, 4 outputs, builtin operators, "
                f"metadata (id {meta['export_time']}): DDSP-VST will load it")  # fmt: skip
        return
    for problem in problems[:-1]:
        ui.error(f"{file}: {problem}")
    raise ModelError(f"{file}: {problems[-1]}")


@models_app.command("import")
def models_import(
    src: Annotated[Path, typer.Argument(help="A checkpoint folder of the official DDSP library.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
) -> None:
    """Import a model trained with the official DDSP library (magenta/ddsp 1.x-3.x).

    The folder as its training left it: operative_config-N.gin, ckpt-N.index + .data, and
    (from the notebook) dataset_statistics.pkl, read without running any code it names. The
    result is a normal model folder for every command (--model DIR).
    """
    from ddspcli.engine import magenta_ckpt

    info = magenta_ckpt.import_folder(src, output, force=force)
    ui.info(f"imported {src} ({info['parameters']:,} parameters, step {info['steps']}) "
            f"to {output}")  # fmt: skip
