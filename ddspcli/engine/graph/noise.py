"""Filtered noise: white noise shaped by a time-varying linear-phase filter.

Control: ``noise_magnitudes`` (``n_bands`` per frame, 0 Hz to Nyquist), ``exp_sigmoid`` of the
raw output shifted by ``initial_bias`` (a quiet start; ``scale = "none"``: linear already).
Training renders with `synths.FilteredNoise`. The stream convolves each frame's ``hop``
samples of the seeded white-noise stream (`npnoise.white_noise`, TensorFlow's samples) with
that frame's FIR (the full convolution) and overlap-adds them; the filter's delay (what a
one-shot ``same`` convolution drops) makes a sample final once the frames
``ceil(delay / hop)`` ahead are in: the node's lag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddspcli import tfimport
from ddspcli.engine import npdsp, npnoise
from ddspcli.engine.graph.node import Control, Kernels, Node, TFContext, exp_sigmoid, register
from ddspcli.engine.graph.stream import FrameStream


@register
@dataclass(frozen=True)
class FilteredNoise(Node):
    """Noise through a per-frame FIR designed by frequency sampling.

    Attributes:
        n_bands: magnitudes per frame (``m``). window_size: FIR taps (0: the full
            ``2 (m - 1)``). initial_bias: added to the raw output before scaling.
        scale_fn: ``exp_sigmoid`` or ``none``.
    """

    name = "noise"
    attr = "noise"
    n_bands: int = 65
    window_size: int = 257
    initial_bias: float = -5.0
    scale_fn: str = "exp_sigmoid"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FilteredNoise | None:
        bands = int(params["n_noise_bands"])
        if not bands:
            return None
        return cls(int(params["sample_rate"]), int(params["hop"]), bands,
                   int(params["noise_window_size"]))  # fmt: skip

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> FilteredNoise | None:
        bands = int(table.get("n_noise_bands", 0))
        if not bands:
            return None
        return cls(int(table["sample_rate"]), int(table["hop"]), bands,
                   int(table["noise_window_size"]), float(table["noise_initial_bias"]),
                   str(table.get("scale", "exp_sigmoid")))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"n_noise_bands": self.n_bands, "noise_window_size": self.window_size,
                "noise_initial_bias": float(self.initial_bias)}  # fmt: skip

    def controls(self) -> tuple[Control, ...]:
        return (Control("noise_magnitudes", self.n_bands),)

    @property
    def crop(self) -> int:
        """Samples of filter delay (`dsp.filter_delay` of the FIR's length)."""
        probe = np.zeros((1, self.n_bands), np.float32)
        ir_size = npdsp.impulse_responses(probe, self.window_size).shape[-1]
        return (ir_size - 1) // 2 - 1

    @property
    def lag(self) -> int:
        return max(1, math.ceil(self.crop / self.hop))

    # -- inference --------------------------------------------------------------------------

    def scale(self, raw: Mapping[str, np.ndarray], f0_hz: np.ndarray) -> dict[str, np.ndarray]:
        """``[t, m]`` raw -> linear magnitudes ``[t, m]``."""
        raw_mags = np.asarray(raw["noise_magnitudes"], np.float32)
        if self.scale_fn == "none":
            return {"noise_magnitudes": raw_mags}
        return {"noise_magnitudes": exp_sigmoid(raw_mags + np.float32(self.initial_bias))}

    def filtered(self, white: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """``[t * hop]`` noise through each frame's FIR: the full convolution, float32."""
        return npdsp.filter_blocks(white, npdsp.impulse_responses(magnitudes, self.window_size))

    def stream(self, seed: int, lag: int, weights: Mapping[str, np.ndarray],
               kernels: Kernels) -> NoiseStream:  # fmt: skip
        return NoiseStream(self, seed, lag, kernels.get("white", npnoise.white_noise),
                           kernels.get("filter", self.filtered))  # fmt: skip

    # -- training ---------------------------------------------------------------------------

    def tf_module(self, rng: Any) -> Any:
        return tfimport.engine_module("synths").FilteredNoise(window_size=self.window_size)

    def tf_controls(self, module: Any, raw: Mapping[str, Any], f0_hz: Any) -> dict[str, Any]:
        return {"noise_magnitudes": module.get_controls(raw["noise_magnitudes"])["magnitudes"]}

    def tf_signal(self, module: Any, controls: Mapping[str, Any], context: TFContext) -> Any:
        """``[b, n_samples]``: ``context.white`` (or noise drawn from its seed) filtered."""
        magnitudes = controls["noise_magnitudes"]
        white = context.white
        if white is None:
            white = module.white(magnitudes, context.n_samples, context.noise_seed)
        return module.get_signal(magnitudes, white)

    def tf_kernels(self, module: Any) -> dict[str, Any]:
        """``white``: `dsp.white_noise`; ``filter``: `dsp.frequency_impulse_response` and a
        ``valid`` `dsp.fft_convolve`."""
        dsp = tfimport.engine_module("dsp")

        def filtered(white: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
            irs = dsp.frequency_impulse_response(magnitudes[None], module.window_size)
            return dsp.fft_convolve(white[None], irs, padding="valid")[0].numpy()

        return {"white": dsp.white_noise, "filter": filtered}


class NoiseStream(FrameStream):
    """`FilteredNoise` streamed: frames' noise filtered as they arrive, overlap-added into a
    buffer, released `crop` samples late (so aligned with a one-shot render).

    Args:
        white: ``(seed, start, n) -> [n]`` noise samples. filtered: ``(white [t * hop],
            magnitudes [t, m]) -> [t * hop + ir - 1]``.
    """

    def __init__(self, node: FilteredNoise, seed: int, lag: int, white: Any,
                 filtered: Any) -> None:  # fmt: skip
        super().__init__(node.hop, lag)
        self.seed, self.crop, self.white, self.filtered = seed, node.crop, white, filtered
        self._buffer = np.zeros(0, np.float32)  # the full convolution from sample `_at`
        self._at = 0

    def take(self, controls: Mapping[str, np.ndarray], first: int) -> None:
        """Filter frames ``[first, first + t)``'s white noise; overlap-add into the buffer."""
        magnitudes = controls["noise_magnitudes"]
        full = self.filtered(self.white(self.seed, first * self.hop, len(magnitudes) * self.hop),
                             magnitudes)  # fmt: skip
        offset = first * self.hop - self._at
        needed = offset + len(full)
        if needed > len(self._buffer):
            self._buffer = np.pad(self._buffer, (0, needed - len(self._buffer)))
        self._buffer[offset:needed] += full

    def render(self, ahead: Mapping[str, np.ndarray], first: int, count: int) -> np.ndarray:
        """Final samples of frames ``[first, first + count)``; drops the buffer before them."""
        start, stop = first * self.hop, (first + count) * self.hop
        lo, hi = start + self.crop - self._at, stop + self.crop - self._at
        piece = self._buffer[lo:hi].copy()
        if len(piece) < stop - start:  # the buffer's end: no noise filtered beyond it
            piece = np.pad(piece, (0, stop - start - len(piece)))
        self._buffer = self._buffer[hi:]
        self._at += hi
        return piece
