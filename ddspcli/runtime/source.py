"""What a model folder's runtime files were converted from, so that stale ones are noticed.

``runtime.json`` records ``source``: the checkpoint ``model.json`` named when the files were
written and `checkpoint_key`, a sha256 over ``config.gin`` and that checkpoint's files (a
DDSP-VST plugin model: its ``.tflite``). A run folder that trained on after its files were
written (``ddsp fit`` interrupted, a later resume) then no longer matches (`is_current`), and
`ddspcli.instrument.runtime_folder` converts it again instead of playing old weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ddspcli.errors import ModelError

SOURCE = "source"
CONFIG_GIN = "config.gin"


def source_files(folder: Path, info: dict) -> list[Path]:
    """The files the runtime files are converted from (see the module docstring)."""
    if info.get("format") == "vst":
        return [folder / info["file"]]
    prefix = folder / info.get("checkpoint", "ckpt")
    return [folder / CONFIG_GIN, *sorted(prefix.parent.glob(prefix.name + ".*"))]


def checkpoint_key(folder: str | Path, info: dict) -> str:
    """Hex sha256 over the names and contents of `source_files`.

    Raises:
        ModelError: one of them is missing (an incomplete model folder).
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    files = source_files(folder, info)
    if len(files) < 2 and info.get("format") != "vst":
        raise ModelError(f"{folder} is not a complete model folder: checkpoint "
                         f"{info.get('checkpoint', 'ckpt')} is missing")  # fmt: skip
    for file in files:
        if not file.is_file():
            raise ModelError(f"{folder} is not a complete model folder: {file.name} is missing")
        inner = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                inner.update(block)
        digest.update(f"{file.name}:{inner.hexdigest()}\n".encode())
    return digest.hexdigest()


def record(folder: str | Path, info: dict, runtime_json: str | Path) -> dict:
    """Add ``source`` (checkpoint and `checkpoint_key` of model folder `folder`) to the
    ``runtime.json`` at `runtime_json`; returns the updated description."""
    path = Path(runtime_json)
    desc = json.loads(path.read_text())
    desc[SOURCE] = {"checkpoint": info.get("checkpoint", info.get("file")),
                    "sha256": checkpoint_key(folder, info)}  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(desc, indent=2) + "\n")
    tmp.replace(path)
    return desc


def is_current(folder: str | Path, info: dict, desc: dict) -> bool:
    """Whether a ``runtime.json`` (`desc`) still describes the folder's checkpoint; files
    written without a ``source`` are taken as current."""
    recorded = desc.get(SOURCE)
    if not recorded:
        return True
    return recorded.get("sha256") == checkpoint_key(folder, info)
