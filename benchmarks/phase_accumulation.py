"""Oscillator phase: accuracy and speed of float32 vs float64 accumulation.

Run by hand: ``.venv/bin/python benchmarks/phase_accumulation.py``. Prints a Markdown table for
BENCHMARKS.md. Accuracy: 10 minutes of a vibrato tone at 16 kHz against a float64 numpy
reference. Speed: the training workload's harmonic synthesis (batch 16, 4 s, 60 harmonics).
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from ddspcli.engine import dsp

SR = 16000


def float32_phase(f_env: tf.Tensor) -> tf.Tensor:
    """The official library's approach: float32 cumulative sum, no wrapping."""
    return tf.cumsum(f_env * (2 * math.pi / SR), axis=1)


def max_phase_error(phase: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(np.angle(np.exp(1j * (phase - reference)))).max())


def accuracy(minutes: float) -> tuple[float, float]:
    n_frames = int(250 * 60 * minutes)
    t = np.arange(n_frames) / 250.0
    f0 = (440.0 + 30.0 * np.sin(2 * np.pi * 5.0 * t)).astype(np.float32)[None, :, None]
    f_env = dsp.resample_linear(f0, n_frames * 64)
    ref = np.cumsum(f_env.numpy()[0, :, 0].astype(np.float64) * 2 * np.pi / SR)
    ours = dsp.accumulate_phase(f_env, SR)[0].numpy()[0, :, 0]
    naive = float32_phase(f_env).numpy()[0, :, 0]
    return max_phase_error(ours, ref), max_phase_error(naive, ref)


def float32_harmonic(f0, amps, dist, n_samples):
    """Per-harmonic float32 cumsum, as in the official library (for timing)."""
    k = dsp.harmonic_numbers(int(dist.shape[-1]))
    f_env = dsp.resample_linear(f0, n_samples) * k
    a_env = dsp.upsample_with_windows(amps * dist, n_samples)
    a_env = dsp.remove_above_nyquist(f_env, a_env, SR)
    return tf.reduce_sum(a_env * tf.sin(float32_phase(f_env)), axis=-1)


def speed(repeats: int = 5) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    f0 = tf.constant(rng.uniform(100, 800, [16, 1000, 1]).astype(np.float32))
    amps = tf.constant(rng.uniform(0, 1, [16, 1000, 1]).astype(np.float32))
    dist = tf.constant(rng.uniform(0, 1, [16, 1000, 60]).astype(np.float32))
    ours = tf.function(lambda: dsp.harmonic_synthesis(f0, amps, dist, 64000, SR)[0])
    naive = tf.function(lambda: float32_harmonic(f0, amps, dist, 64000))
    times = []
    for fn in (ours, naive):
        fn()  # trace
        start = time.perf_counter()
        for _ in range(repeats):
            fn().numpy()
        times.append((time.perf_counter() - start) / repeats)
    return times[0], times[1]


def main() -> None:
    print(
        "| phase accumulation | max error, 1 min | max error, 10 min | batch 16 x 4 s x 60 harm. |"
    )
    print("|---|---|---|---|")
    e1_ours, e1_naive = accuracy(1)
    e10_ours, e10_naive = accuracy(10)
    t_ours, t_naive = speed()
    print(
        f"| float64 f0 phase x h (ours) | {e1_ours:.1e} rad | {e10_ours:.1e} rad | {t_ours:.3f} s |"
    )
    print(
        f"| float32 cumsum per harmonic (official) | {e1_naive:.1e} rad | {e10_naive:.1e} rad "
        f"| {t_naive:.3f} s |"
    )


if __name__ == "__main__":
    main()
