"""NumPy streaming synthesis for the runtime: the synthesis graph of a model folder's table.

``runtime.json``'s ``synth`` table describes the graph (`graph.Graph.from_table`: its sources,
named by ``nodes`` or, in files written before that key, harmonic and filtered noise); the
reverb is added when the stream is given an impulse response (the model's ``reverb_ir.npy`` or
a room played instead), so ``--no-reverb`` is a stream without it. Every node streams with the
same arithmetic as its TensorFlow render (`ddspcli.engine.graph`: harmonic crossfade with the
phase in float64, filtered-noise overlap-add of TensorFlow's noise samples, the partitioned
convolver of the reverb), so any block split gives the same samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ddspcli.engine.graph import Graph, GraphStream
from ddspcli.engine.graph.reverb import Reverb


def graph_of(table: Mapping, reverb_ir: np.ndarray | None = None) -> Graph:
    """The graph a runtime table describes, with a reverb of `reverb_ir` (``[m]``) if given."""
    graph = Graph.from_table(table)
    if reverb_ir is not None:
        graph = graph.with_node(Reverb.from_table(table, len(reverb_ir)))
    return graph


class SynthStream(GraphStream):
    """The graph of a runtime table streamed (see `GraphStream`: `push` the physical controls,
    `graph.scale` of the decoder's raw outputs, get the final parts).

    Args:
        table: ``runtime.json``'s ``synth`` table. seed: the noise stream's seed.
        reverb_ir: ``[m]`` effective impulse response (first tap 0), or None for no reverb.
    """

    def __init__(self, table: Mapping, seed: int = 0, reverb_ir: np.ndarray | None = None):
        self.graph = graph_of(table, reverb_ir)
        weights = {"reverb": {"ir": reverb_ir}} if reverb_ir is not None else {}
        super().__init__(self.graph.sources, self.graph.effects, self.graph.hop, seed, weights)
