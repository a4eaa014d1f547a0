"""Blind dereverberation on a known room (issue 29, "Must show 1").

A dry soundfont violin render is convolved with two synthetic exponential rooms (octave-band
decaying noise, `acoustics.exp_decay_ir`): ``hall`` (RT60 about 1.2 s) and ``room`` (about
0.5 s). A model with a trainable `room.Room` is trained on the *wet* audio only (``ddsp prepare``
then ``ddsp fit``, the CLI), then:

1. the learned room's RT60 per octave band (Schroeder T30 of its IR, and its own decay
   parameters) against the true room's;
2. the held-out wet clip (never trained on) resynthesized dry (``ddsp transfer --no-reverb
   --no-auto-adjust``) and compared by multi-scale spectral loss with the dry original and with
   the wet original: dereverberation worked if it is closer to the dry one.

Run by hand, each step resumable (rerun the same command):
    WORK=/work/rooms-runs
    .venv/bin/python benchmarks/known_room.py data $WORK          # wet audio + true IRs (s)
    nice -n 19 env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        .venv/bin/python benchmarks/known_room.py fit $WORK --steps 3000   # prepare + fit
    .venv/bin/python benchmarks/known_room.py analyse $WORK [--json]       # the table
    .venv/bin/python benchmarks/known_room.py drycond $WORK --rooms room --steps 2000
    .venv/bin/python benchmarks/known_room.py analyse $WORK --rooms room --run run-drycond

`drycond` is the control experiment for the bias of the learned rooms: the same wet audio as
the target, but f0 and loudness taken from the dry originals (at the same gain), which a
blind user never has. If the room comes out right then, the bias comes from the decoder
being conditioned on the wet loudness (it learns to sustain the reverberant energy under the
notes itself, leaving the room only a quieter tail, which a longer decay then matches).

Data: MuseScore General violin renders of BWV 1002 mov. 6 and 8 (`shared/data/SOURCES.md`,
section 7): train on mov. 6 (106.5 s) and the first 120 s of mov. 8; the last 20.5 s of mov. 8
are the held-out clip (also `prepare`'s eval file, so the fit's eval loss is held out too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ddspcli.engine import acoustics

RENDERS = Path(os.environ.get("DDSP_RENDERS", "/work/shared/data/soundfont_renders"))
SOURCE = RENDERS / "musescore_general"
SR = 16000
HELD_OUT_START_S = 120.0
ROOMS = {  # per band of acoustics.SYNTH_BANDS_HZ (62.5 Hz .. 8 kHz): RT60 (s), level (dB)
    "hall": {"rt60_s": [1.5, 1.4, 1.3, 1.2, 1.2, 1.1, 0.95, 0.8],
             "level_db": [-4.0, -4.0, -4.0, -4.0, -4.0, -5.0, -6.0, -8.0], "seed": 11},
    "room": {"rt60_s": [0.6, 0.55, 0.5, 0.5, 0.5, 0.45, 0.4, 0.35],
             "level_db": [-6.0, -6.0, -6.0, -6.0, -6.0, -7.0, -8.0, -10.0], "seed": 12},
}  # fmt: skip
PREDELAY_MS = 8.0  # the true rooms' first reflection (the model's room starts at 5 ms)
VARIANT_ARGS = ["--variant", "tiny", "--gin-param", "Autoencoder.room = 'decay'",
                "--batch-size", "8", "--learning-rate", "1e-3"]  # fmt: skip


def true_ir(name: str) -> np.ndarray:
    """The wet IR ``[3 s * SR]`` of a known room."""
    spec = ROOMS[name]
    return acoustics.exp_decay_ir(spec["rt60_s"], spec["level_db"], SR, 3.0,
                                  predelay_ms=PREDELAY_MS, seed=spec["seed"])  # fmt: skip


def dry_pieces() -> dict[str, np.ndarray]:
    """The dry renders, cut into the training files and the held-out clip (``[n]`` each)."""
    mov6, rate6 = sf.read(SOURCE / "violin_bwv1002_mov6.flac", dtype="float32")
    mov8, rate8 = sf.read(SOURCE / "violin_bwv1002_mov8.flac", dtype="float32")
    assert rate6 == rate8 == SR
    cut = int(HELD_OUT_START_S * SR)
    return {"mov6": mov6, "mov8a": mov8[:cut], "heldout": mov8[cut:]}


def make_data(work: Path) -> None:
    """``WORK/<room>/{wet/*.wav, heldout.dry.wav, heldout.wet.wav, true_ir.wav}``."""
    pieces = dry_pieces()
    for name in ROOMS:
        folder = work / name
        (folder / "wet").mkdir(parents=True, exist_ok=True)
        ir = true_ir(name)
        sf.write(folder / "true_ir.wav", ir.astype(np.float32), SR, subtype="FLOAT")
        for piece, dry in pieces.items():
            wet = acoustics.apply_room(dry, ir)
            gain = 0.7 / max(1e-9, float(np.max(np.abs(wet))))  # peak -3 dBFS, as the renders
            wet *= gain
            if piece == "heldout":  # the dry original at the wet one's gain
                sf.write(folder / "heldout.dry.wav", dry * gain, SR, subtype="FLOAT")
                sf.write(folder / "heldout.wet.wav", wet, SR, subtype="FLOAT")
            sf.write(folder / "wet" / f"{piece}.wav", wet, SR, subtype="FLOAT")
        print(f"{name}: DRR {acoustics.drr_db(acoustics.with_direct(ir), SR):.2f} dB, "
              f"RT60 {np.round(acoustics.rt60(ir, SR), 3).tolist()}", file=sys.stderr)  # fmt: skip


def ddsp(*args: str) -> None:
    """Run the CLI (the venv's ``ddsp`` beside this interpreter), failing loudly."""
    exe = str(Path(sys.executable).with_name("ddsp"))
    print("+ ddsp " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([exe, *args], check=True)


def fit(work: Path, steps: int, rooms: list[str]) -> None:
    """``ddsp prepare`` then ``ddsp fit`` for each room, one after the other (resumable)."""
    for name in rooms:
        folder = work / name
        data = folder / "data"
        if not (data / "dataset.json").exists():
            ddsp("prepare", str(folder / "wet"), "-o", str(data), "--workers", "1")
        ddsp("fit", str(data), "-o", str(folder / "run"), *VARIANT_ARGS, "--steps", str(steps),
             "--checkpoint-every", "250")  # fmt: skip


def fit_dry_conditioned(work: Path, steps: int, rooms: list[str]) -> None:
    """The control run: ``WORK/<room>/drycond-data`` = the wet dataset with each example's
    f0 and loudness replaced by those of the same example of the dry originals (prepared from
    ``WORK/<room>/drywav``, the dry pieces at the wet ones' gains), then ``run-drycond``."""
    pieces = dry_pieces()
    for name in rooms:
        folder = work / name
        drywav, drydata, merged = folder / "drywav", folder / "drydata", folder / "drycond-data"
        if not (drydata / "dataset.json").exists():
            drywav.mkdir(exist_ok=True)
            ir = true_ir(name)
            for piece, dry in pieces.items():
                wet = acoustics.apply_room(dry, ir)
                gain = 0.7 / max(1e-9, float(np.max(np.abs(wet))))  # as `make_data`
                sf.write(drywav / f"{piece}.wav", dry * gain, SR, subtype="FLOAT")
            ddsp("prepare", str(drywav), "-o", str(drydata), "--workers", "1")
        if not (merged / "dataset.json").exists():
            _merge_features(folder / "data", drydata, merged)
        ddsp("fit", str(merged), "-o", str(folder / "run-drycond"), *VARIANT_ARGS, "--steps",
             str(steps), "--checkpoint-every", "250")  # fmt: skip


def _merge_features(wet_data: Path, dry_data: Path, out: Path) -> None:
    """Shard by shard: the wet examples' audio with the dry examples' features. The two
    datasets come from files of the same names and lengths, so their examples line up; each
    pair is checked (the wet audio holds the dry one: correlation > 0.3)."""
    import shutil

    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    for meta in ("dataset.json", "statistics.json"):
        shutil.copy(wet_data / meta, out / meta)
    for shard in sorted(wet_data.glob("*.tfrecord")):
        wet_records = list(tf.data.TFRecordDataset(str(shard)).as_numpy_iterator())
        dry_records = list(tf.data.TFRecordDataset(str(dry_data / shard.name))
                           .as_numpy_iterator())  # fmt: skip
        assert len(wet_records) == len(dry_records), shard.name
        with tf.io.TFRecordWriter(str(out / shard.name)) as writer:
            for wet_bytes, dry_bytes in zip(wet_records, dry_records, strict=True):
                wet_ex, dry_ex = tf.train.Example(), tf.train.Example()
                wet_ex.ParseFromString(wet_bytes)
                dry_ex.ParseFromString(dry_bytes)
                a = np.array(wet_ex.features.feature["audio"].float_list.value)
                b = np.array(dry_ex.features.feature["audio"].float_list.value)
                assert np.corrcoef(a, b)[0, 1] > 0.3, shard.name
                for key in ("f0_hz", "f0_confidence", "loudness_db"):
                    wet_ex.features.feature[key].CopyFrom(dry_ex.features.feature[key])
                writer.write(wet_ex.SerializeToString())


def spectral(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale spectral loss (`losses.spectral_loss`) of two ``[n]`` clips (the shorter
    length), over 4 s windows, mean."""
    from ddspcli.engine import losses

    n, win = min(len(a), len(b)), 4 * SR
    starts = range(0, max(1, n - win + 1), win)
    return float(np.mean([float(losses.spectral_loss(a[None, s : s + win], b[None, s : s + win]))
                          for s in starts]))  # fmt: skip


def frame_db(x: np.ndarray, hop: int = 256) -> np.ndarray:
    """Mean-square level (dB) of ``[n]`` in frames of `hop` samples ``[n // hop]``."""
    frames = x[: len(x) // hop * hop].reshape(-1, hop).astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def rest_levels(dry: np.ndarray, **others: np.ndarray) -> dict[str, float]:
    """Median level (dB) in the rests: frames where the dry original is 30 dB or more below
    its median note level (what the room rings into); `others` scored on the same frames."""
    n = min(len(dry), *(len(x) for x in others.values()))
    levels = frame_db(dry[:n])
    rests = levels < np.median(levels[levels > -60.0]) - 30.0
    out = {"rest_frames": int(rests.sum()), "dry": float(np.median(levels[rests]))}
    for key, x in others.items():
        out[key] = float(np.median(frame_db(x[:n])[rests]))
    return out


def analyse_room(work: Path, name: str, run: str = "run") -> dict:
    """The figures of one room (``WORK/<name>/<run>`` must exist)."""
    from ddspcli.engine import model as model_lib

    folder = work / name
    truth = true_ir(name)
    loaded = model_lib.load_model_dir(str(folder / run))
    learned = loaded.model.reverb
    ir = learned.impulse_response()
    out = folder / f"heldout.{run}.dry.wav"
    common = ["--model", str(folder / run), "--no-auto-adjust", "--force"]
    ddsp("transfer", str(folder / "heldout.wet.wav"), "-o", str(out), "--no-reverb", *common)
    wet_out = folder / f"heldout.{run}.wet.wav"
    ddsp("transfer", str(folder / "heldout.wet.wav"), "-o", str(wet_out), *common)
    dry, _ = sf.read(folder / "heldout.dry.wav", dtype="float32")
    wet, _ = sf.read(folder / "heldout.wet.wav", dtype="float32")
    resynth, _ = sf.read(out, dtype="float32")
    resynth_wet, _ = sf.read(wet_out, dtype="float32")
    bands = list(acoustics.ANALYSIS_BANDS_HZ)
    index = [acoustics.SYNTH_BANDS_HZ.index(b) for b in bands]
    summary = learned.summary()
    return {
        "room": name if run == "run" else f"{name} ({run})",
        "steps": loaded.info.get("steps"),
        "checkpoint": loaded.info.get("checkpoint"),  # the best by eval loss (held-out wet)
        "bands_hz": bands,
        "true_rt60_param_s": [ROOMS[name]["rt60_s"][i] for i in index],
        "true_rt60_t30_s": acoustics.rt60(truth, SR).tolist(),
        "learned_rt60_param_s": [summary["rt60_s"][i] for i in index],
        "learned_rt60_t30_s": acoustics.rt60(ir, SR).tolist(),
        "true_level_db": ROOMS[name]["level_db"],
        "learned_level_db": summary["level_db"],
        "true_drr_db": acoustics.drr_db(acoustics.with_direct(truth), SR),
        "learned_drr_db": acoustics.drr_db(acoustics.with_direct(ir), SR),
        "loss_dry_resynth_vs_dry": spectral(resynth, dry),
        "loss_dry_resynth_vs_wet": spectral(resynth, wet),
        "loss_wet_resynth_vs_wet": spectral(resynth_wet, wet),
        "loss_wet_resynth_vs_dry": spectral(resynth_wet, dry),
        "loss_dry_vs_wet_originals": spectral(dry, wet),
        "dry_wet_db_resynth": acoustics.dry_wet_db(resynth, resynth_wet - resynth),
        "rest_level_db": rest_levels(dry, wet=wet, dry_resynth=resynth, wet_resynth=resynth_wet),
    }


def table(rows: list[dict]) -> str:
    """The Markdown tables: RT60 per band, then the spectral-loss comparison."""
    lines = ["| room | band (Hz) | true RT60 (param / T30, s) | learned (param / T30, s) | "
             "T30 error |", "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        for i, band in enumerate(r["bands_hz"]):
            t, lt = r["true_rt60_t30_s"][i], r["learned_rt60_t30_s"][i]
            lines.append(f"| {r['room']} | {acoustics.NOMINAL_HZ[band]} | "
                         f"{r['true_rt60_param_s'][i]:.2f} / {t:.2f} | "
                         f"{r['learned_rt60_param_s'][i]:.2f} / {lt:.2f} | "
                         f"{100 * (lt / t - 1):+.0f}% |")  # fmt: skip
    lines += ["", "| room | steps (checkpoint) | DRR true / learned (dB) | dry resynth vs dry | "
              "vs wet | margin | dry vs wet originals | wet resynth vs wet | "
              "dry/wet of resynth (dB) |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        margin = r["loss_dry_resynth_vs_wet"] - r["loss_dry_resynth_vs_dry"]
        ckpt = str(r["checkpoint"]).split("/")[-2] if r["checkpoint"] else "?"
        lines.append(f"| {r['room']} | {r['steps']} ({ckpt}) | {r['true_drr_db']:.1f} / "
                     f"{r['learned_drr_db']:.1f} | {r['loss_dry_resynth_vs_dry']:.3f} | "
                     f"{r['loss_dry_resynth_vs_wet']:.3f} | {margin:+.3f} | "
                     f"{r['loss_dry_vs_wet_originals']:.3f} | "
                     f"{r['loss_wet_resynth_vs_wet']:.3f} | {r['dry_wet_db_resynth']:+.1f} |")
    lines += ["", "| room | rest frames | level in the rests (dB): dry original | wet original | "
              "dry resynthesis | with its room |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        rest = r["rest_level_db"]
        lines.append(f"| {r['room']} | {rest['rest_frames']} | {rest['dry']:.1f} | "
                     f"{rest['wet']:.1f} | {rest['dry_resynth']:.1f} | "
                     f"{rest['wet_resynth']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("data", "fit", "drycond", "analyse"))
    parser.add_argument("work", type=Path)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rooms", nargs="+", default=list(ROOMS), choices=list(ROOMS))
    parser.add_argument("--run", default="run", help="run folder inside each room's folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.step == "data":
        make_data(args.work)
    elif args.step == "fit":
        fit(args.work, args.steps, args.rooms)
    elif args.step == "drycond":
        fit_dry_conditioned(args.work, args.steps, args.rooms)
    else:
        rows = [analyse_room(args.work, name, args.run) for name in args.rooms]
        print(table(rows))
        if args.json:
            (args.work / f"known_room.{args.run}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
