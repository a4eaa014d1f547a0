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


def test_a_missing_variable_and_a_damaged_data_file_are_refused(official, tmp_path):
    from ddspcli.engine._tensorflow import tf

    folder, _ = official
    config = magenta_ckpt.read_config(folder)
    # A checkpoint holding only the reverb: every decoder variable is missing.
    partial = tmp_path / "partial" / "ckpt-1"
    partial.parent.mkdir()
    holder = tf.Module()
    holder.model = tf.Module()
    holder.model.processor_group = tf.Module()
    holder.model.processor_group.reverb = tf.Module()
    holder.model.processor_group.reverb.ir = tf.Variable(tf.zeros([48000]))
    tf.train.Checkpoint(model=holder.model).write(str(partial))
    with pytest.raises(ModelError, match="has no variable model/decoder/input_stacks/1"):
        magenta_ckpt.load_weights(magenta_ckpt.build_model(config), config, str(partial))
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    data = damaged / "ckpt-30.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ModelError):
        magenta_ckpt.load_weights(magenta_ckpt.build_model(config), config,
                                  magenta_ckpt.latest_checkpoint(damaged))  # fmt: skip


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


def _official_layout(model, rows_ours_to_theirs) -> object:
    """A checkpointable tree with the official library's variable names holding `model`'s
    weights (a tiny model: no MLP stacks), inputs in the official order (ld, f0)."""
    from ddspcli.engine._tensorflow import tf

    def module(**variables):
        m = tf.Module()
        for name, value in variables.items():
            setattr(m, name, tf.Variable(value))
        return m

    root = tf.Module()
    root.model = tf.Module()
    decoder = tf.Module()
    root.model.decoder = decoder
    decoder.input_stacks = [tf.Module(), tf.Module()]  # no layers: no variables
    decoder.rnn = tf.Module()
    decoder.rnn.rnn = tf.Module()
    decoder.rnn.rnn.cell = module(
        kernel=model.rnn.kernel.numpy()[rows_ours_to_theirs(2)],
        recurrent_kernel=model.rnn.recurrent_kernel.numpy(), bias=model.rnn.bias.numpy(),
    )  # fmt: skip
    out_rows = np.r_[rows_ours_to_theirs(2), np.arange(2, model.dense_out.kernel.shape[0])]
    decoder.dense_out = module(kernel=model.dense_out.kernel.numpy()[out_rows],
                               bias=model.dense_out.bias.numpy())  # fmt: skip
    return root


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
    for variable in ours.trainable_variables:  # weights that differ from the init
        variable.assign(tf.random.stateless_normal(variable.shape, [7, 1]) * 0.3)
    # ddspcli rows [f0, ld] -> official rows [ld, f0]
    tree = _official_layout(ours, lambda n: np.array([1, 0]))
    tf.train.Checkpoint(model=tree.model).write(str(src / "ckpt-5"))
    imported = magenta_ckpt.build_model(config)
    assert magenta_ckpt.load_weights(imported, config, str(src / "ckpt-5")) == 5
    features = {"f0_hz": golden["f0_hz"][None], "loudness_db": golden["loudness_db"][None]}
    a, _ = ours.decode(features)
    b, _ = imported.decode(features)
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=1e-6)


def test_a_z_autoencoder_is_refused_naming_the_binding(official, tmp_path):
    folder, _ = official
    src = tmp_path / "ae"
    shutil.copytree(folder, src)
    gin = src / "operative_config-0.gin"
    encoder = "Autoencoder.encoder = @encoders.MfccTimeDistributedRnnEncoder()"
    gin.write_text(gin.read_text().replace("Autoencoder.encoder = None", encoder))
    with pytest.raises(ModelError, match=r"Autoencoder\.encoder = @encoders\.MfccTime"):
        magenta_ckpt.read_config(src)
