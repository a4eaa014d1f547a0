"""Model folders as files: the inference-only export and the z mixture beside a model.

A model folder (`model.load_model_dir` reads it) holds ``model.json``, ``config.gin``,
``statistics.json`` and a TF checkpoint; a run folder of `ddsp fit` is one too. This module
writes the derived files: the flat inference-only copy that ships in a manifest, the runtime's
files (`write_runtime_files`: the decoder as TFLite, for `ddspcli.runtime`), and the Gaussian
mixture over the training z frames that `generate` samples.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from pathlib import Path

from ddspcli import runtime, storage
from ddspcli.engine import data, tflite_export
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.errors import DdspWarning, ModelError, OutputError
from ddspcli.runtime import source


def _write_json(path: Path, payload: dict) -> None:
    storage.write_text(path, json.dumps(payload, indent=2) + "\n")


def export_model(
    run: Path, dest: Path, *, force: bool = False, extra: dict | None = None
) -> dict:
    """Inference-only copy of a model directory: the chosen checkpoint's model variables only.

    The copy is flat (``model.json``, ``config.gin``, ``statistics.json``, ``ckpt.index``,
    ``ckpt.data-*``) so that it can be listed file by file in a manifest. `extra` adds
    publishing fields to ``model.json`` (name, description, license, attribution); the local
    path of the training data is reduced to its folder name.
    """
    storage.check_output_folder(dest, [run])
    storage.check_new_folder(dest, force=force)  # before the model is loaded
    loaded = model_lib.load_model_dir(str(run))
    info = {**loaded.info, "checkpoint": "ckpt", "inference_only": True}
    if info.get("dataset"):
        info["dataset"] = Path(str(info["dataset"]).rstrip("/")).name
    info.update(extra or {})
    with storage.atomic_folder(dest, force=force) as tmp:
        write_checkpoint(loaded.model, tmp / "ckpt", dest)
        shutil.copy(Path(run) / model_lib.CONFIG_GIN, tmp / model_lib.CONFIG_GIN)
        if loaded.statistics:
            _write_json(tmp / data.STATISTICS_JSON, loaded.statistics)
        if has_mixture(run):
            from ddspcli.engine import latent

            shutil.copy(Path(run) / latent.MIXTURE_FILE, tmp / latent.MIXTURE_FILE)
        _write_json(tmp / model_lib.MODEL_JSON, info)
        write_runtime_files(tmp, loaded.model)
    return info


def write_runtime_files(folder: str | Path, model=None) -> dict | None:
    """The runtime's files (`tflite_export.write_runtime_files`: ``decoder.tflite``,
    ``runtime.json``, ...) for the model folder `folder`, written into it, with the checkpoint
    they come from recorded (`runtime.source`). ``model.json``, ``config.gin`` and the
    checkpoint must be there already.

    Args:
        model: the folder's `model.Autoencoder` with its weights (default: loaded from it).
    Returns:
        the ``runtime.json`` written, or None (with a `DdspWarning`) for a model the runtime
        cannot render or a remote folder: it then plays only where TensorFlow is installed.
    """
    if storage.is_remote(str(folder)):
        warnings.warn(f"{folder}: runtime files are written to local folders only; "
                      "`ddsp models export` it to a local folder", DdspWarning, stacklevel=2)
        return None
    folder = Path(folder)
    info = json.loads((folder / model_lib.MODEL_JSON).read_text())
    m = model if model is not None else model_lib.load_model_dir(str(folder)).model
    try:
        tflite_export.write_runtime_files(m, folder)
    except ModelError as err:
        warnings.warn(f"{folder}: no runtime files ({err}); it plays only where TensorFlow is "
                      "installed", DdspWarning, stacklevel=2)  # fmt: skip
        return None
    return source.record(folder, info, folder / runtime.RUNTIME_JSON)


def refresh_runtime_files(folder: str | Path) -> dict | None:
    """`write_runtime_files` unless the folder's runtime files are current (a finished run
    rerun: nothing to do). Returns the ``runtime.json`` written, or None."""
    path = Path(folder)
    if (path / runtime.RUNTIME_JSON).is_file() and not storage.is_remote(str(folder)):
        info = json.loads((path / model_lib.MODEL_JSON).read_text())
        with contextlib.suppress(ModelError):
            if source.is_current(path, info, runtime.read_description(path)):
                return None
    return write_runtime_files(folder)


def write_checkpoint(model, prefix: Path, dest: str | Path) -> None:
    """The model's variables as a TF checkpoint at `prefix` (errors name `dest`, exit 4)."""
    try:
        tf.train.Checkpoint(model=model).write(str(prefix))
    except tf.errors.OpError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OutputError(f"cannot write {dest}: {first}") from None


def has_mixture(run: Path) -> bool:
    """Whether a run (or model) folder holds a fitted z mixture."""
    from ddspcli.engine import latent

    return (Path(run) / latent.MIXTURE_FILE).exists()


def fit_z_mixture(run: Path, data_dir: str, seed: int = 0):
    """Encode the training split with the run's chosen checkpoint, fit the z mixture (BIC),
    and store it as ``RUN/z_mixture.npz``. Returns the `latent.Mixture`."""
    from ddspcli.engine import latent

    loaded = model_lib.load_model_dir(str(run))
    z = latent.encode_dataset(loaded, data_dir, "train")
    mixture = latent.fit_mixture(z, seed=seed)
    mixture.save(Path(run) / latent.MIXTURE_FILE)
    return mixture




def update_mixture(run: Path, data_dir: str, seed: int = 0, *, trained_now: bool):
    """Fit the z mixture of a z model when it was just trained or has none yet.

    Returns:
        The new `latent.Mixture`, or None when the model has no z encoder or its mixture is
        up to date.
    """
    info = json.loads((Path(run) / model_lib.MODEL_JSON).read_text())
    if not info.get("z_dims") or (has_mixture(run) and not trained_now):
        return None
    return fit_z_mixture(run, data_dir, seed)
