"""A checkpoint written by the official library (ddsp 3.7.0's own training code) drives
ddspcli's model: same controls as the official library computed on the same features."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ddspcli.engine import magenta_ckpt
from ddspcli.errors import ModelError


@pytest.fixture(scope="module")
def official(data_dir):
    folder = data_dir / "ddsp370_solo_small"
    with np.load(folder / "golden_controls.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    return folder, golden


def test_the_config_is_read(official):
    config = magenta_ckpt.read_config(official[0])
    assert (config.rnn_channels, config.ch, config.layers_per_stack) == (64, 64, 3)
    assert config.input_keys == ("ld_scaled", "f0_scaled")
    assert (config.n_harmonics, config.n_noise_bands, config.reverb_length) == (60, 65, 48000)


def test_controls_equal_the_official_library(official):
    folder, golden = official
    config = magenta_ckpt.read_config(folder)
    model = magenta_ckpt.build_model(config)
    copied = magenta_ckpt.load_weights(model, config, magenta_ckpt.latest_checkpoint(folder))
    assert copied == len(model.trainable_variables) == 42  # the checkpoint's model/... keys
    features = {"f0_hz": golden["f0_hz"][None], "loudness_db": golden["loudness_db"][None]}
    raw, _ = model.decode(features)
    for ours, theirs in (("amplitudes", "amps_raw"),
                         ("harmonic_distribution", "harmonic_distribution_raw"),
                         ("noise_magnitudes", "noise_magnitudes_raw")):  # fmt: skip
        np.testing.assert_allclose(raw[ours].numpy()[0], golden[theirs], atol=5e-6, rtol=0)
    controls, _ = model.controls(features)
    pairs = (("amplitudes", "amps"), ("harmonic_distribution", "harmonic_distribution"),
             ("noise_magnitudes", "noise_magnitudes"))  # fmt: skip
    for ours, theirs in pairs:
        scale = np.abs(golden[theirs]).max()
        np.testing.assert_allclose(controls[ours].numpy()[0], golden[theirs], atol=1e-5 * scale)
    np.testing.assert_array_equal(model.reverb.ir.numpy(), golden["ir"])


def test_bad_folders_are_one_clear_error(official, tmp_path):
    folder, _ = official
    with pytest.raises(ModelError, match="no operative_config"):
        magenta_ckpt.read_config(tmp_path)
    with pytest.raises(ModelError, match=r"no ckpt-N\.index"):
        magenta_ckpt.latest_checkpoint(tmp_path)
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    gin = other / "operative_config-0.gin"
    gin.write_text(gin.read_text().replace("RnnFcDecoder.rnn_channels = 64",
                                           "RnnFcDecoder.rnn_channels = 32"))  # fmt: skip
    config = magenta_ckpt.read_config(other)
    with pytest.raises(ModelError, match=r"rnn/cell/kernel has shape \[128, 192\]"):
        magenta_ckpt.load_weights(magenta_ckpt.build_model(config), config,
                                  magenta_ckpt.latest_checkpoint(other))  # fmt: skip
    gin.write_text(gin.read_text().replace("@decoders.RnnFcDecoder()", "@decoders.MidiDecoder()"))
    with pytest.raises(ModelError, match="only RnnFcDecoder"):
        magenta_ckpt.read_config(other)


def test_models_import_writes_a_model_folder_every_command_can_use(official, data_dir, tmp_path):
    import json
    import os
    import pickle

    import soundfile as sf
    from clirun import ddsp

    from ddspcli.engine import model as model_lib
    from ddspcli.errors import EXIT_MODEL, EXIT_OUTPUT

    folder, golden = official
    src = tmp_path / "solo_ckpt"
    shutil.copytree(folder, src)
    shutil.copy(data_dir / "ddsp370_dataset_statistics.pkl", src / "dataset_statistics.pkl")
    run = ddsp("models", "import", src, "-o", tmp_path / "imported")
    assert run.returncode == 0, run.stderr
    loaded = model_lib.load_model_dir(str(tmp_path / "imported"))
    assert loaded.info["steps"] == 30 and loaded.info["parameters"] == 132158  # the README's
    assert loaded.statistics["mean_pitch"] == pytest.approx(68.53, abs=0.01)
    raw, _ = loaded.model.decode({"f0_hz": golden["f0_hz"][None],
                                  "loudness_db": golden["loudness_db"][None]})  # fmt: skip
    np.testing.assert_allclose(raw["amplitudes"].numpy()[0], golden["amps_raw"], atol=5e-6)
    out = tmp_path / "out.wav"
    run = ddsp("transfer", data_dir / "speech_arctic_a0001.wav", "--model",
               tmp_path / "imported", "-o", out, "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["adjustments"]["auto_adjusted"]
    assert sf.info(out).frames == sf.info(data_dir / "speech_arctic_a0001.wav").frames
    # Refusals: onto its own source, over an existing folder, a malicious statistics pickle.
    assert ddsp("models", "import", src, "-o", src, "--force").returncode == EXIT_OUTPUT
    assert ddsp("models", "import", src, "-o", tmp_path / "imported").returncode == EXIT_OUTPUT
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (src / "dataset_statistics.pkl").write_bytes(pickle.dumps({"x": Exploit()}))
    run = ddsp("models", "import", src, "-o", tmp_path / "evil")
    assert run.returncode == EXIT_MODEL and b"refused to unpickle" in run.stderr
    assert not marker.exists() and not (tmp_path / "evil").exists()
    (src / "dataset_statistics.pkl").unlink()
    run = ddsp("models", "import", src, "-o", tmp_path / "nostats")
    assert run.returncode == 0 and b"auto-adjust is off" in run.stderr
    assert not (tmp_path / "nostats" / "statistics.json").exists()


def test_model_option_imports_a_checkpoint_folder_on_the_fly(official, data_dir, tmp_path):
    from clirun import ddsp

    src = tmp_path / "ckpt"
    shutil.copytree(official[0], src)
    env = {"DDSP_HOME": str(tmp_path / "home")}
    clip = data_dir / "speech_arctic_a0001.wav"
    first = ddsp("transfer", clip, "--model", src, "-o", tmp_path / "a.wav", env=env)
    assert first.returncode == 0 and b"importing the official DDSP checkpoint" in first.stderr
    [cached] = [p for p in (tmp_path / "home" / "imported").iterdir() if p.is_dir()]
    assert (cached / "model.json").exists()
    again = ddsp("transfer", clip, "--model", src, "-o", tmp_path / "b.wav", env=env)
    assert again.returncode == 0 and b"importing" not in again.stderr  # imported once
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_harmonic_audio_of_the_imported_controls_matches_the_official_oscillator(official):
    """The imported model's controls through the official oscillator bank (reproduced step
    for step: bit-identical on the official controls) give the official harmonic audio within
    1e-4 of its peak (measured 6.7e-7). ddspcli's own float64-phase oscillator differs by the
    official float32 phase drift (README)."""
    folder, golden = official
    np.testing.assert_array_equal(magenta_ckpt.official_harmonic_synthesis(
        golden["f0_hz"][None, :, None], golden["amps"][None],
        golden["harmonic_distribution"][None], 48000, 16000)[0], golden["harmonic_audio"])
    config = magenta_ckpt.read_config(folder)
    model = magenta_ckpt.build_model(config)
    magenta_ckpt.load_weights(model, config, magenta_ckpt.latest_checkpoint(folder))
    controls, _ = model.controls({"f0_hz": golden["f0_hz"][None],
                                  "loudness_db": golden["loudness_db"][None]})  # fmt: skip
    audio = magenta_ckpt.official_harmonic_synthesis(
        controls["f0_hz"].numpy(), controls["amplitudes"].numpy(),
        controls["harmonic_distribution"].numpy(), 48000, 16000,
    )[0]  # fmt: skip
    theirs = golden["harmonic_audio"]
    assert np.abs(audio - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_the_whole_deterministic_audio_matches_the_official_library(official):
    """The imported noise filter on the official stored white noise, and the imported reverb
    on the official dry sum: the noise and the final audio equal the official (1e-7)."""
    from ddspcli.engine._tensorflow import tf

    folder, golden = official
    config = magenta_ckpt.read_config(folder)
    model = magenta_ckpt.build_model(config)
    magenta_ckpt.load_weights(model, config, magenta_ckpt.latest_checkpoint(folder))
    assert model.noise.window_size == 0  # the official FilteredNoise.window_size
    noise = model.noise.get_signal(tf.constant(golden["noise_magnitudes"][None]),
                                   tf.constant(golden["white_noise"][None])).numpy()[0]
    np.testing.assert_allclose(noise, golden["noise_audio_det"], atol=1e-7)
    harmonic = magenta_ckpt.official_harmonic_synthesis(
        golden["f0_hz"][None, :, None], golden["amps"][None],
        golden["harmonic_distribution"][None], 48000, 16000,
    )  # fmt: skip
    audio = model.reverb(tf.constant(harmonic + noise[None])).numpy()[0]
    np.testing.assert_allclose(audio, golden["audio_synth_det"], atol=1e-7, rtol=0)


def _official_layout(model, theirs: list[str]) -> object:
    """A checkpointable tree with the official library's variable names (``model/...``)
    holding `model`'s weights; `theirs` is the official decoder input order, e.g.
    ``["ld", "f0", "z"]`` (ddspcli's is f0, ld, z). Written independently of the importer."""
    from ddspcli.engine._tensorflow import tf

    def module(**variables):
        m = tf.Module()
        for name, value in variables.items():
            setattr(m, name, tf.Variable(value))
        return m

    def stack(mlp, rows=None):
        holder = tf.Module()
        for i, (dense, norm) in enumerate(zip(mlp.dense, mlp.norm, strict=True)):
            kernel = dense.kernel.numpy()
            layer = tf.Module()
            setattr(layer, "layer_with_weights-0", module(
                kernel=kernel[rows] if i == 0 and rows is not None else kernel,
                bias=dense.bias.numpy()))  # fmt: skip
            setattr(layer, "layer_with_weights-1", module(gamma=norm.gamma.numpy(),
                                                          beta=norm.beta.numpy()))  # fmt: skip
            setattr(holder, f"layer_with_weights-{i}", layer)
        return holder

    ours = ["f0", "ld", "z"][: len(theirs)]
    sizes = {"f0": 1, "ld": 1, "z": model.z_dims}
    stacked = bool(model.stacks[0].dense)
    width = {k: (model.stacks[0].dense[0].kernel.shape[1] if stacked else sizes[k]) for k in ours}
    starts = dict(zip(ours, np.cumsum([0] + [width[k] for k in ours]), strict=False))
    # official row r of a [their inputs..., gru] kernel reads our row rows[r]
    rows = np.concatenate([np.arange(starts[k], starts[k] + width[k]) for k in theirs])
    n_in = sum(width.values())
    out_rows = np.r_[rows, np.arange(n_in, n_in + model.rnn.units)]
    root = tf.Module()
    root.model = tf.Module()
    decoder = root.model.decoder = tf.Module()
    decoder.input_stacks = [stack(model.stacks[ours.index(k)]) for k in theirs]
    decoder.rnn = tf.Module()
    decoder.rnn.rnn = tf.Module()
    decoder.rnn.rnn.cell = module(kernel=model.rnn.kernel.numpy()[rows],
                                  recurrent_kernel=model.rnn.recurrent_kernel.numpy(),
                                  bias=model.rnn.bias.numpy())  # fmt: skip
    if stacked:
        decoder.out_stack = stack(model.out_stack, out_rows)
        decoder.dense_out = module(kernel=model.dense_out.kernel.numpy(),
                                   bias=model.dense_out.bias.numpy())  # fmt: skip
    else:
        decoder.dense_out = module(kernel=model.dense_out.kernel.numpy()[out_rows],
                                   bias=model.dense_out.bias.numpy())  # fmt: skip
    if model.encoder is not None:
        enc = model.encoder
        encoder = root.model.encoder = tf.Module()
        encoder.z_norm = module(scale=enc.norm.scale.numpy().reshape(1, 1, 1, -1),
                                shift=enc.norm.shift.numpy().reshape(1, 1, 1, -1))  # fmt: skip
        encoder.rnn = tf.Module()
        encoder.rnn.rnn = tf.Module()
        encoder.rnn.rnn.cell = module(kernel=enc.rnn.kernel.numpy(),
                                      recurrent_kernel=enc.rnn.recurrent_kernel.numpy(),
                                      bias=enc.rnn.bias.numpy())  # fmt: skip
        encoder.dense_out = module(kernel=enc.out.kernel.numpy(), bias=enc.out.bias.numpy())
    return root


def _randomize(model, seed: int) -> None:
    from ddspcli.engine._tensorflow import tf

    for i, variable in enumerate(model.trainable_variables):  # weights unlike the init
        variable.assign(tf.random.stateless_normal(variable.shape, [seed, i]) * 0.3)


def test_a_tiny_configuration_round_trips_through_the_official_layout(official, tmp_path):
    """`layers_per_stack = 0` (the official tiny shape, no reverb): a checkpoint written in the
    official layout from a ddspcli model imports back to the same decoder outputs."""
    from ddspcli.engine._tensorflow import tf

    folder, golden = official
    gin = (folder / "operative_config-0.gin").read_text()
    gin = gin.replace("RnnFcDecoder.layers_per_stack = 3", "RnnFcDecoder.layers_per_stack = 0")
    gin = gin.replace("RnnFcDecoder.rnn_channels = 64", "RnnFcDecoder.rnn_channels = 32")
    gin = gin.replace("     (@effects.Reverb(), ['add/signal'])]", "]")
    src = tmp_path / "tiny_ckpt"
    src.mkdir()
    (src / "operative_config-0.gin").write_text(gin)
    config = magenta_ckpt.read_config(src)
    assert (config.layers_per_stack, config.rnn_channels, config.reverb_length) == (0, 32, 0)
    ours = magenta_ckpt.build_model(config)
    _randomize(ours, 7)
    tree = _official_layout(ours, ["ld", "f0"])
    tf.train.Checkpoint(model=tree.model).write(str(src / "ckpt-5"))
    imported = magenta_ckpt.build_model(config)
    assert magenta_ckpt.load_weights(imported, config, str(src / "ckpt-5")) == 5
    features = {"f0_hz": golden["f0_hz"][None], "loudness_db": golden["loudness_db"][None]}
    a, _ = ours.decode(features)
    b, _ = imported.decode(features)
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=1e-6)


