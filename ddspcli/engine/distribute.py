"""tf.distribute strategies for `fit`, and the checks of a multi-worker ``TF_CONFIG``.

``--strategy multiworker`` is TensorFlow's `MultiWorkerMirroredStrategy`: every worker process
runs the same `ddsp fit` command with its own ``TF_CONFIG``, e.g. for the second of two::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 1}}'

The global batch (``--batch-size``) is split across the workers; gradients are summed across
them every step. The chief (``chief`` 0, or ``worker`` 0 when there is no chief) writes the run
folder; the others write their checkpoints to a temporary folder and delete it (TensorFlow's
usual pattern: saving is collective, every worker must take part). `worker_role` checks the
``TF_CONFIG`` first, so a malformed one is one clear line instead of a hang or a traceback
from deep inside TensorFlow; `make_strategy` bounds the wait for the other workers to start
(TensorFlow's own default waits for ever).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ddspcli import choices
from ddspcli.engine._tensorflow import tf
from ddspcli.errors import RunError, UsageError

EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)
SUPPORTED_TYPES = ("chief", "worker")


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster of a ``TF_CONFIG``."""

    task_type: str
    index: int
    chief: bool
    cluster: dict[str, list[str]]  # the checked ``cluster`` of the TF_CONFIG

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"

    @property
    def workers(self) -> int:
        """All processes that train (chief + workers)."""
        return sum(len(addresses) for addresses in self.cluster.values())


def _fail(message: str) -> UsageError:
    return UsageError(f"TF_CONFIG: {message}")


def _check_address(address: object, where: str) -> str:
    """``host:port`` with a port in 1..65535."""
    if not isinstance(address, str) or ":" not in address:
        raise _fail(f"{where} is {address!r}, not 'host:port'")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(f"{where} is {address!r}, not 'host:port' with a port in 1..65535")
    return address


def _check_cluster(cluster: object) -> dict[str, list[str]]:
    """The ``cluster`` mapping: chief/worker lists of distinct addresses."""
    if not isinstance(cluster, dict) or not cluster:
        raise _fail(f"'cluster' must map task types to address lists, e.g. {EXAMPLE}")
    seen: dict[str, str] = {}
    for task_type, addresses in cluster.items():
        if task_type not in SUPPORTED_TYPES:
            raise _fail(f"task type {task_type!r} is not supported by --strategy multiworker "
                        f"(use {' and '.join(SUPPORTED_TYPES)})")  # fmt: skip
        if not isinstance(addresses, list) or not addresses:
            raise _fail(f"cluster.{task_type} must be a non-empty list of 'host:port'")
        for i, address in enumerate(addresses):
            where = f"{task_type} {i}"
            _check_address(address, f"the address of {where}")
            if address in seen:
                raise _fail(f"{address} is named twice ({seen[address]} and {where}); each "
                            "worker needs its own host:port")  # fmt: skip
            seen[address] = where
    if len(cluster.get("chief", [])) > 1:
        raise _fail("there can be only one chief")
    return cluster


def worker_role(text: str | None) -> WorkerRole:
    """Parse and check a ``TF_CONFIG`` value.

    Raises:
        UsageError: missing, not JSON, an unsupported task type, a task outside the cluster,
            a malformed or repeated address (exit 2, one line).
    """
    if not text:
        raise UsageError(f"--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                         f"TF_CONFIG='{EXAMPLE}'")  # fmt: skip
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(f"not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise _fail(f"must be a JSON object, e.g. {EXAMPLE}")
    cluster = _check_cluster(config.get("cluster"))
    task = config.get("task")
    if not isinstance(task, dict):
        raise _fail("'task' (this process: type and index) is missing")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _fail(f"task type {task_type!r} is not in the cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(
        cluster[task_type]
    ):
        raise _fail(f"task index {index!r} is outside cluster.{task_type} "
                    f"(0..{len(cluster[task_type]) - 1})")  # fmt: skip
    chief = task_type == "chief" or ("chief" not in cluster and task_type == "worker"
                                     and index == 0)  # fmt: skip
    return WorkerRole(task_type, index, chief, cluster)


def make_strategy(
    name: str, cluster_timeout: float = choices.CLUSTER_TIMEOUT_S
) -> tuple[tf.distribute.Strategy, WorkerRole | None]:
    """The strategy of `name` and, for ``multiworker``, this process's role.

    ``auto`` (mirrored over GPUs when there are several), ``default``, ``mirrored`` (all local
    GPUs, else all logical CPUs), ``multiworker`` (cluster from ``TF_CONFIG``, checked first;
    every worker must have started within `cluster_timeout` seconds, else `RunError`).
    """
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else None
        return strategy or tf.distribute.get_strategy(), None
    if name == "default":
        return tf.distribute.get_strategy(), None
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices), None
    if name == "multiworker":
        role = worker_role(os.environ.get("TF_CONFIG"))
        _bound_registration(role.cluster, cluster_timeout)
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(), role
        except tf.errors.OpError as err:  # a worker was missing at the deadline
            raise not_started(err, role, cluster_timeout) from None
    known = ", ".join(choices.values(choices.Strategy))
    raise ValueError(f"unknown strategy {name!r}; use {known}")


def _bound_registration(cluster: dict[str, list[str]], timeout: float) -> None:
    """Make the strategy's start-up wait for the other workers at most `timeout` seconds.

    TensorFlow's coordination service (which `MultiWorkerMirroredStrategy` configures only when
    nothing is configured yet) waits for every task to register with no deadline by default, in
    C++ with the GIL held: a worker that never starts hangs the others for ever, and no Python
    timer can interrupt them. Configured here as the strategy would (leader: the chief, else
    worker 0; the chief and worker jobs), plus a registration barrier with a deadline; at the
    deadline the strategy's constructor raises `tf.errors.DeadlineExceededError` on every
    worker that did start. Uses TensorFlow's internal context API (checked with TF 2.21).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    if ctx.coordination_service is not None:
        return
    leader = "chief" if "chief" in cluster else "worker"
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in SUPPORTED_TYPES if job in cluster]  # fmt: skip
    ctx.configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0",
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=max(1, round(timeout * 1000)),
    )  # fmt: skip
    ctx.coordination_service.cluster_register_with_barrier = True


def not_started(err: Exception, role: WorkerRole, timeout: float) -> RunError:
    """One line for a start-up that timed out, naming the missing workers when TF does."""
    text = getattr(err, "message", None) or str(err)
    _, _, named = text.partition("timed out task names:")
    listed = re.match(r"(\s*/job:\S+)+", named)  # the lines right after, one task each
    tasks = re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", listed[0] if listed else "")
    missing = sorted({f"{job} {task}" for job, task in tasks})
    missing_text = f" (missing: {', '.join(missing)})" if missing else ""
    return RunError(
        f"not every worker of TF_CONFIG started within {timeout:g} s{missing_text}; {role.name} "
        "gave up waiting. Start every worker with its TF_CONFIG (raise --cluster-timeout if "
        "they take longer to be scheduled) and rerun"
    )


def lost_workers(err: Exception, role: WorkerRole, what: str) -> RunError:
    """One line for TensorFlow's multi-line error when workers are missing or were lost."""
    text = getattr(err, "message", None) or str(err)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return RunError(
        f"the workers of TF_CONFIG {what} ({role.name}: {first[:160]}); start every worker "
        "with its TF_CONFIG and rerun: they resume from the last checkpoint"
    )


def split_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard by data, not files, across workers: each worker reads the same seeded sequence and
    keeps its part of every global batch, so the batches are those of one process."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
