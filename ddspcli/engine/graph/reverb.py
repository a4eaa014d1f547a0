"""The reverb: the dry mix convolved with an impulse response, plus the dry path.

Two trainable forms (``Autoencoder.room``): ``free`` (`synths.Reverb`, every tap trained)
and ``decay`` (`room.Room`, a decay time and a bounded level per octave band). At inference
both are their effective impulse response (first tap 0: the dry path carries the note),
convolved by `PartitionedConvolver`, whose first partition is convolved directly with each
block, so it adds no latency and any block size (a 10 ms live block, a 10 s file block) gives
the same samples. Its weight: ``ir`` (official checkpoints: ``processor_group/reverb/ir``;
DDSP-VST files leave it out, the plugin adds its own reverb).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddspcli import tfimport
from ddspcli.engine.graph.node import EFFECT, Kernels, Node, Weight, register

PARTITION = 1024  # samples per partition of the impulse response
ROOMS = ("free", "decay")  # `Autoencoder.room`: a free IR (`synths.Reverb`) or `room.Room`


def check_room(room: str) -> str:
    """`room` if it is one of `ROOMS` (else ValueError naming them)."""
    if room not in ROOMS:
        raise ValueError(f"unknown room {room!r}; use one of {ROOMS}")
    return room


@register
@dataclass(frozen=True)
class Reverb(Node):
    """Convolution reverb.

    Attributes:
        length: impulse response samples (``m``). room: ``free`` or ``decay`` (training's
            form, see the module doc). add_dry: output dry + wet (else wet only).
    """

    name = "reverb"
    kind = EFFECT
    attr = "reverb"
    length: int = 48000
    room: str = "free"
    add_dry: bool = True

    def __post_init__(self) -> None:
        check_room(self.room)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Reverb | None:
        room = check_room(str(params.get("room", "free")))  # also for a model without reverb
        length = int(params["reverb_length"])
        return cls(int(params["sample_rate"]), int(params["hop"]), length, room) if length else None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], length: int = 0) -> Reverb:
        """The reverb of a runtime table, for an impulse response of `length` samples (the
        runtime reads it from ``reverb_ir.npy``, or is given one)."""
        return cls(int(table["sample_rate"]), int(table["hop"]), length,
                   add_dry=bool(table.get("reverb_add_dry", True)))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"reverb_add_dry": self.add_dry}

    def weights(self) -> tuple[Weight, ...]:
        if self.room == "decay":  # octave-band decays and levels, the fixed noise
            return (Weight("decay"), Weight("level"), Weight("noise"))
        return (Weight("ir", official="processor_group/reverb/ir"),)

    # -- inference --------------------------------------------------------------------------

    def stream(self, seed: int, lag: int, weights: Mapping[str, np.ndarray],
               kernels: Kernels) -> Any:  # fmt: skip
        """``push(audio [n]) -> wet [n]``: `PartitionedConvolver` of ``weights["ir"]`` (the
        effective IR), or ``kernels["convolver"](ir)``."""
        return kernels.get("convolver", PartitionedConvolver)(weights["ir"])

    def mix(self, audio: np.ndarray, wet: np.ndarray) -> np.ndarray:
        return audio + wet if self.add_dry else wet

    # -- training ---------------------------------------------------------------------------

    def tf_module(self, rng: Any) -> Any:
        if self.room == "decay":
            return tfimport.engine_module("room").Room(self.length, self.sample_rate, rng=rng)
        return tfimport.engine_module("synths").Reverb(self.length, rng=rng)

    def tf_apply(self, module: Any, audio: Any) -> Any:
        return module(audio)

    def tf_kernels(self, module: Any) -> dict[str, Any]:
        """``convolver``: `FFTConvolver` (`dsp.fft_convolve` of each block)."""
        return {"convolver": FFTConvolver}

    def runtime_weights(self, module: Any) -> dict[str, np.ndarray]:
        """``ir``: the effective impulse response ``[m]`` float32 (first tap 0)."""
        return {"ir": module.effective_ir(module.ir).numpy().astype(np.float32)}

    def runtime_problem(self, module: Any) -> str | None:
        if getattr(module, "ir", None) is None:
            return "the runtime needs the model's reverb impulse response"
        return None


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


class FFTConvolver:
    """The reference convolver: each block convolved whole with the IR by `dsp.fft_convolve`
    (TensorFlow), the ``m - 1`` samples of tail carried to the next block (overlap-add).

    Args:
        ir: ``[m]`` impulse response.
    """

    def __init__(self, ir: np.ndarray) -> None:
        self.ir = np.asarray(ir, np.float32)
        self._tail = np.zeros(len(self.ir) - 1, np.float32)
        self._dsp = tfimport.engine_module("dsp")

    def push(self, block: np.ndarray) -> np.ndarray:
        """``[n]`` input -> ``[n]`` wet output."""
        conv = self._dsp.fft_convolve(np.asarray(block, np.float32)[None], self.ir[None],
                                      padding="valid")  # fmt: skip
        wet = conv[0].numpy()
        wet[: len(self._tail)] += self._tail
        self._tail = wet[len(block) :]
        return wet[: len(block)]
