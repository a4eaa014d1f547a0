"""`fit --strategy multiworker`: the checks of TF_CONFIG (one line, exit 2, nothing written).

The real two-process run (losses against one process, chief-only writes, kill and resume,
step overhead) is `benchmarks/cluster_fit.py`, with its figures in BENCHMARKS.md.
"""

from __future__ import annotations

import json

import pytest
from clirun import ddsp
from toneset import write_tone_dataset

from ddspcli.engine import distribute
from ddspcli.errors import EXIT_USAGE, UsageError

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
