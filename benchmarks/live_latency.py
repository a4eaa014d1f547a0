"""`ddsp live` latency and speed: every shipped model, blocks of 10 / 20 / 40 ms.

For each (model, block): the algorithmic latency (block + CREPE's half window + synthesis
look-ahead), compute time per block (p50 / p99 / max), the real-time factor (compute time /
audio time) and the xruns over `--seconds` of input paced in real time exactly as a sound card
would (`--pace realtime`: a block whose compute ends after its playback slot is an xrun). The
input is singing (vocadito_1) followed by speech (CMU ARCTIC), looped to length. Then CREPE
full at 20 ms blocks, unpaced on a shorter input, for its cost. Run it with nothing else on
the machine:

    DDSP_HOME=... .venv/bin/python benchmarks/live_latency.py [--seconds 60] [--out r.jsonl]

`--blocks 20 --pace both --full-seconds 0 --label new` runs only 20 ms blocks, paced and
unpaced (per-block compute without waiting for the clock), without CREPE full, each row tagged
`new`: with ``PYTHONPATH=<a worktree of an older commit>`` the same script measures that
commit's engine, so old and new can run interleaved on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ddspcli.engine import audio, live
from ddspcli.instrument import Instrument

MODELS = ("violin", "tenor_sax", "flute-sf", "cello-sf", "trumpet-sf")
BLOCKS_MS = (10, 20, 40)


def test_input(data: Path, seconds: float) -> np.ndarray:
    """Singing then speech at 16 kHz, looped to `seconds`."""
    parts = [audio.read_audio(data / "vocadito" / "audio" / "vocadito_1.wav", 16000)[0],
             *(audio.read_audio(p, 16000)[0]
               for p in sorted((data / "speech" / "cmu_arctic").rglob("*.wav"))[:5])]  # fmt: skip
    x = np.concatenate(parts)
    return np.resize(x, int(seconds * 16000)).astype(np.float32)


def run(player: Instrument, x: np.ndarray, block_ms: float, pace: bool) -> dict:
    settings = live.LiveSettings(block_ms=block_ms,
                                 pitch_model=player.feature_settings.pitch_model)  # fmt: skip
    engine = live.LiveEngine(player, settings, live.block_samples(settings, player))
    engine.warm_up()
    runner = live.BlockRunner(engine, pace=pace)
    for i in range(0, len(x), engine.block):
        runner.push(x[i : i + engine.block])
    return engine.stats.to_dict(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--full-seconds", type=float, default=10.0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--blocks", default=",".join(map(str, BLOCKS_MS)), help="block ms list")
    parser.add_argument("--pace", choices=("realtime", "none", "both"), default="realtime",
                        help="tiny runs paced in real time, unpaced, or both")  # fmt: skip
    parser.add_argument("--label", default="", help="a tag added to every row")
    args = parser.parse_args()
    x = test_input(args.data, args.seconds)
    rows = []
    for name in args.models.split(","):
        full = args.full_seconds > 0
        players = {m: Instrument.open(name, pitch_model=m) for m in ("tiny", "full")[: 1 + full]}
        paces = {"realtime": (True,), "none": (False,), "both": (True, False)}[args.pace]
        configs = [(float(b), "tiny", pace, x) for b in args.blocks.split(",") for pace in paces]
        if full:
            configs.append((20, "full", False, x[: int(args.full_seconds * 16000)]))
        for block_ms, pitch_model, pace, signal in configs:
            stats = run(players[pitch_model], signal, block_ms, pace)
            row = {"model": name, "paced": pace, **({"label": args.label} if args.label else {}),
                   **stats}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps({"date": datetime.date.today().isoformat(),
                                "machine": f"{platform.node()} ({os.cpu_count()} cores)",
                                "seconds": args.seconds, "rows": rows}) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
