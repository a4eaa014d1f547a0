"""Whole `ddsp` processes: the old TensorFlow path against the LiteRT runtime, side by side.

Issue 28, "Must show 3". Run by hand (about 50 minutes on 2 shared cores with the defaults):

    git worktree add /tmp/ddsp-old e460510    # the TensorFlow path (the state before the runtime)
    git worktree add /tmp/ddsp-new HEAD       # the current commit, clean
    python3 -m venv /tmp/bench-light && /tmp/bench-light/bin/pip install -q /tmp/ddsp-new
    DDSP_HOME=/tmp/bench-home nice -n 5 .venv/bin/python benchmarks/runtime_cli.py \\
        --old-tree /tmp/ddsp-old --new-tree /tmp/ddsp-new --light /tmp/bench-light \\
        --out benchmarks/results/runtime_cli-YYYYMMDD.json

(DDSP_HOME needs CREPE full's ``full.pth``: ``ddsp models pull crepe-full``, or a copy.)
Three columns, each a whole process started the way a user starts it:

* ``old``: the TensorFlow path, ``PYTHONPATH=OLD_TREE .venv/bin/python -m ddspcli ...``;
* ``light``: the current tree installed (non-editable) in a venv without TensorFlow (asserted:
  ``import tensorflow`` must fail there), ``LIGHT/bin/ddsp ...``;
* ``full``: the current tree in the full venv (TensorFlow installed): ``.venv/bin/ddsp ...``, or
  with ``--new-tree`` ``PYTHONPATH=NEW_TREE .venv/bin/python -m ddspcli ...`` (a clean checkout,
  when others have uncommitted work in this one).

Every timed section first runs each column once untimed (warm cache: .pyc files, the runtime's
converted files, the page cache), then N rounds interleaved (old, light, full, old, light, ...)
so that the other jobs on the machine hit every column alike; the median is reported, and the
ratio old/new of the medians (`--n*` set N per section; where the old path is slow it may run
in the first rounds only: ``--n-old-10m``, ``--rtf-old-models``). Peak RSS is the child's
``ru_maxrss`` from ``wait4`` (what ``/usr/bin/time -f %M`` prints; it counts the pages of this
process that the child shares until its exec, so this process stays small, about 20 MB: the
inputs are written by a child). ``uptime``'s load average is recorded before every section.

Sections (``--sections``): ``startup`` (``--version``, ``models list``, ``info x.wav``),
``transfer`` (the example clip, ``--model violin --octave 1``), ``transfer1m`` (1-minute input:
peak RSS), ``transfer10m`` (10-minute input: wall seconds per second of audio), ``importtime``
(``-X importtime``: ``info`` and ``transfer`` in the light venv, ``info`` in the full one; the 10
largest cumulative imports, who imports librosa, numba, scipy, ...), ``live_first`` (process
start to the first byte after the 44-byte WAV header of ``live -o -``), ``live_rtf``
(``--stats-json`` at 20 ms blocks, 60 s input, ``--pace realtime``, every model; 10 ms blocks over
30 s, the runtime only), ``features`` (``features --pitch-model full`` on the 1-minute input;
the full venv converts CREPE full's .tflite first), ``install`` (venv sizes, download sizes,
fresh venvs from an empty pip cache and their first transfer). Inputs: the Bach violin
recordings of ``shared/data/bach_violin_ccby`` then the speech clips of ``shared/data/speech``,
concatenated (16 kHz mono) and cut to 600 s and 60 s. The JSON is rewritten after every section.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "speech_198-209-0000.wav"
SHARED = ROOT.parent / "shared" / "data"
MODELS = ["violin", "tenor_sax", "flute-sf", "cello-sf", "trumpet-sf", "violin-vst"]
SECTIONS = [
    "startup",
    "transfer",
    "transfer1m",
    "transfer10m",
    "importtime",
    "live_first",
    "live_rtf",
    "features",
    "install",
]
HEADER = 44  # liveio.wav_stream_header


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def git_head(tree: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


class Columns:
    """How each column starts `ddsp`: argv prefix and environment."""

    def __init__(self, args: argparse.Namespace):
        base = dict(
            os.environ,
            DDSP_HOME=args.ddsp_home,
            DDSP_OFFLINE="1",
            TF_CPP_MIN_LOG_LEVEL="2",
            COLUMNS="120",
        )
        base.pop("PYTHONPATH", None)
        old_env = dict(base, PYTHONPATH=str(args.old_tree))
        self.argv = {
            "old": [args.full_python, "-m", "ddspcli"],
            "light": [str(Path(args.light) / "bin" / "ddsp")],
            "full": [str(Path(args.full_python).parent / "ddsp")],
        }
        full_env = base
        if args.new_tree.resolve() != ROOT:  # a clean checkout of the current commit
            self.argv["full"] = [args.full_python, "-m", "ddspcli"]
            full_env = dict(base, PYTHONPATH=str(args.new_tree))
        self.env = {"old": old_env, "light": base, "full": full_env}
        self.python = {
            "old": args.full_python,
            "light": str(Path(args.light) / "bin" / "python"),
            "full": args.full_python,
        }
        self.names = [c for c in args.columns.split(",") if c]

    def check(self, old_tree: Path, new_tree: Path) -> dict:
        """The old column imports the old tree; the light venv has no TensorFlow."""
        where = {}
        for c in ("old", "light", "full"):
            where[c] = subprocess.run(
                [self.python[c], "-c", "import ddspcli; print(ddspcli.__file__)"],
                env=self.env[c],
                cwd="/",
                capture_output=True,
                text=True,
            ).stdout.strip()
        assert where["old"].startswith(str(old_tree)), where
        assert where["full"].startswith(str(new_tree)), where
        assert "site-packages" in where["light"], where
        tf = subprocess.run(
            [self.python["light"], "-c", "import tensorflow"],
            env=self.env["light"],
            capture_output=True,
            text=True,
        )
        assert tf.returncode != 0 and "No module named 'tensorflow'" in tf.stderr, tf.stderr
        return {"imports": where, "light_import_tensorflow": tf.stderr.strip().splitlines()[-1]}


def run(cmd: list[str], env: dict, cwd: Path, stdin=None) -> dict:
    """One whole process: wall seconds, peak RSS (MB), exit status, the end of stderr."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=stdin or subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-2:]
    return {
        "wall_s": round(wall, 3),
        "rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rc": proc.returncode,
        "stderr_tail": tail if proc.returncode else [],
    }


