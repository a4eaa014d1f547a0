"""Control curves from a melody: MIDI notes -> frame-rate f0 and loudness (for `ddsp generate`).

`read_midi` is the only I/O (through `mido`); the rest are pure functions: `monophonic`
resolves overlapping notes by last-note priority, `velocity_loudness` maps MIDI velocity into a
model's training loudness distribution, and `note_curves` draws f0 (with optional vibrato) and
loudness envelopes (attack, sustain, release) at the model's frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddspcli.errors import InputError

DRUM_CHANNEL = 9  # MIDI channel 10, 0-based
SILENCE_DB = -80.0
PREROLL_S = 0.25  # seconds of held first frame rendered and dropped before the output


@dataclass(frozen=True)
class Note:
    """One note: start and end in seconds, MIDI pitch, velocity 1..127."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int


def read_midi(path: str) -> list[Note]:
    """Every pitched note of a MIDI file, tempo changes applied, drums (channel 10) left out.

    Raises:
        InputError: unreadable file, no notes at all, or only drum notes.
    """
    import mido

    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        reason = str(err) or ("the file is empty (0 bytes)" if _empty(path) else
                              f"{type(err).__name__}: it is not a standard MIDI file")  # fmt: skip
        raise InputError(f"cannot read MIDI file {path}: {reason}") from None
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    drums = 0
    now = 0.0
    for message in midi:  # iterating a MidiFile yields messages with delta times in seconds
        now += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        if message.channel == DRUM_CHANNEL:
            drums += message.type == "note_on" and message.velocity > 0
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            if key in sounding:  # a retrigger ends the sounding note
                start, velocity = sounding.pop(key)
                notes.append(Note(start, now, message.note, velocity))
            sounding[key] = (now, message.velocity)
        elif key in sounding:
            start, velocity = sounding.pop(key)
            notes.append(Note(start, now, message.note, velocity))
    for (_, pitch), (start, velocity) in sounding.items():  # never released: end of file
        notes.append(Note(start, now, pitch, velocity))
    notes = [n for n in notes if n.end_s > n.start_s]
    _check_length(path, max((n.end_s for n in notes), default=0.0))
    if not notes:
        what = "only drum notes (channel 10)" if drums else "no notes"
        raise InputError(f"{path} holds {what}; give a MIDI file with a pitched melody")
    return sorted(notes, key=lambda n: (n.start_s, n.pitch))


def _empty(path: str) -> bool:
    from pathlib import Path

    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False


def _check_length(path: str, seconds: float) -> None:
    """Refuse a melody longer than `MAX_MELODY_S` (its controls and audio are held in memory)."""
    if seconds > MAX_MELODY_S:
        raise InputError(
            f"{path} lasts {seconds:.3g} s; generate renders at most {MAX_MELODY_S / 60:g} "
            "minutes at once: split the melody"
        )


def monophonic(notes: list[Note]) -> tuple[list[Note], int]:
    """Resolve overlaps by last-note priority: a note cuts the one sounding when it starts.

    Returns:
        ``(notes without overlaps, number of notes that were cut)``.
    """
    ordered = sorted(notes, key=lambda n: (n.start_s, n.pitch))
    out: list[Note] = []
    cut = 0
    for note in ordered:
        if out and out[-1].end_s > note.start_s:
            previous = out.pop()
            cut += 1
            if note.start_s > previous.start_s:
                out.append(Note(previous.start_s, note.start_s, previous.pitch, previous.velocity))
        out.append(note)
    return out, cut


def velocity_loudness(velocity: np.ndarray, quantiles: list[float] | None) -> np.ndarray:
    """MIDI velocity -> loudness (dB): velocity 1..127 spans the 25th..100th percentile of the
    model's note-on loudness (or -40..-10 dB without statistics)."""
    share = 0.25 + 0.75 * (np.clip(np.asarray(velocity, np.float64), 1, 127) - 1) / 126
    if not quantiles:
        return -40.0 + 30.0 * (share - 0.25) / 0.75
    q = np.asarray(quantiles, np.float64)
    return np.interp(share, np.linspace(0.0, 1.0, len(q)), q)


