"""`ddsp prepare` throughput and peak memory on the violin recordings.

Run by hand (about 10-15 minutes on 2 cores):
    DDSP_HOME=... .venv/bin/python benchmarks/prepare_speed.py [--data ../shared/data]

Prepares ../shared/data/bach_violin_ccby (about 10 minutes of solo violin) with the default
(accuracy-preserving) pitch settings into a temporary folder, as a user would: one `ddsp prepare`
process, timed from start to finish, its peak resident memory read from the kernel.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--extra", nargs="*", default=[], help="extra `ddsp prepare` options")
    args = parser.parse_args()
    source = args.data / "bach_violin_ccby"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "violin"
        command = [sys.executable, "-m", "ddspcli", "-q", "prepare", str(source), "-o", str(out),
                   "--json", *args.extra]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if run.returncode != 0:
            raise SystemExit(run.stderr)
        report = json.loads(run.stdout)
    minutes, examples = report["minutes"], report["examples"]
    print(f"| {minutes:.2f} audio min | {wall / 60:.2f} wall min | "
          f"{minutes / (wall / 60):.2f} audio min per wall min | peak RSS {peak_mb:.0f} MB | "
          f"examples train/eval {examples['train']}/{examples['eval']} |")  # fmt: skip


if __name__ == "__main__":
    main()
