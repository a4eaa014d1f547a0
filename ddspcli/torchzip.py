"""Read PyTorch zip checkpoints (``torch.save`` format) into numpy, without torch.

A ``.pth`` file is a zip archive holding ``<prefix>/data.pkl`` (a pickle describing the
tensors) and one raw little-endian buffer per storage under ``<prefix>/data/<key>``. Pickles can
run arbitrary code, so the pickle is read by `RestrictedUnpickler`, which maps the handful of
class paths a state dict needs onto our own functions and refuses every other global.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ddspcli.errors import ModelError

# Legacy typed storages (what torch.save still writes) and their numpy dtypes.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc. inside the pickle: carries a dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(
    storage: np.ndarray,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,
) -> np.ndarray:
    """Our ``torch._utils._rebuild_tensor_v2``: a bounds-checked strided copy of a storage."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in (*size, *stride)) or storage_offset < 0:
        raise pickle.UnpicklingError("malformed tensor description")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.size:
        raise pickle.UnpicklingError("tensor reaches past the end of its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=[s * item for s in stride], writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_ignored: Any) -> np.ndarray:
    """Our ``torch._utils._rebuild_parameter``: a parameter is just its data."""
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only knows the globals in `ALLOWED_GLOBALS` and reads storages lazily.

    Args:
        file: the pickle stream.
        read_storage: ``key -> bytes`` for persistent storage references.
    """

    def __init__(self, file: io.BufferedIOBase, read_storage: Any) -> None:
        super().__init__(file)
        self._read_storage = read_storage
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not str(key).isalnum():
            raise pickle.UnpicklingError("malformed storage reference")
        if key not in self._storages:
            data = self._read_storage(str(key))
            expected = int(numel) * storage_type.dtype.itemsize
            if len(data) != expected:
                raise pickle.UnpicklingError(
                    f"storage {key}: {len(data)} bytes, {expected} expected"
                )
            self._storages[key] = np.frombuffer(data, storage_type.dtype)
        return self._storages[key]


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a torch zip checkpoint holding a flat state dict into ``{name: array}``.

    Raises:
        ModelError: not a torch zip checkpoint, a refused global (e.g. a pickle that would
            call ``os.system``), or a malformed/inconsistent tensor.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ModelError(f"{path} is not a PyTorch zip checkpoint (no single data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]

            def read_storage(key: str) -> bytes:
                return archive.read(f"{prefix}data/{key}")

            with archive.open(pickles[0]) as stream:
                unpickler = RestrictedUnpickler(io.BufferedReader(stream), read_storage)  # type: ignore[arg-type]
                state = unpickler.load()
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ModelError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ModelError(f"{path} does not hold a flat dict of tensors")
    return dict(state)
