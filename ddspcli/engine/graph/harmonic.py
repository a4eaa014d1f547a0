"""The harmonic synthesizer: f0, an overall amplitude and a harmonic distribution in, a tone out.

Controls: ``amplitudes`` (1 per frame) and ``harmonic_distribution`` (``n_harmonics``), both
``exp_sigmoid``-scaled; the harmonics at or above Nyquist are removed before the distribution
is normalised (``scale = "none"``: the decoder gives them scaled, as a DDSP-VST file does).
Training renders with `synths.Harmonic`; the stream crossfades frame ``j``'s samples into frame
``j + 1`` (``window`` amplitude upsampling, `npdsp.harmonic_synthesis`), so a frame is final
once its successor is known, with the fundamental's phase carried in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddspcli import tfimport
from ddspcli.engine import npdsp
from ddspcli.engine.graph.node import Control, Kernels, Node, TFContext, exp_sigmoid, register
from ddspcli.engine.graph.stream import FrameStream


@register
@dataclass(frozen=True)
class Harmonic(Node):
    """Harmonic oscillator bank.

    Attributes:
        n_harmonics: harmonics (``k``). normalize_below_nyquist: drop harmonics at or above
            Nyquist, then renormalise. scale: ``exp_sigmoid`` (raw decoder outputs) or
            ``none`` (physical already).
    """

    name = "harmonic"
    attr = "harmonic"
    n_harmonics: int = 60
    normalize_below_nyquist: bool = True
    scale_fn: str = "exp_sigmoid"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Harmonic:
        return cls(int(params["sample_rate"]), int(params["hop"]), int(params["n_harmonics"]))

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Harmonic:
        return cls(int(table["sample_rate"]), int(table["hop"]), int(table["n_harmonics"]),
                   bool(table["normalize_below_nyquist"]), str(table["scale"]))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"n_harmonics": self.n_harmonics,
                "normalize_below_nyquist": self.normalize_below_nyquist,
                "scale": self.scale_fn}  # fmt: skip

    def controls(self) -> tuple[Control, ...]:
        return (Control("amplitudes", 1), Control("harmonic_distribution", self.n_harmonics))

    def inputs(self) -> tuple[str, ...]:
        return ("f0_hz", "amplitudes", "harmonic_distribution")

    @property
    def lag(self) -> int:
        return 1  # the crossfade into the next frame

    # -- inference --------------------------------------------------------------------------

    def scale(self, raw: Mapping[str, np.ndarray], f0_hz: np.ndarray) -> dict[str, np.ndarray]:
        """``amplitudes`` ``[t, 1]``, ``harmonic_distribution`` ``[t, k]`` raw, ``f0_hz``
        ``[t]`` Hz -> ``amplitudes`` ``[t]`` linear, ``harmonic_distribution`` ``[t, k]``
        (summing to 1 below Nyquist)."""
        amps, dist = raw["amplitudes"][:, 0], raw["harmonic_distribution"]
        if self.scale_fn == "none":
            return {"amplitudes": np.asarray(amps, np.float32),
                    "harmonic_distribution": np.asarray(dist, np.float32)}  # fmt: skip
        dist = exp_sigmoid(dist)
        if self.normalize_below_nyquist:
            f0 = np.asarray(f0_hz, np.float32)
            numbers = np.arange(1, dist.shape[-1] + 1, dtype=np.float32)
            dist = np.where(f0[:, None] * numbers >= self.sample_rate / 2.0, 0.0, dist)
            total = dist.sum(axis=-1, keepdims=True, dtype=np.float32)
            dist = np.divide(dist, total, out=np.zeros_like(dist), where=total != 0)
        return {"amplitudes": exp_sigmoid(amps), "harmonic_distribution": dist.astype(np.float32)}

    def stream(self, seed: int, lag: int, weights: Mapping[str, np.ndarray],
               kernels: Kernels) -> HarmonicStream:  # fmt: skip
        return HarmonicStream(self, lag, kernels.get("synthesis", npdsp.harmonic_synthesis))

    # -- training ---------------------------------------------------------------------------

    def tf_module(self, rng: Any) -> Any:
        return tfimport.engine_module("synths").Harmonic(sample_rate=self.sample_rate)

    def tf_controls(self, module: Any, raw: Mapping[str, Any], f0_hz: Any) -> dict[str, Any]:
        return module.get_controls(raw["amplitudes"], raw["harmonic_distribution"], f0_hz)

    def tf_signal(self, module: Any, controls: Mapping[str, Any], context: TFContext) -> Any:
        """``[b, n_samples]``; the final phase goes to ``context.new_state["phase"]``."""
        audio, context.new_state["phase"] = module.get_signal(
            controls["amplitudes"], controls["harmonic_distribution"], controls["f0_hz"],
            initial_phase=context.state.get("phase"), n_samples=context.n_samples,
        )  # fmt: skip
        return audio

    def tf_kernels(self, module: Any) -> dict[str, Any]:
        """``synthesis``: `dsp.harmonic_synthesis` with ``lookahead`` (the phase a tensor)."""
        dsp = tfimport.engine_module("dsp")

        def synthesis(f0, amps, dist, hop, rate, phase):
            audio, phase = dsp.harmonic_synthesis(
                f0[None, :, None], amps[None, :, None], dist[None], len(f0) * hop, rate,
                module.amp_resample_method, None if isinstance(phase, float) else phase,
                lookahead=True,
            )  # fmt: skip
            return audio[0].numpy(), phase

        return {"synthesis": synthesis}

    def runtime_problem(self, module: Any) -> str | None:
        if module.amp_resample_method != "window":
            return (f"the runtime renders 'window' amplitude upsampling only, not "
                    f"{module.amp_resample_method!r}")  # fmt: skip
        return None


class HarmonicStream(FrameStream):
    """`Harmonic` streamed; `synthesis` is `npdsp.harmonic_synthesis` or a kernel with its
    signature (``(f0 [t], amps [t], dist [t, k], hop, rate, phase) -> (audio, phase)``).
    ``f0_hz`` and ``amplitudes`` may come as ``[t]`` or ``[t, 1]``."""

    def __init__(self, node: Harmonic, lag: int, synthesis: Any) -> None:
        super().__init__(node.hop, lag)
        self.node, self.synthesis = node, synthesis
        self.phase: Any = 0.0  # radians, float64

    def render(self, ahead: Mapping[str, np.ndarray], first: int, count: int) -> np.ndarray:
        f0, amps = ahead["f0_hz"].reshape(-1), ahead["amplitudes"].reshape(-1)  # [t] or [t, 1]
        audio, self.phase = self.synthesis(f0, amps, ahead["harmonic_distribution"], self.hop,
                                           float(self.node.sample_rate), self.phase)  # fmt: skip
        return audio
