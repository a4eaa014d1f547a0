"""NumPy streaming synthesis: raw decoder controls in, harmonic + filtered noise + reverb out.

The same arithmetic as the TensorFlow path (`ddspcli.engine.synths`, `streaming.SynthStream`
and `StreamRenderer`), fed a few frames or a whole file at a time:

* controls: ``exp_sigmoid`` scaling, harmonics at or above Nyquist removed before normalising;
* harmonic: frame ``j``'s samples crossfade into frame ``j + 1`` (``window`` amplitude
  upsampling), so a frame is released once its successor is known; phase carried in float64;
* filtered noise: each frame's ``hop`` samples of the seeded white-noise stream
  (`ddspcli.runtime.noise`, the same samples as TensorFlow's) convolved with that frame's
  linear-phase FIR and overlap-added; final once the frames ``ceil(delay / hop)`` ahead are in;
* reverb: `PartitionedConvolver`, a uniformly partitioned convolution whose first partition is
  convolved directly with each block, so it adds no latency and any block size (a 10 ms live
  block, a 10 s file block) gives the same samples.

`SynthStream.lag` is the frames the output trails the pushed controls; `finish` releases the
rest with the last frame held, as a one-shot render ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ddspcli.engine import npdsp
from ddspcli.runtime import noise

STEMS = ("harmonic", "noise", "reverb")
PARTITION = 1024  # samples per partition of the reverb's impulse response


def exp_sigmoid(x: np.ndarray) -> np.ndarray:
    """`dsp.exp_sigmoid`: ``2 * sigmoid(x) ** ln(10) + 1e-7``, float32."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):
        sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-x))
    return (np.float32(2.0) * sig ** np.float32(math.log(10.0)) + np.float32(1e-7)).astype(
        np.float32
    )


def scale_controls(
    raw: Mapping[str, np.ndarray], f0_hz: np.ndarray, synth: Mapping
) -> dict[str, np.ndarray]:
    """Raw decoder outputs -> physical controls, as `synths.Harmonic/FilteredNoise.get_controls`.

    Args:
        raw: ``amplitudes`` ``[t, 1]``, ``harmonic_distribution`` ``[t, k]``,
            ``noise_magnitudes`` ``[t, m]`` (optional).
        f0_hz: ``[t]`` Hz.
        synth: ``runtime.json``'s ``synth`` table.
    Returns:
        ``f0_hz`` ``[t]``, ``amplitudes`` ``[t]`` (linear), ``harmonic_distribution``
        ``[t, k]`` (sums to 1 below Nyquist), ``noise_magnitudes`` ``[t, m]`` (linear).
    """
    f0 = np.asarray(f0_hz, np.float32)
    dist = exp_sigmoid(raw["harmonic_distribution"])
    if synth["normalize_below_nyquist"]:
        numbers = np.arange(1, dist.shape[-1] + 1, dtype=np.float32)
        dist = np.where(f0[:, None] * numbers >= synth["sample_rate"] / 2.0, 0.0, dist)
        total = dist.sum(axis=-1, keepdims=True, dtype=np.float32)
        dist = np.divide(dist, total, out=np.zeros_like(dist), where=total != 0)
    out = {"f0_hz": f0, "amplitudes": exp_sigmoid(raw["amplitudes"])[:, 0],
           "harmonic_distribution": dist.astype(np.float32)}  # fmt: skip
    if "noise_magnitudes" in raw:
        bias = np.float32(synth["noise_initial_bias"])
        out["noise_magnitudes"] = exp_sigmoid(np.asarray(raw["noise_magnitudes"]) + bias)
    return out