def interleaved(
    cols: Columns, args_of, n: int, cwd: Path, names=None, warm=True, limit=None
) -> dict:
    """One untimed warm-up per column, then n rounds old, light, full, old, ...; medians.

    `limit` ({column: rounds}): a column runs in its first rounds only (the expensive old path
    where time is short)."""
    names = names or cols.names
    limit = limit or {}
    runs: dict[str, list[dict]] = {c: [] for c in names}
    if warm:
        for c in names:
            run(cols.argv[c] + args_of(c, -1), cols.env[c], cwd)
    for i in range(n):
        for c in names:
            if i < limit.get(c, n):
                runs[c].append(run(cols.argv[c] + args_of(c, i), cols.env[c], cwd))
    out = {}
    for c, rs in runs.items():
        ok = [r for r in rs if r["rc"] == 0]
        out[c] = {
            "n": len(rs),
            "runs": rs,
            "wall_s_median": statistics.median(r["wall_s"] for r in rs),
            "rss_mb_median": statistics.median(r["rss_mb"] for r in rs),
            "ok": len(ok) == len(rs),
        }
    return out


def ratios(section: dict, key: str) -> dict:
    """old/new of the medians."""
    if "old" not in section:
        return {}
    old = section["old"][key]
    return {
        f"old/{c}": round(old / v[key], 2)
        for c, v in section.items()
        if c != "old" and isinstance(v, dict) and v.get(key)
    }


