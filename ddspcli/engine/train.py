"""Training: compiled step, Adam with decay and clipping, eval, checkpoints, resume, summaries.

A run folder is also a model directory (see `model.load_model_dir`)::

    RUN/model.json  config.gin  statistics.json  train.json  state.json
    RUN/checkpoints/ckpt-00000500/ckpt.index ...   (model + optimizer + step)
    RUN/logs/train, RUN/logs/eval                   (TensorBoard)

Checkpoints are written into a temporary folder, renamed into place, and only then named in
``state.json`` (itself replaced atomically), so a kill at any moment leaves the previous
checkpoint loadable. The data order is a pure function of the seed, so resuming restores the
step, the optimizer state and the data position exactly.

With ``--strategy multiworker`` (`ddspcli.engine.distribute`) only the chief writes ``RUN/``;
the other workers read it to resume (it must be on storage they can read) and write their share
of each checkpoint to a temporary folder that is deleted at once. A stop request (Ctrl-C,
SIGTERM) on any worker is agreed on in the step's own all-reduce, so every worker saves and
stops after the same step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ddspcli import __version__, choices, interrupts, storage
from ddspcli.engine import data, distribute, features, losses, nn
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf
from ddspcli.errors import InputError, OutputError, RunError, UsageError

STATE_JSON = "state.json"
TRAIN_JSON = "train.json"
CHECKPOINTS = "checkpoints"


@dataclass
class TrainSettings:
    """Optimisation and bookkeeping; stored in ``train.json`` and reused on resume."""

    steps: int = choices.TRAIN_STEPS
    batch_size: int = choices.TRAIN_BATCH_SIZE
    learning_rate: float = choices.TRAIN_LEARNING_RATE
    decay_steps: int = 10000
    decay_rate: float = 0.98
    clip_norm: float = 3.0
    seed: int = 0
    checkpoint_every: int = choices.TRAIN_CHECKPOINT_EVERY
    keep: int = choices.TRAIN_KEEP
    eval_batches: int = 0  # 0: the whole eval split
    summary_every: int = choices.TRAIN_SUMMARY_EVERY
    stop_loss: float | None = None  # stop once the eval loss is at or below this
    patience: int | None = None  # stop after this many evals without improvement
    jit: bool = False
    strategy: str = choices.Strategy.AUTO.value
    cluster_timeout: float = choices.CLUSTER_TIMEOUT_S  # s the workers have to all start
    shuffle_buffer: int = 1000

    @classmethod
    def from_dict(cls, values: dict) -> TrainSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# ---------------------------------------------------------------------------------------------
# Run folders.


def _write_json(path: Path, payload: dict) -> None:
    storage.write_text(path, json.dumps(payload, indent=2) + "\n")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@dataclass
class RunFolder:
    """Paths and bookkeeping of ``RUN/``."""

    path: Path

    @property
    def state(self) -> dict:
        state_path = self.path / STATE_JSON
        return _read_json(state_path) if state_path.exists() else {}

    def exists(self) -> bool:
        return (self.path / STATE_JSON).exists() or (self.path / TRAIN_JSON).exists()

    def latest_prefix(self) -> str | None:
        latest = self.state.get("latest")
        return str(self.path / CHECKPOINTS / latest / "ckpt") if latest else None

    def save(self, checkpoint: tf.train.Checkpoint, step: int, eval_loss: float | None,
             keep: int, model_info: dict) -> str:  # fmt: skip
        """Write checkpoint ``ckpt-<step>`` atomically; update ``state.json`` and ``model.json``."""
        name = f"ckpt-{step:08d}"
        folder = self.path / CHECKPOINTS
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        checkpoint.write(str(tmp / "ckpt"))
        final = folder / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        state = self.state
        kept = [k for k in state.get("kept", []) if k != name] + [name]
        best = state.get("best")
        if eval_loss is not None and (best is None or eval_loss < best["eval_loss"]):
            best = {"name": name, "step": step, "eval_loss": eval_loss}
        state.update(latest=name, step=step, kept=kept[-keep:], best=best)
        _write_json(self.path / STATE_JSON, state)
        chosen = best["name"] if best else name
        info = {**model_info, "checkpoint": f"{CHECKPOINTS}/{chosen}/ckpt", "steps": step}
        _write_json(self.path / model_lib.MODEL_JSON, info)
        self.prune(state)
        return name

    def prune(self, state: dict) -> None:
        """Remove checkpoints not kept (the last K and the best) and interrupted temporaries."""
        keep = set(state.get("kept", []))
        if state.get("best"):
            keep.add(state["best"]["name"])
        folder = self.path / CHECKPOINTS
        for entry in folder.iterdir() if folder.exists() else []:
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)


def check_dataset(info: dict, sample_rate: int, frame_rate: int, source: str) -> None:
    """Refuse a dataset whose rates differ from the model's."""
    for key, want in (("sample_rate", sample_rate), ("frame_rate", frame_rate)):
        if int(info.get(key, -1)) != int(want):
            raise InputError(
                f"dataset {key} is {info.get(key)} but {source} uses {want}; prepare the data "
                f"with --{key.replace('_', '-')} {want} or train a new model"
            )


