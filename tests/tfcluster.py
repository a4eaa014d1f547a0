"""Two `ddsp fit --strategy multiworker` processes on 127.0.0.1, each with its own TF_CONFIG.

Used by `tests/test_multiworker.py` and `benchmarks/cluster_fit.py`. Every worker runs the
same command in its own process with its own ``TMPDIR`` (where a worker other than the chief
writes its throw-away checkpoints), stdout and stderr in files ``TAG-wI.out`` / ``.err``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

# The small model of the tests: no noise (its synth draws per replica, so its output depends
# on the layout by design) and no reverb; the tiny variant's GRU narrowed to 48 units.
SMALL = ["Autoencoder.rnn_units = 48", "Autoencoder.n_harmonics = 16",
         "Autoencoder.n_noise_bands = 0", "Autoencoder.reverb_length = 0"]  # fmt: skip


def free_ports(n: int) -> list[int]:
    """`n` TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def fit_command(data: Path, out: Path, steps: int, batch: int, extra: list[str],
                gin: list[str] = SMALL) -> list[str]:  # fmt: skip
    """``python -m ddspcli fit`` with one JSON summary per step on stdout."""
    params = [a for p in gin for a in ("--gin-param", p)]
    return [sys.executable, "-m", "ddspcli", "fit", str(data), "-o", str(out), "--variant",
            "tiny", *params, "--batch-size", str(batch), "--steps", str(steps),
            "--summary-every", "1", "--json-log", *extra]  # fmt: skip


def start_workers(command: list[str], tmp: Path, tag: str, n: int = 2,
                  ports: list[int] | None = None) -> list[subprocess.Popen]:  # fmt: skip
    """`n` processes running `command` with ``--strategy multiworker``, each with its TF_CONFIG
    (workers 0..n-1 at `ports`, free ones by default) and its own TMPDIR ``TAG-tmpI``."""
    workers = [f"127.0.0.1:{p}" for p in (ports or free_ports(n))]
    procs = []
    for i in range(n):
        scratch = tmp / f"{tag}-tmp{i}"
        scratch.mkdir(parents=True, exist_ok=True)
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
        with open(tmp / f"{tag}-w{i}.out", "wb") as out, open(tmp / f"{tag}-w{i}.err", "wb") as err:
            procs.append(subprocess.Popen([*command, "--strategy", "multiworker"], stdout=out,
                                          stderr=err, env=env))  # fmt: skip
    return procs


def losses(path: Path) -> dict[int, dict]:
    """The JSON summaries of a ``--json-log`` stdout file, by step."""
    return {s["step"]: s for s in map(json.loads, path.read_text().splitlines()) if s}


def wait_all(procs: list[subprocess.Popen], timeout: float = 600) -> list[int]:
    """Exit codes; a process still running after `timeout` s is killed (and the test fails)."""
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return codes
