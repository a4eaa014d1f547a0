"""A real dask.distributed cluster on 127.0.0.1: one `dask scheduler` and worker processes.

Used by `tests/test_cluster.py` and the `benchmarks/cluster_*.py` scripts. The processes are
the pip package's own command-line programs (``python -m distributed.cli.dask_scheduler`` /
``dask_worker``, what the ``dask scheduler`` and ``dask worker`` commands run), each on a free
port chosen by the OS; workers run without a nanny, so a killed worker stays dead and the
scheduler has to move its work elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# A worker whose Python cannot import ddspcli (as on a machine where it was never installed).
NO_DDSPCLI = (
    "import sys; sys.modules['ddspcli'] = None; "
    "from distributed.cli.dask_worker import main; main()"
)


@dataclass
class LocalCluster:
    """The running processes; `address` is the scheduler's ``tcp://127.0.0.1:PORT``."""

    folder: Path
    address: str = ""
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_scheduler(self, timeout_s: float = 60.0,
                        env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        file = self.folder / "scheduler.json"
        self.scheduler = _spawn(
            ["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            self.folder / "scheduler.log", env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not file.exists() and time.monotonic() < deadline:
            _check_alive(self.scheduler, "scheduler")
            time.sleep(0.1)
        self.address = json.loads(file.read_text())["address"]

    def add_worker(self, name: str, env: Mapping[str, str] | None = None,
                   importable: bool = True, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a worker (one task at a time); `importable=False`: without ddspcli; `extra`:
        more ``dask worker`` options (e.g. ``--preload FILE``)."""
        head = ["-c", NO_DDSPCLI] if not importable else ["-m", "distributed.cli.dask_worker"]
        proc = _spawn(
            [*head, self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
             "--name", name, *extra],
            self.folder / f"{name}.log", env,
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, count: int, timeout_s: float = 120.0) -> None:
        """Block until the scheduler knows `count` workers."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout_s)

    def worker_pids(self) -> dict[str, int]:
        """``{worker address: pid}`` as the workers report it themselves."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            return client.run(os.getpid)

    def stop(self) -> None:
        procs = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _spawn(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})  # fmt: skip


def _check_alive(proc: subprocess.Popen, what: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"the Dask {what} exited with {proc.returncode}")


@contextlib.contextmanager
def local_cluster(folder: Path, workers: int = 2, env: Mapping[str, str] | None = None,
                  scheduler_env: Mapping[str, str] | None = None,
                  extra: tuple[str, ...] = ()) -> Iterator[LocalCluster]:  # fmt: skip
    """A scheduler and `workers` workers (named ``w0``, ``w1``, ...), stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(folder)
    try:
        cluster.start_scheduler(env=scheduler_env)
        for i in range(workers):
            cluster.add_worker(f"w{i}", env, extra=extra)
        if workers:
            cluster.wait_for_workers(workers)
        yield cluster
    finally:
        cluster.stop()
