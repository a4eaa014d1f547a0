"""The DDSP autoencoder: preprocessor, (optional z encoder), RNN+MLP decoder, synth graph.

Features in (the engine's dict: ``f0_hz``, ``loudness_db`` ``[b, t]``, plus ``audio`` ``[b, n]``
for the z encoder), audio out. Every hyperparameter is a gin binding on `Autoencoder`; the
variants in ``ddspcli/configs/*.gin`` set them. A model directory holds ``model.json``,
``config.gin``, ``statistics.json`` and a checkpoint; `load_model_dir` rebuilds it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import gin

from ddspcli import choices, storage
from ddspcli.engine import dsp, nn
from ddspcli.engine import graph as graph_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.engine.graph import reverb

F0_RANGE = 127.0  # MIDI notes
LD_RANGE = 80.0  # dB
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
VARIANTS = choices.values(choices.Variant)
ROOMS = reverb.ROOMS  # `Autoencoder.room`: a free IR (`synths.Reverb`) or `room.Room`
# What `graph.Graph.from_params` reads of `Autoencoder`'s parameters.
GRAPH_PARAMS = ("sample_rate", "frame_rate", "n_harmonics", "n_noise_bands", "reverb_length",
                "room", "noise_window_size", "nodes")  # fmt: skip


def preprocess(f0_hz: tf.Tensor, loudness_db: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Network inputs: ``f0_scaled = midi(f0) / 127`` and ``ld_scaled = loudness / 80 + 1``.

    Args:
        f0_hz, loudness_db: ``[b, t]`` (Hz, dB).
    Returns:
        two ``[b, t, 1]`` tensors, roughly in [0, 1].
    """
    f0 = dsp.hz_to_midi(dsp.tf_float32(f0_hz)) / F0_RANGE
    ld = dsp.tf_float32(loudness_db) / LD_RANGE + 1.0
    return f0[..., None], ld[..., None]


Z_STYLES = ("ddspcli", "ddsp")


