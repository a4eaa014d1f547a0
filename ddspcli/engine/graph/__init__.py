"""The synthesis graph (DESIGN.md): one class per synthesizer or effect, a graph of them.

`node` (what a node owns, the registry), `stream` (the streaming bookkeeping every source
shares, the graph's stream), `graph` (building it from gin parameters or a runtime table,
walking it) and one module per node: `harmonic`, `noise`, `reverb`. Nothing here imports
TensorFlow: each node's one-shot TensorFlow render is reached through `ddspcli.tfimport`, so
the runtime streams the same nodes that training renders.

A new synthesizer is one module here (a `Node` subclass decorated with `register`) and its gin
line, ``Autoencoder.nodes = ['harmonic', 'noise', '<name>', 'reverb']``.
"""

from ddspcli.engine.graph import harmonic, noise, reverb
from ddspcli.engine.graph.graph import DEFAULT_NODES, Graph
from ddspcli.engine.graph.node import (
    EFFECT,
    SOURCE,
    Control,
    Node,
    TFContext,
    Weight,
    exp_sigmoid,
    node_class,
    register,
)
from ddspcli.engine.graph.stream import FrameStream, GraphStream

__all__ = [
    "DEFAULT_NODES", "EFFECT", "SOURCE", "Control", "FrameStream", "Graph", "GraphStream",
    "Node", "TFContext", "Weight", "exp_sigmoid", "harmonic", "node_class", "noise", "register",
    "reverb",
]  # fmt: skip
