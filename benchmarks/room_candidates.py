"""Which trainable reverb cannot swallow the note? (issue 29; a short, repeatable comparison)

Synthetic harmonic notes with rests (exact f0), put into a known room (octave-band decaying
noise, RT60 `--rt60` s, every band -3 dB: DRR +3 dB), train a small model (GRU 64, 30
harmonics, 16 noise bands, 1.5 s reverb) on the wet audio only, with each candidate reverb:

- ``free``: every one of the 24,000 IR taps trainable (`synths.Reverb`, the first violin's);
- ``decay``: `room.Room`, a decay time and a level (<= 0 dB) per octave band.

Per candidate: the dry/wet energy of the model's own output (dB: positive means the dry
synthesizers carry the note; the first violin's free IR reached -22 dB), the learned room's
RT60 per band (Schroeder T30) against the true one, and how close the dry output is to the
dry original and to the wet original (multi-scale spectral loss; the notes are known, so the
dry original exists). Run by hand, about a minute a candidate on one core:
    nice -n 10 .venv/bin/python benchmarks/room_candidates.py --steps 400
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ddspcli.engine import acoustics as ac
from ddspcli.engine import features, losses
from ddspcli.engine import model as model_lib
from ddspcli.engine._tensorflow import tf

SR, HOP = 16000, 64
CONFIG = """Autoencoder.rnn_units = 64
Autoencoder.mlp_layers = 0
Autoencoder.n_harmonics = 30
Autoencoder.n_noise_bands = 16
Autoencoder.reverb_length = 24000
Autoencoder.room = '{room}'
"""


def melody(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Notes of 0.2-0.6 s (200-500 Hz, 8 harmonics at 1/h, 50 ms attack, level 0.05-0.5),
    each followed by a 0.1-0.4 s rest: ``(dry audio [n], f0 [t] Hz held through rests)``."""
    pieces, f0s = [], []
    while sum(len(f) for f in f0s) < seconds * 250:
        note, rest = int(rng.uniform(0.2, 0.6) * 250), int(rng.uniform(0.1, 0.4) * 250)
        f0 = rng.uniform(200.0, 500.0)
        n = note * HOP
        t = np.arange(n) / SR
        harmonics = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 9))
        envelope = np.minimum(1.0, t / 0.05) * rng.uniform(0.05, 0.5)
        pieces += [(envelope * harmonics / 2).astype(np.float32), np.zeros(rest * HOP, np.float32)]
        f0s.append(np.full(note + rest, f0, np.float32))
    return np.concatenate(pieces), np.concatenate(f0s)


def train(room: str, f0, loudness, wet, steps: int, lr: float) -> model_lib.Autoencoder:
    """`steps` of Adam on random 2 s crops (batch 4), spectral loss on FFT 1024, 256, 64.

    ``decay@-6`` is the decay room started at -6 dB per band instead of its default."""
    kind, _, level = room.partition("@")
    model = model_lib.build_model(CONFIG.format(room=kind))
    if level:
        from ddspcli.engine import room as room_lib

        amplitude = 10 ** (float(level) / 20)
        logit = np.log(amplitude / (1 - amplitude)) / room_lib.PARAM_SCALE
        model.reverb.level.assign(tf.fill([len(model.reverb.centres_hz)], float(logit)))
    optimizer = tf.keras.optimizers.Adam(lr)
    frames, rng = 500, np.random.default_rng(0)

    @tf.function
    def step(f0_hz, loudness_db, audio):
        with tf.GradientTape() as tape:
            out = model({"f0_hz": f0_hz, "loudness_db": loudness_db})
            loss = losses.spectral_loss(audio, out["audio"], fft_sizes=(1024, 256, 64))
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, model.trainable_variables), 3.0)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    for _ in range(steps):
        at = rng.integers(0, len(loudness) - frames - 1, 4)
        step(np.stack([f0[i : i + frames] for i in at]),
             np.stack([loudness[i : i + frames] for i in at]),
             np.stack([wet[i * HOP : (i + frames) * HOP] for i in at]))  # fmt: skip
    return model


def spectral(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale spectral loss over 2 s windows, mean."""
    n, win = min(len(a), len(b)), 2 * SR
    return float(np.mean([float(losses.spectral_loss(a[None, s : s + win], b[None, s : s + win]))
                          for s in range(0, n - win + 1, win)]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rt60", type=float, default=0.9)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--candidates", nargs="+", default=["free", "decay"])
    args = parser.parse_args()
    dry, f0 = melody(24.0, np.random.default_rng(4))
    truth = ac.exp_decay_ir(np.full(8, args.rt60), np.full(8, -3.0), SR, 1.5, seed=7)
    wet = ac.apply_room(dry, truth)
    gain = 0.7 / np.abs(wet).max()
    dry, wet = dry * gain, wet * gain
    loudness = features.compute_loudness(wet, features.FeatureSettings()).astype(np.float32)
    n = min(len(f0), len(loudness))
    f0, loudness, dry, wet = f0[:n], loudness[:n], dry[: n * HOP], wet[: n * HOP]
    train_frames = int(0.75 * n)  # the last quarter is held out
    held = slice(train_frames * HOP, n * HOP)
    print(f"true room: RT60 T30 {np.round(ac.rt60(truth, SR), 2).tolist()} s, "
          f"DRR {ac.drr_db(ac.with_direct(truth), SR):.1f} dB; dry vs wet originals "
          f"{spectral(dry[held], wet[held]):.3f}")  # fmt: skip
    print("| reverb | steps | s | dry/wet of output (dB) | RT60 T30 125-4k (s) | "
          "dry out vs dry | vs wet | margin |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for room in args.candidates:
        start = time.perf_counter()
        model = train(room, f0[:train_frames], loudness[:train_frames], wet[: train_frames * HOP],
                      args.steps, args.lr)  # fmt: skip
        wall = time.perf_counter() - start
        out = model({"f0_hz": f0[None], "loudness_db": loudness[None]})
        out_dry, out_all = out["dry"][0].numpy(), out["audio"][0].numpy()
        ir = model.reverb.effective_ir(model.reverb.ir).numpy()
        to_dry, to_wet = spectral(out_dry[held], dry[held]), spectral(out_dry[held], wet[held])
        print(f"| {room} | {args.steps} | {wall:.0f} | "
              f"{ac.dry_wet_db(out_dry, out_all - out_dry):+.1f} | "
              f"{' '.join(f'{x:.2f}' for x in ac.rt60(ir, SR))} | {to_dry:.3f} | {to_wet:.3f} | "
              f"{to_wet - to_dry:+.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
