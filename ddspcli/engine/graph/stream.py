"""Streaming the synthesis graph: controls a few frames at a time in, final samples out.

`FrameStream` is the bookkeeping every source shares: it keeps the controls of the frames not
yet rendered and renders frame ``j`` once the frames up to ``j + lag`` are in (one frame ahead
for a crossfade, more for a linear-phase filter); `finish` renders the rest with the last
frame held, as a one-shot render ends. `GraphStream` runs every source with the graph's lag
(the largest of its sources'), sums them, then runs the effects in order. Any split of the
frames into blocks gives the same samples (float32 rounding aside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ddspcli.engine.graph.node import Kernels, Node


class FrameStream:
    """A source's stream: `push` the physical controls of the next ``t`` frames (``[t, ...]``
    each), get the samples now final (``[j * hop]`` for ``j`` frames).

    Subclasses implement `render` (and optionally `take`, called as frames arrive).

    Args:
        hop: samples per frame. lag: frames held back (the graph's lag).
    """

    def __init__(self, hop: int, lag: int) -> None:
        self.hop, self.lag = hop, lag
        self.decoded = 0  # frames pushed
        self.emitted = 0  # frames rendered
        self._pending: dict[str, np.ndarray] = {}  # controls of frames [emitted, decoded)

    def take(self, controls: Mapping[str, np.ndarray], first: int) -> None:
        """Frames ``[first, first + t)`` arrived (before they are pending)."""

    def render(self, ahead: Mapping[str, np.ndarray], first: int, count: int) -> np.ndarray:
        """Samples ``[count * hop]`` of frames ``[first, first + count)``; `ahead` holds
        their controls and at least one frame more."""
        raise NotImplementedError

    def push(self, controls: Mapping[str, np.ndarray]) -> np.ndarray:
        """Take ``t`` frames' controls; return the samples now final."""
        controls = {k: np.asarray(v) for k, v in controls.items()}
        t = len(next(iter(controls.values())))
        self.take(controls, self.decoded)
        if self._pending:
            controls = {k: np.concatenate([self._pending[k], v]) for k, v in controls.items()}
        self._pending = controls
        self.decoded += t
        return self._emit(self.decoded - self.lag)

    def finish(self) -> np.ndarray:
        """The remaining frames' samples, the last frame held."""
        if self._pending and self.decoded > self.emitted:
            self._pending = {k: np.concatenate([v, v[-1:]]) for k, v in self._pending.items()}
            return self._emit(self.decoded)
        return self._emit(self.emitted)

    def _emit(self, until: int) -> np.ndarray:
        count = until - self.emitted
        if count <= 0:
            return np.zeros(0, np.float32)
        ahead = {k: v[: count + 1] for k, v in self._pending.items()}
        out = self.render(ahead, self.emitted, count)
        self._pending = {k: v[count:] for k, v in self._pending.items()}
        self.emitted = until
        return out


class GraphStream:
    """The whole graph streamed: `push` the physical controls of ``t`` frames (every
    source's `Node.inputs`), get the parts now final, each ``[j * hop]`` float32: one per
    source (its `attr`), ``dry`` (their sum), one per effect (its wet part) and ``audio``
    (the mix).

    Args:
        sources, effects: the graph's nodes. hop: samples per frame. seed: noise seed.
        weights: ``{node attr: {weight name: array}}``. kernels: ``{node attr: {...}}``,
            replacements of a node's NumPy kernels (the TensorFlow reference stream).
    """

    def __init__(
        self,
        sources: Sequence[Node],
        effects: Sequence[Node],
        hop: int,
        seed: int = 0,
        weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        kernels: Mapping[str, Kernels] | None = None,
    ) -> None:
        weights, kernels = weights or {}, kernels or {}
        self.sources, self.effects, self.hop = tuple(sources), tuple(effects), hop
        self.lag = max([1, *(n.lag for n in self.sources)])  # as `Graph.lag`
        self.streams = {n.attr: n.stream(seed, self.lag, weights.get(n.attr, {}),
                                         kernels.get(n.attr, {}))
                        for n in (*self.sources, *self.effects)}  # fmt: skip
        self._streams = [self.streams[n.attr] for n in self.sources]
        self._effects = [self.streams[n.attr] for n in self.effects]

    @property
    def stems(self) -> tuple[str, ...]:
        """The parts besides ``dry`` and ``audio``: each source, then each effect's wet part."""
        return (*(n.attr for n in self.sources), *(n.attr for n in self.effects))

    @property
    def parts(self) -> tuple[str, ...]:
        """The keys of what `push` returns."""
        return (*(n.attr for n in self.sources), "dry", *(n.attr for n in self.effects), "audio")

    def push(self, controls: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Take ``t`` frames' physical controls; return the parts now final."""
        if not len(controls["f0_hz"]):
            return self.empty()
        pieces = [s.push({k: controls[k] for k in n.inputs()})
                  for n, s in zip(self.sources, self._streams, strict=True)]  # fmt: skip
        return self._mix(pieces)

    def finish(self) -> dict[str, np.ndarray]:
        """The last `lag` frames' parts (the last frame held)."""
        return self._mix([s.finish() for s in self._streams])

    def empty(self) -> dict[str, np.ndarray]:
        """The parts of no frames (zero-length arrays under `parts`)."""
        return self._mix([np.zeros(0, np.float32) for _ in self._streams])

    def _mix(self, pieces: list[np.ndarray]) -> dict[str, np.ndarray]:
        parts: dict[str, Any] = {n.attr: piece for n, piece in zip(self.sources, pieces,
                                                                  strict=True)}  # fmt: skip
        dry = pieces[0]
        for piece in pieces[1:]:
            dry = dry + piece
        parts["dry"] = audio = dry
        for node, stream in zip(self.effects, self._effects, strict=True):
            wet = stream.push(audio) if len(audio) else np.zeros(0, np.float32)
            parts[node.attr] = wet
            audio = node.mix(audio, wet)
        parts["audio"] = audio
        return parts
