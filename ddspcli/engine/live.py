"""Real-time timbre transfer: a causal engine that turns each block of input into a block of
output, with its state carried (no look-ahead beyond the analysis window, nothing recomputed).

Per block of input samples (any length; the model's rate, 16 kHz):

1. `CausalFeatures`: feature frame ``k`` (centred on sample ``k * hop``) is computed as soon as
   its analysis window is complete, i.e. once sample ``k * hop + 512`` has arrived (CREPE's
   1024-sample window; the loudness window, 512 samples, ends earlier). CREPE runs on every
   ``pitch_stride``-th frame and its pitch is held until the next (causal: no interpolation
   towards the future); loudness is A-weighted, per frame, exactly as offline.
2. `LiveAdjuster`: note gate with hysteresis, auto-adjust from the model's statistics, shifts,
   autotune, frame by frame (see its docstring for how it differs from `transfer`).
3. The instrument's runtime stream (`ddspcli.runtime.Stream`: the LiteRT decoder with its GRU
   state carried, the NumPy synthesizers with oscillator phase and noise filter overlap
   carried) turns the new frames into the dry samples that are now final.
   The reverb is the runtime's too (`graph.reverb.PartitionedConvolver`, the one convolver
   of transfer and live: no added latency, any block size).
4. Those samples go through a FIFO primed with `delay` zeros, so every block returns exactly as
   many samples as it took.

Every stateful step runs frame by frame or sample by sample, so the output does not depend on
how the input was cut into blocks, except for the constant `delay` (and float rounding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ddspcli import choices
from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import features, pitch

LOOKAHEAD = pitch.FRAME_SIZE // 2  # samples past a frame's centre that its CREPE window needs


@dataclass(frozen=True)
class LiveSettings:
    """What `LiveEngine` does; every field maps to a `ddsp live` option."""

    block_ms: float = 20.0
    pitch_model: str = choices.LIVE_PITCH_MODEL.value
    pitch_hop_ms: float | None = None  # None: choices.LIVE_PITCH_HOP_MS[pitch_model]
    auto: bool = True
    octaves: int = 0
    semitones: float = 0.0
    loudness_shift_db: float = 0.0
    autotune: float = 0.0  # 0..1, towards the nearest equal-tempered semitone (A440)
    quiet_db: float = 20.0  # attenuation of frames without notes (auto only)
    note_on_confidence: float = 0.7
    note_off_confidence: float = 0.5
    note_floor_db: float = -60.0
    release_ms: float = 40.0  # a note ends after this long below the off thresholds
    reverb: bool = True
    room_mix_db: float = choices.ROOM_MIX_DB  # the room's wet level (dB; `Instrument.room_ir`)
    seed: int = 0

    def pitch_hop(self, frame_rate: int = 250) -> float:
        """CREPE's hop in ms: the setting, or the tracker's live default rounded to whole
        frames of a model at `frame_rate` (a 50 frames/s vst model: 20 ms)."""
        return self.pitch_hop_ms or features.pitch_hop_on_frames(
            choices.LIVE_PITCH_HOP_MS[self.pitch_model], frame_rate
        )


# ---------------------------------------------------------------------------------------------
# Features.


class CausalFeatures:
    """f0 (Hz), f0 confidence and A-weighted loudness (dB) per frame, as samples arrive.

    Frame ``k`` is centred on sample ``k * hop`` (zeros before sample 0, as offline) and is
    produced once samples up to ``k * hop + 512`` are in. CREPE runs on frames ``k`` with
    ``k % stride == 0`` whose loudness is above ``silence_db`` (else the confidence is 0 and
    the pitch keeps its last value); the frames in between hold the last CREPE pitch.

    Args:
        activations: CREPE, ``[n, 1024]`` frames -> ``[n, 360]`` activations (numpy), e.g.
            an instrument's ``tracker().activations``. settings: the model's feature
            settings (16 kHz).
        stride: feature frames between CREPE frames.
    """

    def __init__(self, activations: Callable[[np.ndarray], np.ndarray],
                 settings: features.FeatureSettings, stride: int):  # fmt: skip
        if settings.sample_rate != pitch.SAMPLE_RATE:
            raise ValueError(f"live needs a {pitch.SAMPLE_RATE} Hz model, not "
                             f"{settings.sample_rate} Hz")  # fmt: skip
        if settings.n_fft // 2 > LOOKAHEAD:
            raise ValueError(f"loudness n_fft {settings.n_fft} reaches past CREPE's window")
        self.activations, self.settings, self.stride = activations, settings, stride
        self.hop = settings.hop
        self.reset()

    def reset(self) -> None:
        """Back to sample 0 (compiled graphs kept)."""
        self._buffer = np.zeros(LOOKAHEAD, np.float32)  # the zeros before sample 0
        self._buffer_start = -LOOKAHEAD  # absolute index of _buffer[0]
        self._received = 0
        self.next_frame = 0
        self._f0, self._confidence = 0.0, 0.0  # the held CREPE estimate

    def push(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Add samples ``[n]``; return the frames now complete (``[k]`` each, maybe 0)."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        self._received += len(samples)
        ready = (self._received - LOOKAHEAD) // self.hop + 1 if self._received >= LOOKAHEAD else 0
        frames = np.arange(self.next_frame, max(ready, self.next_frame))
        out = self._compute(frames)
        self.next_frame = max(ready, self.next_frame)
        drop = self.next_frame * self.hop - LOOKAHEAD - self._buffer_start
        self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop
        return out

    def loudness(self, padded: np.ndarray) -> np.ndarray:
        """The offline level feature of each complete frame (`features.a_weighted_db`, or for a
        ``power`` model (vst) `features.frame_power_db`): ``[(k - 1) * hop + n_fft]`` samples
        -> ``[k]`` dB."""
        s = self.settings
        frames = np.lib.stride_tricks.sliding_window_view(padded, s.n_fft)[:: self.hop]
        if s.loudness == choices.Loudness.POWER.value:
            return features.frame_power_db(frames, s)
        return features.a_weighted_db(frames, s)

    def _window_at(self, centre: int, size: int) -> np.ndarray:
        start = centre - size // 2 - self._buffer_start
        return self._buffer[start : start + size]

    def _compute(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        if len(frames) == 0:
            empty = np.zeros(0, np.float32)
            return {"f0_hz": empty, "f0_confidence": empty, "loudness_db": empty}
        s, hop = self.settings, self.hop
        first = frames[0] * hop - s.n_fft // 2 - self._buffer_start
        piece = self._buffer[first : first + (len(frames) - 1) * hop + s.n_fft]
        loudness = self.loudness(piece)
        grid = [i for i, k in enumerate(frames) if k % self.stride == 0]
        loud = [i for i in grid if loudness[i] > s.silence_db]
        estimates = {}
        if loud:
            windows = np.stack([self._window_at(frames[i] * hop, pitch.FRAME_SIZE)
                                for i in loud])  # fmt: skip
            f0, confidence = pitch.decode(self.activations(windows), viterbi=False)
            estimates = {i: (float(a), float(b)) for i, a, b in zip(loud, f0, confidence,
                                                                      strict=True)}  # fmt: skip
        f0_out = np.empty(len(frames), np.float32)
        confidence_out = np.empty(len(frames), np.float32)
        for i in range(len(frames)):
            if i in estimates:
                self._f0, self._confidence = estimates[i]
            elif i in grid:  # silent: no note, the pitch kept
                self._confidence = 0.0
            f0_out[i], confidence_out[i] = self._f0, self._confidence
        return {"f0_hz": f0_out, "f0_confidence": confidence_out, "loudness_db": loudness}


# ---------------------------------------------------------------------------------------------
# Adjustments.


@dataclass
class LiveAdjuster:
    """Note gate, auto-adjust, shifts and autotune, one frame at a time (no future).

    Differences from `transfer`'s whole-file `adjust.adjust`:

    * notes: on when the confidence reaches ``note_on_confidence`` and the loudness is above
      the floor; off only after ``release_ms`` below ``note_off_confidence`` or the floor
      (hysteresis in level and time: no chatter), where `transfer` smooths a whole-file mask;
    * octave (auto): chosen when a note starts, from the running mean pitch of the note frames
      played so far (this note's first frame included), towards the model's mean pitch, and
      kept for the whole note; `transfer` picks one octave from the whole file;
    * loudness (auto): the player's note loudness quantiles are a running histogram of the
      note frames so far, updated when a note ends, mapped onto the model's training
      quantiles; before the first note ends the loudness passes unmapped;
    * autotune: towards the nearest equal-tempered semitone (A440); `transfer` first finds
      the file's tuning and best-fitting scale.
    """

    statistics: dict
    settings: LiveSettings
    frame_rate: int
    limits: tuple[float, float]
    note: bool = False
    octaves: int = 0  # the auto octave of the current note
    notes_started: int = 0
    _below: int = 0
    _pitch_sum: float = 0.0
    _pitch_count: int = 0
    _histogram: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS))
    _source: np.ndarray | None = None  # the player's loudness quantiles (dB)
    _starting: bool = False  # the current frame starts a note

    def __post_init__(self) -> None:
        self.release = max(1, round(self.settings.release_ms * self.frame_rate / 1000.0))
        self.auto = self.settings.auto and "mean_pitch" in self.statistics
        self._target = np.asarray(self.statistics.get("loudness_quantiles", []), np.float64)

    def process(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``f0_hz``, ``f0_confidence``, ``loudness_db`` ``[k]`` -> adjusted, + bool ``notes``.

        The gate, octave and histogram state runs frame by frame in plain Python floats; the
        array arithmetic (MIDI of the pitch, the loudness map, the shift and clip) runs once
        per block on the frames' values, element for element the arithmetic of one frame at a
        time (the same float64 operations in the same order)."""
        s = self.settings
        f0_in = np.asarray(frames["f0_hz"], np.float64)
        n = len(f0_in)
        midis = adjust_lib.hz_to_midi(f0_in).tolist()
        f0s, confidences = f0_in.tolist(), np.asarray(frames["f0_confidence"]).tolist()
        loudness_in = np.asarray(frames["loudness_db"], np.float64)
        notes = np.zeros(n, bool)
        factors = np.empty(n, np.float64)
        sources: list[np.ndarray | None] = [None] * n
        rows = zip(f0s, confidences, loudness_in.tolist(), strict=True)
        for i, (f0, confidence, loudness) in enumerate(rows):
            midi = midis[i] if f0 > 0 else None
            notes[i], sources[i], shift = self._frame(midi, confidence, loudness)
            factors[i] = 2.0 ** (shift / 12.0)
        mapped = loudness_in
        if self.auto:
            mapped = loudness_in.copy()
            target = self._target
            for source in {id(x): x for x in sources if x is not None}.values():
                which = np.array([x is source for x in sources])
                mapped[which] = _map(loudness_in[which], source, target)
            mapped = np.where(notes, mapped, mapped - s.quiet_db)
        loudness = (mapped + s.loudness_shift_db).astype(np.float32)
        shifted = f0_in * factors
        lo, hi = self.limits
        f0 = np.where(shifted > 0, np.clip(shifted, lo, hi), 0.0).astype(np.float32)
        return {**frames, "f0_hz": f0, "loudness_db": loudness, "notes": notes}

    @property
    def semitones(self) -> float:
        """The pitch shift applied now (auto octave + --octave + --semitones)."""
        return 12.0 * (self.octaves + self.settings.octaves) + self.settings.semitones

    def _frame(self, midi: float | None, confidence: float,
               loudness: float) -> tuple[bool, np.ndarray | None, float]:  # fmt: skip
        """One frame's state: ``(note, the loudness quantiles mapping it or None, shift in
        semitones)``."""
        s = self.settings
        self._gate(confidence, loudness)
        if self.note and midi is not None:
            self._pitch_sum += midi
            self._pitch_count += 1
            if self.auto and self._starting:
                mean = self._pitch_sum / self._pitch_count
                self.octaves = round((self.statistics["mean_pitch"] - mean) / 12.0)
            self._histogram[_bin(loudness)] += 1
        self._starting = False
        shift = self.semitones
        if midi is not None and s.autotune > 0:
            shifted = midi + shift
            shift += s.autotune * (round(shifted) - shifted)
        return self.note, self._source if self.auto else None, shift

    def _gate(self, confidence: float, loudness: float) -> None:
        s = self.settings
        if not self.note:
            if confidence >= s.note_on_confidence and loudness > s.note_floor_db:
                self.note, self._starting, self._below = True, True, 0
                self.notes_started += 1
            return
        if confidence < s.note_off_confidence or loudness <= s.note_floor_db:
            self._below += 1
            if self._below >= self.release:
                self.note = False
                self._update_source()
        else:
            self._below = 0

    def _update_source(self) -> None:
        """Between notes: the player's loudness quantiles from every note frame so far."""
        target = self.statistics.get("loudness_quantiles")
        if not self.auto or not target or self._histogram.sum() < 2:
            return
        cumulative = np.cumsum(self._histogram) / self._histogram.sum()
        probabilities = np.linspace(0.0, 1.0, len(target))
        centres = HIST_LOW + (np.arange(HIST_BINS) + 0.5) * HIST_STEP
        self._source = np.interp(probabilities, cumulative, centres)
        self._source = np.maximum.accumulate(self._source)


HIST_LOW, HIST_STEP, HIST_BINS = -120.0, 0.5, 300  # -120..+30 dB in 0.5 dB bins


def _bin(loudness_db: float) -> int:
    return int(min(max((loudness_db - HIST_LOW) // HIST_STEP, 0), HIST_BINS - 1))


def _map(loudness: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Piecewise-linear quantile map of ``[k]`` float64 dB, the ends extended with slope 1 (as
    `match_loudness`)."""
    mapped = np.interp(loudness, source, target)
    mapped = np.where(loudness < source[0], target[0] + loudness - source[0], mapped)
    return np.where(loudness > source[-1], target[-1] + loudness - source[-1], mapped)


# ---------------------------------------------------------------------------------------------
# The engine.


@dataclass
class Stats:
    """What a run did; `to_dict` is the ``--stats-json`` payload."""

    block_ms: float
    latency_ms: float
    blocks: int = 0
    xruns: int = 0
    compute_ms: list[float] = field(default_factory=list)
    audio_s: float = 0.0

    def to_dict(self, engine: LiveEngine) -> dict:
        times = np.asarray(self.compute_ms or [0.0])
        compute_s = float(times.sum()) / 1000.0
        return {
            "blocks": self.blocks, "xruns": self.xruns, "block_ms": self.block_ms,
            "latency_ms": round(self.latency_ms, 2),
            "compute_ms_p50": round(float(np.percentile(times, 50)), 3),
            "compute_ms_p99": round(float(np.percentile(times, 99)), 3),
            "compute_ms_max": round(float(times.max()), 3),
            "real_time_factor": round(compute_s / self.audio_s, 4) if self.audio_s else 0.0,
            "audio_s": round(self.audio_s, 3),
            "pitch_shift_semitones": engine.adjuster.semitones,
            "notes": engine.adjuster.notes_started,
            "pitch_model": engine.settings.pitch_model,
            "pitch_hop_ms": engine.settings.pitch_hop(engine.player.frame_rate),
        }  # fmt: skip


class LiveEngine:
    """Block in, block out, at the model's sample rate (16 kHz).

    Args:
        player: the `ddspcli.instrument.Instrument` played (its runtime, statistics and
            CREPE; no TensorFlow). settings: see `LiveSettings`.
        block: samples per `process` call (the last call may be shorter).
        room: ``[m]`` wet IR at the model's rate played instead of the model's own room (None:
            its own), through the runtime's partitioned convolver: no added latency.
    """

    def __init__(self, player, settings: LiveSettings, block: int,
                 room: np.ndarray | None = None):  # fmt: skip
        self.player, self.settings, self.block, self.room = player, settings, block, room
        if player.has_z:
            raise ValueError("live does not run z-encoder models (trained with --z) yet")
        fsettings = features.model_settings(player.info, settings.pitch_model,
                                            settings.pitch_hop(player.frame_rate))  # fmt: skip
        self.sample_rate, self.hop = player.sample_rate, player.hop
        self.features = CausalFeatures(player.tracker().activations, fsettings,
                                       fsettings.pitch_stride)  # fmt: skip
        self.adjuster = LiveAdjuster(player.statistics, settings, player.frame_rate,
                                     adjust_lib.f0_limits(player.sample_rate))  # fmt: skip
        self._stream = self._new_stream()
        self.delay = pipeline_delay(block, self.hop, self._stream.lag)
        self.recorded: list[dict[str, np.ndarray]] | None = None  # adjusted frames, if a list
        self.reset()

    def reset(self) -> None:
        """Back to the start of a stream: state, statistics, delay line (interpreters kept)."""
        self.features.reset()
        self._stream = self._new_stream()
        self.adjuster = LiveAdjuster(self.player.statistics, self.settings,
                                     self.player.frame_rate, self.adjuster.limits)  # fmt: skip
        self._fifo = np.zeros(self.delay, np.float32)
        self.stats = Stats(self.settings.block_ms, self.latency_ms())

    def _new_stream(self):
        """The runtime stream from silence, with the settings' room."""
        s = self.settings
        return self.player.stream(seed=s.seed, reverb=s.reverb, room=self.room,
                                  room_mix_db=s.room_mix_db)  # fmt: skip

    def warm_up(self) -> None:
        """Run every interpreter on silence, then reset: the first real blocks run at full
        speed (a device run would otherwise start with xruns)."""
        blocks = (self.delay + LOOKAHEAD) // self.block + 4
        for _ in range(blocks):
            self.process(np.zeros(self.block, np.float32))
        self.reset()

    def latency_ms(self, extra_samples: float = 0.0) -> float:
        """Algorithmic latency: the block, CREPE's half window, the synthesis look-ahead, and
        `extra_samples` (resampling) at the model's rate, in ms."""
        return 1000.0 * (self.block + self.delay + extra_samples) / self.sample_rate

    def process(self, block: np.ndarray) -> np.ndarray:
        """``[block]`` input samples -> ``[block]`` output samples: the render of the input so
        far, `delay` samples late. After the input ends, feed zero blocks to get the rest."""
        if len(block) != self.block:
            raise ValueError(f"blocks are {self.block} samples, not {len(block)}")
        self._decode(self.features.push(block))
        return self._pop()

    def _decode(self, frames: dict[str, np.ndarray]) -> None:
        if len(frames["f0_hz"]) == 0:
            return
        adjusted = self.adjuster.process(frames)
        if self.recorded is not None:
            self.recorded.append(adjusted)
        out = self._stream.push(adjusted["f0_hz"], adjusted["loudness_db"])  # dry + room
        self._fifo = np.concatenate([self._fifo, out])

    def _pop(self) -> np.ndarray:
        out, self._fifo = self._fifo[: self.block], self._fifo[self.block :]
        return out.astype(np.float32)


def pipeline_delay(block: int, hop: int, lag: int) -> int:
    """Samples of output delay that let every block return as many samples as it took.

    After ``N`` input samples, frames ``k`` with ``k * hop + LOOKAHEAD <= N`` are decoded and
    the synthesizers have released all but the last `lag` of them; the delay is the largest
    shortfall ``N - released(N)`` over the block boundaries ``N = m * block`` (periodic in
    ``m`` with period ``hop``, after the pipeline has filled).
    """

    def released(n: int) -> int:
        frames = (n - LOOKAHEAD) // hop + 1 if n >= LOOKAHEAD else 0
        return max(0, frames - lag) * hop

    first_full = (LOOKAHEAD + lag * hop) // block + 1
    return max(m * block - released(m * block) for m in range(1, first_full + hop + 1))


def timed(engine: LiveEngine, block: np.ndarray) -> np.ndarray:
    """`engine.process` with its compute time and audio length recorded in `engine.stats`."""
    start = time.perf_counter()
    out = engine.process(block)
    engine.stats.compute_ms.append(1000.0 * (time.perf_counter() - start))
    engine.stats.blocks += 1
    engine.stats.audio_s += len(block) / engine.sample_rate
    return out


# ---------------------------------------------------------------------------------------------
# Running: files and pipes, or sound devices.


class Resampler:
    """Streaming resampling between two rates (soxr; identity when they match).

    soxr keeps the timeline (the first output sample is time 0) but holds samples back
    until its filter has seen enough input: `holdback` is that delay in output samples,
    measured on a probe, which adds to the latency of a live device stream. Its ``HQ``
    filter holds back about 37 ms, ``LQ`` 20 ms (measured at 48 <-> 16 kHz): files and pipes
    use ``HQ``, devices ``LQ``.
    """

    def __init__(self, source_rate: int, target_rate: int, block: int,
                 quality: str = "HQ") -> None:  # fmt: skip
        self.identity = source_rate == target_rate
        self.holdback = 0
        if self.identity:
            return
        import soxr

        self._new = lambda: soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32",
                                                quality=quality)  # fmt: skip
        probe, given, got = self._new(), 0, 0
        for _ in range(20):
            got += len(probe.resample_chunk(np.zeros(block, np.float32)))
            given += block
            self.holdback = max(self.holdback, round(given * target_rate / source_rate) - got)
        self._stream = self._new()

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return np.asarray(x, np.float32)
        return self._stream.resample_chunk(np.asarray(x, np.float32), last=last)


def _fade(previous: np.ndarray) -> np.ndarray:
    """What plays when a block is late: the previous block fading to silence."""
    return (previous * np.linspace(1.0, 0.0, len(previous), dtype=np.float32)).astype(np.float32)


class BlockRunner:
    """Cuts a stream into the engine's blocks and counts time: the loop shared by files,
    pipes and devices.

    Args:
        engine: the live engine. pace: wait for the clock between blocks (a rehearsal of a
            device run); a block whose compute ends after its playback slot is an xrun and
            plays `_fade` of the previous block instead.
    """

    def __init__(self, engine: LiveEngine, pace: bool = False) -> None:
        self.engine, self.pace = engine, pace
        self._fifo = np.zeros(0, np.float32)
        self.received = 0  # input samples (model rate)
        self.emitted = 0  # output samples (model rate)
        self._previous = np.zeros(engine.block, np.float32)
        self._t0: float | None = None
        self._duration = engine.block / engine.sample_rate

    def push(self, x: np.ndarray) -> np.ndarray:
        """Input samples (model rate) -> the output blocks now complete (model rate)."""
        self._fifo = np.concatenate([self._fifo, x])
        self.received += len(x)
        out = []
        while len(self._fifo) >= self.engine.block:
            out.append(self._step(self._fifo[: self.engine.block]))
            self._fifo = self._fifo[self.engine.block :]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def finish(self) -> np.ndarray:
        """After the last input: zeros until the output covers the input plus the delay."""
        total = self.received + self.engine.delay
        out = []
        while self.emitted < total:
            before = self.emitted
            block = self._fifo[: self.engine.block]
            self._fifo = self._fifo[self.engine.block :]
            out.append(self._step(np.pad(block, (0, self.engine.block - len(block))))[
                : total - before])  # fmt: skip
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _step(self, block: np.ndarray) -> np.ndarray:
        index = self.engine.stats.blocks
        if self.pace:
            if self._t0 is None:
                self._t0 = time.perf_counter() - self._duration  # block 0 is complete now
            wait = self._t0 + (index + 1) * self._duration - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        out = timed(self.engine, block)
        if self.pace and time.perf_counter() > self._t0 + (index + 2) * self._duration:
            self.engine.stats.xruns += 1
            out = _fade(self._previous)
        self._previous = out
        self.emitted += len(out)
        return out


def run_stream(engine: LiveEngine, source, sink, *, pace: bool = False,
               seconds: float | None = None) -> Stats:  # fmt: skip
    """A file or a WAV pipe in, a file or a WAV pipe out, exactly as a device run would go
    (same blocks, same state), as fast as it can or paced by the clock.

    The output holds ``input + delay`` samples at the model's rate (resampled to the sink's):
    the render of every input sample (of the first `seconds` of it, if given), `engine.delay`
    samples late.
    """
    from ddspcli.engine import liveio

    to_model = Resampler(source.sample_rate, engine.sample_rate, engine.block)
    to_sink = Resampler(engine.sample_rate, sink.sample_rate, engine.block)
    runner = BlockRunner(engine, pace)
    source_block = max(1, round(engine.block * source.sample_rate / engine.sample_rate))
    left = None if seconds is None else round(seconds * source.sample_rate)
    for raw in liveio.iter_blocks(source, source_block):
        if left is not None:
            raw, left = raw[:left], left - min(left, len(raw))
        _write(sink, to_sink(runner.push(to_model(raw))))
        if left == 0:
            break
    _write(sink, to_sink(runner.push(to_model(np.zeros(0, np.float32), last=True))))
    _write(sink, to_sink(runner.finish(), last=True))
    return engine.stats


def _write(sink, samples: np.ndarray) -> None:
    if len(samples):
        sink.write(samples)


class _DeviceOutput:
    """Samples waiting for the output callback, at the device's rate (thread-safe). A callback
    that finds too few plays the previous buffer fading out and counts an xrun; more than
    `limit` samples waiting (a late block arrived after all) drops the oldest, so the
    latency stays bounded."""

    def __init__(self, limit: int) -> None:
        import threading

        self._lock = threading.Lock()
        self._samples = np.zeros(0, np.float32)
        self._previous = np.zeros(0, np.float32)
        self.limit, self.xruns, self.played, self.calls = limit, 0, 0, 0
        self.draining = False  # the input has ended: the rest plays out, then silence

    def put(self, x: np.ndarray) -> None:
        with self._lock:
            self._samples = np.concatenate([self._samples, x])[-self.limit :]

    def waiting(self) -> int:
        with self._lock:
            return len(self._samples)

    def take(self, n: int) -> np.ndarray:
        with self._lock:
            self.calls += 1
            if len(self._samples) >= n or (self.draining and len(self._samples)):
                out = np.pad(self._samples[:n], (0, max(0, n - len(self._samples))))
                self._samples = self._samples[n:]
                self._previous = out
                self.played += n
                return out
            if self.draining:  # the end: silence is expected
                return np.zeros(n, np.float32)
            self.xruns += 1
            out = _fade(np.resize(self._previous, n)) if len(self._previous) else np.zeros(
                n, np.float32)  # fmt: skip
            self._previous = np.zeros(0, np.float32)
            return out


def run_device(
    engine: LiveEngine,
    *,
    input_device: int | str | None,
    output_device: int | str | None,
    source=None,
    sink=None,
    rate: int | None = None,
    seconds: float | None = None,
) -> Stats:
    """A sound card on one side or both (`source`/`sink` on the other), driven by the
    device's clock. The audio callback only moves samples; this thread runs the engine.

    Args:
        input_device, output_device: PortAudio indexes (None: the default device) or
            ``"file"`` when `source` / `sink` is used instead.
        rate: the device rate (default: the model's, if the device takes it, else its own).
        seconds: stop after this much input (None: until Ctrl-C or the source ends).
    """
    import queue

    from ddspcli.engine import liveio

    sd = liveio.sounddevice()
    use_in, use_out = input_device != "file", output_device != "file"
    rate = rate or _device_rate(sd, input_device if use_in else None,
                                output_device if use_out else None, engine.sample_rate,
                                use_in, use_out)  # fmt: skip
    to_model = Resampler(source.sample_rate if source else rate, engine.sample_rate, engine.block,
                         "LQ" if use_in else "HQ")  # fmt: skip
    to_out = Resampler(engine.sample_rate, rate if use_out else sink.sample_rate, engine.block,
                       "LQ" if use_out else "HQ")  # fmt: skip
    engine.stats.latency_ms = engine.latency_ms(to_model.holdback + to_out.holdback)
    device_block = max(1, round(engine.block * rate / engine.sample_rate))
    inputs: queue.Queue = queue.Queue()
    output = _DeviceOutput(limit=4 * device_block)
    output.put(np.zeros(device_block, np.float32))  # one block of slack for the worker
    runner = BlockRunner(engine)

    overflows = [0]  # input blocks PortAudio dropped because this thread was late

    def callback(*args) -> None:
        if args[-1].input_overflow:
            overflows[0] += 1
        indata = args[0] if use_in else None
        outdata = args[1] if use_in and use_out else (args[0] if use_out else None)
        if indata is not None:
            inputs.put(indata.mean(axis=1).astype(np.float32))
        if outdata is not None:
            outdata[:] = output.take(len(outdata))[:, None]

    kinds = {(True, True): sd.Stream, (True, False): sd.InputStream,
             (False, True): sd.OutputStream}  # fmt: skip
    device = (input_device, output_device) if use_in and use_out else (
        input_device if use_in else output_device)  # fmt: skip
    try:
        stream = kinds[(use_in, use_out)](samplerate=rate, blocksize=device_block, device=device,
                                          channels=1, dtype="float32", callback=callback)
    except (sd.PortAudioError, ValueError) as err:
        raise liveio.DeviceError(f"cannot open the sound device: {err}") from None
    limit = None if seconds is None else round(seconds * engine.sample_rate)
    period = device_block / rate

    def stalled(since: float) -> None:
        """No callback for 5 s: the device went away (a server stopped, a card unplugged)."""
        if time.perf_counter() - since > 5.0 + 10 * period:
            raise liveio.DeviceError("the sound device stopped answering (its server or "
                                     "card went away)")  # fmt: skip

    with stream:
        while limit is None or runner.received < limit:
            if use_in:
                try:
                    raw = inputs.get(timeout=5.0 + 10 * period)
                except queue.Empty:
                    stalled(0.0)
            else:
                since, calls = time.perf_counter(), output.calls
                while output.waiting() > 2 * device_block:  # the device sets the pace
                    time.sleep(period / 4)
                    if output.calls != calls:
                        since, calls = time.perf_counter(), output.calls
                    stalled(since)
                raw = source.read(round(engine.block * source.sample_rate / engine.sample_rate))
                if len(raw) == 0:
                    break
            out = to_out(runner.push(to_model(raw)))
            output.put(out) if use_out else _write(sink, out)
        tail = to_out(runner.finish(), last=True) if not use_in else np.zeros(0, np.float32)
        if use_out:
            output.put(tail)
            output.draining = True
            since, calls = time.perf_counter(), output.calls
            while output.waiting() > 0:
                time.sleep(period)
                if output.calls != calls:
                    since, calls = time.perf_counter(), output.calls
                stalled(since)
        else:
            _write(sink, tail)
    engine.stats.xruns += output.xruns + overflows[0]
    return engine.stats


def _device_rate(sd, input_index, output_index, model_rate: int, use_in: bool,
                 use_out: bool) -> int:  # fmt: skip
    """The model's rate when the device(s) take it (no resampling, no added latency), else
    the input (or output) device's default rate."""
    try:
        if use_in:
            sd.check_input_settings(device=input_index, samplerate=model_rate, channels=1)
        if use_out:
            sd.check_output_settings(device=output_index, samplerate=model_rate, channels=1)
        return model_rate
    except (sd.PortAudioError, ValueError):
        kind = "input" if use_in else "output"
        index = input_index if use_in else output_index
        return int(sd.query_devices(index, kind)["default_samplerate"])


def measure_round_trip(input_device: int | None, output_device: int | None, rate: int = 16000,
                       seconds: float = 1.5) -> float:  # fmt: skip
    """Round-trip latency (ms) of a device loop (output wired to input, e.g. a null sink and
    its monitor): one duplex stream plays an impulse and records; the delay is where the
    recording's cross-correlation with the played signal peaks."""
    from ddspcli.engine import liveio

    sd = liveio.sounddevice()
    n = round(seconds * rate)
    played = np.zeros(n, np.float32)
    played[rate // 4] = 0.9  # after 250 ms, once the stream runs
    try:
        recorded = sd.playrec(played[:, None], samplerate=rate, channels=1, dtype="float32",
                              device=(input_device, output_device), blocking=True)[:, 0]
    except (sd.PortAudioError, ValueError) as err:
        raise liveio.DeviceError(f"cannot open the sound devices: {err}") from None
    if np.abs(recorded).max() < 0.05:
        raise liveio.DeviceError("the impulse played on the output never reached the input: "
                                 "are they connected (loopback, monitor source)?")  # fmt: skip
    lag = int(np.argmax(np.abs(recorded))) - rate // 4
    return 1000.0 * lag / rate


def block_samples(settings: LiveSettings, model) -> int:  # model: anything with sample_rate
    """``--block-ms`` in samples at the model's rate (a usage error if not a whole number)."""
    samples = settings.block_ms * model.sample_rate / 1000.0
    if abs(samples - round(samples)) > 1e-6 or samples < 1:
        raise ValueError(f"--block-ms {settings.block_ms:g} is not a whole number of samples at "
                         f"{model.sample_rate} Hz")  # fmt: skip
    return round(samples)


def run(engine: LiveEngine, input_spec: str, output_spec: str, kinds: dict[str, str], *,
        force: bool, rate: int | None = None, pace: bool = False,
        seconds: float | None = None) -> tuple[Stats, KeyboardInterrupt | None]:  # fmt: skip
    """Open `input_spec` and `output_spec` (``-``, a file or a device, as `kinds` says) and
    run the engine between them until the input ends, `seconds` pass, or Ctrl-C.

    Returns:
        ``(stats, interrupt)``: the Ctrl-C or SIGTERM (`interrupts.Terminated`) that ended the
        run, else None. After either the output file is completed (renamed into place) before
        this returns; on an error it is removed.
    """
    from ddspcli.engine import liveio

    source = sink = None
    devices = {}
    try:
        for kind, spec in (("input", input_spec), ("output", output_spec)):
            if kinds[kind] == "device":
                devices[kind] = liveio.find_device(spec, kind)
        if kinds["input"] == "stdio":
            source = liveio.StdinSource()
        elif kinds["input"] == "file":
            source = liveio.FileSource(input_spec)
        sink_rate = engine.sample_rate
        if kinds["output"] == "stdio":
            sink = liveio.StdoutSink(sink_rate)
        elif kinds["output"] == "file":
            sink = liveio.FileSink(output_spec, sink_rate, force=force)
        interrupted = None
        try:
            if devices:
                run_device(engine, input_device=devices.get("input", "file"),
                           output_device=devices.get("output", "file"), source=source, sink=sink,
                           rate=rate, seconds=seconds)  # fmt: skip
            else:
                run_stream(engine, source, sink, pace=pace, seconds=seconds)
        except KeyboardInterrupt as err:
            interrupted = err
        if sink is not None:
            sink.close()
            sink = None
        return engine.stats, interrupted
    finally:
        if isinstance(sink, liveio.FileSink):
            sink.abort()
        if source is not None:
            source.close()
