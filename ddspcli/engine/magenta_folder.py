"""An official DDSP checkpoint folder as files, without TensorFlow: its newest operative config
and ``ckpt-N``, whether a folder is one, and the fingerprint an on-the-fly import is cached by
(`ddspcli.instrument.resolve_model`). Reading its weights is `ddspcli.engine.magenta_ckpt`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ddspcli import storage
from ddspcli.errors import ModelError

MODEL_JSON = "model.json"  # a ddspcli model folder's description (`model.MODEL_JSON`)


def newest_config(folder: str | Path) -> Path:
    """The ``operative_config-N.gin`` with the largest N (`ModelError` when there is none)."""
    configs = sorted(Path(folder).glob("operative_config-*.gin"),
                     key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))  # fmt: skip
    if not configs:
        raise ModelError(f"{folder} has no operative_config-N.gin; is it a ddsp checkpoint?")
    return configs[-1]


def latest_checkpoint(folder: str | Path) -> str:
    """The prefix of the newest ``ckpt-N`` in `folder` (`ModelError` when there is none)."""
    indexes = sorted(Path(folder).glob("ckpt-*.index"),
                     key=lambda p: int(p.stem.split("-")[-1]))  # fmt: skip
    if not indexes:
        raise ModelError(f"{folder} has no ckpt-N.index; copy the checkpoint files too")
    return str(indexes[-1].with_suffix(""))


def is_checkpoint_folder(folder: str | Path) -> bool:
    """An official checkpoint folder (operative config + ``ckpt-N``), not a ddspcli model."""
    path = Path(folder)
    if not path.is_dir() or (path / MODEL_JSON).exists():
        return False
    return any(path.glob("operative_config-*.gin")) and any(path.glob("ckpt-*.index"))


def fingerprint(folder: str | Path) -> str:
    """sha256 over the files an import reads (newest config and checkpoint, the statistics):
    the cache key of an on-the-fly import, so an edited folder is imported again."""
    path = Path(folder)
    prefix = Path(latest_checkpoint(path))
    files = [newest_config(path), *sorted(path.glob(prefix.name + ".*")),
             *([path / "dataset_statistics.pkl"] if (path / "dataset_statistics.pkl").exists()
               else [])]  # fmt: skip
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{storage.sha256_of(file)}\n".encode())
    return digest.hexdigest()