def check_variant_data(variant: str, info: dict, source: str) -> None:
    """Refuse to train the ``vst`` variant on anything but the plugin's features."""
    if variant != choices.Variant.VST.value:
        return
    feats = info.get("settings", {}).get("features", {})
    wanted = features.FeatureSettings.vst()
    found = (feats.get("loudness", "a_weighted"), feats.get("n_fft"), info.get("frame_rate"))
    if found != (wanted.loudness, wanted.n_fft, wanted.frame_rate):
        raise InputError(
            f"{source} was not prepared with the DDSP-VST plugin's features (it has "
            f"{found[0]} level over {found[1]} samples at {found[2]} frames/s); the vst variant "
            "needs them: ddsp prepare AUDIO -o DIR --preset vst"
        )


# ---------------------------------------------------------------------------------------------
# The trainer.


@dataclass
class Summary:
    """One line of progress (also one JSON line of ``--json-log``)."""

    step: int
    loss: float
    learning_rate: float
    steps_per_sec: float
    eval_loss: float | None = None
    checkpoint: str | None = None
    event: str = "train"


def seed_process(seed: int) -> None:
    """Process-wide TensorFlow state a run needs: the global seed, and deterministic ops
    (same seed, same run, on CPU). Called by `open_run`, not hidden in `Trainer`."""
    tf.random.set_seed(seed)
    tf.config.experimental.enable_op_determinism()


