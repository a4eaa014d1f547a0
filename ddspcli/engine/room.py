"""A trainable room that cannot swallow the note (issue 29).

The first violin's free 3 s impulse response (48,000 trainable taps) ended up carrying 22 dB
more energy than the dry note: the "reverb" became the instrument. `Room` has 16 trainable
numbers instead: per octave band (8 bands, 62.5 Hz to 8 kHz, the end bands reaching 0 Hz and
Nyquist) a decay time (RT60) and a level. Its wet impulse response is fixed white noise split
into those bands (`acoustics.band_masks`), each band decaying exponentially and scaled to its
level, zero for the first `predelay_ms` (no direct path) and:

- each band's energy spectral density is ``level <= max_level_db`` (default 0 dB) relative to
  the dry path (the band's energy is normalised after the decay is applied): the wet part
  can never be louder than the dry note in any octave, whatever the decoder does. Exact for
  the total energy (at most 0 dB, +0.1 dB of noise); per octave on average over the noise
  (a decay much shorter than the band's inverse bandwidth, 0.05 s at 125 Hz, smears energy
  across neighbouring low bands: tests/test_room.py);
- it cannot shape the note's spectrum beyond one gain per octave of its tail, nor its time
  envelope beyond one exponential per octave, so the dry synthesizers must carry the note.

Both bounds are sigmoids: ``rt60 = min * (max / min) ** sigmoid(u)`` and
``level = max_level * sigmoid(v)`` (amplitude). The raw variables are scaled by
`PARAM_SCALE` so that Adam (whose step is about the learning rate in the raw variable) moves
the decays in hundreds of steps, not thousands.

Drop-in for `synths.Reverb`: the same ``ir`` (a tensor here, computed from the variables),
``effective_ir`` and ``__call__``, so streaming, live and transfer run a `Room` model as they
run a free-IR one. At inference the room is just its IR (`impulse_response`) convolved with
the dry signal (`acoustics.apply_room`).
"""

from __future__ import annotations

import numpy as np

from ddspcli.engine import acoustics, dsp
from ddspcli.engine._tensorflow import tf

PARAM_SCALE = 5.0  # effective logit = PARAM_SCALE * variable


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


