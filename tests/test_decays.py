"""`engine.decays`: the reverberation time heard in a recording, from its free decays."""

from __future__ import annotations

import numpy as np
import pytest

from ddspcli.engine import acoustics, decays

SR = 16000
RT60 = [1.4, 1.3, 1.2, 1.2, 1.1, 0.95, 0.9, 0.8]  # per band of acoustics.SYNTH_BANDS_HZ


def bursts(seconds: float = 30.0, every: float = 3.0, length: float = 0.8) -> np.ndarray:
    """White-noise bursts of `length` s every `every` s, cut off abruptly: dry notes."""
    rng = np.random.default_rng(1)
    x = np.zeros(int(seconds * SR))
    for start in np.arange(0.0, seconds - every + 1e-9, every):
        a = int(start * SR)
        x[a : a + int(length * SR)] = rng.standard_normal(int(length * SR))
    return x


def test_decays_after_offsets_give_the_room_rt60_within_12_percent():
    dry = bursts()
    ir = acoustics.exp_decay_ir(RT60, [-4.0] * 8, SR)
    wet = dry + np.convolve(dry, ir)[: len(dry)]
    true = dict(zip(acoustics.SYNTH_BANDS_HZ, RT60, strict=True))
    for band in decays.band_decays(wet, SR):
        assert band.decays >= 5, band
        assert band.rt60_s == pytest.approx(true[band.centre_hz], rel=0.12), band
        low, high = band.quartiles_s
        assert low <= band.rt60_s <= high


def test_dry_offsets_decay_only_as_fast_as_the_band_filter_rings():
    """Cut-off bursts without a room: nothing decays for longer than the octave filter's own
    ringing (0.2 s at 250 Hz, shorter above)."""
    for band in decays.band_decays(bursts(), SR):
        assert band.rt60_s is None or band.rt60_s < 0.25, band


def test_a_steady_tone_has_no_free_decay():
    t = np.arange(10 * SR) / SR
    env = decays.envelope_db(np.sin(2 * np.pi * 440 * t), SR)
    assert decays.free_decays(env) == []
