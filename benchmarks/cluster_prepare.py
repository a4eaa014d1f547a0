"""`ddsp prepare --runner dask` on a local dask.distributed cluster: 1 vs 2 workers, and workers
killed mid-run.

Run by hand (about 10-15 minutes on 2 cores):
    .venv/bin/python benchmarks/cluster_prepare.py [--data ../shared/data] \
        [--out benchmarks/results/cluster_prepare.jsonl]

Input: `--files` excerpts of `--seconds` s cut from the Bach violin recordings, default pitch
settings (CREPE full every 32 ms). Each run is one `ddsp prepare` process, timed from start to
finish; the Dask workers are started and warmed (ddspcli and TensorFlow imported) before the
clock starts, as long-running workers of a real cluster would be. JSON lines:

* ``local``: `--workers 1` in one process (the reference bytes).
* ``dask``: 1 or 2 workers, TensorFlow with its default threads (2 per worker here) or limited
  to 1 thread per worker (a `--preload` that sets TF's thread pools: one core per worker, as on
  a cluster of one-core machines); shards identical to the local run or not.
* ``kill_one``: 2 workers, one killed (SIGKILL) once the first file is done: the scheduler moves
  its work to the other worker and the run finishes.
* ``kill_all``: a scheduler with ``no-workers-timeout`` 5 s, both workers killed once the first
  file is done: one error line and exit 6; then two new workers and a rerun, which resumes from
  the cached files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from daskcluster import LocalCluster, local_cluster  # noqa: E402  (a tests/ helper)

ONE_THREAD = """
def dask_setup(worker):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
"""


def excerpts(source: Path, dest: Path, count: int, seconds: float) -> float:
    """`count` excerpts of `seconds` s from the recordings in `source`; total audio seconds."""
    dest.mkdir(parents=True)
    recordings = sorted(source.glob("*.wav"))
    total = 0.0
    for i in range(count):
        info = sf.info(recordings[i % len(recordings)])
        start = int((30 + 60 * (i // len(recordings))) * info.samplerate)
        audio, rate = sf.read(recordings[i % len(recordings)], start=start,
                              frames=int(seconds * info.samplerate))  # fmt: skip
        sf.write(dest / f"excerpt{i}.wav", audio, rate)
        total += len(audio) / rate
    return total


def digests(folder: Path) -> dict[str, str]:
    paths = [*folder.glob("*.tfrecord"), *folder.glob("*.json")]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}


PREPARE_OPTIONS: list[str] = []  # --prepare-options, e.g. "--pitch-model tiny"


def prepare_command(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddspcli", "prepare", str(inputs), "-o", str(out), "--json",
            *PREPARE_OPTIONS, *extra]  # fmt: skip


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=False,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    return run, time.perf_counter() - start


def warm(cluster: LocalCluster) -> None:
    """Import ddspcli's prepare engine (and TensorFlow) in every worker."""
    import pkgutil

    from distributed import Client

    with Client(cluster.address, set_as_default=False) as client:
        client.run(pkgutil.resolve_name, "ddspcli.engine.prepare:__name__")


def worker_cpu_s(cluster: LocalCluster) -> float:
    """CPU seconds (user + system) the workers have used so far, together."""
    from distributed import Client

    with Client(cluster.address, set_as_default=False) as client:
        return sum(t[0] + t[1] for t in client.run(os.times).values())


def summary(run: subprocess.CompletedProcess) -> dict:
    if run.returncode:
        return {"exit_code": run.returncode, "stderr": run.stderr.strip().splitlines()[-1:]}
    report = json.loads(run.stdout)
    return {"exit_code": 0, "computed_by": report["computed_by"], "minutes": report["minutes"]}


def run_dask(tmp: Path, inputs: Path, audio_s: float, reference: dict, workers: int,
             one_thread: bool) -> dict:  # fmt: skip
    extra = ()
    if one_thread:
        preload = tmp / "one_thread.py"
        preload.write_text(ONE_THREAD)
        extra = ("--preload", str(preload))
    tag = f"dask{workers}{'-1t' if one_thread else ''}"
    start = time.perf_counter()
    with local_cluster(tmp / f"cluster-{tag}", workers, extra=extra) as cluster:
        warm(cluster)
        ready = time.perf_counter() - start
        cpu = worker_cpu_s(cluster)
        run, wall = timed(prepare_command(inputs, tmp / tag, "--runner", "dask", "--scheduler",
                                          cluster.address))  # fmt: skip
        cpu = worker_cpu_s(cluster) - cpu
    return {"check": "dask", "workers": workers, "tf_threads_per_worker": 1 if one_thread else
            "default (2)", "cluster_start_and_warm_s": ready, "wall_s": wall,
            "audio_min_per_wall_min": audio_s / wall, "workers_cpu_s": cpu,
            "workers_cpu_s_per_audio_s": cpu / audio_s, **summary(run),
            "identical_to_local": digests(tmp / tag) == reference}  # fmt: skip


