"""The instrument models shipped in the package: offline, and their output follows the input.

Runs `ddsp transfer` on a real speech clip with every bundled instrument model, from an empty
model cache with DDSP_OFFLINE=1 (so nothing may be fetched), then measures the output's pitch
with the bundled CREPE tiny and compares it with the adjusted input pitch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli import pretrained
from ddspcli.engine import features

CLIP = Path(__file__).parent / "data" / "speech_arctic_a0001.wav"  # CMU ARCTIC, see README
SHIPPED = sorted(
    name
    for name, spec in pretrained.load_manifest([pretrained.SHIPPED_MANIFEST]).items()
    if spec.kind == "instrument" and spec.bundled_dir() is not None
)


def test_the_demo_models_ship_with_the_package(tmp_path):
    env = {"DDSP_HOME": str(tmp_path / "empty-cache"), "DDSP_OFFLINE": "1"}
    listed = ddsp("models", "list", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    for name in [*SHIPPED, "crepe-tiny"]:
        assert rows[name]["cached"] == "shipped" and rows[name]["offline"], rows[name]
    assert not rows["crepe-full"]["offline"]  # fetched on demand, not in an empty cache
    assert "violin" in SHIPPED
    specs = pretrained.load_manifest([pretrained.SHIPPED_MANIFEST])
    assert specs["crepe-tiny"].bundled_dir() is not None  # transfer's default tracker
    total = sum(specs[name].size for name in SHIPPED)
    assert all(specs[name].size <= 8_000_000 for name in SHIPPED) and total <= 30_000_000
    for name in SHIPPED:
        assert not pretrained.verify(specs[name]), name
        info = json.loads((specs[name].bundled_dir() / "model.json").read_text())
        assert info["license"] and info["attribution"] and info.get("inference_only")


def steady(notes: np.ndarray, margin: int = 6) -> np.ndarray:
    """Note frames at least `margin` frames from the edges of their note."""
    keep = notes.copy()
    for shift in range(1, margin + 1):
        keep[shift:] &= notes[:-shift]
        keep[:-shift] &= notes[shift:]
    return keep


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_transfers_speech_offline(name, tmp_path):
    env = {"DDSP_HOME": str(tmp_path / "empty-cache"), "DDSP_OFFLINE": "1"}
    out, npz = tmp_path / "out.wav", tmp_path / "adjusted.npz"
    run = ddsp("transfer", CLIP, "--model", name, "-o", out, "--save-features", npz, "--json",
               env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    assert json.loads(run.stdout)[0]["model"] == name
    audio, rate = sf.read(out, dtype="float32")
    clip, clip_rate = sf.read(CLIP, dtype="float32")
    assert rate == clip_rate and len(audio) == len(clip)
    assert np.isfinite(audio).all() and 10 * np.log10(np.mean(audio**2)) > -40  # not silent
    adjusted = dict(np.load(npz))
    weights = pretrained.model_dir(pretrained.get_spec("crepe-tiny")) / "tiny.pth"
    got = features.compute_features(
        audio, str(weights), features.FeatureSettings(pitch_model="tiny")
    )
    notes = (adjusted["f0_confidence"] >= 0.7) & (adjusted["loudness_db"] > -40)
    keep = steady(notes)
    n = min(len(keep), len(got["f0_hz"]))
    keep = keep[:n]
    assert keep.sum() > 100  # the clip holds ~1 s of steady voiced speech
    cents = 1200 * np.log2(np.maximum(got["f0_hz"][:n][keep], 1e-3) / adjusted["f0_hz"][:n][keep])
    assert np.median(np.abs(cents)) < 40, np.median(np.abs(cents))
    assert np.mean(np.abs(cents) < 100) > 0.75, np.mean(np.abs(cents) < 100)
