"""The synthesis graph (issue 28, Build 1; `ddspcli.engine.graph`).

1. The graph built from each shipped model's gin (and each variant's) lists the expected
   nodes and control sizes, and a model folder's runtime table gives the same graph.
2. Every node's NumPy stream equals its one-shot TensorFlow render on random controls, fed in
   blocks of odd sizes: max |diff| <= `REL_TOL` (1e-5) of the TensorFlow peak.
3. The stems a stream returns (walking the graph) sum to its mix.
4. A synthesizer defined here only (a sine at a fixed frequency, one amplitude control),
   registered as a new node module would be and named in a gin line, is decoded, rendered in
   TensorFlow, streamed, exported and played by the runtime without editing another module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import test_runtime as runtime_tests

from ddspcli import runtime, tfimport
from ddspcli.engine import dsp, graph, streaming, tflite_export
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.graph import Control, FrameStream, Node, TFContext
from ddspcli.runtime import synth

MODELS = Path(__file__).resolve().parents[1] / "ddspcli" / "models"
SHIPPED = ("violin", "tenor_sax", "flute-sf", "cello-sf", "trumpet-sf")
REL_TOL = 1e-5  # max |diff| / TensorFlow peak, NumPy stream vs one-shot TensorFlow render
BLOCKS = (1, 3, 7, 13, 29)  # frames per push, cycled
SR, HOP = 16000, 64


def assert_close(ours: np.ndarray, ref: np.ndarray, rel: float = REL_TOL) -> None:
    """Same length; max |diff| <= `rel` * peak of `ref` (`test_runtime.assert_close`)."""
    runtime_tests.assert_close(ours, ref, rel)


def streamed(stream, controls: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`stream` fed `controls` (``[t, ...]`` each) in blocks of `BLOCKS` frames, then
    finished; each part concatenated."""
    n, first, pieces, i = len(controls["f0_hz"]), 0, [], 0
    while first < n:
        last = min(n, first + BLOCKS[i % len(BLOCKS)])
        pieces.append(stream.push({k: v[first:last] for k, v in controls.items()}))
        first, i = last, i + 1
    pieces.append(stream.finish())
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def random_raw(rng: np.random.Generator, t: int, g: graph.Graph) -> dict[str, np.ndarray]:
    """Raw decoder outputs ``[t, size]`` for every control of `g`, and ``f0_hz`` ``[t]``."""
    raw = {c.name: rng.normal(0, 2, (t, c.size)).astype(np.float32) for c in g.controls()}
    f0 = 150.0 * 2.0 ** np.cumsum(rng.normal(0, 0.05, t)) + 20 * rng.random(t)
    return {**raw, "f0_hz": np.clip(f0, 60, 2000).astype(np.float32)}


def tf_render(node: Node, module, raw: dict[str, np.ndarray], white=None) -> np.ndarray:
    """A source's one-shot TensorFlow render of raw controls ``[t, ...]`` (batch of one)."""
    batch = {k: tf.constant(v[None]) for k, v in raw.items()}
    controls = node.tf_controls(module, batch, batch["f0_hz"][..., None])
    controls.setdefault("f0_hz", batch["f0_hz"][..., None])
    context = TFContext(len(raw["f0_hz"]) * node.hop, {}, {}, white=white)
    return node.tf_signal(module, controls, context)[0].numpy()


# ---------------------------------------------------------------------------------------------
# 1. The graph of a gin text.


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_models_gin_gives_harmonic_and_noise_and_its_runtime_table_the_same(name):
    folder = MODELS / name
    g = model_lib.graph_of((folder / "config.gin").read_text())
    assert [n.name for n in g.nodes] == ["harmonic", "noise"]  # shipped dry (reverb_length 0)
    assert [(c.name, c.size) for c in g.controls()] == [
        ("amplitudes", 1), ("harmonic_distribution", 60), ("noise_magnitudes", 65)]  # fmt: skip
    assert (g.sample_rate, g.frame_rate, g.hop, g.lag) == (16000, 250, 64, 1)
    table = json.loads((folder / "runtime.json").read_text())["synth"]
    assert graph.Graph.from_table(table) == g  # what the runtime plays is what was trained


