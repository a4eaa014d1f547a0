"""Time from starting ``ddsp studio`` to a page that answers (issue 30).

Run by hand:
    .venv/bin/python benchmarks/studio_start.py [--runs 5] \
        [--json benchmarks/results/studio_start.jsonl]

Each run starts ``ddsp studio --port N`` as a new process (the console script, as a user
types it), polls ``http://127.0.0.1:N/`` every 50 ms, and records the seconds until it
answers 200 and until ``/config`` (what the page loads next) answers too; then stops it
(SIGTERM) and checks that its temporary folder is gone. The first run also pays the disk
cache; the median of the others is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def one_run() -> dict:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TMPDIR": tmp, "DDSP_OFFLINE": "1"}
        start = time.perf_counter()
        proc = subprocess.Popen([str(Path(sys.executable).with_name("ddsp")), "studio",
                                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while not _answers(url):
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise RuntimeError("ddsp studio did not answer")
                time.sleep(0.05)
            page = time.perf_counter() - start
            while not _answers(url + "config"):
                time.sleep(0.05)
            config = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)
        left = list(Path(tmp).iterdir())
    return {"page_s": round(page, 2), "config_s": round(config, 2), "left_behind": len(left)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="append one JSON line per run and a summary here")
    args = parser.parse_args()
    rows = []
    for k in range(args.runs):
        rows.append({"run": k + 1, **one_run()})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    later = rows[1:] or rows
    summary = {"runs": len(rows), "first_page_s": rows[0]["page_s"],
               "median_page_s": statistics.median(r["page_s"] for r in later),
               "median_config_s": statistics.median(r["config_s"] for r in later),
               "left_behind": sum(r["left_behind"] for r in rows),
               "cpus": os.cpu_count()}  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "a") as f:
            for row in [*rows, {"summary": summary}]:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