class PartitionedConvolver:
    """Streaming convolution with a long impulse response, for blocks of any size.

    The IR is cut into partitions of `partition` samples. The first is convolved with each
    incoming block directly (FFT of the block and the ``partition - 1`` samples before it);
    the others by uniformly partitioned overlap-save over completed input partitions (a
    frequency-domain delay line), whose contribution to a partition of output is known as soon
    as the partition of input before it is complete. So `push` returns as many samples as it
    takes, without added latency, and the result does not depend on the block sizes.

    Args:
        ir: ``[m]`` impulse response.
        partition: samples per partition (a power of two).
    """

    def __init__(self, ir: np.ndarray, partition: int = PARTITION) -> None:
        ir = np.asarray(ir, np.float64)
        self.size = partition
        self.head = ir[:partition]
        tail = ir[partition:]
        n_parts = -(-len(tail) // partition)
        parts = np.zeros((n_parts, partition))
        parts.reshape(-1)[: len(tail)] = tail
        self.spectra = np.fft.rfft(parts, 2 * partition, axis=-1)  # [K, P + 1]
        self.reset()

    def reset(self) -> None:
        """Back to silence."""
        p = self.size
        self._history = np.zeros(p - 1)  # the inputs before the next block (head convolution)
        self._chunk = np.zeros(p)  # the input partition being filled
        self._previous = np.zeros(p)  # the last completed one
        self._at = 0  # samples in `_chunk`
        self._delay_line = np.zeros_like(self.spectra)  # input partitions' spectra, newest 1st
        self._tail = np.zeros(p)  # the later partitions' part of the current output partition

    def push(self, block: np.ndarray) -> np.ndarray:
        """``[n]`` input -> ``[n]`` output (float32): the convolution's next `n` samples."""
        x = np.asarray(block, np.float64)
        n = len(x)
        if n == 0:
            return np.zeros(0, np.float32)
        out = self._head(x)
        i = 0
        while i < n:
            m = min(n - i, self.size - self._at)
            out[i : i + m] += self._tail[self._at : self._at + m]
            self._chunk[self._at : self._at + m] = x[i : i + m]
            self._at += m
            i += m
            if self._at == self.size:
                self._complete_partition()
        return out.astype(np.float32)

    def _head(self, x: np.ndarray) -> np.ndarray:
        """The first partition's convolution with `x` (and the samples before it): ``[n]``."""
        p = self.size
        xx = np.concatenate([self._history, x])
        self._history = xx[len(xx) - (p - 1) :]
        fft = 1 << (len(xx) + p - 2).bit_length()
        full = np.fft.irfft(np.fft.rfft(xx, fft) * np.fft.rfft(self.head, fft), fft)
        return full[p - 1 : p - 1 + len(x)]

    def _complete_partition(self) -> None:
        """A full input partition: into the delay line; the next output partition's tail."""
        p = self.size
        if len(self.spectra):
            spectrum = np.fft.rfft(np.concatenate([self._previous, self._chunk]))
            self._delay_line = np.roll(self._delay_line, 1, axis=0)
            self._delay_line[0] = spectrum
            total = np.einsum("kf,kf->f", self._delay_line, self.spectra)
            self._tail = np.fft.irfft(total, 2 * p)[p:]
        self._previous, self._chunk = self._chunk, np.zeros(p)
        self._at = 0


class SynthStream:
    """The synthesis graph fed scaled controls a few frames at a time (see the module doc).

    Args:
        synth: ``runtime.json``'s ``synth`` table.
        seed: the noise stream's seed.
        reverb_ir: ``[m]`` effective impulse response (first tap 0), or None for no reverb.
    """

    def __init__(self, synth: Mapping, seed: int = 0, reverb_ir: np.ndarray | None = None):
        self.synth, self.seed, self.hop = synth, seed, int(synth["hop"])
        self.has_noise = int(synth["n_noise_bands"]) > 0
        self.noise_crop = 0
        if self.has_noise:
            probe = np.zeros((1, int(synth["n_noise_bands"])), np.float32)
            ir_size = npdsp.impulse_responses(probe, int(synth["noise_window_size"])).shape[-1]
            self.noise_crop = (ir_size - 1) // 2 - 1  # dsp.filter_delay
        self.lag = max(1, math.ceil(self.noise_crop / self.hop))
        self.reverb = PartitionedConvolver(reverb_ir) if reverb_ir is not None else None
        self.add_dry = bool(synth.get("reverb_add_dry", True))
        self.reset()

    def reset(self) -> None:
        """Back to the start of a stream."""
        self.decoded = 0  # frames pushed
        self.emitted = 0  # frames whose samples are final
        self._pending: dict[str, np.ndarray] = {}  # controls of frames [emitted, decoded)
        self._phase = 0.0
        self._noise_buffer = np.zeros(0, np.float32)
        self._noise_at = 0
        if self.reverb is not None:
            self.reverb.reset()

    def push(self, controls: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Take the scaled controls (`scale_controls`) of the next ``t`` frames; return the
        samples now final: ``harmonic``, ``noise`` (with noise), ``dry``, ``reverb`` (the wet
        part, with a reverb) and ``audio`` (the mix), each ``[j * hop]`` for ``j`` frames."""
        controls = dict(controls)
        first = self.decoded
        if "noise_magnitudes" in controls:
            self._add_noise(np.asarray(controls.pop("noise_magnitudes")), first)
        if self._pending:
            controls = {k: np.concatenate([self._pending[k], v]) for k, v in controls.items()}
        self._pending = controls
        self.decoded = self.emitted + len(self._pending["f0_hz"])
        return self._emit(self.decoded - self.lag)

    def finish(self) -> dict[str, np.ndarray]:
        """Release the last frames, the last one held."""
        if self._pending and len(self._pending["f0_hz"]):
            self._pending = {k: np.concatenate([v, v[-1:]]) for k, v in self._pending.items()}
            return self._emit(self.decoded)
        return self._emit(self.emitted)

    def empty(self) -> dict[str, np.ndarray]:
        """The parts of no frames (zero-length arrays under `push`'s keys)."""
        return self._parts(np.zeros(0, np.float32), np.zeros(0, np.float32))

    def _emit(self, until: int) -> dict[str, np.ndarray]:
        """Render frames ``[emitted, until)`` (one frame of controls ahead for the crossfade)."""
        count = until - self.emitted
        if count <= 0:
            return self.empty()
        ahead = {k: v[: count + 1] for k, v in self._pending.items()}
        harmonic, self._phase = npdsp.harmonic_synthesis(
            ahead["f0_hz"], ahead["amplitudes"], ahead["harmonic_distribution"], self.hop,
            float(self.synth["sample_rate"]), self._phase,
        )  # fmt: skip
        filtered = self._take_noise(self.emitted * self.hop, until * self.hop)
        self._pending = {k: v[count:] for k, v in self._pending.items()}
        self.emitted = until
        return self._parts(harmonic, filtered)

    def _parts(self, harmonic: np.ndarray, filtered: np.ndarray) -> dict[str, np.ndarray]:
        parts = {"harmonic": harmonic}
        dry = harmonic
        if self.has_noise:
            parts["noise"] = filtered
            dry = harmonic + filtered
        parts["dry"] = dry
        if self.reverb is not None:
            parts["reverb"] = self.reverb.push(dry)
            parts["audio"] = (dry + parts["reverb"]) if self.add_dry else parts["reverb"]
        else:
            parts["audio"] = dry
        return parts

    def _add_noise(self, magnitudes: np.ndarray, first: int) -> None:
        """Filter frames ``[first, first + t)``'s white noise; overlap-add into the buffer."""
        n = len(magnitudes) * self.hop
        white = noise.white_noise(self.seed, first * self.hop, n)
        irs = npdsp.impulse_responses(magnitudes, int(self.synth["noise_window_size"]))
        full = npdsp.filter_blocks(white, irs)
        offset = first * self.hop - self._noise_at
        needed = offset + len(full)
        if needed > len(self._noise_buffer):
            self._noise_buffer = np.pad(self._noise_buffer, (0, needed - len(self._noise_buffer)))
        self._noise_buffer[offset:needed] += full

    def _take_noise(self, start: int, stop: int) -> np.ndarray:
        """Final noise samples ``[start, stop)``; drops the buffer before them."""
        if not self.has_noise:
            return np.zeros(stop - start, np.float32)
        lo, hi = start + self.noise_crop - self._noise_at, stop + self.noise_crop - self._noise_at
        piece = self._noise_buffer[lo:hi].copy()
        if len(piece) < stop - start:
            piece = np.pad(piece, (0, stop - start - len(piece)))
        self._noise_buffer = self._noise_buffer[hi:]
        self._noise_at += hi
        return piece
