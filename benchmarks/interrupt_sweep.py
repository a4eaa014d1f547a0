"""Ctrl-C at N points of a `ddsp transfer`: the exit code of each (issue 31, line 3).

Run by hand (about 6 minutes on 2 cores with the defaults):
    .venv/bin/python benchmarks/interrupt_sweep.py [-n 20] [--seconds 60] [--signal INT]
        [--model violin] [--numba-viterbi 0.05,1,3]

A synthetic input (a 330 Hz tone with vibrato and pauses, `--seconds` long, 16 kHz) is written
to a temporary folder. One uninterrupted `python -m ddspcli transfer IN --model M -o OUT` gives
the length T of a run (start-up included); then N runs are each sent the signal once, at
T * (i + 0.5) / N seconds (i = 0 .. N-1), spread over the whole run. Printed per run: the
delay, the exit code (130 Ctrl-C, 143 SIGTERM, 0 finished before the signal, -N killed by
signal N: -11 a segmentation fault, -2 SIGINT before Python's handler was set), whether a
Python traceback was printed, whether an output or a temporary file was left behind.
"ok" = 130/143 (or killed by the signal itself, which a shell also reports as 128 + N) with
nothing left, or 0 with a complete output (or a complete output and killed by the signal at
exit), and no traceback.

--numba-viterbi D1,D2,...: also interrupt librosa's numba Viterbi (`pitch.viterbi_bins`, kept
behind `interrupts.deferred`; transfer itself decodes with NumPy's `pitch.viterbi_path`) while
numba compiles it (an empty NUMBA_CACHE_DIR: tens of seconds of CPU), SIGINT at each delay:
expected a KeyboardInterrupt once the section ends, never a crash.

Nothing here uses the network (DDSP_OFFLINE=1; the shipped models and CREPE tiny).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def write_input(path: Path, seconds: float) -> None:
    """A sung-like line: 330 Hz with 5 Hz vibrato, notes of 0.8 s with 0.2 s pauses."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 330 * 2 ** ((np.floor(t) % 5 - 2) / 12) * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    gate = (t % 1.0) < 0.8
    x = 0.3 * gate * sum(np.sin(h * phase) / h for h in range(1, 6))
    sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")


def env() -> dict[str, str]:
    return {**os.environ, "DDSP_OFFLINE": "1"}


def default_sigint() -> None:
    """In the child: SIGINT as in a terminal's foreground job (a shell's background job, or
    nohup, would hand it down ignored, and `ddsp` keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def transfer(src: Path, out: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "ddspcli", "transfer", str(src), "--model", model, "-o",
            str(out), "--force"]  # fmt: skip


def one_run(src: Path, folder: Path, model: str, delay: float | None, signum: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out.wav"
    start = time.monotonic()
    proc = subprocess.Popen(transfer(src, out, model), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env(),
                            preexec_fn=default_sigint)  # fmt: skip
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
    _, err = proc.communicate()
    wall = time.monotonic() - start
    left = sorted(p.name for p in folder.iterdir())
    temporaries = [n for n in left if ".tmp" in n]
    complete = out.exists() and sf.info(out).frames == sf.info(src).frames
    code = proc.returncode
    traceback = b"Traceback" in err
    # 130/143: ddsp's own exit; -signum: killed by the signal itself (before Python set its
    # handler, after it restored it at exit, or CPython 3.11 re-raising a KeyboardInterrupt
    # caught inside an exec of a string), which a shell reports as 128 + signum, quietly
    stopped = code in (130, 143, -signum) and not left
    late = code == -signum and complete and left == ["out.wav"]  # finished, then the signal
    ok = not traceback and (stopped or late or (code == 0 and complete and not temporaries))
    for name in left:
        (folder / name).unlink()
    return {"delay": delay, "code": code, "wall": wall, "traceback": traceback,
            "left": left, "ok": ok, "stderr": err.decode(errors="replace")}  # fmt: skip


NUMBA_CHECK = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    from ddspcli.engine import pitch

    delay = float(sys.argv[1])
    act = np.random.default_rng(0).random((400, pitch.N_BINS)).astype(np.float32)
    start = time.monotonic()
    threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        pitch.viterbi_bins(act)
        print(f"finished {time.monotonic() - start:.2f}")
        time.sleep(max(0.0, delay - (time.monotonic() - start)) + 0.5)
    except KeyboardInterrupt:
        print(f"KeyboardInterrupt {time.monotonic() - start:.2f}")
        sys.exit(130)
""")


def numba_run(delay: float, cache: Path) -> dict:
    for p in cache.glob("**/*"):
        if p.is_file():
            p.unlink()
    done = subprocess.run([sys.executable, "-c", NUMBA_CHECK, str(delay)], capture_output=True,
                          env={**env(), "NUMBA_CACHE_DIR": str(cache)},
                          preexec_fn=default_sigint, check=False)  # fmt: skip
    return {"delay": delay, "code": done.returncode, "out": done.stdout.decode().strip(),
            "traceback": b"Traceback" in done.stderr}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="interrupts (runs)")
    parser.add_argument("--seconds", type=float, default=60.0, help="input length")
    parser.add_argument("--model", default="violin")
    parser.add_argument("--signal", choices=("INT", "TERM"), default="INT")
    parser.add_argument("--numba-viterbi", default="", help="comma-separated delays (s)")
    args = parser.parse_args()
    signum = getattr(signal, f"SIG{args.signal}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "in.wav"
        write_input(src, args.seconds)
        base = one_run(src, root / "base", args.model, None, signum)
        if base["code"] != 0:
            sys.exit(f"the uninterrupted run failed ({base['code']}): {base['stderr'][-2000:]}")
        total = base["wall"]
        print(f"ddsp transfer of {args.seconds:g} s ({args.model}): {total:.1f} s uninterrupted;"
              f" SIG{args.signal} at {args.n} points\n")  # fmt: skip
        print(f"{'delay s':>8}  {'exit':>5}  {'wall s':>7}  {'traceback':>9}  {'left':<14}  ok")
        bad = 0
        for i in range(args.n):
            delay = total * (i + 0.5) / args.n
            r = one_run(src, root / f"run{i}", args.model, delay, signum)
            bad += not r["ok"]
            mark = "yes" if r["traceback"] else "-"
            print(f"{delay:8.2f}  {r['code']:5d}  {r['wall']:7.1f}  {mark:>9}"
                  f"  {','.join(r['left']) or '-':<14}  {'ok' if r['ok'] else 'NOT OK'}",
                  flush=True)  # fmt: skip
            if r["traceback"]:
                print("          " + r["stderr"].strip().splitlines()[-1])
        print(f"\n{args.n - bad} of {args.n} ok")
        if args.numba_viterbi:
            cache = root / "numba"
            cache.mkdir()
            print("\nlibrosa's numba Viterbi (pitch.viterbi_bins), compiled from an empty cache:")
            print(f"{'delay s':>8}  {'exit':>5}  {'traceback':>9}  what happened")
            for delay in (float(d) for d in args.numba_viterbi.split(",")):
                r = numba_run(delay, cache)
                print(f"{delay:8.2f}  {r['code']:5d}  {'yes' if r['traceback'] else '-':>9}"
                      f"  {r['out']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