def inputs(args: argparse.Namespace) -> dict:
    """`make_inputs` in a child process: this one stays small (no NumPy), because a child's
    peak RSS (`wait4`) counts the parent's pages it shares until its exec."""
    proc = subprocess.run(
        [args.full_python, __file__, "--make-inputs", str(args.work)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def make_inputs(work: Path) -> dict:
    """x.wav (the example clip), x60.wav, x600.wav: violin recordings then speech, 16 kHz mono."""
    import numpy as np
    import soundfile as sf

    shutil.copy(CLIP, work / "x.wav")
    parts = sorted((SHARED / "bach_violin_ccby" / "audio").glob("*.wav"))
    parts += sorted((SHARED / "speech").rglob("*.wav"))
    chunks = []
    for p in parts:
        x, sr = sf.read(p, dtype="float32", always_2d=True)
        assert sr == 16000, (p, sr)
        chunks.append(x.mean(axis=1))
    x = np.concatenate(chunks)
    assert len(x) >= 600 * 16000, len(x) / 16000
    for s in (60, 600):
        sf.write(work / f"x{s}.wav", x[: s * 16000], 16000, subtype="PCM_16")
    return {
        "sources": [str(p.relative_to(SHARED)) for p in parts],
        "x.wav": str(CLIP.relative_to(ROOT)),
        "x60_s": 60,
        "x600_s": 600,
    }


# ---------------------------------------------------------------------------------------------
# Sections.


def sec_startup(cols, work, args):
    out = {}
    for name, argv in (
        ("version", ["--version"]),
        ("models_list", ["models", "list"]),
        ("info", ["info", "x.wav"]),
    ):
        n = args.n_info if name == "info" else args.n
        res = interleaved(cols, lambda c, i, a=argv: a, n, work)
        res["ratios"] = ratios(res, "wall_s_median")
        out[name] = res
    return out


def sec_transfer(cols, work, args):
    argv = ["transfer", "x.wav", "--model", "violin", "--octave", "1", "--force"]
    res = interleaved(cols, lambda c, i: [*argv, "-o", f"out-{c}.wav"], args.n_transfer, work)
    res["ratios"] = ratios(res, "wall_s_median")
    return res


def _transfer_long(cols, work, n, seconds, limit=None, warm=True):
    clip = ["transfer", "x.wav", "--model", "violin", "--octave", "1", "--force"]
    if warm:  # warm-up: the clip (the long input is in the page cache: just written)
        for c in cols.names:
            run(cols.argv[c] + clip + ["-o", f"out-{c}.wav"], cols.env[c], work)
    argv = ["transfer", f"x{seconds}.wav", "--model", "violin", "--octave", "1", "--force"]
    res = interleaved(
        cols,
        lambda c, i: [*argv, "-o", f"out{seconds}-{c}.wav"],
        n,
        work,
        warm=False,
        limit=limit,
    )
    for c in cols.names:
        res[c]["s_per_audio_s"] = round(res[c]["wall_s_median"] / seconds, 4)
    res["ratios_wall"] = ratios(res, "wall_s_median")
    res["ratios_rss"] = ratios(res, "rss_mb_median")
    return res


def sec_transfer1m(cols, work, args):
    return _transfer_long(cols, work, args.n_long, 60)


def sec_transfer10m(cols, work, args):
    """Old and full in the first rounds only (`--n-old-10m`); no warm-up after transfer1m."""
    limit = {"old": args.n_old_10m, "full": args.n_old_10m}
    warm = "transfer1m" not in args.sections.split(",")
    return _transfer_long(cols, work, args.n_10m, 600, limit=limit, warm=warm)


def sec_importtime(cols, work, args):
    """-X importtime: the 10 largest cumulative imports and who imports the heavy packages, for
    `info` and `transfer` in the light venv and `info` in the full venv."""
    out = {}
    for col, name, argv in (
        ("light", "info", ["info", "x.wav"]),
        ("full", "info", ["info", "x.wav"]),
        (
            "light",
            "transfer",
            [
                "transfer",
                "x.wav",
                "--model",
                "violin",
                "--octave",
                "1",
                "--force",
                "-o",
                "out-imp.wav",
            ],
        ),
    ):
        proc = subprocess.run(
            [cols.python[col], "-X", "importtime", "-m", "ddspcli", *argv],
            env=cols.env[col],
            cwd=work,
            capture_output=True,
            text=True,
        )
        lines = [
            ln
            for ln in proc.stderr.splitlines()
            if ln.startswith("import time:") and not ln.endswith("imported package")
        ]
        (work / f"imp-{name}-{col}.txt").write_text(proc.stderr)
        rows = []
        for ln in lines:
            self_us, cum_us, mod = ln.split(":", 1)[1].split("|")
            rows.append(
                {
                    "module": mod.strip(),
                    "cumulative_ms": round(int(cum_us) / 1000, 1),
                    "self_ms": round(int(self_us) / 1000, 1),
                    "depth": (len(mod) - len(mod.lstrip()) - 1) // 2,
                }
            )
        top = sorted(rows, key=lambda r: -r["cumulative_ms"])[:10]
        heavy = {}
        for base in ("librosa", "numba", "scipy", "sklearn", "matplotlib", "tensorflow"):
            i = next((i for i, r in enumerate(rows) if r["module"] == base), None)
            if i is None:
                continue
            # importtime prints a module after what it imports: its importer is the next line
            # less indented; at depth 0 it was imported inside a function, of the module
            # imported last before it at depth 0 (or one imported earlier)
            d = rows[i]["depth"]
            parent = next((r["module"] for r in rows[i + 1 :] if r["depth"] < d), None)
            before = next(
                (
                    r["module"]
                    for r in rows[i - 1 :: -1]
                    if r["depth"] == 0 and not r["module"].startswith(base)
                ),
                None,
            )
            heavy[base] = {
                "cumulative_ms": rows[i]["cumulative_ms"],
                "imported_by": parent,
                "lazy_after": None if d else before,
            }
        out[f"{name}_{col}"] = {
            "rc": proc.returncode,
            "stderr_tail": [
                ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")
            ][-2:],
            "top10_cumulative": top,
            "heavy_imports": heavy,
        }
    return out


def first_block(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Process start -> the header of `-o -`, and -> its first byte after the header."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    got, t_header, t_first = 0, None, None
    fd = proc.stdout.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += len(chunk)
        now = time.perf_counter() - start
        if t_header is None:
            t_header = now
        if got > HEADER:
            t_first = now
            break
    proc.terminate()
    proc.stdout.close()
    proc.wait()
    return {
        "header_s": round(t_header, 3) if t_header else None,
        "first_block_s": round(t_first, 3) if t_first else None,
        "rc": proc.returncode,
    }


def sec_live_first(cols, work, args):
    argv = ["live", "-m", "violin", "-i", "x.wav", "-o", "-"]
    runs: dict[str, list] = {c: [] for c in cols.names}
    for c in cols.names:
        first_block(cols.argv[c] + argv, cols.env[c], work)
    for _ in range(args.n_live_first):
        for c in cols.names:
            runs[c].append(first_block(cols.argv[c] + argv, cols.env[c], work))
    out = {
        c: {
            "runs": rs,
            "first_block_s_median": statistics.median(
                r["first_block_s"] for r in rs if r["first_block_s"] is not None
            ),
        }
        for c, rs in runs.items()
    }
    out["ratios"] = ratios(out, "first_block_s_median")
    return out


def sec_live_rtf(cols, work, args):
    """20 ms blocks, 60 s paced in real time, every model; then 10 ms blocks over 30 s."""
    out: dict = {"20ms": {}, "10ms": {}}
    names = [c for c in cols.names if c in args.rtf_columns.split(",")]
    for m in args.models.split(","):
        row = {}
        for c in names:
            if c == "old" and m not in args.rtf_old_models.split(","):
                continue
            stats = work / f"stats-{m}-{c}-20.json"
            argv = [
                "live",
                "-m",
                m,
                "-i",
                "x60.wav",
                "-o",
                f"live-{c}.wav",
                "--force",
                "--pace",
                "realtime",
                "--block-ms",
                "20",
                "--stats-json",
                stats.name,
            ]
            stats.unlink(missing_ok=True)
            r = run(cols.argv[c] + argv, cols.env[c], work)
            if stats.exists():
                r["stats"] = json.loads(stats.read_text())
            row[c] = r
        out["20ms"][m] = row
    for m in args.models.split(","):
        stats = work / f"stats-{m}-light-10.json"
        argv = [
            "live",
            "-m",
            m,
            "-i",
            "x60.wav",
            "-o",
            "live-light.wav",
            "--force",
            "--pace",
            "realtime",
            "--block-ms",
            "10",
            "--seconds",
            "30",
            "--stats-json",
            stats.name,
        ]
        stats.unlink(missing_ok=True)
        r = run(cols.argv["light"] + argv, cols.env["light"], work)
        if stats.exists():
            r["stats"] = json.loads(stats.read_text())
        out["10ms"][m] = {"light": r}
    return out


def sec_features(cols, work, args):
    """CREPE full: the full venv converts its .tflite first (into DDSP_HOME), untimed."""
    argv = ["features", "x60.wav", "--pitch-model", "full", "--force"]
    conv = run(cols.argv["full"] + argv + ["-o", "feat-conv.csv"], cols.env["full"], work)
    names = [c for c in cols.names if c in args.features_columns.split(",")]
    for c in names:  # warm-up (old: its .npz of the weights; the full venv: the run above)
        if c != "full":
            run(cols.argv[c] + [*argv, "-o", f"feat-{c}.csv"], cols.env[c], work)
    res = interleaved(
        cols,
        lambda c, i: [*argv, "-o", f"feat-{c}.csv"],
        args.n_features,
        work,
        names=names,
        warm=False,
    )
    res["conversion_run_full_venv"] = conv
    res["ratios"] = ratios(res, "wall_s_median")
    for c in names:
        res[c]["s_per_audio_s"] = round(res[c]["wall_s_median"] / 60, 4)
    return res


def du_mb(path: Path) -> int:
    return int(
        subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout.split()[0]
    )


def sec_install(cols, work, args):
    out: dict = {
        "light_venv_mb": du_mb(Path(args.light)),
        "full_venv_mb": du_mb(Path(args.full_python).parents[1]),
        "full_venv_is": "the repo's .venv (pip install -e '.[test]': train + test tools)",
    }
    for name, spec in (("light", str(args.new_tree)), ("train", f"{args.new_tree}[train]")):
        dest = work / f"dl-{name}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-cache-dir",
                "-d",
                str(dest),
                spec,
            ],
            capture_output=True,
            text=True,
        )
        files = sorted(dest.iterdir())
        out[f"download_{name}"] = {
            "rc": proc.returncode,
            "wall_s": round(time.perf_counter() - start, 1),
            "files": len(files),
            "mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
            "largest": [
                (f.name, round(f.stat().st_size / 2**20, 1))
                for f in sorted(files, key=lambda f: -f.stat().st_size)[:5]
            ],
        }
        shutil.rmtree(dest, ignore_errors=True)
    for name, spec in (("light", str(args.new_tree)), ("train", f"{args.new_tree}[train]")):
        venv = work / f"venv-{name}"
        shutil.rmtree(venv, ignore_errors=True)
        start = time.perf_counter()
        a = subprocess.run(["python3", "-m", "venv", str(venv)], capture_output=True, text=True)
        b = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", spec],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        tf = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import tensorflow"],
            capture_output=True,
            text=True,
        )
        demo = run(
            [
                str(venv / "bin" / "ddsp"),
                "transfer",
                "x.wav",
                "--model",
                "violin",
                "--octave",
                "1",
                "--force",
                "-o",
                f"demo-{name}.wav",
                "--plot",
                f"demo-{name}.png",
            ],
            dict(cols.env["light"], DDSP_HOME=str(work / f"home-{name}")),
            work,
        )
        out[f"fresh_{name}"] = {
            "rc": a.returncode or b.returncode,
            "install_wall_s": round(wall, 1),
            "venv_mb": du_mb(venv),
            "import_tensorflow_rc": tf.returncode,
            "first_transfer_after_install": demo,
        }
        shutil.rmtree(venv, ignore_errors=True)
        shutil.rmtree(work / f"home-{name}", ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old-tree", type=Path, default=Path("/tmp/ddsp-old"))
    p.add_argument("--light", default="/tmp/bench-light")
    p.add_argument("--new-tree", type=Path, default=ROOT, help="the current commit (installed)")
    p.add_argument("--full-python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--ddsp-home", default=os.environ.get("DDSP_HOME", "/tmp/bench-home"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-runtime-cli"))
    p.add_argument("--columns", default="old,light,full")
    p.add_argument("--rtf-columns", default="old,light")
    p.add_argument("--features-columns", default="old,light")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--n", type=int, default=5, help="rounds: --version, models list")
    p.add_argument("--n-info", type=int, default=3)
    p.add_argument("--n-transfer", type=int, default=3, help="rounds: the example clip")
    p.add_argument("--n-long", type=int, default=3, help="rounds: the 1-minute input")
    p.add_argument("--n-10m", type=int, default=3, help="rounds: the 10-minute input")
    p.add_argument("--n-old-10m", type=int, default=1, help="of which old and full run in")
    p.add_argument("--n-live-first", type=int, default=3)
    p.add_argument("--rtf-old-models", default="violin", help="models the old path plays")
    p.add_argument("--n-features", type=int, default=1)
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--out", type=Path, help="JSON file (else printed)")
    p.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make_inputs:
        print(json.dumps(make_inputs(args.make_inputs)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    cols = Columns(args)
    result: dict = {
        "benchmark": "runtime_cli (issue 28)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "nice": os.nice(0),
        },
        "commits": {"new": git_head(args.new_tree), "old": git_head(args.old_tree)},
        "columns": {
            c: {"argv": cols.argv[c], "pythonpath": cols.env[c].get("PYTHONPATH")}
            for c in cols.names
        },
        "checks": cols.check(args.old_tree.resolve(), args.new_tree.resolve()),
        "settings": dict(vars(args), argv=sys.argv[1:]),
        "inputs": inputs(args),
        "sections": {},
    }

    def save() -> None:
        text = json.dumps(result, indent=1, default=str)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")

    for name in args.sections.split(","):
        t0, load = time.perf_counter(), uptime()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {load}", file=sys.stderr, flush=True)
        data = globals()[f"sec_{name}"](cols, args.work, args)
        data["uptime_before"] = load
        data["uptime_after"] = uptime()
        data["section_wall_s"] = round(time.perf_counter() - t0, 1)
        result["sections"][name] = data
        save()
    if not args.out:
        print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