def wait_for_first_file(out: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    cache = out / ".cache" / "features"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if list(cache.glob("*.npz")):
            return
        time.sleep(0.1)


def kill_one(tmp: Path, inputs: Path, reference: dict) -> dict:
    out = tmp / "kill-one"
    with local_cluster(tmp / "cluster-kill-one", 2) as cluster:
        warm(cluster)
        start = time.perf_counter()
        proc = subprocess.Popen(prepare_command(inputs, out, "--runner", "dask", "--scheduler",
                                                cluster.address), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for_first_file(out, proc)
        victim = cluster.workers[1]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.perf_counter() - start
        stdout, stderr = proc.communicate(timeout=900)
        wall = time.perf_counter() - start
    run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return {"check": "kill_one", "killed_pid": victim.pid, "killed_at_s": killed_at,
            "wall_s": wall, **summary(run),
            "identical_to_local": digests(out) == reference}  # fmt: skip


def kill_all(tmp: Path, inputs: Path, reference: dict) -> dict:
    out = tmp / "kill-all"
    timeout = {"DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT": "5s"}
    with local_cluster(tmp / "cluster-kill-all", 2, scheduler_env=timeout) as cluster:
        warm(cluster)
        proc = subprocess.Popen(prepare_command(inputs, out, "--runner", "dask", "--scheduler",
                                                cluster.address), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for_first_file(out, proc)
        for worker in cluster.workers:
            worker.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        _, stderr = proc.communicate(timeout=300)
        failed_after = time.perf_counter() - killed
        done_before = len(list((out / ".cache" / "features").glob("*.npz")))
        for i in range(2):
            cluster.add_worker(f"new{i}")
        cluster.wait_for_workers(2)
        rerun, wall = timed(prepare_command(inputs, out, "--runner", "dask", "--scheduler",
                                            cluster.address))  # fmt: skip
    records = [json.loads(p.read_text()) for p in (out / ".cache" / "records").glob("*.json")]
    return {"check": "kill_all", "exit_code": proc.returncode,
            "stderr": stderr.strip().splitlines(), "failed_s_after_kill": failed_after,
            "files_done_before_kill": done_before, "rerun": summary(rerun), "rerun_wall_s": wall,
            "rerun_cached_files": sum(r["cached"] for r in records),
            "identical_to_local": digests(out) == reference}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only-scaling", action="store_true", help="skip the kill checks")
    parser.add_argument("--only-kill", action="store_true", help="skip the 1 vs 2 worker rows")
    parser.add_argument("--prepare-options", default="", help="more `ddsp prepare` options")
    parser.add_argument("--one-thread", action="store_true",
                        help="also 1 and 2 workers with one TensorFlow thread each")
    args = parser.parse_args()
    args.configs = [] if args.only_kill else [(1, False), (2, False)]
    if args.one_thread:
        args.configs += [(1, True), (2, True)]
    PREPARE_OPTIONS.extend(args.prepare_options.split())
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        inputs = tmp / "in"
        audio_s = excerpts(args.data / "bach_violin_ccby" / "audio", inputs, args.files,
                           args.seconds)  # fmt: skip
        run, wall = timed(prepare_command(inputs, tmp / "local", "--workers", "1"))
        reference = digests(tmp / "local")
        results = [{"check": "local", "audio_s": audio_s, "wall_s": wall,
                    "prepare_options": PREPARE_OPTIONS,
                    "audio_min_per_wall_min": audio_s / wall, **summary(run)}]  # fmt: skip
        emit(results[-1], args.out)
        for workers, one_thread in args.configs:
            results.append(run_dask(tmp, inputs, audio_s, reference, workers, one_thread))
            emit(results[-1], args.out)
        if not args.only_scaling:
            emit(kill_one(tmp, inputs, reference), args.out)
            emit(kill_all(tmp, inputs, reference), args.out)


def emit(result: dict, out: Path | None) -> None:
    result["date"] = time.strftime("%Y-%m-%d")
    result["load_avg_1min"] = os.getloadavg()[0]
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