class ZEncoder(tf.Module):
    """Audio -> 30 MFCCs (128 mel bands, 20 Hz-8 kHz) -> normalisation -> GRU -> z.

    Two styles: ``ddspcli`` (FFT 1024, hop 256, ``log(mel + 1e-6)``, layer norm over the 30
    coefficients of each frame: causal, so blocks stream exactly) and ``ddsp`` (the official
    ``MfccTimeDistributedRnnEncoder``, for imported models: FFT and hop from its
    ``z_time_steps``, ``log(max(mel, 1e-5))``, instance norm of each coefficient over the whole
    input, so a streamed input is normalised block by block).
    """

    def __init__(
        self,
        z_dims: int,
        units: int,
        sample_rate: int,
        rng: tf.random.Generator,
        style: str = "ddspcli",
        fft_size: int = 1024,
        hop: int = 256,
    ):
        super().__init__(name="z_encoder")
        if style not in Z_STYLES:
            raise ValueError(f"unknown z encoder style {style!r}; use one of {Z_STYLES}")
        self.sample_rate, self.style, self.fft_size, self.hop = sample_rate, style, fft_size, hop
        self.norm = nn.LayerNorm(30) if style == "ddspcli" else nn.InstanceNorm(30)
        self.rnn = nn.GRU(30, units, rng)
        self.out = nn.Dense(units, z_dims, rng)

    def log_mel(self, audio: tf.Tensor) -> tf.Tensor:
        """``[b, n]`` audio -> ``[b, ceil(n / hop), 128]`` log mel magnitudes (20 Hz-8 kHz,
        the end zero-padded; the floor as the style's)."""
        spec = tf.abs(tf.signal.stft(audio, self.fft_size, self.hop, self.fft_size,
                                     pad_end=True))  # fmt: skip
        weights = tf.signal.linear_to_mel_weight_matrix(
            128, self.fft_size // 2 + 1, self.sample_rate, 20.0, 8000.0)  # fmt: skip
        mel = tf.tensordot(spec, weights, 1)
        if self.style == "ddsp":
            return tf.math.log(tf.where(mel <= 1e-5, 1e-5, mel))
        return tf.math.log(mel + 1e-6)

    def mfcc(self, audio: tf.Tensor) -> tf.Tensor:
        """``[b, n]`` audio -> ``[b, ceil(n / hop), 30]`` MFCCs: the DCT of `log_mel` (the
        runtime's export does the same DCT as a matrix, `tflite_export.mfcc_builtin`)."""
        return tf.signal.mfccs_from_log_mel_spectrograms(self.log_mel(audio))[..., :30]

    def __call__(
        self, audio: tf.Tensor, n_frames: int, state: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``[b, n]`` audio -> ``(z [b, n_frames, z_dims], GRU state [b, units])``."""
        hidden, state = self.rnn(self.norm(self.mfcc(audio)), state)
        return dsp.resample_linear(self.out(hidden), n_frames), state


@gin.configurable
class Autoencoder(tf.Module):
    """Features -> controls -> the synthesis graph (`graph.Graph`; by default harmonic,
    filtered noise when ``n_noise_bands``, a trainable reverb when ``reverb_length``) -> audio.

    Each node's `tf.Module` is the attribute named by its ``attr`` (``harmonic``, ``noise``,
    ``reverb``: the checkpoint paths ``model/harmonic``, ... of every saved model); an absent
    default node's attribute is None.

    Args:
        sample_rate: Hz. frame_rate: feature frames per second (``hop = sample_rate/frame_rate``).
        rnn_units: GRU width. mlp_units, mlp_layers: width and depth of each MLP stack
            (``mlp_layers = 0``: no stacks, the raw inputs feed the GRU).
        n_harmonics, n_noise_bands: synth sizes (``n_noise_bands = 0``: no noise).
        reverb_length: samples of the trainable impulse response (0: no reverb).
        room: what the reverb is: ``free`` (every tap trainable, `synths.Reverb`) or
            ``decay`` (a decay time and a bounded level per octave band, `room.Room`).
        noise_window_size: taps of the noise filter's window (0: the filter's full length,
            as the official library's default; imported models use it).
        nodes: the graph's node names (empty: harmonic, noise, reverb); a new synthesizer's
            gin line names it here.
        z_dims: latent size of the MFCC encoder (0: no encoder).
        z_style, z_fft_size, z_hop: the encoder's style and STFT (see `ZEncoder`).
        z_rnn_units: the encoder's GRU width (0: `rnn_units`).
        seed: initial weights.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_rate: int = 250,
        rnn_units: int = 512,
        mlp_units: int = 512,
        mlp_layers: int = 3,
        n_harmonics: int = 60,
        n_noise_bands: int = 65,
        reverb_length: int = 48000,
        room: str = "free",
        noise_window_size: int = 257,
        nodes: tuple[str, ...] = (),
        z_dims: int = 0,
        z_style: str = "ddspcli",
        z_fft_size: int = 1024,
        z_hop: int = 256,
        z_rnn_units: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(name="autoencoder")
        if sample_rate % frame_rate:
            raise ValueError(f"sample_rate {sample_rate} is not a multiple of {frame_rate}")
        self.sample_rate, self.frame_rate = sample_rate, frame_rate
        self.hop = sample_rate // frame_rate
        self.n_harmonics, self.n_noise_bands, self.z_dims = n_harmonics, n_noise_bands, z_dims
        rng = tf.random.Generator.from_seed(seed)
        z_units = z_rnn_units or rnn_units
        self.encoder = None
        if z_dims:
            self.encoder = ZEncoder(z_dims, z_units, sample_rate, rng, z_style, z_fft_size, z_hop)
        names = ["f0", "ld"] + (["z"] if z_dims else [])
        sizes = {"f0": 1, "ld": 1, "z": z_dims}
        self.stacks = [nn.MLP(sizes[k], mlp_units, mlp_layers, rng, name=k) for k in names]
        stack_out = sum(mlp_units if mlp_layers else sizes[k] for k in names)
        self.rnn = nn.GRU(stack_out, rnn_units, rng)
        self.out_stack = nn.MLP(stack_out + rnn_units, mlp_units, mlp_layers, rng, name="out")
        out_in = mlp_units if mlp_layers else stack_out + rnn_units
        self.graph = graph_lib.Graph.from_params(dict(
            sample_rate=sample_rate, frame_rate=frame_rate, n_harmonics=n_harmonics,
            n_noise_bands=n_noise_bands, reverb_length=reverb_length, room=room,
            noise_window_size=noise_window_size, nodes=nodes))  # fmt: skip
        n_controls = sum(c.size for c in self.graph.controls())
        self.dense_out = nn.Dense(out_in, n_controls, rng, name="controls")
        self.harmonic = self.noise = self.reverb = None
        for node in self.graph.nodes:  # in order: the reverb draws its start from `rng`
            setattr(self, node.attr, node.tf_module(rng))

    def node_module(self, node: graph_lib.Node) -> tf.Module:
        """The `tf.Module` of one of the graph's nodes."""
        return getattr(self, node.attr)

    def decode(
        self, features: dict[str, tf.Tensor], state: tf.Tensor | None = None
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Features -> raw controls ``{amplitudes [b,t,1], harmonic_distribution [b,t,k],
        noise_magnitudes [b,t,m]}`` and the GRU's final state ``[b, rnn_units]``."""
        f0, ld = preprocess(features["f0_hz"], features["loudness_db"])
        inputs = [f0, ld] + ([features["z"]] if self.z_dims else [])
        stacked = [stack(x) for stack, x in zip(self.stacks, inputs, strict=True)]
        hidden, state = self.rnn(tf.concat(stacked, axis=-1), state)
        return self._split(self.dense_out(self.out_stack(tf.concat([*stacked, hidden], -1)))), state

    def decode_frame(
        self, f0_scaled: tf.Tensor, ld_scaled: tf.Tensor, state: tf.Tensor
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """One frame from the scaled inputs, in plain ops (the DDSP-VST export; no z).

        Args:
            f0_scaled, ld_scaled: ``[b, 1]`` (``midi / 127``, ``dB / 80 + 1``).
            state: ``[b, rnn_units]``.
        Returns:
            raw controls ``{amplitudes [b, 1], harmonic_distribution [b, k],
            noise_magnitudes [b, m]}`` and the new state ``[b, rnn_units]``.
        """
        stacked = [stack(x) for stack, x in zip(self.stacks, (f0_scaled, ld_scaled), strict=True)]
        state = self.rnn.step(tf.concat(stacked, axis=-1), state)
        return self._split(self.dense_out(self.out_stack(tf.concat([*stacked, state], -1)))), state

    def _split(self, raw: tf.Tensor) -> dict[str, tf.Tensor]:
        """The decoder's last axis -> the graph's controls (amplitude, harmonic distribution,
        noise magnitudes, ...), each ``[..., size]``."""
        controls, at = {}, 0
        for control in self.graph.controls():
            controls[control.name] = raw[..., at : at + control.size]
            at += control.size
        return controls

    def scale_controls(self, raw: dict[str, tf.Tensor], f0_hz: tf.Tensor) -> dict[str, tf.Tensor]:
        """Raw decoder outputs ``[b, t, size]`` and ``f0_hz`` ``[b, t, 1]`` (Hz) -> every
        source's physical controls, plus ``f0_hz``."""
        controls = {}
        for node in self.graph.sources:
            controls.update(node.tf_controls(self.node_module(node), raw, f0_hz))
        if "f0_hz" not in controls:  # (the harmonic's controls carry it)
            controls["f0_hz"] = dsp.tf_float32(f0_hz)
        return controls

    def controls(
        self, features: dict[str, tf.Tensor], state: dict[str, tf.Tensor] | None = None
    ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """Features -> the synthesizers' physical controls, frame by frame.

        Args:
            features: ``f0_hz``, ``loudness_db`` ``[b, t]``; ``audio`` ``[b, t * hop]`` when
                the model has a z encoder (or a precomputed ``z`` ``[b, t, z_dims]``).
            state: ``{"rnn": [b, units], "z_rnn": [b, units]}`` from the previous block.
        Returns:
            ``({f0_hz [b,t,1] Hz, amplitudes [b,t,1], harmonic_distribution [b,t,k] (sums to
            1 below Nyquist), noise_magnitudes [b,t,m] linear}, state)``.
        """
        state = dict(state or {})
        f0_hz = dsp.tf_float32(features["f0_hz"])
        features = dict(features)
        if self.encoder is not None and "z" not in features:
            features["z"], state["z_rnn"] = self.encoder(
                dsp.tf_float32(features["audio"]), int(f0_hz.shape[1]), state.get("z_rnn")
            )
        raw, state["rnn"] = self.decode(features, state.get("rnn"))
        return self.scale_controls(raw, f0_hz[..., None]), state

    def __call__(
        self,
        features: dict[str, tf.Tensor],
        noise_seed: tf.Tensor | None = None,
        state: dict[str, tf.Tensor] | None = None,
        white: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """Resynthesize in one piece (training, short inputs; `transfer` streams long ones).

        Args:
            features: see `controls`.
            noise_seed: ``[2]`` int seed of the noise (stateless, so runs are repeatable).
            state: ``{"rnn", "z_rnn": [b, units], "phase": [b, 1, 1]}`` from a previous block.
            white: ``[b, t * hop]`` uniform noise to filter instead of drawing it.
        Returns:
            ``audio`` ``[b, t * hop]`` and its parts (each source's, e.g. ``harmonic``,
            ``noise``; ``dry``, their sum before the effects), plus ``state`` for the next
            block.
        """
        state = state or {}
        controls, new_state = self.controls(features, state)
        n_samples = int(controls["f0_hz"].shape[1]) * self.hop
        context = graph_lib.TFContext(n_samples, state, new_state, noise_seed, white)
        out = {n.attr: n.tf_signal(self.node_module(n), controls, context)
               for n in self.graph.sources}  # fmt: skip
        dry = out[self.graph.sources[0].attr]
        for node in self.graph.sources[1:]:
            dry = dry + out[node.attr]
        out["dry"] = audio = dry
        for node in self.graph.effects:
            audio = node.tf_apply(self.node_module(node), audio)
        out["audio"] = audio
        out["state"] = new_state
        return out


# ---------------------------------------------------------------------------------------------
# Configuration and model directories.

MODEL_JSON = "model.json"
CONFIG_GIN = "config.gin"


def variant_file(variant: str) -> Path:
    """The gin file of a named variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return CONFIG_DIR / f"{variant}.gin"


def config_text(variant: str, gin_files: list[str], gin_params: list[str], z: bool) -> str:
    """One gin text: the variant, extra files, ``--z``, then parameter overrides in order."""
    parts = [variant_file(variant).read_text()]
    parts += [Path(f).read_text() for f in gin_files]
    if z:
        parts.append("Autoencoder.z_dims = 16")
    parts += gin_params
    return "\n".join(parts) + "\n"


def bound_parameters(config: str, names: tuple[str, ...]) -> dict[str, object]:
    """The `Autoencoder` parameters among `names` that a gin text binds explicitly."""
    gin.clear_config()
    gin.parse_config(config)
    found = {}
    for name in names:
        with contextlib.suppress(ValueError):  # raised for a parameter that is not bound
            found[name] = gin.query_parameter(f"Autoencoder.{name}")
    return found


def graph_of(config: str) -> graph_lib.Graph:
    """The synthesis graph a gin text gives (`Autoencoder`'s defaults where unbound), without
    building the model."""
    defaults = {k: p.default for k, p in inspect.signature(Autoencoder).parameters.items()
                if k in GRAPH_PARAMS}  # fmt: skip
    return graph_lib.Graph.from_params(defaults | bound_parameters(config, GRAPH_PARAMS))


def build_model(config: str, **overrides: object) -> Autoencoder:
    """Parse a gin text (clearing earlier bindings) and build the model."""
    gin.clear_config()
    gin.parse_config(config)
    return Autoencoder(**overrides)


def _without_tf_internals(message: str) -> str:
    """The first line of a TensorFlow error without its op and device decorations
    (``{{function_node __wrapped__RestoreV2...}}``, ``[Op:RestoreV2]``)."""
    import re

    first = message.splitlines()[0] if message else ""
    first = re.sub(r"\{\{[^}]*\}\}\s*", "", first)
    return re.sub(r"\s*\[Op:[^\]]*\]", "", first).strip()


@dataclass
class LoadedModel:
    """A model directory, rebuilt: the module and the JSON next to it."""

    model: Autoencoder
    info: dict
    statistics: dict
    path: str


def load_model_dir(path: str) -> LoadedModel:
    """Rebuild the model of a directory written by `ddsp fit` and restore its weights."""
    from ddspcli.errors import ModelError

    info_path = storage.join(path, MODEL_JSON)
    if not storage.exists(info_path):
        raise ModelError(f"{path} is not a model directory (no {MODEL_JSON})")
    try:
        info = json.loads(storage.read_text(info_path))
        config = storage.read_text(storage.join(path, CONFIG_GIN))
        model = build_model(config)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{path}: cannot read the model description: {err}") from None
    stats_path = storage.join(path, "statistics.json")
    statistics = json.loads(storage.read_text(stats_path)) if storage.exists(stats_path) else {}
    prefix = storage.join(path, info["checkpoint"])
    try:
        tf.train.Checkpoint(model=model).read(
            prefix
        ).assert_existing_objects_matched().expect_partial()
    except Exception as err:  # a damaged file can fail in any layer of the reader
        message = _without_tf_internals(str(err)) or type(err).__name__
        raise ModelError(
            f"{path}: checkpoint {info['checkpoint']} is unreadable: {message}"
        ) from None
    return LoadedModel(model, info, statistics, path)
