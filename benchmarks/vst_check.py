"""DDSP-VST models (issue 18): features against the plugin's extractor, the exported file
against the TF model, and a plugin-style loop render checked by an independent pitch tracker.

Run by hand (2 cores: features ~3 min, equality ~1 min, loop ~2 min):
    .venv/bin/python benchmarks/vst_check.py features [--json benchmarks/results/vst.jsonl]
    .venv/bin/python benchmarks/vst_check.py equality RUN [--json ...]
    .venv/bin/python benchmarks/vst_check.py loop FILE.tflite [--json ...]
    .venv/bin/python benchmarks/vst_check.py loop fixed    # the loop itself, fixed controls

``features``: a speech, a singing and an instrument clip (../shared/data, see its SOURCES.md):
our ``--preset vst`` features (power over 1024-sample frames; CREPE full every 20 ms without
Viterbi, as `prepare` computes them) against ``extract_features_micro.tflite`` run on the same
1024-sample windows (centred on multiples of 320 samples). Reported: median and 95th
percentile |power difference| (dB) and, on confidently voiced frames (our CREPE confidence
>= 0.85 and power above -60 dB), the share of frames whose f0 agrees within 50 cents.

``equality``: a 10 s phrase (the vocadito song's first 10 s, our vst features) through the
run's TF model in one piece, and through its export run frame by frame in the TFLite
interpreter with the state fed back: max |difference| of each control.

``loop``: the plugin's pipeline (InferencePipeline.cpp), re-implemented from its description:
a buffer primed with 1024 zeros; every 320 samples the oldest 1024 go through the plugin's
extractor, f0 is re-scaled with the plugin's clamp (8.18-12543.84 Hz), the exported model
predicts the controls (state fed back), and 320 samples are synthesised: harmonics above
Nyquist zeroed, distribution normalised and times the amplitude, f0 and harmonic amplitudes
interpolated linearly over the first half of the hop and held over the second, phase carried;
plus noise filtered by the 65 magnitudes (inverse real FFT, zero-phase Hann window of 128,
made causal, FFT convolution with uniform noise, delay compensated). Input and output are
tracked with librosa's pYIN (65-2093 Hz, frames 1024, hop 256); the output is aligned to the
input at the lag (0-100 ms) that maximises agreement; a clip passes when >= 85% of co-voiced
frames are within 50 cents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ddspcli import pretrained
from ddspcli.engine import audio, features, vst, vst_check
from ddspcli.engine import model as model_lib

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXTRACTOR = SHARED / "reference/ddsp-vst/models/extract_features_micro.tflite"
RATE, HOP, FRAME = 16000, 320, 1024
CLIPS = {  # name -> (file, seconds used)
    "speech": ("data/speech/librispeech/198-209-0000.wav", 14.0),
    "singing": ("data/vocadito/audio/vocadito_1.wav", 20.0),
    "instrument": ("data/librosa_trumpet/sorohanro_-_solo-trumpet-06.wav", 5.3),
}


def clip(name: str) -> np.ndarray:
    path, seconds = CLIPS[name]
    return audio.read_audio(SHARED / path, RATE)[0][: int(seconds * RATE)]


class Extractor:
    """The plugin's feature model on one 1024-sample window: f0 Hz and power dB (by name)."""

    def __init__(self) -> None:
        self.run = vst_check.new_interpreter(EXTRACTOR.read_bytes())
        self.input = self.run.get_input_details()[0]["index"]
        self.out = {d["name"]: d["index"] for d in self.run.get_output_details()}

    def __call__(self, window: np.ndarray) -> dict[str, float]:
        self.run.set_tensor(self.input, np.asarray(window, np.float32))
        self.run.invoke()
        names = ("f0_hz", "f0_scaled", "pw_db", "pw_scaled")  # the official call's order
        return {key: float(self.run.get_tensor(self.out[f"StatefulPartitionedCall:{i}"])[0])
                for i, key in enumerate(names)}  # fmt: skip


def our_features(x: np.ndarray) -> dict[str, np.ndarray]:
    weights = pretrained.resolve("crepe-full", download=False)
    spec = pretrained.get_spec("crepe-full")
    settings = features.FeatureSettings.vst()
    return features.compute_features(x, weights / spec.files[0].name, settings)


def cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200.0 * np.abs(np.log2(np.maximum(a, 1e-3) / np.maximum(b, 1e-3)))


