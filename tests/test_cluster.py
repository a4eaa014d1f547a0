"""`prepare --runner dask`: Beam's DaskRunner on a real dask.distributed cluster (a scheduler
and two worker processes on 127.0.0.1, started here), and its errors.

The heavier demonstrations (a worker killed mid-run, 1 vs 2 workers) are
`benchmarks/cluster_prepare.py`; their figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp
from daskcluster import local_cluster

from ddspcli.errors import EXIT_RUNTIME, EXIT_USAGE

pytest.importorskip("distributed", reason="needs dask.distributed: pip install '.[cluster]'")
pytest.importorskip("apache_beam", reason="needs Apache Beam: pip install '.[cluster]'")

FAST = ("--pitch-model", "tiny", "--pitch-hop-ms", "32")
SR = 16000


def write_tones(folder: Path) -> Path:
    """Three short harmonic tones (4.5-6 s) in `folder`."""
    folder.mkdir(parents=True)
    for f0, seconds in ((220.0, 5.0), (330.0, 6.0), (440.0, 4.5)):
        t = np.arange(int(seconds * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)
        sf.write(folder / f"tone{int(f0)}.wav", x.astype(np.float32), SR)
    return folder


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every shard and JSON file of a dataset folder."""
    paths = [*folder.glob("*.tfrecord"), *folder.glob("*.json")]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}


def one_error_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddsp: error: "), lines
    return lines[0]


def test_dask_runner_gives_the_local_bytes_computed_in_the_workers(tmp_path, crepe_weights):
    crepe_weights("tiny")
    tones = write_tones(tmp_path / "in")
    local = ddsp("prepare", str(tones), "-o", str(tmp_path / "local"), *FAST, "--workers", "1")
    assert local.returncode == 0, local.stderr.decode()
    with local_cluster(tmp_path / "cluster", workers=2) as cluster:
        pids = set(cluster.worker_pids().values())
        run = ddsp("prepare", str(tones), "-o", str(tmp_path / "dask"), *FAST, "--runner",
                   "dask", "--scheduler", cluster.address, "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    # Shards, dataset.json and statistics.json: byte-identical to the local run.
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
    assert len(digests(tmp_path / "local")) == 4  # train and eval shards + the two JSONs
    # Every file was computed in a worker process, and both workers took part.
    records = [json.loads(p.read_text())
               for p in (tmp_path / "dask" / ".cache" / "records").glob("*.json")]  # fmt: skip
    assert len(records) == 3 and not any(r["cached"] for r in records)
    assert {r["pid"] for r in records} == pids
    computed = json.loads(run.stdout)["computed_by"]
    assert sum(computed.values()) == 3 and {int(k.rsplit(":", 1)[1]) for k in computed} == pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_that_does_not_answer_is_one_line_within_the_timeout(tmp_path):
    tones = tmp_path / "in"
    tones.mkdir()
    sf.write(tones / "a.wav", np.zeros(SR, np.float32), SR)
    start = time.monotonic()
    run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), *FAST, "--runner", "dask",
               "--scheduler", f"tcp://127.0.0.1:{free_port()}", "--scheduler-timeout", "1")
    assert run.returncode == EXIT_RUNTIME
    assert "no Dask scheduler answered at tcp://127.0.0.1:" in one_error_line(run.stderr)
    assert time.monotonic() - start < 15
    assert not (tmp_path / "ds" / "dataset.json").exists()
    # Something else listens on the port (here: a server that replies with HTTP and hangs up).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" + b"x" * 64)

        threading.Thread(target=answer, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), *FAST, "--runner",
                   "dask", "--scheduler", address, "--scheduler-timeout", "2")  # fmt: skip
    assert run.returncode == EXIT_RUNTIME
    assert address in one_error_line(run.stderr)
    run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), "--runner", "dask")
    assert run.returncode == EXIT_USAGE and "--scheduler" in run.stderr.decode()
    run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), "--runner", "dask",
               "--scheduler", "tcp://[nonsense")  # fmt: skip
    assert run.returncode == EXIT_RUNTIME and "bad Dask scheduler address" in run.stderr.decode()


def test_a_worker_without_ddspcli_is_named_in_one_line(tmp_path):
    tones = tmp_path / "in"
    tones.mkdir()
    sf.write(tones / "a.wav", np.zeros(SR, np.float32), SR)
    with local_cluster(tmp_path / "cluster", workers=0) as cluster:
        run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), "--runner", "dask",
                   "--scheduler", cluster.address, "--scheduler-timeout", "5")  # fmt: skip
        assert run.returncode == EXIT_RUNTIME
        assert "has no workers" in one_error_line(run.stderr)
        cluster.add_worker("bare", importable=False)
        cluster.wait_for_workers(1)
        run = ddsp("prepare", str(tones), "-o", str(tmp_path / "ds"), "--runner", "dask",
                   "--scheduler", cluster.address, "--scheduler-timeout", "5")  # fmt: skip
    assert run.returncode == EXIT_RUNTIME
    line = one_error_line(run.stderr)
    assert "cannot import ddspcli" in line and "install ddspcli" in line
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_cluster_failures_become_one_line_and_others_stay_bugs():
    from distributed import KilledWorker
    from distributed.scheduler import NoWorkerError

    from ddspcli.engine import cluster

    lost = cluster.explain_failure(NoWorkerError(("features", 3), 5.0))
    assert lost is not None and "rerun the same command" in str(lost)
    died = cluster.explain_failure(KilledWorker(("features", 1), None, 3))
    assert died is not None and "rerun the same command" in str(died)
    missing = ModuleNotFoundError("No module named 'ddspcli'", name="ddspcli")
    assert "cannot import ddspcli" in str(cluster.explain_failure(missing))
    assert cluster.explain_failure(ModuleNotFoundError("x", name="numpy")) is None
    assert cluster.explain_failure(ZeroDivisionError()) is None
