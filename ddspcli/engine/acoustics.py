"""Room acoustics in NumPy: octave-band decaying-noise impulse responses and their analysis.

Pure NumPy/SciPy (no TensorFlow): the inference runtime, `ddsp room` and the tests use it, and
`room.Room` (the trainable room) builds its impulse response from the same band split.

Conventions: an impulse response (IR) here is the *wet* part of a room, without the direct
sound (the dry path carries that), unless a function says otherwise; `with_direct` adds a
unit direct impulse at sample 0. Energies are sums of squares; levels are in dB.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

# Octave-band centres (Hz, base-2 exact: 1 kHz * 2^k). Synthesis covers the whole spectrum at
# 16 kHz (the end bands extend to 0 Hz and to Nyquist); analysis reports 125 Hz to 4 kHz.
SYNTH_BANDS_HZ = tuple(1000.0 * 2.0**k for k in range(-4, 4))  # 62.5 .. 8000
ANALYSIS_BANDS_HZ = tuple(1000.0 * 2.0**k for k in range(-3, 3))  # 125 .. 4000
NOMINAL_HZ = {62.5: 63, 125.0: 125, 250.0: 250, 500.0: 500, 1000.0: 1000, 2000.0: 2000,
              4000.0: 4000, 8000.0: 8000}  # fmt: skip
DECAY_60_DB = 3.0 * np.log(10.0)  # amplitude exp(-DECAY_60_DB t / T) falls 60 dB in T s
T20 = (-5.0, -25.0)  # Schroeder fit ranges (dB), extrapolated to 60 dB
T30 = (-5.0, -35.0)  # `rt60`'s default: on a noise IR it scatters less than T20 (5% vs 8% at
# 125 Hz for one draw of a 1.4 s room, 1.5% vs 2% at 1 kHz; tests/test_acoustics.py)
DIRECT_MS = 2.5  # half-width of the direct-sound window of `drr_db`


# -- band split ---------------------------------------------------------------------------------


def band_masks(
    n_bins: int, sample_rate: int, centres_hz=SYNTH_BANDS_HZ, transition_octaves: float = 1 / 3
) -> np.ndarray:
    """Amplitude-complementary octave-band masks on the bins of a real FFT.

    Band ``k`` spans the octave around ``centres_hz[k]`` (edges at ``centre * 2**±0.5``); the
    first band reaches down to 0 Hz and the last up to Nyquist. Between neighbours the masks
    cross over as ``sin²/cos²`` across `transition_octaves` centred on the edge, so
    ``sum_k mask_k == 1`` on every bin: the bands sum back to the input, and bands scaled by
    levels ``a_k`` have a spectrum ``sum_k a_k mask_k`` that never exceeds ``max_k a_k``.

    Args:
        n_bins: bins of the real FFT (``n_fft // 2 + 1``).
        centres_hz: band centres, ascending, one octave apart.
    Returns:
        ``[bands, n_bins]`` amplitudes in [0, 1].
    """
    freqs = np.linspace(0.0, sample_rate / 2.0, n_bins)
    octave = np.log2(np.maximum(freqs, 1e-3) / centres_hz[0])  # 0 at the first centre
    width = float(transition_octaves)

    def rise(edge: float) -> np.ndarray:  # 0 below the edge's transition, 1 above it
        u = np.clip((octave - edge) / width + 0.5, 0.0, 1.0)
        return np.sin(0.5 * np.pi * u) ** 2

    masks = []
    for k in range(len(centres_hz)):
        lower = rise(k - 0.5) if k > 0 else np.ones(n_bins)
        upper = 1.0 - rise(k + 0.5) if k < len(centres_hz) - 1 else np.ones(n_bins)
        masks.append(lower * upper)
    return np.stack(masks)


def band_fractions(masks: np.ndarray) -> np.ndarray:
    """``[bands]``: each band's own share of white noise's energy (mean squared mask)."""
    return np.mean(np.square(masks), axis=-1)


def band_noise(white: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Split white noise ``[m]`` into octave bands: ``[bands, m]`` (they sum to `white`)."""
    spectrum = np.fft.rfft(white)
    return np.fft.irfft(spectrum[None, :] * masks, n=len(white), axis=-1)


def onset_window(n: int, sample_rate: int, predelay_ms: float, fade_ms: float) -> np.ndarray:
    """``[n]``: 0 before `predelay_ms`, a raised-cosine rise over `fade_ms`, then 1."""
    t_ms = np.arange(n) * 1000.0 / sample_rate
    u = np.clip((t_ms - predelay_ms) / max(fade_ms, 1e-9), 0.0, 1.0)
    return np.sin(0.5 * np.pi * u) ** 2


def exp_decay_ir(
    rt60_s,
    levels_db,
    sample_rate: int = 16000,
    length_s: float = 3.0,
    centres_hz=SYNTH_BANDS_HZ,
    predelay_ms: float = 5.0,
    fade_ms: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """A synthetic room: octave bands of noise, each decaying exponentially (NumPy).

    Band ``k`` decays by 60 dB in ``rt60_s[k]`` seconds and carries ``levels_db[k]`` dB of
    energy spectral density relative to the direct sound (0 dB: the band's reverberant energy
    equals the dry signal's in that band). The same construction as `room.Room`.

    Args:
        rt60_s, levels_db: ``[bands]`` (s, dB), one per entry of `centres_hz`.
    Returns:
        wet IR ``[round(length_s * sample_rate)]`` (zero before `predelay_ms`), float64.
    """
    n = round(length_s * sample_rate)
    rng = np.random.default_rng(seed)
    masks = band_masks(n // 2 + 1, sample_rate, centres_hz)
    bands = band_noise(rng.standard_normal(n), masks)
    t = np.arange(n) / sample_rate
    envelope = np.exp(-DECAY_60_DB * t[None, :] / np.asarray(rt60_s, float)[:, None])
    shaped = bands * envelope * onset_window(n, sample_rate, predelay_ms, fade_ms)[None, :]
    energy = np.sum(np.square(shaped), axis=-1)
    target = band_fractions(masks) * 10.0 ** (np.asarray(levels_db, float) / 10.0)
    return np.sum(shaped * np.sqrt(target / energy)[:, None], axis=0)


# -- analysis -----------------------------------------------------------------------------------


def octave_filter(x: np.ndarray, centre_hz: float, sample_rate: int, order: int = 3) -> np.ndarray:
    """``[n]`` -> ``[n]``: Butterworth band-pass over the octave around `centre_hz`
    (``2 * order`` poles, edges at ``centre * 2**±0.5``), run forward (causal)."""
    nyquist = sample_rate / 2.0
    low, high = centre_hz / np.sqrt(2.0), min(centre_hz * np.sqrt(2.0), 0.999 * nyquist)
    sos = signal.butter(order, [low / nyquist, high / nyquist], btype="band", output="sos")
    return signal.sosfilt(sos, x)


def schroeder_db(ir: np.ndarray) -> np.ndarray:
    """Energy decay curve ``[n]`` (dB, 0 at the start): backward-integrated squared IR."""
    energy = np.cumsum(np.square(ir.astype(np.float64))[::-1])[::-1]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(energy / energy[0])


def decay_time(edc_db: np.ndarray, sample_rate: int, fit_db=T30) -> float:
    """RT60 (s) from an energy decay curve: least-squares line through the samples between
    ``fit_db[0]`` and ``fit_db[1]`` dB, extrapolated to -60 dB (NaN if it never gets there)."""
    start, stop = fit_db
    below = np.nonzero(edc_db <= stop)[0]
    if below.size == 0:
        return float("nan")
    first = int(np.nonzero(edc_db <= start)[0][0])
    last = int(below[0])
    if last - first < 2:
        return float("nan")
    t = np.arange(first, last + 1) / sample_rate
    slope = np.polyfit(t, edc_db[first : last + 1], 1)[0]  # dB/s
    return float(-60.0 / slope) if slope < 0 else float("nan")


def rt60(
    ir: np.ndarray, sample_rate: int, centres_hz=ANALYSIS_BANDS_HZ, fit_db=T30
) -> np.ndarray:
    """Reverberation time per octave band by Schroeder backward integration.

    Each band: `octave_filter`, `schroeder_db`, then `decay_time` over `fit_db` (default T30:
    the -5 to -35 dB part of the decay, times 2; `T20` for noisier IRs). Pass the wet IR: a
    direct impulse rings in the band filters (their own decay, tens of ms at 125 Hz) and moves
    the low bands' fit by several percent; `room_rt60` strips it from a measured IR first.

    Args:
        ir: ``[m]`` wet impulse response.
    Returns:
        ``[bands]`` RT60 in s (NaN where the decay does not reach the fit's end).
    """
    ir = np.asarray(ir, np.float64)
    edcs = [schroeder_db(octave_filter(ir, c, sample_rate)) for c in centres_hz]
    return np.array([decay_time(edc, sample_rate, fit_db) for edc in edcs])


def room_rt60(
    full_ir: np.ndarray, sample_rate: int, centres_hz=ANALYSIS_BANDS_HZ, fit_db=T30
) -> np.ndarray:
    """`rt60` of a full (measured) IR ``[m]``: of its wet part after `split_direct`."""
    return rt60(split_direct(full_ir, sample_rate)[1], sample_rate, centres_hz, fit_db)


def with_direct(wet_ir: np.ndarray, direct_gain: float = 1.0) -> np.ndarray:
    """The full IR ``[m]``: a direct impulse of `direct_gain` at sample 0 plus `wet_ir`."""
    full = np.array(wet_ir, np.float64)
    full[0] += direct_gain
    return full


def drr_db(ir: np.ndarray, sample_rate: int, direct_ms: float = DIRECT_MS) -> float:
    """Direct-to-reverberant ratio (dB) of a full IR ``[m]`` (direct sound included).

    Direct: the energy within ``±direct_ms`` of the IR's largest sample; reverberant: all
    energy after that window (what comes before it is ignored).
    """
    ir = np.asarray(ir, np.float64)
    peak, half = int(np.argmax(np.abs(ir))), round(direct_ms * sample_rate / 1000.0)
    direct = np.sum(np.square(ir[max(0, peak - half) : peak + half + 1]))
    reverberant = np.sum(np.square(ir[peak + half + 1 :]))
    return energy_ratio_db(direct, reverberant)


def split_direct(
    ir: np.ndarray, sample_rate: int, direct_ms: float = DIRECT_MS
) -> tuple[float, np.ndarray]:
    """A measured full IR ``[m]`` -> ``(direct peak value, wet IR [m - peak])``.

    The wet IR starts at the direct sound's peak, is scaled so the direct sound is 1, and is
    zero within `direct_ms` of it: what `apply_room` adds to a dry signal.
    """
    ir = np.asarray(ir, np.float64)
    peak = int(np.argmax(np.abs(ir)))
    gain = float(ir[peak])
    wet = ir[peak:] / gain
    wet[: round(direct_ms * sample_rate / 1000.0) + 1] = 0.0
    return gain, wet


def energy_ratio_db(numerator: float, denominator: float) -> float:
    """``10 log10(numerator / denominator)`` (±inf at zero energies, NaN for 0/0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(10.0 * np.log10(np.float64(numerator) / np.float64(denominator)))


def dry_wet_db(dry: np.ndarray, wet: np.ndarray) -> float:
    """Energy of the dry signal over that of the wet (room) part, in dB (``[n]`` each;
    positive: the dry note carries the sound)."""
    dry, wet = np.asarray(dry, np.float64), np.asarray(wet, np.float64)
    return energy_ratio_db(np.sum(np.square(dry)), np.sum(np.square(wet)))


def apply_room(audio: np.ndarray, ir: np.ndarray, mix_db: float = 0.0) -> np.ndarray:
    """Put dry audio into a room: ``audio + 10**(mix_db/20) * (audio * ir)`` (convolution).

    Args:
        audio: ``[n]`` dry signal.
        ir: ``[m]`` wet IR (no direct sound; `split_direct` makes one from a measured IR).
        mix_db: wet level relative to the room as given (0: as learned, -inf: dry).
    Returns:
        ``[n]`` (the input's length; the tail past its end is cut), float32.
    """
    audio = np.asarray(audio, np.float32)
    if len(audio) == 0 or len(ir) == 0 or mix_db == -np.inf:
        return audio.copy()
    wet = signal.oaconvolve(audio.astype(np.float64), np.asarray(ir, np.float64))[: len(audio)]
    return (audio + 10.0 ** (mix_db / 20.0) * wet).astype(np.float32)
