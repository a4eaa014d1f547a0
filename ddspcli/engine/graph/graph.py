"""The synthesis graph of a model: its sources (summed), then its effects (in order).

Built from a variant's gin parameters (`Graph.from_params`: ``Autoencoder.nodes`` names the
nodes, default harmonic, noise and reverb, each present when its size is not 0) or from a
model folder's runtime table (`Graph.from_table`). Training (`model.Autoencoder`), the
TensorFlow reference stream (`streaming`), the runtime, the exports and the checkpoint
importers walk it instead of naming synthesizers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddspcli.engine.graph.node import EFFECT, SOURCE, Control, Kernels, Node, node_class
from ddspcli.engine.graph.stream import GraphStream

DEFAULT_NODES = ("harmonic", "noise", "reverb")
LEGACY_SOURCES = ("harmonic", "noise")  # a runtime table without ``nodes``


@dataclass(frozen=True)
class Graph:
    """The nodes of a model and its frame layout.

    Attributes:
        nodes: sources and effects, each kind in its order. sample_rate: Hz.
        frame_rate: frames per second. hop: samples per frame.
    """

    nodes: tuple[Node, ...]
    sample_rate: int
    frame_rate: int
    hop: int

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a synthesis graph needs at least one source")
        attrs = [n.attr for n in self.nodes]
        if len(set(attrs)) != len(attrs):
            raise ValueError(f"two synthesis nodes share a name: {attrs}")

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Graph:
        """From `Autoencoder`'s parameters (``sample_rate``, ``frame_rate``, ``nodes`` and
        each node's own, e.g. ``n_harmonics``, ``n_noise_bands``, ``reverb_length``)."""
        params = {**params, "hop": int(params["sample_rate"]) // int(params["frame_rate"])}
        names = tuple(params.get("nodes") or DEFAULT_NODES)
        nodes = [node_class(name).from_params(params) for name in names]
        return cls._ordered(nodes, params)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Graph:
        """From a runtime table (``runtime.json``'s ``synth``): its sources (``nodes``, or
        harmonic and noise for files written before it existed). Effects whose weights the
        runtime reads (the reverb) are added by their reader (`with_node`)."""
        names = table.get("nodes") or LEGACY_SOURCES
        nodes = [node_class(name).from_table(table) for name in names
                 if node_class(name).kind == SOURCE]  # fmt: skip
        return cls._ordered(nodes, table)

    @classmethod
    def _ordered(cls, nodes: list[Node | None], params: Mapping[str, Any]) -> Graph:
        present = [n for n in nodes if n is not None]
        ordered = [n for n in present if n.kind == SOURCE] + [n for n in present
                                                              if n.kind == EFFECT]  # fmt: skip
        return cls(tuple(ordered), int(params["sample_rate"]), int(params["frame_rate"]),
                   int(params["hop"]))  # fmt: skip

    def with_node(self, node: Node) -> Graph:
        """This graph with `node` added (replacing the node of the same `attr`)."""
        kept = [n for n in self.nodes if n.attr != node.attr]
        layout = {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "hop": self.hop}
        return self._ordered([*kept, node], layout)

    def without(self, *attrs: str) -> Graph:
        """This graph without the nodes named (their `attr`)."""
        return dataclasses.replace(self, nodes=tuple(n for n in self.nodes if n.attr not in attrs))

    def dry(self) -> Graph:
        """The sources only (``--no-reverb``)."""
        return self.without(*(n.attr for n in self.effects))

    # -- walking ----------------------------------------------------------------------------

    @property
    def sources(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == SOURCE)

    @property
    def effects(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == EFFECT)

    def node(self, attr: str) -> Node | None:
        """The node named `attr`, or None."""
        return next((n for n in self.nodes if n.attr == attr), None)

    @property
    def stems(self) -> tuple[str, ...]:
        """What a render can return besides the mix: each source, then each effect's wet
        part; they sum to the mix when every effect adds its dry path."""
        return tuple(n.attr for n in self.nodes)

    @property
    def lag(self) -> int:
        """Frames a stream's output trails its controls (the largest source lag, at least 1)."""
        return max([1, *(n.lag for n in self.sources)])

    def controls(self) -> tuple[Control, ...]:
        """The decoder's outputs, in order (the sources' controls)."""
        return tuple(c for n in self.sources for c in n.controls())

    def scale(self, raw: Mapping[str, np.ndarray], f0_hz: np.ndarray) -> dict[str, np.ndarray]:
        """Raw decoder outputs ``{name: [t, size]}`` and ``f0_hz`` ``[t]`` (Hz) -> every
        source's physical controls, plus ``f0_hz`` float32 (NumPy)."""
        out = {"f0_hz": np.asarray(f0_hz, np.float32)}
        for node in self.sources:
            out.update(node.scale(raw, out["f0_hz"]))
        return out

    def stream(
        self,
        seed: int = 0,
        weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        kernels: Mapping[str, Kernels] | None = None,
    ) -> GraphStream:
        """A `GraphStream` from silence (see there for `weights` and `kernels`)."""
        return GraphStream(self.sources, self.effects, self.hop, seed, weights, kernels)

    def describe(self) -> dict[str, Any]:
        """The runtime table: the frame layout, every node's entries and ``nodes``."""
        table: dict[str, Any] = {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate,
                                 "hop": self.hop}  # fmt: skip
        for node in self.nodes:
            table.update(node.describe())
        table["nodes"] = [n.name for n in self.nodes]
        return table
