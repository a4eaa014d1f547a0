"""The seeded white-noise stream of `ddspcli.engine.dsp.white_noise`, in NumPy.

The TensorFlow path draws its noise in 65536-sample pieces, piece ``i`` being
``tf.random.stateless_uniform([65536], seed=[seed, i], minval=-1, maxval=1)`` (int64 seed).
On CPU that is the Philox-4x32-10 counter-based generator: the seed pair is scrambled into a
key and a starting counter by one Philox block, then each 128-bit counter value gives four
32-bit words, each word's low 23 bits become a float in [1, 2) and the stream is
``2 * (u - 1) - 1``. Reproducing it here lets the runtime render the same noise samples as
TensorFlow without importing it (`tests/test_runtime.py` compares the two bit for bit).
"""

from __future__ import annotations

import functools

import numpy as np

CHUNK = 65536  # samples per piece, as dsp.white_noise
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # Philox multipliers
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # Weyl key increments
_MASK = np.uint64(0xFFFFFFFF)


def philox(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox-4x32-10 on ``[n, 4]`` uint32 counters (word 0 least significant) -> ``[n, 4]``."""
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    for _ in range(10):
        p0, p1 = _M0 * c[0], _M1 * c[2]
        c = [
            (p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0),
            p1 & _MASK,
            (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1),
            p0 & _MASK,
        ]
        with np.errstate(over="ignore"):
            k0, k1 = k0 + _W0, k1 + _W1
    return np.stack(c, axis=1).astype(np.uint32)


def _key_counter(seed0: int, seed1: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """TensorFlow's seed scrambling: ``(key, (counter word 2, word 3))`` of a stateless op."""
    words = np.array([[seed0 & 0xFFFFFFFF, (seed0 >> 32) & 0xFFFFFFFF,
                       seed1 & 0xFFFFFFFF, (seed1 >> 32) & 0xFFFFFFFF]], np.uint32)  # fmt: skip
    mix = philox(words, (0x3EC8F720, 0x02461E29))[0]
    return (int(mix[0]), int(mix[1])), (int(mix[2]), int(mix[3]))


def stateless_uniform(n: int, seed0: int, seed1: int) -> np.ndarray:
    """``tf.random.stateless_uniform([n], [seed0, seed1], -1.0, 1.0)`` on CPU: float32 ``[n]``."""
    key, (c2, c3) = _key_counter(seed0, seed1)
    steps = np.arange((n + 3) // 4, dtype=np.uint64)
    low = np.uint64(c2) | (np.uint64(c3) << np.uint64(32))  # counter words 2-3 (words 0-1: 0)
    # The 128-bit counter starts at (0, 0, c2, c3) and counts up from its low word.
    counters = np.zeros((len(steps), 4), np.uint32)
    counters[:, 0] = (steps & _MASK).astype(np.uint32)
    counters[:, 1] = (steps >> np.uint64(32)).astype(np.uint32)
    counters[:, 2] = np.uint32(low & _MASK)
    counters[:, 3] = np.uint32(low >> np.uint64(32))
    words = philox(counters, key).reshape(-1)[:n]
    unit = ((words & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1)
    return unit * np.float32(2.0) + np.float32(-1.0)


@functools.lru_cache(maxsize=4)
def _chunk(seed: int, index: int) -> np.ndarray:
    """One piece of the stream (kept: small blocks read the same piece many times)."""
    piece = stateless_uniform(CHUNK, seed, index)
    piece.flags.writeable = False
    return piece


def white_noise(seed: int, start: int, n_samples: int) -> np.ndarray:
    """Samples ``[start, start + n_samples)`` of the endless seeded stream: float32 in [-1, 1)."""
    first, last = start // CHUNK, (start + max(n_samples, 1) - 1) // CHUNK
    pieces = [_chunk(seed, i) for i in range(first, last + 1)]
    offset = start - first * CHUNK
    return np.concatenate(pieces)[offset : offset + n_samples]