def check_features() -> list[dict]:
    plugin = Extractor()
    rows = []
    for name in CLIPS:
        x = clip(name)
        ours = our_features(x)
        padded = np.pad(x, (FRAME // 2, FRAME // 2 + HOP))  # window k centred on 320 k
        theirs = [plugin(padded[k * HOP : k * HOP + FRAME]) for k in range(len(ours["f0_hz"]))]
        pw = np.array([t["pw_db"] for t in theirs])
        f0 = np.array([t["f0_hz"] for t in theirs])
        diff = np.abs(ours["loudness_db"] - pw)
        voiced = (ours["f0_confidence"] >= 0.85) & (ours["loudness_db"] > -60.0)
        steady = voiced.copy()  # at least 2 frames (40 ms) from a voicing change
        for shift in (1, 2):
            steady[shift:] &= voiced[:-shift]
            steady[:-shift] &= voiced[shift:]
        off = cents(ours["f0_hz"][voiced], f0[voiced])
        octave = np.abs(off - 1200.0) < 50.0
        # Where the two disagree, which is nearer an independent tracker (pYIN, same frames)?
        ref, ref_voiced = pyin(x, hop=HOP)
        n = min(len(ref), len(voiced))
        split = voiced[:n] & ref_voiced[:n] & (cents(ours["f0_hz"][:n], f0[:n]) > 50.0)
        ours_nearer = cents(ours["f0_hz"][:n][split], ref[split]) < cents(f0[:n][split], ref[split])
        rows.append({
            "check": "features", "clip": name, "file": CLIPS[name][0], "frames": len(diff),
            "power_median_abs_db": round(float(np.median(diff)), 5),
            "power_p95_abs_db": round(float(np.percentile(diff, 95)), 5),
            "power_max_abs_db": round(float(diff.max()), 4),
            "voiced_frames": int(voiced.sum()),
            "f0_within_50_cents": round(float(np.mean(off <= 50.0)), 4),
            "f0_median_cents": round(float(np.median(off)), 2),
            "f0_octave_errors": round(float(np.mean(octave)), 4),
            "steady_frames": int(steady.sum()),
            "f0_within_50_cents_steady": round(float(np.mean(
                cents(ours["f0_hz"][steady], f0[steady]) <= 50.0)), 4),
            "disagreements_judged_by_pyin": int(split.sum()),
            "ours_nearer_pyin": int(ours_nearer.sum()),
        })  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def check_equality(run: str, tflite: str | None) -> list[dict]:
    loaded = model_lib.load_model_dir(run)
    x = audio.read_audio(SHARED / CLIPS["singing"][0], RATE)[0][: 10 * RATE]
    feats = our_features(x)
    ref, _ = loaded.model.controls({k: feats[k][None] for k in ("f0_hz", "loudness_db")})
    if tflite:
        payload = Path(tflite).read_bytes()
    else:
        payload = vst.to_tflite(vst.controls_module(loaded.model))
    start = time.perf_counter()
    scaled = vst_check.scaled_inputs(feats["f0_hz"], feats["loudness_db"])
    got = vst_check.PluginModel(payload).run(*scaled)
    per_frame_ms = 1000 * (time.perf_counter() - start) / len(feats["f0_hz"])
    row = {"check": "equality", "run": run, "steps": loaded.info.get("steps"),
           "frames": len(feats["f0_hz"]), "tflite_ms_per_frame": round(per_frame_ms, 3)}
    for key in ("amplitudes", "harmonic_distribution", "noise_magnitudes"):
        want = ref[key].numpy()[0]
        row[f"{key}_max_abs_diff"] = float(np.abs(got[key] - want).max())
        row[f"{key}_peak"] = float(np.abs(want).max())
    print(json.dumps(row), file=sys.stderr)
    return [row]


# ---- the plugin's synthesis, re-implemented from its description (see module docstring) ----


class HarmonicSynth:
    def __init__(self, n_harmonics: int = 60) -> None:
        self.k = np.arange(1, n_harmonics + 1)
        self.phase, self.prev_f0, self.prev_dist = 0.0, None, np.zeros(n_harmonics)

    @staticmethod
    def _midway(first, last, n: int = HOP) -> np.ndarray:
        first, last = np.asarray(first, float), np.asarray(last, float)
        half = n // 2
        ramp = first[..., None] + (last - first)[..., None] * np.arange(half) / half
        return np.concatenate([ramp, np.repeat(last[..., None], n - half, axis=-1)], axis=-1)

    def __call__(self, dist: np.ndarray, amp: float, f0: float) -> np.ndarray:
        dist = np.where(f0 * self.k >= RATE / 2, 0.0, dist)
        total = dist.sum()
        dist = (dist / total if total != 0 else dist) * amp
        freq = self._midway(self.prev_f0 if self.prev_f0 is not None else f0, f0)
        amps = self._midway(self.prev_dist, dist)
        self.prev_f0, self.prev_dist = f0, dist
        phases = np.cumsum(freq * 2 * np.pi / RATE) + self.phase
        self.phase = float(np.fmod(phases[-1], 2 * np.pi))
        return (np.sin(phases[None, :] * self.k[:, None]) * amps).sum(axis=0)


class NoiseSynth:
    def __init__(self, n_bands: int = 65, seed: int = 42) -> None:
        self.ir_size = (n_bands - 1) * 2
        n = self.ir_size
        self.window = np.roll(0.5 * (1 - np.cos(2 * np.pi * np.arange(n) / n)), -(n // 2))
        self.rng = np.random.default_rng(seed)

    def __call__(self, mags: np.ndarray) -> np.ndarray:
        ir = np.fft.irfft(mags, self.ir_size) * self.window
        ir = np.roll(ir, self.ir_size // 2)  # causal
        noise = self.rng.uniform(-1, 1, 512)
        out = np.fft.irfft(np.fft.rfft(noise, 1024) * np.fft.rfft(ir, 1024), 1024)
        start = (self.ir_size - 1) // 2 - 1
        return out[start : start + HOP]


class FixedControls:
    """A stand-in for the model that checks the loop itself: three harmonics (1, 1/2, 1/4),
    amplitude rising with the input power, quiet noise; the pitch is the input's by design."""

    def __call__(self, f0_scaled: float, pw_scaled: float) -> dict[str, np.ndarray]:
        dist = np.zeros(60, np.float32)
        dist[:3] = (1.0, 0.5, 0.25)
        return {"amplitudes": np.float32([max(0.0, pw_scaled - 0.3) * 0.5]),
                "harmonic_distribution": dist,
                "noise_magnitudes": np.full(65, 1e-4, np.float32)}  # fmt: skip


def plugin_loop(x: np.ndarray, tflite: str) -> np.ndarray:
    """The plugin's per-hop loop over a whole input (16 kHz): output of the same length
    (``tflite`` "fixed": `FixedControls` instead of a model)."""
    extractor = Extractor()
    model = FixedControls() if tflite == "fixed" else vst_check.PluginModel(tflite)
    harmonic, noise = HarmonicSynth(), NoiseSynth()
    buffer = np.concatenate([np.zeros(FRAME, np.float32), x])
    out = []
    for k in range(len(x) // HOP):
        feats = extractor(buffer[k * HOP : k * HOP + FRAME])  # the oldest 1024 samples
        f0_hz = float(np.clip(feats["f0_hz"], 8.18, 12543.84))
        f0_scaled = (12 * np.log2(f0_hz / 440.0) + 69) / 127
        controls = model(f0_scaled, feats["pw_scaled"])
        out.append(harmonic(controls["harmonic_distribution"], float(controls["amplitudes"][0]),
                            f0_hz) + noise(controls["noise_magnitudes"]))  # fmt: skip
    return np.concatenate(out).astype(np.float32)


def pyin(x: np.ndarray, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """librosa's pYIN, 65-2093 Hz, 1024-sample frames centred on multiples of `hop`."""
    import librosa

    f0, voiced, _ = librosa.pyin(x, fmin=65.0, fmax=2093.0, sr=RATE, frame_length=1024,
                                 hop_length=hop)  # fmt: skip
    return f0, voiced


def check_loop(tflite: str, out_dir: Path | None) -> list[dict]:
    rows = []
    for name in ("singing", "instrument"):
        x = clip(name)
        start = time.perf_counter()
        y = plugin_loop(x, tflite)
        seconds = time.perf_counter() - start
        if out_dir is not None:
            audio.write_wav(out_dir / f"vst_loop_{name}.wav", y, RATE, force=True)
        f_in, v_in = pyin(x[: len(y)])
        f_out, v_out = pyin(y)
        best = None
        for lag in range(0, 7):  # pYIN frames of 16 ms: 0-96 ms
            a, va = f_in[: len(f_in) - lag], v_in[: len(v_in) - lag]
            b, vb = f_out[lag:], v_out[lag:]
            both = va & vb
            err = cents(b[both], a[both])
            share = float(np.mean(err <= 50.0)) if both.any() else 0.0
            if best is None or share > best[1]:
                best = (lag, share, err, both)
        lag, share, err, both = best
        rows.append({
            "check": "loop", "clip": name, "tflite": tflite, "seconds": round(len(y) / RATE, 2),
            "render_rtf": round(seconds / (len(y) / RATE), 3), "lag_ms": lag * 16,
            "co_voiced_frames": int(both.sum()), "within_50_cents": round(share, 4),
            "median_cents": round(float(np.median(err)), 2),
            "output_rms_dbfs": round(float(10 * np.log10(np.mean(y**2) + 1e-12)), 2),
            "passes": share >= 0.85,
        })  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["features", "equality", "loop"])
    parser.add_argument("target", nargs="?",
                        help="equality: a run folder; loop: a .tflite, or 'fixed'")
    parser.add_argument("--tflite", help="equality: the exported file (default: convert now)")
    parser.add_argument("--audio-dir", type=Path, help="loop: write the renders here")
    parser.add_argument("--json", type=Path, help="append the rows to this JSON-lines file")
    args = parser.parse_args()
    if args.check == "features":
        rows = check_features()
    elif args.check == "equality":
        rows = check_equality(args.target, args.tflite)
    else:
        rows = check_loop(args.target, args.audio_dir)
    if args.json:
        stamp = {"date": time.strftime("%Y-%m-%d"), "machine": os.environ.get("MACHINE", "dev-2c")}
        with args.json.open("a") as f:
            for row in rows:
                f.write(json.dumps({**stamp, **row}) + "\n")


if __name__ == "__main__":
    main()