@pytest.mark.parametrize(
    ("variant", "nodes", "sizes", "extra"),
    [
        ("harmonic", ["harmonic"], [1, 60], {}),
        ("harmonic+noise", ["harmonic", "noise"], [1, 60, 65], {}),
        ("harmonic+noise+reverb", ["harmonic", "noise", "reverb"], [1, 60, 65],
         {"reverb": (48000, "free")}),
        ("harmonic+noise+room", ["harmonic", "noise", "reverb"], [1, 60, 65],
         {"reverb": (48000, "decay")}),
        ("tiny", ["harmonic", "noise", "reverb"], [1, 60, 65], {"reverb": (48000, "free")}),
        ("vst", ["harmonic", "noise", "reverb"], [1, 60, 65], {"reverb": (24000, "free")}),
    ],
)  # fmt: skip
def test_each_variants_gin_gives_its_nodes_and_control_sizes(variant, nodes, sizes, extra):
    g = model_lib.graph_of(model_lib.config_text(variant, [], [], False))
    assert [n.name for n in g.nodes] == nodes
    assert [c.size for c in g.controls()] == sizes
    assert [n.name for n in g.effects] == nodes[2:]
    if "reverb" in extra:
        r = g.node("reverb")
        assert (r.length, r.room) == extra["reverb"]
    if variant == "vst":
        assert (g.frame_rate, g.hop, g.node("noise").window_size) == (50, 320, 0)


def test_the_plugin_models_runtime_table_gives_unscaled_harmonic_and_noise():
    table = json.loads((MODELS / "violin-vst" / "runtime.json").read_text())["synth"]
    g = graph.Graph.from_table(table)
    assert [(n.name, n.scale_fn) for n in g.nodes] == [("harmonic", "none"), ("noise", "none")]


