"""A generative z-space: a Gaussian mixture over a ``--z`` model's encoder outputs.

`ddsp fit` encodes the training set (`encode_dataset`), fits mixtures of 1..K full-covariance
components with scikit-learn and keeps the one with the lowest BIC (`fit_mixture`), and stores
it beside the model as plain arrays (``z_mixture.npz``, read back without pickle).
`ddsp generate` then draws smooth z trajectories from it (`Mixture.sample`) or holds a
component's mean (`Mixture.mean_trajectory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIXTURE_FILE = "z_mixture.npz"
MAX_COMPONENTS = 6


@dataclass(frozen=True)
class Mixture:
    """Gaussian mixture over z: ``weights [k]`` (sum 1), ``means [k, d]``,
    ``covariances [k, d, d]`` (full), and the BIC of each tried size ``bic [K]``."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    bic: np.ndarray

    @property
    def components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dims(self) -> int:
        return int(self.means.shape[1])

    def save(self, path: str | Path) -> None:
        """Write ``z_mixture.npz`` atomically (plain float64 arrays; `storage.write_bytes`)."""
        import io

        from ddspcli import storage

        buffer = io.BytesIO()
        np.savez(buffer, weights=self.weights, means=self.means, covariances=self.covariances,
                 bic=self.bic)  # fmt: skip
        storage.write_bytes(path, buffer.getvalue(), force=True)

    @classmethod
    def load(cls, path: str | Path) -> Mixture:
        """Read a mixture written by `save` (``allow_pickle=False``: arrays only).

        Raises:
            ValueError: missing arrays or inconsistent shapes.
        """
        with np.load(path, allow_pickle=False) as f:
            try:
                mixture = cls(*(np.asarray(f[k], np.float64)
                                for k in ("weights", "means", "covariances", "bic")))  # fmt: skip
            except KeyError as err:
                raise ValueError(f"{path} lacks the array {err}") from None
        k, d = mixture.means.shape
        if mixture.weights.shape != (k,) or mixture.covariances.shape != (k, d, d):
            raise ValueError(f"{path}: mixture arrays have inconsistent shapes")
        return mixture

    def mean_trajectory(self, n_frames: int, component: int | None = None) -> np.ndarray:
        """``[n_frames, d]`` z held at one component's mean (default: the heaviest)."""
        if component is None:
            component = int(np.argmax(self.weights))
        if not 0 <= component < self.components:
            raise ValueError(f"component must be 0..{self.components - 1}, not {component}")
        return np.repeat(self.means[component][None], n_frames, axis=0).astype(np.float32)

    def sample(
        self, n_frames: int, frame_rate: float, seed: int, segment_s: float = 1.0,
        smooth_s: float = 0.25,
    ) -> np.ndarray:  # fmt: skip
        """A smooth z trajectory ``[n_frames, d]`` (float32).

        Every `segment_s` seconds a component is drawn by weight; within it z is the
        component's mean plus its Cholesky factor times Gaussian noise low-passed over
        `smooth_s` seconds (renormalised to unit variance, so each frame keeps the
        component's covariance). Means are crossfaded over `smooth_s` between segments.
        The same `seed` gives the same trajectory.
        """
        rng = np.random.default_rng(seed)
        segment = max(1, round(segment_s * frame_rate))
        n_segments = -(-n_frames // segment)
        chosen = rng.choice(self.components, size=n_segments, p=self.weights / self.weights.sum())
        which = np.repeat(chosen, segment)[:n_frames]
        width = max(1.0, smooth_s * frame_rate)
        noise = _smooth(rng.standard_normal((n_frames, self.dims)), width)
        noise /= np.maximum(noise.std(axis=0, keepdims=True), 1e-12) if n_frames > 1 else 1.0
        chol = np.linalg.cholesky(self.covariances + 1e-9 * np.eye(self.dims))
        z = _smooth(self.means[which], width) + np.einsum("tij,tj->ti", chol[which], noise)
        return z.astype(np.float32)


def _smooth(x: np.ndarray, width: float) -> np.ndarray:
    """Gaussian low-pass along axis 0 with standard deviation `width` / 2 frames (edges held)."""
    from scipy.ndimage import gaussian_filter1d

    if len(x) < 2:
        return x.copy()
    return gaussian_filter1d(x, sigma=width / 2.0, axis=0, mode="nearest")


def fit_mixture(z: np.ndarray, max_components: int = MAX_COMPONENTS, seed: int = 0) -> Mixture:
    """Fit full-covariance mixtures of 1..`max_components` to ``z [frames, d]``; keep the
    lowest BIC (scikit-learn's EM, k-means start, 3 initialisations)."""
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z, np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError("need z frames shaped [frames, dims] with at least 2 frames")
    best, bics = None, []
    for k in range(1, max(1, min(max_components, len(z) // 2)) + 1):
        gmm = GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed,
                              reg_covar=1e-6).fit(z)  # fmt: skip
        bics.append(gmm.bic(z))
        if best is None or bics[-1] < best.bic(z):
            best = gmm
    return Mixture(best.weights_, best.means_, best.covariances_, np.asarray(bics))


def encode_dataset(loaded, folder: str, split: str = "train", max_frames: int = 200_000,
                   stride: int = 4) -> np.ndarray:  # fmt: skip
    """The z encoder's outputs over a prepared split: ``[frames, z_dims]`` float64, every
    `stride`-th frame (neighbouring frames are nearly equal), at most `max_frames`."""
    from ddspcli.engine import evaluate
    from ddspcli.engine._tensorflow import tf

    encoder = loaded.model.encoder
    if encoder is None:
        raise ValueError("this model has no z encoder (train it with --z)")
    encode = tf.function(lambda audio, n: encoder(audio, n)[0])
    chunks, total = [], 0
    for batch in evaluate.examples(folder, split).batch(16):
        n_frames = int(batch["f0_hz"].shape[1])
        z = encode(batch["audio"], n_frames).numpy()[:, ::stride].reshape(-1, loaded.model.z_dims)
        chunks.append(z)
        total += len(z)
        if total >= max_frames:
            break
    if not chunks:
        raise ValueError(f"{folder} has no '{split}' examples to encode")
    return np.concatenate(chunks)[:max_frames].astype(np.float64)
