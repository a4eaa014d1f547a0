"""What every synthesizer and effect of the synthesis graph is: a `Node` and its registry.

A node owns four things (DESIGN.md, "The synthesis graph"):

* its controls: the decoder outputs it takes (`Control`: name and channels per frame) and
  their scaling from raw network outputs to physical values (`Node.scale`, NumPy);
* its one-shot TensorFlow render for training (`Node.tf_module`, `tf_controls`, `tf_signal`
  or `tf_apply`): the `tf.Module` is built through `ddspcli.tfimport` (the one door to
  TensorFlow code), so this module and every node module import no TensorFlow and the runtime
  can use them;
* its streaming NumPy render for inference (`Node.stream`: ``push(controls) -> samples``,
  ``lag``, ``finish()``);
* its weights (`Weight`): the variable of its `tf.Module` (our checkpoints store it under
  ``model/<attr>/<name>``), its name in official DDSP checkpoints, whether DDSP-VST files
  carry it, and its file in a model folder's runtime files.

Nodes register by name (`register`); a gin line ``Autoencoder.nodes = [...]`` or a runtime
table's ``nodes`` list names them. A name not yet registered is looked up as the module
``ddspcli.engine.graph.<name>``, so a new synthesizer is that one module plus its gin line.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ddspcli import tfimport

SOURCE, EFFECT = "source", "effect"
Kernels = Mapping[str, Callable[..., Any]]  # optional replacements of a stream's NumPy kernels


@dataclass(frozen=True)
class Control:
    """One decoder output a node takes: its name and its channels per frame."""

    name: str
    size: int


@dataclass(frozen=True)
class Weight:
    """One trained array of a node and its names in the formats we read and write.

    Attributes:
        name: the variable's attribute on the node's `tf.Module` (our checkpoints:
            ``model/<node attr>/<name>``).
        official: its path in an official DDSP checkpoint (under ``model/``), or None.
        plugin: whether a DDSP-VST file carries it (the plugin adds its own reverb).

    What the NumPy stream needs of a trained node is `Node.runtime_weights`, written into a
    model folder as ``<attr>_<name>.npy`` (``reverb_ir.npy``).
    """

    name: str
    official: str | None = None
    plugin: bool = False


@dataclass(frozen=True)
class Node:
    """A synthesizer (``kind = "source"``: controls in, audio out) or an effect (``"effect"``:
    audio in, audio out). Subclasses are frozen dataclasses of their settings.

    Attributes:
        sample_rate: Hz. hop: samples per frame.
    """

    name: ClassVar[str]  # the registry key (gin, runtime tables)
    kind: ClassVar[str] = SOURCE
    attr: ClassVar[str]  # the Autoencoder's attribute and the stem's name
    sample_rate: int
    hop: int

    def weights(self) -> tuple[Weight, ...]:
        """Its trained arrays (none by default)."""
        return ()

    # -- description ------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Node | None:
        """The node of an `Autoencoder`'s gin parameters (None: absent, e.g. zero bands)."""
        raise NotImplementedError

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Node | None:
        """The node of a runtime table (``runtime.json``'s ``synth``; None: absent)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The node's entries of the runtime table (flat keys, read by `from_table`)."""
        return {}

    def controls(self) -> tuple[Control, ...]:
        """The decoder outputs this node takes, in the decoder's output order."""
        return ()

    def inputs(self) -> tuple[str, ...]:
        """The physical controls its stream reads (its controls, and ``f0_hz`` if used)."""
        return tuple(c.name for c in self.controls())

    @property
    def lag(self) -> int:
        """Frames its stream's output trails the pushed controls (sources)."""
        return 0

    # -- inference (NumPy) ------------------------------------------------------------------

    def scale(self, raw: Mapping[str, np.ndarray], f0_hz: np.ndarray) -> dict[str, np.ndarray]:
        """Raw decoder outputs ``{name: [t, size]}`` -> physical controls (``[t, size]``)."""
        return {c.name: np.asarray(raw[c.name], np.float32) for c in self.controls()}

    def stream(self, seed: int, lag: int, weights: Mapping[str, np.ndarray],
               kernels: Kernels) -> Any:  # fmt: skip
        """A streaming render: sources ``push(controls) -> [j * hop]`` and ``finish()``
        (a `stream.FrameStream`), effects ``push(audio [n]) -> wet [n]``. `lag`: the graph's
        (at least the node's own); `weights`: ``{name: array}`` (`runtime_weights`);
        `kernels`: replacements of the NumPy kernels by name (the TensorFlow reference
        stream's, `tf_kernels`)."""
        raise NotImplementedError

    def mix(self, audio: np.ndarray, wet: np.ndarray) -> np.ndarray:
        """An effect's output from its input and its wet part (default: their sum)."""
        return audio + wet

    # -- training (TensorFlow, through `tfimport`) ----------------------------------------------

    def tf_module(self, rng: Any) -> Any:
        """The `tf.Module` the Autoencoder holds as `attr` (its variables are checkpointed
        under ``model/<attr>/``). Default: an empty module (no weights)."""
        return tfimport.engine_module("synths").Stateless(name=self.attr)

    def tf_controls(self, module: Any, raw: Mapping[str, Any], f0_hz: Any) -> dict[str, Any]:
        """Raw decoder outputs ``[b, t, size]`` -> physical controls (tensors)."""
        raise NotImplementedError

    def tf_signal(self, module: Any, controls: Mapping[str, Any], context: TFContext) -> Any:
        """A source's audio ``[b, n_samples]`` from its physical controls."""
        raise NotImplementedError

    def tf_apply(self, module: Any, audio: Any) -> Any:
        """An effect's output ``[b, n]`` from its input ``[b, n]``."""
        raise NotImplementedError

    def tf_kernels(self, module: Any) -> dict[str, Callable[..., Any]]:
        """TensorFlow replacements of its stream's NumPy kernels, for the reference stream
        (`streaming.StreamRenderer`) the runtime is checked against (default: none)."""
        return {}

    def runtime_weights(self, module: Any) -> dict[str, np.ndarray]:
        """The arrays its NumPy stream needs, read from its trained `tf.Module`
        (``{Weight.name: array}``; written as each weight's `runtime_file`)."""
        return {}

    def runtime_problem(self, module: Any) -> str | None:
        """Why the NumPy stream cannot render this trained module (None: it can)."""
        return None


