"""How close an imported official checkpoint comes to the official library's outputs.

Reads the ddsp 3.7.0 fixture (``tests/data/ddsp370_solo_small``: a checkpoint written by the
official training code and that library's outputs on fixed features) and prints one JSON line:
controls (max |diff| / peak), harmonic audio through the official oscillator bank and through
ddspcli's own (max |diff| / peak, SNR dB, spectral distance by FFT size), the whole
deterministic output. Usage: ``python benchmarks/import_fidelity.py [--out results.jsonl]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from ddspcli.engine import dsp, magenta_ckpt
from ddspcli.engine._tensorflow import tf

FOLDER = Path(__file__).resolve().parents[1] / "tests" / "data" / "ddsp370_solo_small"


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _snr_db(ours: np.ndarray, theirs: np.ndarray) -> float:
    error = np.sum((ours - theirs) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(np.sum(theirs**2) / error))


def _spectral_distance(ours: np.ndarray, theirs: np.ndarray, n_fft: int) -> float:
    """||S_ours - S_theirs||_F / ||S_theirs||_F of STFT magnitudes (hop n_fft / 4)."""
    a = np.abs(tf.signal.stft(ours, n_fft, n_fft // 4).numpy())
    b = np.abs(tf.signal.stft(theirs, n_fft, n_fft // 4).numpy())
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def measure() -> dict:
    with np.load(FOLDER / "golden_controls.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    config = magenta_ckpt.read_config(FOLDER)
    model = magenta_ckpt.build_model(config)
    magenta_ckpt.load_weights(model, config, magenta_ckpt.latest_checkpoint(FOLDER))
    features = {"f0_hz": golden["f0_hz"][None], "loudness_db": golden["loudness_db"][None]}
    controls, _ = model.controls(features)
    pairs = {"amplitudes": "amps", "harmonic_distribution": "harmonic_distribution",
             "noise_magnitudes": "noise_magnitudes"}  # fmt: skip
    result = {f"controls_{k}_rel": _relative(controls[k].numpy()[0], golden[v])
              for k, v in pairs.items()}  # fmt: skip
    n = golden["harmonic_audio"].shape[0]
    theirs = golden["harmonic_audio"]
    official = magenta_ckpt.official_harmonic_synthesis(
        controls["f0_hz"].numpy(), controls["amplitudes"].numpy(),
        controls["harmonic_distribution"].numpy(), n, config.sample_rate)[0]  # fmt: skip
    ours, _ = dsp.harmonic_synthesis(controls["f0_hz"], controls["amplitudes"],
                                     controls["harmonic_distribution"], n, config.sample_rate)
    ours = ours.numpy()[0]
    result |= {
        "harmonic_official_osc_rel": _relative(official, theirs),
        "harmonic_official_osc_snr_db": _snr_db(official, theirs),
        "harmonic_ddspcli_osc_snr_db": _snr_db(ours, theirs),
        "harmonic_ddspcli_osc_spectral_distance": {
            str(k): round(_spectral_distance(ours, theirs, k), 4) for k in (2048, 512, 128)},
    }  # fmt: skip
    noise = model.noise.get_signal(tf.constant(golden["noise_magnitudes"][None]),
                                   tf.constant(golden["white_noise"][None]))  # fmt: skip
    harmonic = magenta_ckpt.official_harmonic_synthesis(
        golden["f0_hz"][None, :, None], golden["amps"][None],
        golden["harmonic_distribution"][None], n, config.sample_rate)  # fmt: skip
    audio = model.reverb(tf.constant(harmonic) + noise).numpy()[0]
    result["full_deterministic_max_abs"] = float(np.abs(audio - golden["audio_synth_det"]).max())
    result["ir_identical"] = bool(np.array_equal(model.reverb.ir.numpy(), golden["ir"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="append the JSON line to this file")
    args = parser.parse_args()
    result = {"date": datetime.date.today().isoformat(), **measure()}
    line = json.dumps(result)
    print(line)
    if args.out:
        with args.out.open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
