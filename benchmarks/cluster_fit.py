"""`ddsp fit --strategy multiworker` with two worker processes on 127.0.0.1, against one process.

Run by hand (about 4-6 minutes on 2 cores):
    .venv/bin/python benchmarks/cluster_fit.py [--out benchmarks/results/cluster_fit.jsonl]

Four checks, each a JSON line (and appended to --out):

1. ``losses``: the first N steps' losses of two workers (TF_CONFIG, MultiWorkerMirroredStrategy,
   global batch 4 = 2 per worker) against one process with the same global batch and seed, on
   the tone dataset (`tests/toneset.py`, 1 s examples) with the tiny variant without noise (the
   noise synth draws per replica, so it differs by layout by design).
2. ``chief_only``: after that run, the run folder holds the chief's files, the workers' own
   temporary folder (TMPDIR of each process) holds nothing, and worker 1's stderr names no file
   in the run folder.
3. ``resume``: kill -9 both workers once the chief has saved a checkpoint, rerun both: both say
   they resume at the saved step, and the losses after it equal the uninterrupted run's.
4. ``sigterm_one``: SIGTERM to worker 1 only (as a preempted pod gets): both workers stop after
   the same step, the chief saves a checkpoint at it, both exit 130.
5. ``step_time``: seconds per step (median over steps 3..N) on 4 s examples: one process vs
   two workers on the same 2 cores, for the small test model (global batch 8) and the stock
   ``tiny`` variant (280,314 parameters, with noise and reverb; global batch 16).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tfcluster import SMALL, fit_command, losses, start_workers, wait_all  # noqa: E402


def single(command: list[str], tmp: Path, tag: str) -> dict[int, dict]:
    out = tmp / f"{tag}.out"
    with open(out, "wb") as f:
        subprocess.run(command, stdout=f, stderr=subprocess.DEVNULL, check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    return losses(out)


def check_losses(tmp: Path, data: Path, steps: int) -> dict:
    one = single(fit_command(data, tmp / "one", steps, 4, []), tmp, "one")
    start = time.perf_counter()
    codes = wait_all(start_workers(fit_command(data, tmp / "two", steps, 4, []), tmp, "two"))
    wall = time.perf_counter() - start
    two = [losses(tmp / f"two-w{i}.out") for i in range(2)]
    rel = [abs(two[0][s]["loss"] - one[s]["loss"]) / abs(one[s]["loss"]) for s in sorted(one)]
    return {"check": "losses", "exit_codes": codes, "steps": steps, "wall_s_two_workers": wall,
            "workers_agree": all(two[0][s]["loss"] == two[1][s]["loss"] for s in two[0]),
            "one_process": [one[s]["loss"] for s in sorted(one)],
            "two_workers": [two[0][s]["loss"] for s in sorted(two[0])],
            "max_rel_diff_step1": rel[0], "max_rel_diff_all": max(rel)}  # fmt: skip


def check_chief_only(tmp: Path) -> dict:
    run = tmp / "two"
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    leftovers = [str(p) for i in range(2) for p in (tmp / f"two-tmp{i}").rglob("*")]
    return {"check": "chief_only", "run_files": len(files),
            "checkpoints": sorted(p.name for p in (run / "checkpoints").iterdir()),
            "worker_tmp_leftovers": leftovers,
            "worker1_says": (tmp / "two-w1.err").read_text().strip().splitlines()[-1]}  # fmt: skip


def check_resume(tmp: Path, data: Path, steps: int, every: int) -> dict:
    command = fit_command(data, tmp / "kill", steps, 4, ["--checkpoint-every", str(every)])
    procs = start_workers(command, tmp, "kill1")
    state = tmp / "kill" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not state.exists():
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    wait_all(procs)
    saved = json.loads(state.read_text())["step"]
    codes = wait_all(start_workers(command, tmp, "kill2"))
    said = [next((ln for ln in (tmp / f"kill2-w{i}.err").read_text().splitlines()
                  if "resuming" in ln), "") for i in range(2)]  # fmt: skip
    resumed_at = [int(m.group(1)) if (m := re.search(r"at step (\d+)", s)) else None for s in said]
    reference = single(fit_command(data, tmp / "kill-ref", steps, 4, []), tmp, "kill-ref")
    after = losses(tmp / "kill2-w0.out")
    rel = max(abs(after[s]["loss"] - reference[s]["loss"]) / reference[s]["loss"] for s in after)
    return {"check": "resume", "exit_codes": codes, "checkpoint_step": saved,
            "resumed_at": resumed_at, "steps_after": sorted(after),
            "max_rel_diff_vs_one_process": rel}  # fmt: skip


def check_sigterm_one(tmp: Path, data: Path, steps: int) -> dict:
    command = fit_command(data, tmp / "term", steps, 4, ["--checkpoint-every", str(steps)])
    procs = start_workers(command, tmp, "term")
    out = tmp / "term-w1.out"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(out.read_text().splitlines()) < 3:
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    codes = wait_all(procs)
    last = [list(losses(tmp / f"term-w{i}.out").values())[-1] for i in range(2)]
    state = json.loads((tmp / "term" / "state.json").read_text())
    return {"check": "sigterm_one", "exit_codes": codes,
            "last_step": [s["step"] for s in last], "checkpoint": [s["checkpoint"] for s in last],
            "chief_state_step": state["step"]}  # fmt: skip


def check_step_time(tmp: Path, steps: int, batch: int, gin: list[str], model: str) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from toneset import write_tone_dataset

    data = write_tone_dataset(tmp / f"ds4s-{batch}", n_train=2 * batch, n_eval=0, seconds=4.0)
    extra = ["--checkpoint-every", str(10 * steps)]
    tag = f"{model}-{batch}"

    def median(summaries: dict[int, dict]) -> float:
        rates = sorted(1.0 / summaries[s]["steps_per_sec"] for s in summaries if s >= 3)
        return rates[len(rates) // 2]

    one = single(fit_command(data, tmp / f"t1-{tag}", steps, batch, extra, gin), tmp, f"t1-{tag}")
    command = fit_command(data, tmp / f"t2-{tag}", steps, batch, extra, gin)
    codes = wait_all(start_workers(command, tmp, f"t2-{tag}"))
    two = losses(tmp / f"t2-{tag}-w0.out")
    return {"check": "step_time", "model": model, "global_batch": batch, "example_s": 4.0,
            "exit_codes": codes, "load_avg_1min": os.getloadavg()[0],
            "s_per_step_one_process": median(one), "s_per_step_two_workers": median(two),
            "overhead_s_per_step": median(two) - median(one)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--timing-steps", type=int, default=8)
    parser.add_argument("--only-timing", action="store_true", help="only the step_time check")
    parser.add_argument("--no-timing", action="store_true", help="skip the step_time check")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from toneset import write_tone_dataset

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = write_tone_dataset(tmp / "ds", n_train=32, n_eval=4)
        results = [] if args.only_timing else [
            check_losses(tmp, data, args.steps), check_chief_only(tmp),
            check_resume(tmp, data, 2 * args.steps, args.steps // 2),
            check_sigterm_one(tmp, data, 10 * args.steps)]  # fmt: skip
        if not args.no_timing:
            results += [check_step_time(tmp, args.timing_steps, 8, SMALL, "small (test model)"),
                        check_step_time(tmp, args.timing_steps, 16, [], "tiny")]  # fmt: skip
    for result in results:
        result["date"] = time.strftime("%Y-%m-%d")
        line = json.dumps(result)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