AE_BINDINGS = """
Autoencoder.encoder = @encoders.MfccTimeDistributedRnnEncoder()
MfccTimeDistributedRnnEncoder.rnn_channels = 24
MfccTimeDistributedRnnEncoder.rnn_type = 'gru'
MfccTimeDistributedRnnEncoder.z_dims = 4
MfccTimeDistributedRnnEncoder.z_time_steps = 125
"""


def _ae_folder(folder, dest, layers: int = 1):
    """An ``ae.gin``-shaped operative config (z encoder, decoder inputs ld, f0, z), small."""
    gin = (folder / "operative_config-0.gin").read_text()
    gin = gin.replace("Autoencoder.encoder = None\n", AE_BINDINGS)
    gin = gin.replace("RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled')",
                      "RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled', 'z')")  # fmt: skip
    gin = gin.replace("RnnFcDecoder.layers_per_stack = 3",
                      f"RnnFcDecoder.layers_per_stack = {layers}")  # fmt: skip
    gin = gin.replace("RnnFcDecoder.ch = 64", "RnnFcDecoder.ch = 16")
    gin = gin.replace("RnnFcDecoder.rnn_channels = 64", "RnnFcDecoder.rnn_channels = 32")
    gin = gin.replace("     (@effects.Reverb(), ['add/signal'])]", "]")
    dest.mkdir()
    (dest / "operative_config-0.gin").write_text(gin)
    return dest


