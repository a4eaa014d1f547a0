"""`fit --strategy multiworker`: two real worker processes on 127.0.0.1 (losses of one process,
chief-only writes, kill -9 and resume), a worker that never comes (bounded wait, one line), and
the checks of TF_CONFIG (one line, exit 2, nothing written).

The step overhead and a SIGTERM to one worker are `benchmarks/cluster_fit.py` (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from clirun import ddsp
from tfcluster import SMALL, fit_command, free_ports, losses, start_workers, wait_all
from toneset import write_tone_dataset

from ddspcli.engine import distribute
from ddspcli.errors import EXIT_RUNTIME, EXIT_USAGE, UsageError

TWO = ["127.0.0.1:23456", "127.0.0.1:23457"]


def config(cluster: object, task: object = None) -> str:
    return json.dumps({"cluster": cluster, "task": task or {"type": "worker", "index": 0}})


def test_roles_of_a_good_tf_config():
    role = distribute.worker_role(config({"worker": TWO}, {"type": "worker", "index": 1}))
    assert (role.task_type, role.index, role.workers, role.chief) == ("worker", 1, 2, False)
    assert distribute.worker_role(config({"worker": TWO})).chief  # worker 0 without a chief
    with_chief = {"chief": ["10.0.0.1:2222"], "worker": TWO}
    assert distribute.worker_role(config(with_chief, {"type": "chief", "index": 0})).chief
    role = distribute.worker_role(config(with_chief))
    assert not role.chief and role.workers == 3


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "needs TF_CONFIG"),
        ('{"cluster": {"worker": ["a:1"]', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "'cluster' must map"),
        (config({"worker": TWO}, {"type": "worker", "index": 2}), "index 2 is outside"),
        (config({"worker": TWO}, {"type": "worker", "index": "0"}), "index '0' is outside"),
        (config({"worker": TWO}, {"type": "chief", "index": 0}), "'chief' is not in"),
        (config({"worker": [TWO[0], TWO[0]]}), "127.0.0.1:23456 is named twice"),
        (config({"chief": [TWO[0]], "worker": TWO}), "named twice (chief 0 and worker 0)"),
        (config({"worker": ["localhost"]}), "not 'host:port'"),
        (config({"worker": ["localhost:99999"]}), "port in 1..65535"),
        (config({"ps": TWO, "worker": TWO}), "'ps' is not supported"),
        (json.dumps({"cluster": {"worker": TWO}}), "'task'"),
    ],
)
def test_bad_tf_config_is_one_usage_error(tf_config, message):
    with pytest.raises(UsageError, match="TF_CONFIG") as err:
        distribute.worker_role(tf_config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_fit_refuses_a_bad_tf_config_before_writing(tmp_path):
    tones = write_tone_dataset(tmp_path / "ds", n_train=4, n_eval=0)
    for tf_config, message in ((config({"worker": [TWO[0], TWO[0]]}), "named twice"),
                               ("{not json", "not valid JSON")):  # fmt: skip
        run = ddsp("fit", tones, "-o", tmp_path / "run", "--strategy", "multiworker",
                   "--steps", "1", env={"TF_CONFIG": tf_config})  # fmt: skip
        lines = run.stderr.decode().strip().splitlines()
        assert run.returncode == EXIT_USAGE, lines
        assert len(lines) == 1 and lines[0].startswith("ddsp: error: TF_CONFIG: ")
        assert message in lines[0]
        assert not (tmp_path / "run").exists()


def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_train_as_one_process_only_the_chief_writes_and_both_resume(tmp_path):
    """Global batch 4 = 2 per worker; kill -9 both after the first checkpoint, rerun both."""
    data = write_tone_dataset(tmp_path / "ds", n_train=8, n_eval=0)
    steps, every = 6, 2
    params = [a for p in SMALL for a in ("--gin-param", p)]
    one = ddsp("fit", data, "-o", tmp_path / "one", "--variant", "tiny", *params,
               "--batch-size", "4", "--steps", str(steps), "--summary-every", "1",
               "--json-log", text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr
    reference = {s["step"]: s["loss"] for s in map(json.loads, one.stdout.splitlines())}

    run = tmp_path / "two"
    command = fit_command(data, run, steps, 4, ["--checkpoint-every", str(every)])
    first = start_workers(command, tmp_path, "a")
    _until(lambda: (run / "state.json").exists(), 300)  # the chief's first checkpoint
    for proc in first:
        proc.send_signal(signal.SIGKILL)
    wait_all(first)
    saved = json.loads((run / "state.json").read_text())["step"]
    assert saved % every == 0 and 0 < saved < steps

    assert wait_all(start_workers(command, tmp_path, "b")) == [0, 0]
    for i in range(2):  # both resumed at the chief's checkpoint, and agree on every loss
        assert f"resuming {run} at step {saved} " in (tmp_path / f"b-w{i}.err").read_text()
    after = [losses(tmp_path / f"b-w{i}.out") for i in range(2)]
    assert sorted(after[0]) == list(range(saved + 1, steps + 1))
    assert all(after[0][s]["loss"] == after[1][s]["loss"] for s in after[0])
    before = losses(tmp_path / "a-w0.out")
    seen = {s: v["loss"] for s, v in [*before.items(), *after[0].items()]}
    for step, loss in seen.items():  # float sums in another order: 7.6e-5 over 10 steps measured
        assert loss == pytest.approx(reference[step], rel=1e-3), step
    assert reference[1] == pytest.approx(seen[1], rel=1e-5)

    # Only the chief wrote: the finished workers' scratch folders hold autograph's sources only
    # (worker 1's checkpoints went there and were deleted), the run the chief's files.
    kept = [p for i in range(2) for p in (tmp_path / f"b-tmp{i}").rglob("*")
            if not p.name.startswith("__autograph_generated_file")]  # fmt: skip
    assert kept == []
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names[-1] == f"ckpt-{steps:08d}"
    assert json.loads((run / "state.json").read_text())["step"] == steps


def test_a_worker_that_never_starts_stops_the_others_in_bounded_time(tmp_path):
    """TensorFlow alone would wait for worker 1 for ever; --cluster-timeout bounds it."""
    data = write_tone_dataset(tmp_path / "ds", n_train=4, n_eval=0)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    command = fit_command(data, tmp_path / "run", 2, 2, ["--cluster-timeout", "3"])
    start = time.monotonic()
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it (conftest lets TF's errors out)
    done = subprocess.run([*command, "--strategy", "multiworker"], capture_output=True, env=env,
                          timeout=120)  # fmt: skip
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == EXIT_RUNTIME, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("ddsp: error: not every worker of TF_CONFIG started within 3 s "
                               "(missing: worker 1)")  # fmt: skip
    assert time.monotonic() - start < 60
    assert not (tmp_path / "run" / "checkpoints").exists() and done.stdout == b""