class Trainer:
    """Owns the model, optimizer, data, strategy and the run folder: one step, the eval loss,
    checkpoints. The loop and its stop policy are `fit` and `StopPolicy`."""

    def __init__(
        self, run: Path, data_dir: str, config: str, settings: TrainSettings, variant: str
    ) -> None:
        self.run = RunFolder(Path(run))
        self.data_dir, self.config, self.settings = data_dir, config, settings
        self.variant = variant
        self.info = data.read_info(data_dir)
        try:
            self.strategy, self.role = distribute.make_strategy(
                settings.strategy, settings.cluster_timeout
            )
        except ValueError as err:  # TensorFlow's own check of TF_CONFIG
            raise UsageError(f"TF_CONFIG: {err}") from None
        self.chief = self.role is None or self.role.chief
        check_variant_data(variant, self.info, data_dir)
        rates = {"sample_rate": self.info["sample_rate"], "frame_rate": self.info["frame_rate"]}
        bound = model_lib.bound_parameters(config, ("sample_rate", "frame_rate"))
        check_dataset(self.info, **{**rates, **bound}, source="the model config")
        with self.strategy.scope():
            self.model = model_lib.build_model(config, **rates, seed=settings.seed)
            schedule = tf.keras.optimizers.schedules.ExponentialDecay(
                settings.learning_rate, settings.decay_steps, settings.decay_rate
            )
            self.optimizer = tf.keras.optimizers.Adam(schedule)
            self.optimizer.build(self.model.trainable_variables)  # slots exist before a restore
            self.step = tf.Variable(0, dtype=tf.int64, name="step", trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step
        )
        self.variables = self.model.trainable_variables
        self.initialised: tuple[str, int, int] | None = None  # (source, copied, kept)
        jit = settings.jit or None  # None: TF's default (no XLA for the whole step)
        self._train_step = tf.function(self._distributed_train_step, jit_compile=jit)

    # -- the compiled steps ---------------------------------------------------------------

    def train_step(self, batch, stop: bool = False) -> tuple[float, bool]:
        """One optimisation step on every replica.

        Args:
            stop: this process was asked to stop (Ctrl-C, SIGTERM).
        Returns:
            ``(mean loss, whether any worker asked to stop)``: every worker gets the same answer
            from the same all-reduce, so all of them stop after this step, or none.
        """
        loss, stops = self._train_step(batch, tf.constant(float(stop)))
        return float(loss), float(stops) > 0.0

    def _distributed_train_step(self, batch, stop: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One step on every replica; the mean loss and the mean stop flag (0: nobody)."""
        per_replica = self.strategy.run(self._replica_train_step, args=(batch, stop))
        self.step.assign_add(1)
        mean = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)
        return mean[0], mean[1]

    def _noise_seed(self) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        step = tf.cast(self.step, tf.int32)
        return tf.stack([step + self.settings.seed * 7919, tf.cast(replica, tf.int32)])

    def _replica_train_step(self, batch: dict[str, tf.Tensor], stop: tf.Tensor) -> tf.Tensor:
        """Gradient step on this replica's part of the batch; ``[loss, stop]``."""
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            audio = self.model(batch, noise_seed=self._noise_seed())["audio"]
            loss = losses.spectral_loss(batch["audio"], audio)
            scaled = loss / replicas
        grads = tape.gradient(scaled, self.variables)
        if replicas > 1:  # clip the global (all-replica) gradient, as with one device
            grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        grads, _ = tf.clip_by_global_norm(grads, self.settings.clip_norm)
        if replicas > 1:  # Keras sums the replicas' gradients again inside apply_gradients
            grads = [g / replicas for g in grads]
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return tf.stack([loss, stop])

    # -- data -----------------------------------------------------------------------------

    def train_batches(self) -> Iterator:
        """The training split, shuffled by the seed, repeated, from the current step's data."""
        s = self.settings
        ds = data.make_dataset(
            self.data_dir, "train", s.batch_size, shuffle=True, repeat=True, seed=s.seed,
            shuffle_buffer=s.shuffle_buffer, skip=int(self.step.numpy()) * s.batch_size,
        )  # fmt: skip
        return iter(self.strategy.experimental_distribute_dataset(distribute.split_data(ds)))

    def evaluate(self) -> float | None:
        """Mean spectral loss over the eval split (None when it has no examples)."""
        if not self.info["splits"].get("eval", {}).get("examples"):
            return None
        ds = data.make_dataset(
            self.data_dir, "eval", self.settings.batch_size, shuffle=False, repeat=False
        )
        if self.settings.eval_batches:
            ds = ds.take(self.settings.eval_batches)
        total, count = 0.0, 0
        for batch in ds:
            n = int(batch["audio"].shape[0])
            total += float(self._eval_step(batch)) * n
            count += n
        return total / count if count else None

    @tf.function
    def _eval_step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """Spectral loss of one eval batch, with fixed noise (comparable across evals)."""
        seed = tf.constant([self.settings.seed, 1 << 20], tf.int32)
        audio = self.model(batch, noise_seed=seed)["audio"]
        return losses.spectral_loss(batch["audio"], audio)

    # -- checkpoints ----------------------------------------------------------------------

    def model_info(self) -> dict:
        m = self.model
        return {
            "format_version": 1,
            "ddspcli_version": __version__,
            "sample_rate": m.sample_rate,
            "frame_rate": m.frame_rate,
            "variant": self.variant,
            "z_dims": m.z_dims,
            "parameters": nn.count_parameters(m),
            "features": self.info.get("settings", {}).get("features", {}),
            "dataset": str(self.data_dir),
        }

    def restore(self) -> bool:
        """Load the latest checkpoint of the run, if any. Returns whether one was loaded."""
        prefix = self.run.latest_prefix()
        if prefix is None:
            return False
        self.checkpoint.read(prefix).assert_consumed()
        return True

    def initialise_from(self, source: str) -> tuple[int, int]:
        """Start this new run from the weights of the model folder `source` (fine-tuning).

        Variables present in both, at the same checkpoint path with the same shape, take the
        source's values; the others (a room the source has not, say) keep their initial
        values. The optimizer and the step start afresh.

        Returns:
            ``(copied, kept)``: how many trainable variables came from `source`, how many kept
            their initial values.
        Raises:
            InputError: `source` is not a model folder, was trained at other rates, or a
                variable shared by both has another shape.
        """
        info_path = storage.join(source, model_lib.MODEL_JSON)
        if not storage.exists(info_path):
            raise InputError(f"--init-from {source} is not a model folder (no model.json)")
        info = _read_json(Path(info_path))
        check_dataset(self.info, info["sample_rate"], info["frame_rate"], f"model {source}")
        before = [v.numpy().copy() for v in self.variables]
        try:
            tf.train.Checkpoint(model=self.model).read(
                storage.join(source, info["checkpoint"])
            ).expect_partial()
        except (ValueError, tf.errors.OpError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot start from {source}: {first}") from None
        after = [v.numpy() for v in self.variables]
        copied = sum(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
        return copied, len(self.variables) - copied

    def check_same_step(self) -> None:
        """Multi-worker: every worker must start from the same step (the chief's checkpoint).

        Raises:
            RunError: a worker could not read RUN (not on shared storage) or read another one.
        """
        if self.role is None:
            return
        mean, mean_square = (float(v) for v in self._step_moments())
        if mean_square - mean * mean > 1e-6:
            raise RunError(
                f"the workers start at different steps (this one at {int(self.step.numpy())}, "
                f"their mean {mean:g}): every worker must read the same run folder "
                f"{self.run.path} (shared storage)"
            )

    @tf.function
    def _step_moments(self) -> tf.Tensor:
        """Mean over all replicas of ``[step, step**2]`` (float64: exact for any step count);
        tf.distribute reduces by sum or mean only, so equal steps are zero variance."""
        step = tf.cast(self.step, tf.float64)
        per_replica = self.strategy.run(lambda: tf.stack([step, step * step]))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    def save(self, eval_loss: float | None) -> str:
        """A checkpoint at the current step: into RUN on the chief; on another worker (saving
        is collective, so it must take part) into a temporary folder, deleted at once."""
        step = int(self.step.numpy())
        if not self.chief:
            scratch = tempfile.mkdtemp(prefix=f"ddsp-worker{self.role.index}-")
            try:
                self.checkpoint.write(os.path.join(scratch, "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return f"ckpt-{step:08d}"
        return self.run.save(
            self.checkpoint, step, eval_loss, self.settings.keep, self.model_info()
        )

    def learning_rate(self) -> float:
        """The scheduled learning rate at the current step."""
        lr = self.optimizer.learning_rate
        return float(lr(self.step) if callable(lr) else lr)

    def write_eval_summaries(self, writer, step: int, eval_loss: float | None) -> None:
        """Eval loss, and one eval example's audio and spectrograms (target vs resynthesis)."""
        if eval_loss is None or not self.chief:
            return
        batch = next(iter(data.make_dataset(self.data_dir, "eval", 1, shuffle=False, repeat=False)))
        audio = self.model(batch)["audio"]
        with writer.as_default(step=step):
            tf.summary.scalar("loss", eval_loss)
            pair = tf.stack([batch["audio"][0], audio[0]])[..., None]
            tf.summary.audio("target_vs_resynthesis", pair, self.model.sample_rate)
            tf.summary.image("spectrograms", _spectrogram_images(pair[..., 0]), max_outputs=2)


# ---------------------------------------------------------------------------------------------
# The loop and its stop policy.


class StopPolicy:
    """When to stop early: the eval loss reached `stop_loss`, or `patience` evals in a row did
    not improve on the best one (which a resumed run remembers from its state)."""

    def __init__(self, stop_loss: float | None, patience: int | None, best: float) -> None:
        self.stop_loss, self.patience, self.best = stop_loss, patience, best
        self.evals_without_gain = 0

    def after_eval(self, eval_loss: float | None) -> str | None:
        """Record an eval; return ``stop_loss`` or ``plateau`` to stop, None to go on."""
        if eval_loss is None:
            return None
        if eval_loss < self.best - 1e-6:
            self.best, self.evals_without_gain = eval_loss, 0
        else:
            self.evals_without_gain += 1
        if self.stop_loss is not None and eval_loss <= self.stop_loss:
            return "stop_loss"
        if self.patience is not None and self.evals_without_gain >= self.patience:
            return "plateau"
        return None


def fit(trainer: Trainer, report: Callable[[Summary], None], stop: Callable[[], bool]) -> str:
    """Train until ``settings.steps``, an early stop, or `stop()` (then checkpoint).

    Every ``summary_every`` steps a `Summary` goes to `report` and TensorBoard; every
    ``checkpoint_every`` steps (and at the end, and when stopped) the eval loss is measured
    and a checkpoint saved.

    Returns:
        why it ended: ``done``, ``stop_loss``, ``plateau`` or ``interrupted``.
    Raises:
        RunError: the loss became NaN or infinite (training diverged).
    """
    s = trainer.settings
    batches = trainer.train_batches()
    logs = trainer.run.path / "logs"
    if trainer.chief:
        writer = tf.summary.create_file_writer(str(logs / "train"))
        eval_writer = tf.summary.create_file_writer(str(logs / "eval"))
    else:  # only the chief writes RUN
        writer = eval_writer = tf.summary.create_noop_writer()
    best = (trainer.run.state.get("best") or {}).get("eval_loss", math.inf)
    policy = StopPolicy(s.stop_loss, s.patience, best)
    window_start, window_steps, losses_seen = time.perf_counter(), 0, []
    reason = "done"
    while int(trainer.step.numpy()) < s.steps:
        try:
            loss, stopping = trainer.train_step(next(batches), stop())  # agreed by all workers
        except tf.errors.OpError as err:
            if trainer.role is None:
                raise
            raise distribute.lost_workers(err, trainer.role, "lost one another") from None
        step = int(trainer.step.numpy())
        if not math.isfinite(loss):
            raise RunError(f"training diverged at step {step} (loss {loss}); "
                           "lower --learning-rate or resume from the last checkpoint")  # fmt: skip
        losses_seen.append(loss)
        window_steps += 1
        due_checkpoint = step % s.checkpoint_every == 0 or step == s.steps or stopping
        if step % s.summary_every and not due_checkpoint:
            continue
        elapsed = time.perf_counter() - window_start
        summary = Summary(step, float(np.mean(losses_seen)), trainer.learning_rate(),
                          window_steps / max(elapsed, 1e-9))  # fmt: skip
        with writer.as_default(step=step):
            tf.summary.scalar("loss", summary.loss)
            tf.summary.scalar("learning_rate", summary.learning_rate)
            tf.summary.scalar("steps_per_sec", summary.steps_per_sec)
        window_steps, losses_seen = 0, []
        early = None
        if due_checkpoint:
            summary.eval_loss = trainer.evaluate()
            summary.checkpoint = trainer.save(summary.eval_loss)
            trainer.write_eval_summaries(eval_writer, step, summary.eval_loss)
            early = policy.after_eval(summary.eval_loss)
        report(summary)
        window_start = time.perf_counter()  # eval and saving are not training speed
        if stopping or early:
            reason = "interrupted" if stopping else early
            break
    writer.flush()
    eval_writer.flush()
    return reason


def _spectrogram_images(audio: tf.Tensor) -> tf.Tensor:
    """``[n, samples]`` -> ``[n, bins, frames, 1]`` log-magnitude images in [0, 1]."""
    mag = tf.abs(tf.signal.stft(audio, 512, 128, pad_end=True))
    db = 20.0 * tf.math.log(mag + 1e-5) / math.log(10.0)
    db = tf.clip_by_value(db - tf.reduce_max(db), -80.0, 0.0) / 80.0 + 1.0
    return tf.reverse(tf.transpose(db, [0, 2, 1]), axis=[1])[..., None]


# ---------------------------------------------------------------------------------------------
# Entry points used by the CLI.


def open_run(
    run: Path,
    data_dir: str,
    settings: TrainSettings,
    *,
    variant: str = choices.DEFAULT_VARIANT.value,
    gin_files: Sequence[str] = (),
    gin_params: Sequence[str] = (),
    z: bool = False,
    force: bool = False,
    steps_given: bool = False,
    init_from: str | None = None,
) -> tuple[Trainer, bool]:
    """A new run, or the existing one at `run` resumed. Returns ``(trainer, resumed)``.

    With ``strategy="multiworker"`` the ``TF_CONFIG`` is checked before anything is written;
    a worker other than the chief never writes `run`: it resumes from the chief's checkpoint
    there (without `force`), else starts from the same arguments the chief starts from.
    `init_from`: a model folder whose weights a new run starts from (`Trainer.initialise_from`;
    recorded in train.json); a resumed run continues from its own checkpoint instead.
    """
    run = Path(run)
    folder = RunFolder(run)
    if run.exists() and not run.is_dir():
        raise OutputError(f"{run} exists and is not a folder")
    role = None
    if settings.strategy == choices.Strategy.MULTIWORKER.value:
        role = distribute.worker_role(os.environ.get("TF_CONFIG"))
    chief = role is None or role.chief
    if folder.exists() and force and chief:
        for name in (CHECKPOINTS, "logs"):
            shutil.rmtree(run / name, ignore_errors=True)
        for name in (STATE_JSON, TRAIN_JSON, model_lib.MODEL_JSON, model_lib.CONFIG_GIN):
            (run / name).unlink(missing_ok=True)
    resumed = folder.exists() and not (force and not chief)
    written: list[Path] = []
    if resumed:
        config = (run / model_lib.CONFIG_GIN).read_text()
        train_json = _read_json(run / TRAIN_JSON)
        stored = TrainSettings.from_dict(train_json)
        if steps_given:
            stored.steps = settings.steps
        stored.strategy, stored.jit = settings.strategy, settings.jit  # how, not what
        stored.cluster_timeout = settings.cluster_timeout
        settings = stored
        variant = train_json.get("variant", variant)
        init_from = train_json.get("init_from", init_from)
    else:
        try:
            config = model_lib.config_text(variant, list(gin_files), list(gin_params), z)
        except (OSError, ValueError) as err:
            raise InputError(str(err)) from None
        if variant == choices.Variant.VST.value:  # before any file is written
            check_variant_data(variant, data.read_info(data_dir), data_dir)
        if chief:
            written = _prepare_run_folder(run, data_dir, config, settings, variant, init_from)
    try:
        seed_process(settings.seed)
        trainer = Trainer(run, data_dir, config, settings, variant)
    except ValueError as err:  # gin's errors are ValueErrors too
        if not resumed and chief:  # a corrected command must not resume the mistake
            _undo_run_folder(run, written)
        raise InputError(f"bad model configuration: {err}") from None
    if resumed:
        model_info = folder.path / model_lib.MODEL_JSON
        if model_info.exists():
            info = _read_json(model_info)
            check_dataset(trainer.info, info["sample_rate"], info["frame_rate"], f"run {run}")
        resumed = trainer.restore() or chief  # another worker: only a checkpoint counts
    if init_from is not None and int(trainer.step.numpy()) == 0:
        try:
            trainer.initialised = (init_from, *trainer.initialise_from(init_from))
        except InputError:
            if not resumed and chief:
                _undo_run_folder(run, written)
            raise
    trainer.check_same_step()
    return trainer, resumed


def _prepare_run_folder(
    run: Path,
    data_dir: str,
    config: str,
    settings: TrainSettings,
    variant: str,
    init_from: str | None = None,
) -> list[Path]:
    """Write a new run's configuration; returns what was created (for `_undo_run_folder`)."""
    data_info = data.read_info(data_dir)  # a missing or empty dataset fails before any write
    if not data_info["splits"].get("train", {}).get("examples"):
        raise InputError(f"{data_dir} has no training examples; prepare more audio")
    created = [] if run.exists() else [run]
    try:
        run.mkdir(parents=True, exist_ok=True)
        probe = run / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"cannot write to {run}: {err.strerror or err}") from None
    storage.write_text(run / model_lib.CONFIG_GIN, config)
    created.append(run / model_lib.CONFIG_GIN)
    stats = storage.join(data_dir, data.STATISTICS_JSON)
    if storage.exists(stats):
        storage.write_text(run / data.STATISTICS_JSON, storage.read_text(stats))
        created.append(run / data.STATISTICS_JSON)
    described = {**asdict(settings), "variant": variant, "data": data_dir}
    if init_from is not None:
        described["init_from"] = str(init_from)
    _write_json(run / TRAIN_JSON, described)
    created.append(run / TRAIN_JSON)
    return created


def _undo_run_folder(run: Path, created: list[Path]) -> None:
    """Remove what `_prepare_run_folder` created (files, then the folder if it made it and
    nothing else is in it: logs a failed start wrote go too)."""
    for path in reversed(created):
        if path == run:
            shutil.rmtree(run / "logs", ignore_errors=True)
            with contextlib.suppress(OSError):
                run.rmdir()
        else:
            path.unlink(missing_ok=True)


class StopFlag:
    """Ctrl-C / SIGTERM -> finish the step, checkpoint, stop. A second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM:
            interrupts.note_sigterm()  # the CLI exits 143, not 130
        self.requested = True

    def __enter__(self) -> StopFlag:
        for sig in interrupts.STOP_SIGNALS:
            if not interrupts.ignored(sig):  # `nohup ddsp fit &`: SIGINT stays ignored
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