def test_a_z_autoencoder_imports_encoder_and_decoder(official, data_dir, tmp_path):
    """``ae.gin``'s shape: the official MFCC z encoder (FFT 1024, hop 512 for 125 z steps per
    4 s, instance norm) and a decoder fed (ld, f0, z): a checkpoint in the official layout
    imports back to the same z and controls, through `ddsp models import` too."""
    from clirun import ddsp

    from ddspcli.engine import model as model_lib
    from ddspcli.engine._tensorflow import tf

    folder, golden = official
    src = _ae_folder(folder, tmp_path / "ae_ckpt")
    config = magenta_ckpt.read_config(src)
    assert (config.z_dims, config.z_rnn_channels, config.z_fft_size, config.z_hop) == (
        4, 24, 1024, 512)  # fmt: skip
    assert config.reverb_length == 0 and config.input_keys[-1] == "z"
    ours = magenta_ckpt.build_model(config)
    _randomize(ours, 11)
    tree = _official_layout(ours, ["ld", "f0", "z"])
    tf.train.Checkpoint(model=tree.model).write(str(src / "ckpt-9"))
    run = ddsp("models", "import", src, "-o", tmp_path / "imported")
    assert run.returncode == 0, run.stderr
    imported = model_lib.load_model_dir(str(tmp_path / "imported")).model
    assert imported.encoder.style == "ddsp" and imported.z_dims == 4
    n = 48000
    features = {"f0_hz": golden["f0_hz"][None], "loudness_db": golden["loudness_db"][None],
                "audio": golden_audio(n)}  # fmt: skip
    a, _ = ours.controls(features)
    b, _ = imported.controls(features)
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=1e-6)
    za, _ = ours.encoder(features["audio"], 750)
    zb, _ = imported.encoder(features["audio"], 750)
    np.testing.assert_allclose(zb.numpy(), za.numpy(), atol=1e-6)
    clip = data_dir / "speech_arctic_a0001.wav"
    run = ddsp("transfer", clip, "-m", tmp_path / "imported", "-o", tmp_path / "z.wav")
    assert run.returncode == 0 and (tmp_path / "z.wav").stat().st_size > 40000, run.stderr