def test_the_graph_streams_a_runtime_table_without_tensorflow():
    """The nodes' NumPy halves, the registry and the stream import no TensorFlow (blocked)."""
    code = ("import sys; sys.modules['tensorflow'] = None; import json, numpy as np; "
            "from ddspcli.runtime import synth; "
            f"table = json.load(open({str(MODELS / 'violin' / 'runtime.json')!r}))['synth']; "
            "g = synth.graph_of(table, np.zeros(100, np.float32)); "
            "s = synth.SynthStream(table, 0, np.zeros(100, np.float32)); "
            "raw = {c.name: np.zeros((9, c.size), np.float32) for c in g.controls()}; "
            "parts = s.push(g.scale(raw, np.full(9, 220.0, np.float32))); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
            "and sys.modules[m] is not None]; "
            "print(sorted(parts), bad); sys.exit(1 if bad else 0)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "['audio', 'dry', 'harmonic', 'noise', 'reverb'] []" in run.stdout


def test_an_unknown_node_is_named():
    with pytest.raises(ValueError, match="unknown synthesis node 'nope'"):
        model_lib.graph_of(model_lib.config_text("tiny", [], ["Autoencoder.nodes = ['nope']"],
                                                 False))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 2. Each node's stream against its TensorFlow render.


@pytest.fixture(scope="module")
def full_graph() -> graph.Graph:
    return model_lib.graph_of(model_lib.config_text("tiny", [], [], False))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_harmonic_stream_equals_its_tensorflow_render(full_graph, seed):
    node = full_graph.node("harmonic")
    raw = random_raw(np.random.default_rng(seed), 211, full_graph)
    ref = tf_render(node, node.tf_module(None), raw)
    stream = node.stream(0, full_graph.lag, {}, {})
    ours = streamed(_Parts(stream), node.scale(raw, raw["f0_hz"]) | {"f0_hz": raw["f0_hz"]})
    assert_close(ours["out"], ref)


@pytest.mark.parametrize("window", [257, 0])
def test_the_noise_stream_equals_its_tensorflow_render(full_graph, window):
    g = model_lib.graph_of(model_lib.config_text(
        "tiny", [], [f"Autoencoder.noise_window_size = {window}"], False))  # fmt: skip
    node = g.node("noise")
    raw = random_raw(np.random.default_rng(2), 173, g)
    white = dsp.white_noise(5, 0, 173 * HOP)[None]
    ref = tf_render(node, node.tf_module(None), raw, white=white)
    stream = node.stream(5, g.lag, {}, {})
    ours = streamed(_Parts(stream), node.scale(raw, raw["f0_hz"]) | {"f0_hz": raw["f0_hz"]})
    assert_close(ours["out"], ref)


@pytest.mark.parametrize("room", ["free", "decay"])
def test_the_reverb_stream_equals_its_tensorflow_render(room):
    g = model_lib.graph_of(model_lib.config_text(
        "tiny", [], ["Autoencoder.reverb_length = 5000", f"Autoencoder.room = '{room}'"],
        False))  # fmt: skip
    node = g.node("reverb")
    module = node.tf_module(tf.random.Generator.from_seed(3))
    rng = np.random.default_rng(3)
    if room == "free":  # an audible decaying IR (the trained start is near silent)
        module.ir.assign((rng.normal(size=5000) * np.exp(-np.arange(5000) / 700) * 0.2)
                         .astype(np.float32))  # fmt: skip
    audio = (rng.normal(size=9001) * 0.3).astype(np.float32)
    ref = node.tf_apply(module, tf.constant(audio[None]))[0].numpy()
    stream = node.stream(0, 1, node.runtime_weights(module), {})
    at, pieces = 0, []
    for size in (1, 317, 1023, 1025, 77, 6558):
        pieces.append(node.mix(audio[at : at + size], stream.push(audio[at : at + size])))
        at += size
    assert at == len(audio)
    assert_close(np.concatenate(pieces), ref)
    assert np.abs(ref - audio).max() > 1e-3  # the wet part is audible


class _Parts:
    """A source's stream as a one-part stream (``{"out": samples}``) for `streamed`."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def push(self, controls):
        return {"out": self.stream.push({k: v for k, v in controls.items()})}

    def finish(self):
        return {"out": self.stream.finish()}


# ---------------------------------------------------------------------------------------------
# 3. Stems.


def test_the_stems_from_walking_the_graph_sum_to_the_mix():
    g = model_lib.graph_of(model_lib.config_text("tiny", [], ["Autoencoder.reverb_length = 3000"],
                                                 False))  # fmt: skip
    rng = np.random.default_rng(4)
    ir = (rng.normal(size=3000) * np.exp(-np.arange(3000) / 500) * 0.2).astype(np.float32)
    ir[0] = 0.0
    raw = random_raw(rng, 300, g)
    stream = g.stream(1, {"reverb": {"ir": ir}})
    parts = streamed(stream, g.scale(raw, raw["f0_hz"]))
    assert stream.stems == g.stems == ("harmonic", "noise", "reverb")
    total = sum(parts[s] for s in stream.stems)
    assert_close(total, parts["audio"], rel=1e-6)
    assert_close(parts["harmonic"] + parts["noise"], parts["dry"], rel=1e-6)
    dry = streamed(g.dry().stream(1), g.scale(raw, raw["f0_hz"]))
    np.testing.assert_array_equal(dry["audio"], parts["dry"])  # --no-reverb: the sources only
    assert "reverb" not in dry


# ---------------------------------------------------------------------------------------------
# 4. A new synthesizer: this class and one gin line.


class SineStream(FrameStream):
    """The sine's stream: each frame's amplitude held for its `hop` samples."""

    def __init__(self, node: Sine, lag: int) -> None:
        super().__init__(node.hop, lag)
        self.node = node

    def render(self, ahead, first, count):
        n = np.arange(first * self.hop, (first + count) * self.hop, dtype=np.float64)
        tone = np.sin(2 * np.pi * self.node.frequency_hz * n / self.node.sample_rate)
        amps = np.repeat(np.asarray(ahead["sine_amplitude"][:count], np.float32), self.hop)
        return (amps * tone.astype(np.float32)).astype(np.float32)


@graph.register
@dataclass(frozen=True)
class Sine(Node):
    """A sine at `frequency_hz` whose amplitude the decoder drives (one control)."""

    name = "test_sine"
    attr = "sine"
    frequency_hz: float = 440.0

    @classmethod
    def from_params(cls, params):
        return cls(int(params["sample_rate"]), int(params["hop"]))

    @classmethod
    def from_table(cls, table):
        return cls(int(table["sample_rate"]), int(table["hop"]), float(table["sine_hz"]))

    def describe(self):
        return {"sine_hz": self.frequency_hz}

    def controls(self):
        return (Control("sine_amplitude", 1),)

    def scale(self, raw, f0_hz):
        return {"sine_amplitude": graph.exp_sigmoid(raw["sine_amplitude"])[:, 0] * 0.1}

    def stream(self, seed, lag, weights, kernels):
        return SineStream(self, lag)

    def tf_controls(self, module, raw, f0_hz):
        dsp_tf = tfimport.engine_module("dsp")
        return {"sine_amplitude": dsp_tf.exp_sigmoid(raw["sine_amplitude"]) * 0.1}

    def tf_signal(self, module, controls, context):
        tf_ = tfimport.engine_module("_tensorflow").tf
        amps = tf_.repeat(controls["sine_amplitude"][..., 0], self.hop, axis=1)  # [b, n]
        n = np.arange(context.n_samples, dtype=np.float64)
        tone = np.sin(2 * np.pi * self.frequency_hz * n / self.sample_rate).astype(np.float32)
        return amps * tone[None]


def test_a_new_synthesizer_is_one_class_and_its_gin_line(tmp_path):
    line = "Autoencoder.nodes = ['harmonic', 'noise', 'test_sine', 'reverb']"
    config = model_lib.config_text(
        "tiny", [], ["Autoencoder.rnn_units = 16", "Autoencoder.reverb_length = 2000", line], False
    )
    m = model_lib.build_model(config, seed=2)
    assert [n.attr for n in m.graph.nodes] == ["harmonic", "noise", "sine", "reverb"]
    assert m.dense_out.kernel.shape[-1] == 1 + 60 + 65 + 1  # the decoder grew its control
    t = 120
    feats = {"f0_hz": np.full(t, 220.0, np.float32),
             "loudness_db": np.linspace(-50, -20, t).astype(np.float32)}  # fmt: skip
    white = dsp.white_noise(0, 0, t * HOP)[None]
    one_shot = m({k: tf.constant(v[None]) for k, v in feats.items()}, white=white)
    sine = one_shot["sine"][0].numpy()
    assert np.abs(sine).max() > 1e-3
    dry = one_shot["harmonic"] + one_shot["noise"] + one_shot["sine"]
    np.testing.assert_allclose(one_shot["dry"].numpy(), dry.numpy(), atol=1e-7)
    # The TensorFlow reference drives the graph's stream: the sine streams with the others.
    ref = streaming.StreamRenderer(m, seed=0, block_frames=37).render(
        feats, None, ("audio", "sine", "dry"))  # fmt: skip
    assert_close(ref["sine"], sine)
    assert_close(ref["audio"], one_shot["audio"][0].numpy(), rel=1e-4)
    # Exported and played by the runtime (LiteRT decoder, NumPy graph, no other module told).
    folder = tmp_path / "sine"
    tflite_export.write_runtime_files(m, folder)
    desc = json.loads((folder / "runtime.json").read_text())
    assert desc["synth"]["nodes"] == ["harmonic", "noise", "test_sine", "reverb"]
    rt = runtime.load(folder)
    out = rt.render(**feats, stems=True)
    assert set(out) == {"audio", *rt.stems()}
    assert rt.stems() == ("harmonic", "noise", "sine", "reverb")
    assert rt.stems(reverb=False) == ("harmonic", "noise", "sine")
    assert_close(out["sine"], sine, rel=1e-4)
    assert_close(out["audio"], ref["audio"], rel=1e-4)
    assert synth.graph_of(desc["synth"]).node("sine") == Sine(SR, HOP)