@dataclass
class TFContext:
    """What a source's one-shot TensorFlow render may need besides its controls.

    Attributes:
        n_samples: output length (frames times hop).
        state: the previous block's state (``phase``, ...); `new_state` collects this one's.
        noise_seed: ``[2]`` int seed for drawn noise (None: ``[0, 0]``).
        white: ``[b, n_samples]`` given uniform noise (None: drawn).
    """

    n_samples: int
    state: Mapping[str, Any]
    new_state: dict[str, Any]
    noise_seed: Any = None
    white: Any = None


NODES: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node known by its `name`."""
    NODES[cls.name] = cls
    return cls


def node_class(name: str) -> type[Node]:
    """The registered node `name`, importing ``ddspcli.engine.graph.<name>`` if needed.

    Raises:
        ValueError: no such node.
    """
    if name not in NODES:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"{__package__}.{name}")
    if name not in NODES:
        raise ValueError(f"unknown synthesis node {name!r}; known: {', '.join(sorted(NODES))}")
    return NODES[name]


def exp_sigmoid(x: np.ndarray) -> np.ndarray:
    """`dsp.exp_sigmoid` in NumPy: ``2 * sigmoid(x) ** ln(10) + 1e-7``, float32."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):
        sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-x))
    return (np.float32(2.0) * sig ** np.float32(math.log(10.0)) + np.float32(1e-7)).astype(
        np.float32
    )