def golden_audio(n: int) -> np.ndarray:
    """``[1, n]`` a harmonic tone with a glide and some noise (16 kHz)."""
    t = np.arange(n) / 16000
    f0 = 220 * 2 ** (t / 3)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    rng = np.random.default_rng(3)
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.3
    return (tone + 0.01 * rng.standard_normal(n)).astype(np.float32)[None]


def test_the_official_style_mfcc_encoder_matches_an_independent_computation():
    """numpy/scipy: Hann STFT (FFT 1024, hop 512, end zero-padded), mel weights, log with a
    1e-5 floor, orthonormal-scaled DCT-II, instance norm over time (eps 1e-5)."""
    import scipy.fft

    from ddspcli.engine import model as model_lib
    from ddspcli.engine._tensorflow import tf

    encoder = model_lib.ZEncoder(4, 8, 16000, tf.random.Generator.from_seed(1), "ddsp", 1024, 512)
    audio = golden_audio(20000)
    frames = -(-audio.shape[1] // 512)
    padded = np.pad(audio[0], (0, (frames - 1) * 512 + 1024 - audio.shape[1]))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    spec = np.abs(np.fft.rfft(np.stack([padded[i * 512 : i * 512 + 1024] * window
                                        for i in range(frames)]), axis=-1))  # fmt: skip
    mel_weights = tf.signal.linear_to_mel_weight_matrix(128, 513, 16000, 20.0, 8000.0).numpy()
    log_mel = np.log(np.maximum(spec @ mel_weights, 1e-5))
    mfcc = scipy.fft.dct(log_mel, type=2, axis=-1)[:, :30] / np.sqrt(2 * 128)
    expected = (mfcc - mfcc.mean(0)) / np.sqrt(mfcc.var(0) + 1e-5)
    got = encoder.norm(encoder.mfcc(tf.constant(audio))).numpy()[0]
    assert got.shape == (frames, 30)
    np.testing.assert_allclose(got, expected, atol=1e-4)  # measured 1.3e-5


def test_unsupported_configurations_are_refused_naming_the_binding(official, tmp_path):
    folder, _ = official
    src = _ae_folder(folder, tmp_path / "ae")
    gin = src / "operative_config-0.gin"
    text = gin.read_text()
    gin.write_text(text.replace("MfccTimeDistributedRnnEncoder()", "MfccRnnEncoder()"))
    with pytest.raises(ModelError, match=r"Autoencoder\.encoder = @encoders\.MfccRnnEncoder"):
        magenta_ckpt.read_config(src)
    gin.write_text(text.replace("z_time_steps = 125", "z_time_steps = 100"))
    with pytest.raises(ModelError, match=r"z_time_steps = 100"):
        magenta_ckpt.read_config(src)
    gin.write_text(text.replace("'ld_scaled', 'f0_scaled', 'z'", "'ld_scaled', 'f0_scaled'"))
    with pytest.raises(ModelError, match="input_keys has no z"):
        magenta_ckpt.read_config(src)
    gin.write_text(text.replace("'ld_scaled', 'f0_scaled', 'z'", "'f0_midi', 'ld_scaled'"))
    with pytest.raises(ModelError, match=r"input_keys = \('f0_midi'"):
        magenta_ckpt.read_config(src)
    gin.write_text(text.replace("rnn_type = 'gru'", "rnn_type = 'lstm'"))
    with pytest.raises(ModelError, match="only 'gru'"):
        magenta_ckpt.read_config(src)


def test_the_ddsp_0x_names_are_read(official, tmp_path):
    """``Additive`` (the harmonic synth's old name) and ``DefaultPreprocessor.time_steps``
    (frame rate from frames per example), as the published ``ae.gin`` writes them."""
    folder, _ = official
    src = _ae_folder(folder, tmp_path / "old")
    gin = src / "operative_config-0.gin"
    text = gin.read_text().replace("Harmonic", "Additive").replace(
        "F0LoudnessPreprocessor", "DefaultPreprocessor").replace(
        "DefaultPreprocessor.frame_rate = 250\n", "")  # fmt: skip
    text = text.replace("time_steps = 1000", "time_steps = 500")
    gin.write_text(text)
    config = magenta_ckpt.read_config(src)
    assert (config.sample_rate, config.frame_rate, config.n_harmonics) == (16000, 125, 60)


def _break(kind: str, src, tmp_path) -> None:
    """Damage a copy of the official fixture in one way."""
    import os
    import pickle

    gin = src / "operative_config-0.gin"
    if kind == "no checkpoint":
        for f in src.glob("ckpt-*"):
            f.unlink()
    elif kind == "unknown decoder":
        gin.write_text(gin.read_text().replace("RnnFcDecoder()", "MidiDecoder()"))
    elif kind == "missing variable":  # a checkpoint holding only the reverb
        from ddspcli.engine._tensorflow import tf

        for f in src.glob("ckpt-*"):
            f.unlink()
        holder = tf.Module()
        holder.processor_group = tf.Module()
        holder.processor_group.reverb = tf.Module()
        holder.processor_group.reverb.ir = tf.Variable(tf.zeros([48000]))
        tf.train.Checkpoint(model=holder).write(str(src / "ckpt-30"))
    elif kind == "wrong shape":
        gin.write_text(gin.read_text().replace("RnnFcDecoder.ch = 64", "RnnFcDecoder.ch = 32"))
    elif kind == "corrupted data":
        data = src / "ckpt-30.data-00000-of-00001"
        data.write_bytes(data.read_bytes()[:1000])
    elif kind == "malicious pickle":
        marker = tmp_path / "pwned"

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        (src / "dataset_statistics.pkl").write_bytes(pickle.dumps({"x": Exploit()}))


@pytest.mark.parametrize("kind,message", [
    ("no checkpoint", r"has no ckpt-N\.index"),
    ("unknown decoder", r"Autoencoder\.decoder = @decoders\.MidiDecoder\(\): only RnnFcDecoder"),
    ("missing variable", r"has no variable model/decoder/input_stacks/1/"),
    ("wrong shape", r"model/decoder/.* has shape \[.*\], the configuration gives \[.*\]"),
    ("corrupted data", r"unreadable|damaged"),
    ("malicious pickle", r"refused to unpickle"),
])  # fmt: skip
def test_bad_checkpoint_folders_are_one_line_exit_5_nothing_written(official, tmp_path,
                                                                     kind, message):  # fmt: skip
    import re

    from clirun import ddsp

    from ddspcli.errors import EXIT_MODEL

    src = tmp_path / "ckpt"
    shutil.copytree(official[0], src)
    _break(kind, src, tmp_path)
    run = ddsp("models", "import", src, "-o", tmp_path / "out")
    lines = run.stderr.decode().strip().splitlines()
    assert run.returncode == EXIT_MODEL and len(lines) == 1, run.stderr
    assert re.search(message, lines[0]) and "Traceback" not in lines[0], lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "pwned").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left