def note_curves(
    notes: list[Note],
    frame_rate: int,
    loudness_quantiles: list[float] | None = None,
    attack_s: float = 0.03,
    release_s: float = 0.15,
    vibrato_cents: float = 0.0,
    vibrato_hz: float = 5.5,
    tail_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Frame-rate controls for monophonic `notes`.

    f0 holds each note's pitch from its start to the next note's start (and before the first
    note, its pitch), so the pitch never glides into silence; vibrato of `vibrato_cents` at
    `vibrato_hz` starts after the attack. Loudness rises from silence (-80 dB) to the note's
    level over `attack_s` (linearly in amplitude), holds, and falls back over `release_s` after
    the note ends.

    Returns:
        ``{"f0_hz", "loudness_db", "f0_confidence"}``, float32 ``[frames]`` covering the last
        note's end plus `tail_s`.
    """
    if not notes:
        raise ValueError("no notes to draw")
    n_frames = int(np.ceil((max(n.end_s for n in notes) + tail_s) * frame_rate)) + 1
    t = np.arange(n_frames) / frame_rate
    midi = np.full(n_frames, float(notes[0].pitch))
    amplitude = np.zeros(n_frames)
    levels = velocity_loudness(np.array([n.velocity for n in notes]), loudness_quantiles)
    floor = 10.0 ** (SILENCE_DB / 20.0)
    for note, level in zip(notes, levels, strict=True):
        midi[t >= note.start_s] = note.pitch
        since = t - note.start_s
        peak = 10.0 ** (level / 20.0)
        rise = np.clip(since / max(attack_s, 1e-6), 0.0, 1.0)
        fall = np.clip(1.0 - (t - note.end_s) / max(release_s, 1e-6), 0.0, 1.0)
        envelope = np.where(t < note.end_s, rise, np.minimum(rise, fall)) * peak
        amplitude = np.maximum(amplitude, np.where(since >= 0, envelope, 0.0))
        if vibrato_cents:
            held = (since > attack_s) & (t < note.end_s)
            midi[held] += vibrato_cents / 100.0 * np.sin(2 * np.pi * vibrato_hz * since[held])
    loudness = 20.0 * np.log10(np.maximum(amplitude, floor))
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return {
        "f0_hz": f0.astype(np.float32),
        "loudness_db": loudness.astype(np.float32),
        "f0_confidence": (amplitude > floor).astype(np.float32),
    }


PROFILE_COLUMNS = ("time_s", "f0_hz", "loudness_db")
MAX_MELODY_S = 3600.0  # the longest melody `generate` renders (controls and audio in memory)


def read_profile(path: str) -> dict[str, np.ndarray]:
    """A CSV control profile: a header naming ``time_s,f0_hz,loudness_db`` (any order, other
    columns ignored), then one row per breakpoint.

    Returns:
        ``{"time_s", "f0_hz", "loudness_db"}`` float64 ``[rows]``: times strictly increasing
        from >= 0 s, f0 > 0 Hz, loudness finite (dB).
    Raises:
        InputError: unreadable file, a missing column, a value that is not a finite number,
        f0 <= 0, or times not strictly increasing; the message names the row.
    """
    import csv
    import io
    import sys
    from pathlib import Path

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read profile {path}: {err}") from None
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))  # Excel's "CSV UTF-8"
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{path} is empty; give a CSV with columns {','.join(PROFILE_COLUMNS)}")
    header = [cell.strip() for cell in rows[0]]
    missing = [c for c in PROFILE_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{path} lacks column(s) {', '.join(missing)}; the header must name "
            f"{','.join(PROFILE_COLUMNS)}"
        )
    if len(rows) < 2:
        raise InputError(f"{path} has a header but no rows")
    where = {c: header.index(c) for c in PROFILE_COLUMNS}
    values = np.empty((len(rows) - 1, len(PROFILE_COLUMNS)))
    for i, row in enumerate(rows[1:]):
        for j, column in enumerate(PROFILE_COLUMNS):
            cell = row[where[column]].strip() if where[column] < len(row) else ""
            try:
                values[i, j] = float(cell)
            except ValueError:
                values[i, j] = np.nan
            if not np.isfinite(values[i, j]):
                raise InputError(
                    f"{path} row {i + 2}: {column} is {cell or 'empty'!r}, not a finite number"
                )
    profile = dict(zip(PROFILE_COLUMNS, values.T, strict=True))
    _check_profile(path, profile)
    return profile


def _check_profile(path: str, profile: dict[str, np.ndarray]) -> None:
    """Raise InputError on f0 <= 0, negative or non-increasing times (naming the row)."""
    bad_f0 = np.flatnonzero(profile["f0_hz"] <= 0)
    if bad_f0.size:
        i = int(bad_f0[0])
        raise InputError(
            f"{path} row {i + 2}: f0_hz is {profile['f0_hz'][i]:g}; pitches must be > 0 Hz "
            "(use a low loudness_db for silence)"
        )
    times = profile["time_s"]
    if times[0] < 0:
        raise InputError(f"{path} row 2: time_s is {times[0]:g}; times start at 0 or later")
    _check_length(path, float(times[-1]))
    unsorted = np.flatnonzero(np.diff(times) <= 0)
    if unsorted.size:
        i = int(unsorted[0]) + 1
        raise InputError(
            f"{path} row {i + 2}: time_s {times[i]:g} does not come after {times[i - 1]:g}; "
            "sort the rows by time (each time once)"
        )


def profile_curves(profile: dict[str, np.ndarray], frame_rate: int) -> dict[str, np.ndarray]:
    """Frame-rate controls from profile breakpoints, from 0 s to the last breakpoint.

    f0 is interpolated linearly in pitch (semitones), loudness linearly in dB; before the first
    breakpoint both hold its values.

    Returns:
        ``{"f0_hz", "loudness_db", "f0_confidence"}`` float32 ``[frames]``.
    """
    times = np.asarray(profile["time_s"], np.float64)
    n_frames = int(np.floor(times[-1] * frame_rate)) + 1
    t = np.arange(n_frames) / frame_rate
    midi = np.interp(t, times, 12.0 * np.log2(np.asarray(profile["f0_hz"]) / 440.0) + 69.0)
    loudness = np.interp(t, times, np.asarray(profile["loudness_db"], np.float64))
    return {
        "f0_hz": (440.0 * 2.0 ** ((midi - 69.0) / 12.0)).astype(np.float32),
        "loudness_db": loudness.astype(np.float32),
        "f0_confidence": np.ones(n_frames, np.float32),
    }


@dataclass(frozen=True)
class Shape:
    """How notes become curves (`ddsp generate`'s options): seconds, cents, Hz, semitones."""

    attack_s: float = 0.03
    release_s: float = 0.15
    vibrato_cents: float = 0.0
    vibrato_hz: float = 5.5
    tail_s: float = 0.5
    transpose: float = 0.0


def melody_controls(
    midi_path: str | None, profile_path: str | None, frame_rate: int, statistics: dict,
    shape: Shape, f0_range: tuple[float, float],
) -> tuple[dict[str, np.ndarray], list[str], dict]:  # fmt: skip
    """Frame-rate controls from a MIDI melody or a CSV profile (exactly one of the two).

    Args:
        statistics: the model's ``statistics.json`` (``loudness_quantiles`` maps velocity).
        f0_range: ``(low, high)`` Hz the model can render; pitches are clipped into it.
    Returns:
        ``(controls {"f0_hz", "loudness_db", "f0_confidence"} [frames], warnings, report)``;
        the report counts notes, cut notes and clipped frames.
    """
    if (midi_path is None) == (profile_path is None):
        raise InputError("give exactly one of --midi FILE and --profile CSV")
    warnings: list[str] = []
    report: dict = {}
    if midi_path is not None:
        notes, cut = monophonic(read_midi(midi_path))
        if cut:
            warnings.append(
                f"{midi_path}: {cut} overlapping note(s) cut short (last-note priority: the "
                "model plays one note at a time)"
            )
        quantiles = statistics.get("loudness_quantiles")
        controls = note_curves(notes, frame_rate, quantiles, shape.attack_s, shape.release_s,
                               shape.vibrato_cents, shape.vibrato_hz, shape.tail_s)  # fmt: skip
        report.update(notes=len(notes), cut_notes=cut)
    else:
        controls = profile_curves(read_profile(profile_path), frame_rate)
    f0 = controls["f0_hz"] * np.float32(2.0 ** (shape.transpose / 12.0))
    clipped = int(np.sum((f0 < f0_range[0]) | (f0 > f0_range[1])))
    if clipped:
        warnings.append(
            f"{clipped} frame(s) fall outside the {f0_range[0]:.0f}..{f0_range[1]:.0f} Hz the "
            "model can play and were clipped; transpose with --transpose"
        )
    controls["f0_hz"] = np.clip(f0, *f0_range).astype(np.float32)
    report.update(frames=len(f0), clipped_frames=clipped, transpose=shape.transpose)
    return controls, warnings, report


def latent_trajectory(player, n_frames: int, z_mode: str, seed: int,
                      component: int | None = None) -> np.ndarray | None:  # fmt: skip
    """z ``[n_frames, z_dims]`` for a ``--z`` model from its stored mixture (None otherwise).

    Args:
        player: the `ddspcli.instrument.Instrument` (its folder, ``model.json`` and rates).
        z_mode: ``sample`` (a smooth trajectory drawn with `seed`) or ``mean`` (a component's
            mean held; the heaviest unless `component` is given).
    Raises:
        ModelError: the model directory holds no readable ``z_mixture.npz``.
    """
    from ddspcli import storage
    from ddspcli.engine import latent
    from ddspcli.errors import ModelError

    if not player.has_z:
        return None
    path = storage.join(str(player.folder), latent.MIXTURE_FILE)
    if not storage.exists(path):
        raise ModelError(
            f"{player.folder} has a z encoder but no {latent.MIXTURE_FILE}; rerun `ddsp fit` on "
            "its run folder (it fits the mixture) and export again"
        )
    try:
        mixture = latent.Mixture.load(path)
    except (OSError, ValueError) as err:
        raise ModelError(f"{path} is unreadable: {err}") from None
    z_dims = int(player.info.get("z_dims") or 0)
    if mixture.dims != z_dims:
        raise ModelError(f"{path} has z of {mixture.dims} dims but the model {z_dims}")
    if z_mode == "mean":
        try:
            return mixture.mean_trajectory(n_frames, component)
        except ValueError as err:
            raise InputError(str(err)) from None
    if z_mode != "sample":
        raise InputError(f"unknown z mode {z_mode!r}; choose sample or mean")
    return mixture.sample(n_frames, player.frame_rate, seed)


def preroll_frames(frame_rate: int) -> int:
    """Frames of held first frame that `run` renders (and drops) before the output."""
    return round(PREROLL_S * frame_rate)


def frames_to_render(n_frames: int, frame_rate: int) -> int:
    """Frames `run` decodes for `n_frames` of output: the output plus the pre-roll."""
    return n_frames + preroll_frames(frame_rate)


def run(
    player,
    model_name: str,
    controls: dict[str, np.ndarray],
    output: str,
    rsettings,
    z: np.ndarray | None = None,
    plot: str | None = None,
    save_features: str | None = None,
    force: bool = False,
    progress=None,
) -> dict:
    """Render `controls` (and `z`) with the model and write the WAV (and plot / NPZ).

    Args:
        player: the `ddspcli.instrument.Instrument` (LiteRT runtime, no TensorFlow).
        rsettings: `transfer.RenderSettings`.
        progress: called with the number of frames decoded.
    Returns:
        A summary: output, seconds, wall seconds, real-time factor, gain and peak (dB).
    """
    import time

    from ddspcli.engine import features_io, transfer

    start = time.perf_counter()
    sr, frame_rate = player.sample_rate, player.frame_rate
    features = dict(controls)
    if z is not None:
        features["z"] = z
    # Pre-roll: the first frame held for PREROLL_S settles the decoder's recurrent state, which
    # otherwise starts from zeros and can click; the pre-roll's samples are dropped.
    preroll = preroll_frames(frame_rate)
    features = {k: np.concatenate([np.repeat(v[:1], preroll, axis=0), v]) for k, v in
                features.items()}  # fmt: skip
    rendered = player.render(features, reverb=rsettings.reverb, room=rsettings.room,
                             room_mix_db=rsettings.room_mix_db, seed=rsettings.seed,
                             block_s=rsettings.block_s, progress=progress)["audio"]  # fmt: skip
    parts = {"audio": rendered[preroll * player.hop :]}
    n_samples = len(parts["audio"])
    gain, out_rate = transfer.write_rendered(parts, {"audio": output}, sr, rsettings, force=force)
    rendered = parts["audio"]
    meta = {"sample_rate": sr, "frame_rate": frame_rate, "model": model_name,
            "n_samples": n_samples}  # fmt: skip
    if save_features is not None:
        features_io.write(features_io.encode(controls, "npz", meta), save_features, force=force)
    if plot is not None:
        features_io.plot(rendered, controls, out_rate, frame_rate, plot,
                         title=f"generated -> {model_name}", force=force)  # fmt: skip
    return transfer.output_summary(output, model_name, rendered, n_samples / sr, out_rate,
                                   time.perf_counter() - start, gain)  # fmt: skip
