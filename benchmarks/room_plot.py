"""README figure (issue 29): one transfer, dry (``--room none``) and with a room (``--room
IR.wav``), as spectrograms.

Runs ``ddsp transfer`` twice on the demo input (LibriSpeech 198-209-0000, CC BY 4.0; see
examples/README.md) with the shipped violin, an octave up, each with ``--plot`` (the full plots
are kept beside the outputs in --work), then draws the two outputs' spectrograms (the style of
``--plot``: 1024-point frames, 75% overlap) one above the other, first `--seconds` only. The room
is synthetic (no shipped model carries one yet): `acoustics.exp_decay_ir`, RT60 1.4 s at 63 Hz
falling to 0.6 s at 8 kHz, every band at -4 dB, written as a full IR (a unit direct impulse,
then the room), as ``ddsp room extract`` writes one.

    .venv/bin/python benchmarks/room_plot.py [--out docs/rooms.png] [--work /tmp/rooms]

About 10 s on 2 cores. Prints a JSON line: the IR's RT60 per band and DRR, the outputs' peaks,
and the energy of the room's part relative to the dry render.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ddspcli.engine import acoustics as ac
from ddspcli.engine import features_io

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "speech_198-209-0000.wav"
RT60_S = (1.4, 1.3, 1.2, 1.2, 1.1, 1.0, 0.8, 0.6)  # per band of acoustics.SYNTH_BANDS_HZ
LEVEL_DB = -4.0
SR = 16000


def write_hall(path: Path) -> np.ndarray:
    """The synthetic room as a full IR (float WAV); returns its wet part ``[m]``."""
    wet = ac.exp_decay_ir(RT60_S, [LEVEL_DB] * len(RT60_S), SR, length_s=2.5)
    sf.write(path, ac.with_direct(wet).astype(np.float32), SR, subtype="FLOAT")
    return wet


def transfer(out: Path, room: str) -> np.ndarray:
    """``ddsp transfer EXAMPLE -m violin --octave 1 --room ROOM -o OUT --plot OUT.png``: the
    output before its peak-safe gain."""
    ddsp = Path(sys.executable).with_name("ddsp")
    done = subprocess.run([str(ddsp), "-q", "transfer", str(EXAMPLE), "-m", "violin", "--octave",
                           "1", "--room", room, "-o", str(out), "--plot",
                           str(out.with_suffix(".png")), "--force", "--json"],
                          check=True, capture_output=True)  # fmt: skip
    gain_db = json.loads(done.stdout)[0]["gain_db"]
    return sf.read(out, dtype="float32")[0] / 10 ** (gain_db / 20)


def figure(dry: np.ndarray, wet: np.ndarray, dest: Path, seconds: float) -> None:
    """Two spectrograms, dry above, with the room below (the first `seconds`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(seconds * SR)
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True, layout="constrained")
    for ax, signal, label in ((axes[0], dry, "dry: --room none"),
                              (axes[1], wet, "with a room: --room hall.wav")):  # fmt: skip
        features_io._spectrogram(ax, signal[:n], SR)
        ax.set_ylabel("Hz")
        ax.set_title(label, fontsize=10, loc="left")
    axes[1].set_xlabel("time (s)")
    fig.suptitle("ddsp transfer speech -m violin --octave 1", fontsize=10)
    fig.savefig(dest, dpi=72)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "rooms.png"))
    parser.add_argument("--work", default=None, help="Folder for the WAVs and full plots.")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="rooms-"))
    work.mkdir(parents=True, exist_ok=True)
    ir = work / "hall.wav"
    wet_ir = write_hall(ir)
    dry = transfer(work / "dry.wav", "none")
    wet = transfer(work / "hall.out.wav", str(ir))
    figure(dry, wet, Path(args.out), args.seconds)
    bands = [ac.NOMINAL_HZ[c] for c in ac.ANALYSIS_BANDS_HZ]
    print(json.dumps({
        "figure": args.out, "work": str(work),
        "rt60_s": dict(zip(map(str, bands), np.round(ac.rt60(wet_ir, SR), 3).tolist(),
                           strict=True)),
        "drr_db": round(ac.drr_db(ac.with_direct(wet_ir), SR), 2),
        "peak_dbfs": {"dry": round(float(20 * np.log10(np.abs(dry).max())), 2),
                      "room": round(float(20 * np.log10(np.abs(wet).max())), 2)},
        "dry_over_room_part_db": round(ac.dry_wet_db(dry, wet - dry), 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
