"""`ddsp fit`: learning, exact resume, crash-safe checkpoints, clear errors, MirroredStrategy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from clirun import ddsp as run_ddsp
from conftest import TONE_MODEL_PARAMS
from toneset import write_tone_dataset

from ddspcli import pretrained
from ddspcli.engine import data, features, model, train
from ddspcli.errors import EXIT_INPUT, EXIT_OUTPUT, EXIT_TERMINATED, EXIT_USAGE, InputError

SMALL = TONE_MODEL_PARAMS
CLI_SMALL = [arg for p in SMALL for arg in ("--gin-param", p)]


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_dataset(tmp_path_factory.mktemp("tones") / "ds")


def ddsp(*args: str) -> subprocess.CompletedProcess:
    return run_ddsp(*args, text=True)


def json_losses(stdout: str) -> dict[int, float]:
    return {s["step"]: s["loss"] for s in map(json.loads, stdout.splitlines())}


def test_loss_decreases_and_resynthesis_follows_f0(tone_model, crepe_weights):
    tones = tone_model["tones"]
    assert tone_model["after"] < 0.6 * tone_model["before"], tone_model
    assert [s.step for s in tone_model["summaries"]] == [100, 200, 300, 400, 500, 600]
    # The trained model, reloaded from its folder, renders a tone whose pitch (measured by the
    # engine's own tracker) is the input's.
    loaded = model.load_model_dir(str(tone_model["run"]))
    batch = next(iter(data.make_dataset(tones, "eval", 1, shuffle=False, repeat=False)))
    audio = loaded.model(batch)["audio"][0].numpy()
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    settings = features.FeatureSettings(pitch_model="tiny", pitch_hop_ms=4.0)
    measured = features.compute_features(audio, str(crepe_weights("tiny")), settings)
    truth = batch["f0_hz"][0].numpy()
    frames = min(len(truth), len(measured["f0_hz"])) - 10
    voiced = measured["f0_confidence"][10:frames] > 0.5
    cents = 1200 * np.log2(measured["f0_hz"][10:frames] / truth[10:frames])
    assert voiced.mean() > 0.8
    assert np.mean(np.abs(cents[voiced]) < 50) >= 0.9


def test_interrupted_run_resumes_on_the_same_trajectory(tones, tmp_path):
    common = ["fit", str(tones), "--variant", "tiny", *CLI_SMALL, "--batch-size", "4", "--steps",
              "30", "--checkpoint-every", "10", "--summary-every", "5", "--json-log"]  # fmt: skip
    straight = ddsp(*common, "-o", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    reference = json_losses(straight.stdout)
    assert _runtime_current(tmp_path / "a")  # a finished run carries its runtime files
    # SIGTERM partway: a checkpoint at the current step, exit 143 (as every command), then resume.
    command = [sys.executable, "-m", "ddspcli", *common, "-o", str(tmp_path / "b"),
               "--checkpoint-every", "1000"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # step 5
    assert json.loads(first)["step"] == 5
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_TERMINATED, err
    stopped = json.loads(out.splitlines()[-1])
    assert stopped["checkpoint"] and 5 <= stopped["step"] < 30
    assert "rerun the same command to resume" in err
    assert not (tmp_path / "b" / "runtime.json").exists()  # only a finished run writes them
    resumed = ddsp(*common, "-o", str(tmp_path / "b"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {tmp_path / 'b'} at step {stopped['step']}" in resumed.stderr
    after = json_losses(resumed.stdout)
    assert _runtime_current(tmp_path / "b")
    tail = [s for s in after if s % 5 == 0 and s - 5 >= stopped["step"]]
    assert tail and all(after[s] == reference[s] for s in tail)  # exact, same seed
    a = tf.train.load_variable(str(tmp_path / "a" / "checkpoints" / "ckpt-00000030" / "ckpt"),
                               "model/rnn/kernel/.ATTRIBUTES/VARIABLE_VALUE")  # fmt: skip
    b = tf.train.load_variable(str(tmp_path / "b" / "checkpoints" / "ckpt-00000030" / "ckpt"),
                               "model/rnn/kernel/.ATTRIBUTES/VARIABLE_VALUE")  # fmt: skip
    np.testing.assert_array_equal(a, b)


def _runtime_current(run: Path) -> bool:
    """The run folder has runtime files for the checkpoint its model.json names."""
    from ddspcli import runtime
    from ddspcli.runtime import source

    info = json.loads((run / "model.json").read_text())
    return (run / "decoder.tflite").is_file() and source.is_current(
        run, info, runtime.read_description(run)) and "source" in runtime.read_description(run)


def test_a_save_killed_midway_leaves_the_previous_checkpoint_loadable(tones, tmp_path, monkeypatch):
    settings = train.TrainSettings(steps=4, batch_size=2, checkpoint_every=2, summary_every=2)
    trainer, _ = train.open_run(
        tmp_path / "run", str(tones), settings, variant="tiny", gin_params=SMALL, steps_given=True
    )
    train.fit(trainer, lambda s: None, lambda: False)  # checkpoints at steps 2 and 4
    saved = trainer.model.dense_out.kernel.numpy()
    # Crash after the new checkpoint's files were written, before state.json names it.
    trainer.settings.steps = 6

    def crash(path, text, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train.storage, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        train.fit(trainer, lambda s: None, lambda: False)
    monkeypatch.undo()
    (tmp_path / "run" / "checkpoints" / ".tmp-ckpt-00000008-dead").mkdir()  # a half-written one
    loaded = model.load_model_dir(str(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.model.dense_out.kernel.numpy(), saved)
    again, resumed = train.open_run(
        tmp_path / "run", str(tones), settings, variant="tiny", gin_params=SMALL
    )
    assert resumed and int(again.step.numpy()) == 4


def test_kill_9_at_any_moment_leaves_a_loadable_model(tones, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "ddspcli", "-q", "fit", str(tones), "-o", str(run),
               "--variant", "tiny", *CLI_SMALL, "--batch-size", "2", "--steps", "400",
               "--checkpoint-every", "1", "--summary-every", "1000"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / train.STATE_JSON).exists():
        time.sleep(0.05)
    time.sleep(1.3)  # saving every step: the kill lands in or near a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = model.load_model_dir(str(run))
    assert loaded.info["steps"] >= 1


def test_rate_mismatch_is_refused(tones, tmp_path):
    run = ddsp("fit", str(tones), "-o", str(tmp_path / "r"), "--variant", "tiny",
               "--gin-param", "Autoencoder.sample_rate = 22050", "--steps", "1")  # fmt: skip
    assert run.returncode == EXIT_INPUT
    assert "dataset sample_rate is 16000 but the model config uses 22050" in run.stderr
    other = write_tone_dataset(tmp_path / "fr200", n_train=4, n_eval=0, frame_rate=200)
    settings = train.TrainSettings(steps=1, batch_size=2, checkpoint_every=1)
    trainer, _ = train.open_run(
        tmp_path / "r2", str(tones), settings, variant="tiny", gin_params=SMALL, steps_given=True
    )
    train.fit(trainer, lambda s: None, lambda: False)
    with pytest.raises(InputError, match=r"frame_rate is 200 but run .* uses 250"):
        train.open_run(
            tmp_path / "r2",
            str(other),
            settings,
            variant="tiny",
            gin_params=SMALL,
            steps_given=True,
        )


def test_empty_missing_and_unwritable_give_clear_errors(tones, tmp_path):
    empty = write_tone_dataset(tmp_path / "empty", n_train=0, n_eval=0)
    run = ddsp("fit", str(empty), "-o", str(tmp_path / "r"), "--steps", "1")
    assert run.returncode == EXIT_INPUT and "no training examples" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    run = ddsp("fit", str(tmp_path / "nope"), "-o", str(tmp_path / "r"), "--steps", "1")
    assert run.returncode == EXIT_INPUT and "is not a prepared dataset" in run.stderr
    blocker = tmp_path / "a-file"  # no folder can be made below a file, even by root
    blocker.write_text("")
    run = ddsp("fit", str(tones), "-o", str(blocker / "run"), "--steps", "1")
    assert run.returncode == EXIT_OUTPUT and "cannot write to" in run.stderr
    run = ddsp("fit", str(tones), "-o", str(tmp_path / "r"), "--variant", "huge")
    assert run.returncode == EXIT_USAGE and "'huge' is not one of" in run.stderr


def test_export_is_inference_only_and_renders_the_same(tones, tmp_path):
    settings = train.TrainSettings(steps=2, batch_size=2, checkpoint_every=2)
    trainer, _ = train.open_run(
        tmp_path / "run", str(tones), settings, variant="tiny", steps_given=True
    )
    train.fit(trainer, lambda s: None, lambda: False)
    export = tmp_path / "models" / "tones"
    export.parent.mkdir()  # an output folder's parent must exist
    run = ddsp("models", "export", str(tmp_path / "run"), "-o", str(export), "--name", "tones",
               "--license", "CC BY 4.0", "--attribution", "Tones by the test suite",
               "--manifest-source", "bundled:models/tones")  # fmt: skip
    assert run.returncode == 0, run.stderr
    # The printed manifest entry lists every file with its hash: the copy verifies and resolves.
    (tmp_path / "manifest.toml").write_text("schema = 1\n" + run.stdout)
    spec = pretrained.load_manifest([tmp_path / "manifest.toml"])["tones"]
    assert spec.bundled_dir() == export and not pretrained.verify(spec)
    assert {f.name for f in spec.files} == {p.name for p in export.iterdir()}
    assert {"decoder.tflite", "runtime.json"} <= {f.name for f in spec.files}  # for the runtime
    assert spec.license == "CC BY 4.0" and spec.features["sample_rate"] == 16000
    # Flat (every file can be listed in a manifest), publishing fields kept, no local paths.
    assert all(p.is_file() for p in (export).iterdir())
    info = json.loads((export / "model.json").read_text())
    assert info["license"] == "CC BY 4.0" and info["attribution"] == "Tones by the test suite"
    assert str(tmp_path) not in json.dumps(info) and info["inference_only"]

    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("ckpt*") if p.is_file())

    full, small = size(tmp_path / "run" / "checkpoints"), size(export)
    assert 0.28 < small / full < 0.4  # no Adam slots: about a third
    a, b = (
        model.load_model_dir(str(tmp_path / "run")),
        model.load_model_dir(str(export)),
    )
    batch = next(iter(data.make_dataset(tones, "eval", 1, shuffle=False, repeat=False)))
    np.testing.assert_array_equal(a.model(batch)["audio"].numpy(), b.model(batch)["audio"].numpy())


def test_mirrored_strategy_on_two_logical_cpus(tones, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from ddspcli.engine import train
        settings = train.TrainSettings(steps=4, batch_size=4, checkpoint_every=4,
                                       strategy="mirrored")
        trainer, _ = train.open_run({str(tmp_path / "run")!r}, {str(tones)!r}, settings,
                                    variant="tiny", gin_params={SMALL!r}, steps_given=True)
        assert trainer.strategy.num_replicas_in_sync == 2
        seen = []
        train.fit(trainer, seen.append, lambda: False)
        print(seen[-1].step, seen[-1].loss, seen[-1].eval_loss)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    step, loss, eval_loss = run.stdout.split()
    assert step == "4" and np.isfinite(float(loss)) and np.isfinite(float(eval_loss))


def test_init_from_copies_shared_weights_and_leaves_the_room_new(tone_model, tones, tmp_path):
    """`fit --init-from`: a new run with a room starts from a dry model's weights (every
    variable the two share, equal), the room keeps its initial values, train.json records the
    source; a source of another shape, or no model at all, is one clear line with nothing
    left behind."""
    source = str(tone_model["run"])
    roomed = [*SMALL[:-1], "Autoencoder.reverb_length = 4000", "Autoencoder.room = 'decay'"]
    assert SMALL[-1] == "Autoencoder.reverb_length = 0"
    settings = train.TrainSettings(steps=1, batch_size=2)
    trainer, _ = train.open_run(tmp_path / "room-run", str(tones), settings, variant="tiny",
                                gin_params=roomed, steps_given=True, init_from=source)  # fmt: skip
    dry = model.load_model_dir(source).model.trainable_variables
    room = {id(v) for v in trainer.model.reverb.trainable_variables}
    shared = [v for v in trainer.model.trainable_variables if id(v) not in room]
    assert len(room) == 2 and len(shared) == len(dry)
    for mine, theirs in zip(shared, dry, strict=True):
        assert mine.name == theirs.name
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)
    fresh = model.build_model(trainer.config, sample_rate=16000, frame_rate=250)
    for mine, initial in zip(trainer.model.reverb.trainable_variables,
                             fresh.reverb.trainable_variables, strict=True):  # fmt: skip
        np.testing.assert_array_equal(mine.numpy(), initial.numpy())  # a room starts afresh
    assert trainer.initialised == (source, len(dry), 2)
    written = json.loads((tmp_path / "room-run" / "train.json").read_text())
    assert written["init_from"] == source
    wide = tmp_path / "wide"  # another GRU size: the shared paths differ in shape
    with pytest.raises(InputError, match=r"^cannot start from .*"):
        train.open_run(wide, str(tones), settings, variant="tiny", steps_given=True,
                       gin_params=[*SMALL, "Autoencoder.rnn_units = 32"],
                       init_from=source)  # fmt: skip
    assert not wide.exists()
    run = ddsp("fit", str(tones), "-o", str(tmp_path / "r"), "--init-from", str(tmp_path / "no"))
    assert run.returncode == 5 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "r").exists()
