"""`npdsp` (live's NumPy synthesis) against `dsp` (TensorFlow), on random controls."""

from __future__ import annotations

import numpy as np
import pytest

from ddspcli.engine import dsp, npdsp
from ddspcli.engine._tensorflow import tf


def test_harmonic_synthesis_equals_dsp_with_lookahead_and_carried_phase():
    rng = np.random.default_rng(0)
    frames, k, hop, rate = 6, 60, 64, 16000
    f0 = rng.uniform(80, 1200, frames).astype(np.float32)  # high harmonics cross Nyquist
    amps = rng.uniform(0, 1, frames).astype(np.float32)
    dist = rng.dirichlet(np.ones(k), frames).astype(np.float32)
    phase = 5.5
    expected, expected_phase = dsp.harmonic_synthesis(
        f0[None, :, None], amps[None, :, None], dist[None], frames * hop, rate, "window",
        tf.constant([[[phase]]], tf.float64), lookahead=True,
    )  # fmt: skip
    got, got_phase = npdsp.harmonic_synthesis(f0, amps, dist, hop, rate, phase)
    assert got.shape == ((frames - 1) * hop,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy()[0], atol=2e-6)
    assert got_phase == pytest.approx(float(expected_phase.numpy().ravel()[0]), abs=1e-9)


@pytest.mark.parametrize("window_size", [0, 257, 128, 65])
def test_noise_filter_equals_dsp(window_size):
    rng = np.random.default_rng(window_size)
    frames, hop = 5, 64
    magnitudes = rng.uniform(0, 1, (frames, 65)).astype(np.float32)
    white = rng.uniform(-1, 1, frames * hop).astype(np.float32)
    irs = dsp.frequency_impulse_response(magnitudes[None], window_size).numpy()[0]
    np.testing.assert_allclose(npdsp.impulse_responses(magnitudes, window_size), irs, atol=1e-6)
    expected = dsp.fft_convolve(white[None], irs[None], padding="valid").numpy()[0]
    got = npdsp.filter_blocks(white, npdsp.impulse_responses(magnitudes, window_size))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
