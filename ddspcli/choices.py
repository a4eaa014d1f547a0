"""Every default and every choice the engine and the CLI share, in one TensorFlow-free module.

The engine takes its defaults from here, the CLI builds its option types (Enums), defaults and
help strings from here, and a test compares every ``--help`` with this module, so the help can
no longer drift from what the engine does.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class PitchModel(StrEnum):
    """CREPE capacity."""

    FULL = "full"
    TINY = "tiny"


# CREPE runs every N ms and is interpolated in between (see BENCHMARKS.md, "Pitch accuracy").
PITCH_HOP_MS = {PitchModel.FULL.value: 32.0, PitchModel.TINY.value: 16.0}
FEATURES_PITCH_MODEL = PitchModel.FULL  # `features`, `prepare`: accuracy first
TRANSFER_PITCH_MODEL = PitchModel.TINY  # `transfer`: 9x faster, as accurate on singing
LIVE_PITCH_MODEL = PitchModel.TINY  # `live`: real time on 2 cores (BENCHMARKS.md, "Live")
# `live` holds each CREPE estimate until the next (no interpolation towards the future).
LIVE_PITCH_HOP_MS = {PitchModel.FULL.value: 32.0, PitchModel.TINY.value: 16.0}


class Variant(StrEnum):
    """Synthesis graph of a model (one gin file each in ddspcli/configs/)."""

    HARMONIC = "harmonic"
    HARMONIC_NOISE = "harmonic+noise"
    HARMONIC_NOISE_REVERB = "harmonic+noise+reverb"
    HARMONIC_NOISE_ROOM = "harmonic+noise+room"  # a decay-per-octave room (issue 29)
    TINY = "tiny"
    VST = "vst"  # the DDSP-VST plugin's architecture, on `prepare --preset vst` data


DEFAULT_VARIANT = Variant.HARMONIC_NOISE_REVERB


class Preset(StrEnum):
    """Feature definitions `prepare` can be told by name."""

    VST = "vst"  # 16 kHz, 50 frames/s, power over 1024-sample frames: DDSP-VST's extractor


class ExportFormat(StrEnum):
    """What `models export` writes."""

    FOLDER = "folder"  # an inference-only model folder (every ddsp command, a manifest entry)
    VST = "vst"  # one .tflite for the DDSP-VST plugin (vst-variant models)


class Loudness(StrEnum):
    """What the level feature (``loudness_db``) measures."""

    A_WEIGHTED = "a_weighted"  # A-weighted |STFT|^2 averaged over bins (the DDSP default)
    POWER = "power"  # mean square of the frame's samples, in dB (DDSP-VST's ``pw_db``)


# The DDSP-VST plugin's feature definition (its extract_features_micro.tflite, measured).
VST_SAMPLE_RATE = 16000
VST_FRAME_RATE = 50
VST_FRAME_SIZE = 1024
VST_PITCH_HOP_MS = 20.0  # CREPE on every frame


class Strategy(StrEnum):
    """tf.distribute strategy of `fit`."""

    AUTO = "auto"  # mirrored over the local GPUs when there are several, else default
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTIWORKER = "multiworker"  # TF_CONFIG describes the cluster


# Seconds every worker of `fit --strategy multiworker` has to start before the others give up:
# long enough for a scheduler to place pods, short enough that a worker that never comes does
# not hold the others (and their machines) for ever, as TensorFlow's own default does.
CLUSTER_TIMEOUT_S = 600.0


# Training defaults of `fit` (the published DDSP recipe; see DESIGN.md).
TRAIN_STEPS = 30000
TRAIN_BATCH_SIZE = 16
TRAIN_LEARNING_RATE = 3e-4
TRAIN_CHECKPOINT_EVERY = 500
TRAIN_KEEP = 3
TRAIN_SUMMARY_EVERY = 50


class Runner(StrEnum):
    """Where `prepare` computes the per-file features."""

    LOCAL = "local"  # this process or a local process pool
    BEAM = "beam"  # an Apache Beam pipeline (needs the `beam` extra)
    DASK = "dask"  # Beam's DaskRunner on a dask.distributed scheduler (the `cluster` extra)


# `prepare --runner dask`: seconds to wait for the scheduler's answer (and a worker's).
SCHEDULER_TIMEOUT_S = 10.0


class Pace(StrEnum):
    """How `live` runs on files and pipes."""

    FAST = "fast"  # as fast as the machine goes
    REALTIME = "realtime"  # wait for the clock, as a sound card would (a rehearsal)


class FeatureFormat(StrEnum):
    """File format of `ddsp features`."""

    CSV = "csv"
    JSON = "json"
    NPZ = "npz"


class ZMode(StrEnum):
    """How `generate` drives a z model."""

    SAMPLE = "sample"  # a smooth path sampled from the stored mixture
    MEAN = "mean"  # a mixture component's mean, held


# Ranges of the shifting and blocking options: beyond them a render means nothing (a pitch
# outside hearing, a block of minutes) or cannot be held in memory.
MAX_SHIFT_OCTAVES = 8  # --octave
MAX_SHIFT_SEMITONES = 96.0  # --semitones, --transpose: 8 octaves
MAX_LIVE_BLOCK_MS = 1000.0  # --block-ms
MAX_TAIL_S = 60.0  # generate --tail

# Rooms (issue 29): `--room MODEL|IR.wav|none` on transfer, generate and live, and the level of
# its wet path, `--room-mix DB` (0 dB: as learned or as given). Below the lower bound the room
# is inaudible (use `--room none`); above the upper one the wet path would bury the note.
ROOM_NONE = "none"  # --room none: the dry (dereverberated) performance
MAX_ROOM_IR_S = 10.0  # longest impulse-response file `--room` accepts (s)
ROOM_MIX_DB = 0.0
MIN_ROOM_MIX_DB = -60.0
MAX_ROOM_MIX_DB = 20.0


def room_help() -> str:
    """The help line of ``--room``."""
    return (
        "The room to play in: a model's learned room (name or folder), an impulse-response "
        f"file (at most {MAX_ROOM_IR_S:g} s), or {ROOM_NONE} (dry). Default: the model's own."
    )


def room_mix_help() -> str:
    """The help line of ``--room-mix``."""
    return (
        f"Level of the room (its wet path) in dB, {MIN_ROOM_MIX_DB:g}..{MAX_ROOM_MIX_DB:+g}; "
        "0: as learned or as given."
    )


def values(choice: type[Enum]) -> tuple[str, ...]:
    """The string values of an Enum of choices, in order."""
    return tuple(str(member.value) for member in choice)


def pitch_hop_help() -> str:
    """The help line of ``--pitch-hop-ms``, with the engine's defaults."""
    full, tiny = PITCH_HOP_MS["full"], PITCH_HOP_MS["tiny"]
    return f"Run CREPE every N ms and interpolate (multiple of 4; default {full:g} for full, " \
        f"{tiny:g} for tiny)."