class Room(tf.Module):
    """Octave-band exponentially decaying noise reverb with bounded levels, plus a dry path.

    Args:
        reverb_length: IR samples (``m``).
        sample_rate: Hz.
        min_rt60_s, max_rt60_s: decay-time bounds (s); `max_rt60_s` defaults to the IR's
            length, so the tail is 60 dB down by its end.
        init_rt60_s: starting decay (s), every band.
        max_level_db: the highest band level (dB of energy spectral density relative to the
            dry path).
        init_level_db: starting level (dB), every band.
        predelay_ms, fade_ms: the IR is 0 before `predelay_ms`, then rises over `fade_ms`.
        add_dry: output dry + wet (else wet only).
        rng: draws the fixed noise (stored in the checkpoint, not trained).
    """

    def __init__(
        self,
        reverb_length: int = 48000,
        sample_rate: int = 16000,
        min_rt60_s: float = 0.05,
        max_rt60_s: float | None = None,
        init_rt60_s: float = 0.5,
        max_level_db: float = 0.0,
        init_level_db: float = -20.0,
        predelay_ms: float = 5.0,
        fade_ms: float = 2.0,
        add_dry: bool = True,
        rng: tf.random.Generator | None = None,
        name: str = "room",
    ) -> None:
        super().__init__(name=name)
        self.reverb_length, self.sample_rate, self.add_dry = reverb_length, sample_rate, add_dry
        self.centres_hz = acoustics.SYNTH_BANDS_HZ
        bands = len(self.centres_hz)
        self.min_rt60_s = float(min_rt60_s)
        self.max_rt60_s = float(max_rt60_s or reverb_length / sample_rate)
        self.max_level_db = float(max_level_db)
        masks = acoustics.band_masks(reverb_length // 2 + 1, sample_rate, self.centres_hz)
        self._masks = tf.constant(masks, tf.complex64)  # [bands, m // 2 + 1]
        fractions = acoustics.band_fractions(masks)  # [bands]: share of the spectrum
        self._fractions = tf.constant(fractions, tf.float32)
        window = acoustics.onset_window(reverb_length, sample_rate, predelay_ms, fade_ms)
        self._window = tf.constant(window, tf.float32)  # [m]
        self._t = tf.constant(np.arange(reverb_length) / sample_rate, tf.float32)  # [m] s
        noise = rng.normal([reverb_length]) if rng else tf.random.normal([reverb_length])
        self.noise = tf.Variable(noise, trainable=False, name="noise")
        # A short IR (its length bounds the decay) starts inside its bounds, not at them.
        init_rt60_s = min(max(init_rt60_s, self.min_rt60_s * 1.05), self.max_rt60_s / 1.05)
        u = _logit(np.log(init_rt60_s / self.min_rt60_s)
                   / np.log(self.max_rt60_s / self.min_rt60_s))  # fmt: skip
        v = _logit(10.0 ** ((init_level_db - max_level_db) / 20.0))
        self.decay = tf.Variable(tf.fill([bands], u / PARAM_SCALE), name="decay")
        self.level = tf.Variable(tf.fill([bands], v / PARAM_SCALE), name="level")

    # -- the physical parameters --------------------------------------------------------------

    def rt60_s(self) -> tf.Tensor:
        """``[bands]`` decay times (s): 60 dB of decay, per band of `centres_hz`."""
        share = tf.sigmoid(PARAM_SCALE * self.decay)
        return self.min_rt60_s * (self.max_rt60_s / self.min_rt60_s) ** share

    def level_amplitude(self) -> tf.Tensor:
        """``[bands]`` wet amplitude relative to the dry path, in (0, 10**(max_level_db/20))."""
        return 10.0 ** (self.max_level_db / 20.0) * tf.sigmoid(PARAM_SCALE * self.level)

    def level_db(self) -> tf.Tensor:
        """``[bands]`` band levels (dB of energy spectral density relative to the dry path)."""
        return 20.0 * tf.math.log(self.level_amplitude()) / np.log(10.0)

    # -- the impulse response -----------------------------------------------------------------

    @property
    def ir(self) -> tf.Tensor:
        """The wet IR ``[m]`` (float32): zero before the predelay, no direct path."""
        spectrum = tf.signal.rfft(self.noise)[None, :] * self._masks
        bands = tf.signal.irfft(spectrum, fft_length=[self.reverb_length])  # [bands, m]
        rate = acoustics.DECAY_60_DB / self.rt60_s()  # [bands] 1/s
        shaped = bands * tf.exp(-rate[:, None] * self._t[None, :]) * self._window[None, :]
        energy = tf.reduce_sum(tf.square(shaped), axis=-1)  # [bands]
        scale = self.level_amplitude() * tf.sqrt(self._fractions / energy)
        return tf.reduce_sum(shaped * scale[:, None], axis=0)

    def impulse_response(self) -> np.ndarray:
        """The wet IR as NumPy ``[m]`` float32 (export, inference, analysis)."""
        return self.ir.numpy().astype(np.float32)

    def summary(self) -> dict[str, list[float]]:
        """Band centres (Hz), decay times (s) and levels (dB) as plain lists (JSON)."""
        return {
            "centres_hz": list(self.centres_hz),
            "rt60_s": [float(x) for x in self.rt60_s().numpy()],
            "level_db": [float(x) for x in self.level_db().numpy()],
        }

    # -- the synthesis-graph interface of `synths.Reverb` ---------------------------------------

    @staticmethod
    def effective_ir(ir: tf.Tensor) -> tf.Tensor:
        """The IR as applied: ``[..., m]`` with its first tap zeroed (already zero here)."""
        return tf.concat([tf.zeros_like(ir[..., :1]), ir[..., 1:]], axis=-1)

    def get_controls(self, audio: tf.Tensor, ir: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """``audio [b, n]`` and the IR as ``[1, m]`` (shared by the batch) or ``[b, m]``."""
        ir = self.ir if ir is None else dsp.tf_float32(ir)
        return {"audio": dsp.tf_float32(audio), "ir": ir[None, :] if ir.shape.rank == 1 else ir}

    def get_signal(self, audio: tf.Tensor, ir: tf.Tensor) -> tf.Tensor:
        """``[b, n]`` audio, ``[b or 1, m]`` IR -> ``[b, n]`` (wet, plus dry when `add_dry`)."""
        wet = dsp.fft_convolve(audio, self.effective_ir(ir), padding="same", delay_compensation=0)
        return wet + audio if self.add_dry else wet

    def __call__(self, audio: tf.Tensor, ir: tf.Tensor | None = None) -> tf.Tensor:
        """Apply the room to ``[b, n]`` audio."""
        return self.get_signal(**self.get_controls(audio, ir))
