"""`Instrument`, the library's front door: one object holds a model and how it is played.

    import soundfile as sf
    from ddspcli.instrument import Instrument

    audio, sample_rate = sf.read("examples/speech_198-209-0000.wav", dtype="float32")
    violin = Instrument.open("violin")                  # a manifest name or a model folder
    feats = violin.features(audio, sample_rate)          # f0_hz, f0_confidence, loudness_db
    adjusted, report = violin.adjust(feats, octaves=1)   # `engine.adjust`, in its order
    out = violin.render(adjusted, stems=True)            # {"audio", "harmonic", "noise"}
    out, report = violin.transfer(audio, sample_rate, octaves=1)  # all three, input's length
    sf.write("speech.violin.wav", out["audio"], violin.sample_rate)
    stream = violin.stream()                             # features in, audio out, any blocks
    block = stream.push(feats["f0_hz"][:5], feats["loudness_db"][:5])

`open` resolves a name through the manifest (download, sha256 check, lock), imports a
checkpoint folder of the official DDSP library on the fly (once, into ``DDSP_HOME/imported``),
loads the model's runtime files (`ddspcli.runtime`: the decoder in LiteRT, synthesis in NumPy)
and CREPE as ``.tflite`` (`pitch_tracker_file`). This module never imports TensorFlow
(`make lint` checks it), so it is what the light install (``pip install ddspcli``) plays with.
CREPE full, whose ``.tflite`` no host serves, is built once from its checkpoint beside it in
the cache, without TensorFlow (`runtime.crepe_build`). Where TensorFlow is installed it also
plays what the light install cannot: a model folder written before the runtime files existed
is converted once into ``DDSP_HOME/runtime/<sha256 of its checkpoint>`` (`runtime_folder`);
without TensorFlow that is a one-line `ModelError` naming the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ddspcli import choices, pretrained, runtime, tfimport
from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import audio as audio_io
from ddspcli.engine import features as features_lib
from ddspcli.engine import magenta_folder
from ddspcli.errors import InputError, ModelError
from ddspcli.runtime import crepe_build, source

MODEL_JSON = "model.json"
STATISTICS_JSON = "statistics.json"
DEFAULT_BLOCK_S = 10.0  # seconds decoded per block (`transfer`'s default; the z framing)
HOW_TO_EXPORT = "ddsp models export"

__all__ = [
    "Instrument",
    "ResolvedModel",
    "pitch_tracker_file",
    "resolve_model",
    "runtime_folder",
]


# ---------------------------------------------------------------------------------------------
# Resolution: name or folder -> a model folder.


@dataclass(frozen=True)
class ResolvedModel:
    """Where a ``--model`` argument led: the model folder, its short name, and the official
    checkpoint folder it was imported from (None unless it was one)."""

    folder: Path
    name: str
    imported_from: Path | None = None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An inter-process lock on ``path + ".lock"`` (its folder created)."""
    import filelock

    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path) + ".lock"):
        yield


def _message(progress: pretrained.Progress | None, text: str) -> None:
    if progress is not None:
        progress.message(text)


def _tf_module(name: str, why: str):
    """A TensorFlow engine module (`tfimport.engine_module`), or a one-line `ModelError`
    saying `why` it is needed and how to get it."""
    try:
        return tfimport.engine_module(name)
    except ModuleNotFoundError:
        raise ModelError(f"{why} needs TensorFlow: {tfimport.TRAIN_EXTRA}") from None


def resolve_model(
    name_or_folder: str, progress: pretrained.Progress | None = None
) -> ResolvedModel:
    """A manifest name (pulled and verified if needed), a model folder, or a checkpoint folder
    of the official DDSP library, imported first into ``DDSP_HOME/imported/<sha256 of its
    files>`` (once; a second process waits for the first).

    Raises:
        ModelError: unknown name, missing folder, a failed download, or an official checkpoint
            without TensorFlow to import it.
    """
    folder, name = pretrained.resolve_instrument(str(name_or_folder), progress)
    if not magenta_folder.is_checkpoint_folder(folder):
        return ResolvedModel(Path(folder), name)
    dest = pretrained.cache_root() / "imported" / magenta_folder.fingerprint(folder)[:16]
    with _locked(dest):
        if not (dest / MODEL_JSON).exists():
            magenta = _tf_module("magenta_ckpt", f"importing the official checkpoint {folder}")
            _message(progress, f"importing the official DDSP checkpoint {folder} into {dest}")
            magenta.import_folder(folder, dest, force=True)
    return ResolvedModel(dest, name, Path(folder))


# ---------------------------------------------------------------------------------------------
# Runtime files: the folder's own, or converted once.


def _read_json(path: Path) -> dict:
    """A JSON file of a model folder (`ModelError` naming it when unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path}: {err}") from None


def _convert(folder: Path, info: dict, dest: Path) -> None:
    """Write the runtime files of `folder` into a new `dest` (through a temporary folder)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tflite = _tf_module("tflite_export", f"converting {folder} for the runtime")
        if info.get("format") == "vst":
            shutil.copy(folder / info["file"], tmp / info["file"])
            tflite.write_plugin_runtime_json(tmp, info)
        else:
            model_lib = _tf_module("model", f"converting {folder} for the runtime")
            tflite.write_runtime_files(model_lib.load_model_dir(str(folder)), tmp)
        source.record(folder, info, tmp / runtime.RUNTIME_JSON)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def runtime_folder(
    folder: Path, info: dict | None = None, progress: pretrained.Progress | None = None
) -> Path:
    """The folder whose ``runtime.json`` plays `folder`: itself when its runtime files are
    there and current (`runtime.source.is_current`); else (a model written before the runtime
    files existed, or a run that trained on after they were written) its conversion in
    ``DDSP_HOME/runtime/<checkpoint key>``, made once where TensorFlow is installed.

    Raises:
        ModelError: no (or stale) runtime files and no TensorFlow to convert them (one line:
            how to get them); an unreadable ``runtime.json``; an incomplete checkpoint.
    """
    folder = Path(folder)
    info = info if info is not None else _read_json(folder / MODEL_JSON)
    has_files = (folder / runtime.RUNTIME_JSON).is_file()
    if has_files and source.is_current(folder, info, runtime.read_description(folder)):
        return folder
    what = "runtime files older than its checkpoint" if has_files else "no runtime files"
    if not tfimport.available():
        raise ModelError(f"{folder} has {what} ({runtime.RUNTIME_JSON}): write them with "
                         f"`{HOW_TO_EXPORT} {folder} -o NEW_FOLDER`, or "
                         f"{tfimport.TRAIN_EXTRA} to convert it once")  # fmt: skip
    dest = pretrained.cache_root() / "runtime" / source.checkpoint_key(folder, info)[:16]
    with _locked(dest):
        if not (dest / runtime.RUNTIME_JSON).is_file():
            _convert(folder, info, dest)  # said after: a failed one is its error line alone
            _message(progress, f"converted {folder} for the runtime (once; it has {what}) "
                               f"into {dest}")  # fmt: skip
    return dest


# ---------------------------------------------------------------------------------------------
# CREPE as .tflite.


def pitch_tracker_file(model: str, progress: pretrained.Progress | None = None) -> Path:
    """CREPE ``tiny`` or ``full`` as a ``.tflite`` (its ``.json`` beside it).

    A ``.tflite`` listed in the manifest entry ``crepe-<model>`` is pulled and verified with
    it (tiny ships in the package). Otherwise (full: no host serves its ``.tflite``) it is
    built once from the entry's checkpoint into the entry's cache folder, without TensorFlow
    (`runtime.crepe_build`, about 1.5 s for full); the ``.json`` beside it records its sha256,
    checked at every load.

    Raises:
        ModelError: download failed, or the checkpoint is no CREPE checkpoint (one line).
    """
    spec = pretrained.get_spec(f"crepe-{model}")
    folder = pretrained.pull(spec, progress)
    checkpoint = spec.files[0].name
    name = Path(checkpoint).with_suffix(features_lib.TFLITE_SUFFIX).name
    if any(f.name == name for f in spec.files):
        return folder / name
    cache = pretrained.cache_dir(spec)
    target = cache / name
    with _locked(cache.parent / f".{name}"):
        if not target.with_suffix(".json").is_file():  # written last: its file is complete
            _message(progress, f"building CREPE {model} as {target} (once)")
            crepe_build.write_crepe_tflite(folder / checkpoint, target)
    return target


# ---------------------------------------------------------------------------------------------
# The instrument.


def _mono(audio: np.ndarray) -> np.ndarray:
    """``[n]`` or ``[n, channels]`` -> ``[n]`` float32 (channels averaged)."""
    x = np.asarray(audio, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise InputError(f"audio must be [samples] or [samples, channels], not {list(x.shape)}")
    if not np.isfinite(x).all():
        raise InputError("audio holds NaN or infinite samples")
    return x


@dataclass
class Instrument:
    """A model ready to play: its description, statistics, runtime and feature settings.

    Build it with `open`. Attributes:
        name: short name (manifest name or folder name). folder: the model folder.
        info: ``model.json``. statistics: ``statistics.json`` (empty: no auto-adjust).
        runtime: the loaded `ddspcli.runtime.Runtime`.
        feature_settings: the model's feature definition with the chosen pitch tracker.
        tracker_file: CREPE ``.tflite`` (None when opened with ``load_pitch=False``).
        imported_from: the official checkpoint folder it was imported from, if any.
    """

    name: str
    folder: Path
    info: dict
    statistics: dict
    runtime: runtime.Runtime
    feature_settings: features_lib.FeatureSettings
    tracker_file: Path | None = None
    imported_from: Path | None = None
    _tracker: features_lib.Tracker | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        name_or_folder: str | Path,
        *,
        progress: pretrained.Progress | None = None,
        pitch_model: str = choices.TRANSFER_PITCH_MODEL.value,
        pitch_hop_ms: float | None = None,
        load_pitch: bool = True,
        num_threads: int = 1,
    ) -> Instrument:
        """Resolve, fetch and load a model (see the module docstring).

        Args:
            name_or_folder: a name from ``ddsp models list``, a model folder, or an official
                DDSP checkpoint folder.
            progress: told about downloads, waits and conversions (default: silent).
            pitch_model: CREPE ``tiny`` (transfer's default) or ``full``.
            pitch_hop_ms: ms between CREPE frames (default: the tracker's, on the model's
                frame grid).
            load_pitch: False skips CREPE (rendering given features only).
            num_threads: LiteRT interpreter threads.
        Raises:
            ModelError: unknown, missing, damaged or unconvertible model or tracker (one line).
            ValueError: settings the model cannot use (a pitch hop off its frame grid).
        """
        resolved = resolve_model(str(name_or_folder), progress)
        folder = resolved.folder
        info = _read_json(folder / MODEL_JSON)
        stats_path = folder / STATISTICS_JSON
        statistics = _read_json(stats_path) if stats_path.is_file() else {}
        rt = runtime.load(runtime_folder(folder, info, progress), num_threads)
        settings = features_lib.model_settings(info, pitch_model, pitch_hop_ms)
        tracker = pitch_tracker_file(pitch_model, progress) if load_pitch else None
        return cls(resolved.name, folder, info, statistics, rt, settings, tracker,
                   resolved.imported_from)  # fmt: skip

    @property
    def sample_rate(self) -> int:
        """The model's audio rate (Hz): what `render` returns and `features` reads at."""
        return self.runtime.sample_rate

    @property
    def frame_rate(self) -> int:
        """Feature frames per second."""
        return self.runtime.frame_rate

    @property
    def hop(self) -> int:
        """Samples per feature frame."""
        return self.runtime.hop

    @property
    def has_z(self) -> bool:
        """Whether the model encodes its input audio (z): `render` then needs the audio."""
        return self.runtime.z_encoder is not None

    def tracker(self) -> features_lib.Tracker:
        """The loaded CREPE (LiteRT), loaded on first use."""
        if self._tracker is None:
            if self.tracker_file is None:
                raise ModelError("this instrument was opened with load_pitch=False")
            self._tracker = features_lib.load_tracker(str(self.tracker_file))
        return self._tracker

    def prepare_audio(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Input audio ``[n]`` or ``[n, channels]`` at `sample_rate` -> mono float32 at the
        model's rate (``[n * model rate / sample_rate]``, soxr)."""
        x = _mono(audio)
        if int(sample_rate) != self.sample_rate:
            x = audio_io.resample(x, int(sample_rate), self.sample_rate)
        return x

    def features(
        self,
        audio: np.ndarray,
        sample_rate: int,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """The model's features of an input (its own definition: rate, frame rate, loudness).

        Args:
            audio: ``[n]`` or ``[n, channels]`` float at `sample_rate` (Hz).
            progress: called with the feature frames done.
        Returns:
            ``f0_hz`` (Hz), ``f0_confidence`` (0..1), ``loudness_db`` (dB), float32 ``[m]``
            each with ``m = n' // hop + 1`` for the ``n'`` samples at the model's rate; z
            models also get ``audio`` (``[n']``, what the encoder hears).
        """
        x = self.prepare_audio(audio, sample_rate)
        feats = features_lib.compute_features(x, self.tracker(), self.feature_settings, progress)
        if self.has_z:
            feats["audio"] = x
        return feats

    def adjust(
        self, features: dict[str, np.ndarray], **adjustments: object
    ) -> tuple[dict[str, np.ndarray], dict]:
        """`engine.adjust.adjust` with this model's statistics and f0 range.

        Args:
            features: ``f0_hz``, ``f0_confidence``, ``loudness_db`` ``[frames]``.
            adjustments: fields of `engine.adjust.Adjustments` (``auto``, ``octaves``,
                ``semitones``, ``loudness_shift_db``, ``autotune``, ``quiet_db``, ...).
        Returns:
            ``(adjusted features with a bool ``notes`` [frames], report)``.
        Raises:
            TypeError: an unknown adjustment.
        """
        settings = replace(adjust_lib.Adjustments(), **adjustments)
        limits = adjust_lib.f0_limits(self.sample_rate)
        return adjust_lib.adjust(features, self.statistics, settings, limits)

    def render(
        self,
        features: dict[str, np.ndarray],
        *,
        stems: bool = False,
        reverb: bool = True,
        room: np.ndarray | None = None,
        room_mix_db: float = choices.ROOM_MIX_DB,
        seed: int = 0,
        block_s: float = DEFAULT_BLOCK_S,
        n_samples: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Audio for (adjusted) features, streamed in blocks of `block_s` seconds (equal to a
        one-shot render; see `ddspcli.runtime`).

        Args:
            features: ``f0_hz`` (Hz), ``loudness_db`` (dB) ``[t]``; z models: ``audio``
                (``[>= t * hop]`` at the model's rate) or ``z`` ``[t, z_dims]``.
            stems: also ``harmonic``, ``noise`` and (with a room) ``reverb``, the wet part of
                the room used: they sum to ``audio``.
            reverb: False renders the dry mix (no room at all). seed: noise seed.
            room, room_mix_db: the room and its level (see `room_ir`).
            n_samples: cut every part to this many samples (default ``t * hop``).
            progress: called with the frames of each block rendered.
        Returns:
            float32 ``[n_samples]`` arrays at `sample_rate` (Hz).
        """
        block = max(1, round(block_s * self.frame_rate))
        out = self.runtime.render(
            features["f0_hz"], features["loudness_db"], features.get("audio"), z=features.get("z"),
            seed=seed, reverb=reverb, room_ir=self.room_ir(room, room_mix_db, reverb),
            block_frames=block, stems=stems, progress=progress,
        )  # fmt: skip
        if n_samples is not None:
            out = {k: v[:n_samples] for k, v in out.items()}
        return out

    def transfer(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        stems: bool = False,
        reverb: bool = True,
        room: np.ndarray | None = None,
        room_mix_db: float = choices.ROOM_MIX_DB,
        seed: int = 0,
        **adjustments: object,
    ) -> tuple[dict[str, np.ndarray], dict]:
        """`features` -> `adjust` -> `render` for one input, as ``ddsp transfer`` does: the
        output has the input's length at the model's rate; an input without any note renders
        silence (``report["warnings"]`` says so).

        Returns:
            ``(parts, report)``: parts as `render`'s, the `adjust` report plus ``warnings``.
        """
        x = self.prepare_audio(audio, sample_rate)
        feats = features_lib.compute_features(x, self.tracker(), self.feature_settings)
        if self.has_z:
            feats["audio"] = x
        adjusted, report = self.adjust(feats, **adjustments)
        report["warnings"] = []
        if adjusted["notes"].any():
            parts = self.render(adjusted, stems=stems, reverb=reverb, room=room,
                                room_mix_db=room_mix_db, seed=seed, n_samples=len(x))  # fmt: skip
            return parts, report
        report["warnings"].append("no notes found (no frame with a confident pitch above the "
                                  "loudness floor): the output is silent")  # fmt: skip
        keys = ["audio", *(self.stem_names(reverb, room) if stems else ())]
        return {k: np.zeros(len(x), np.float32) for k in keys}, report

    def stem_names(self, reverb: bool = True, room: np.ndarray | None = None) -> tuple[str, ...]:
        """The stems `render` returns with ``stems=True`` (and these `reverb`, `room`): the
        graph's nodes (`Runtime.stems`), ``reverb`` the wet part of whichever room plays."""
        return self.runtime.stems(reverb, room)

    def stream(
        self, *, seed: int = 0, reverb: bool = True, room: np.ndarray | None = None,
        room_mix_db: float = choices.ROOM_MIX_DB,
    ) -> runtime.Stream:  # fmt: skip
        """A `ddspcli.runtime.Stream` from silence: ``push(f0_hz, loudness_db)`` any number of
        frames at a time returns the samples now final; ``finish()`` the rest. `reverb`,
        `room`, `room_mix_db` as `render`'s."""
        return self.runtime.stream(seed, reverb, self.room_ir(room, room_mix_db, reverb))

    # Rooms (issue 29) -------------------------------------------------------------------------

    def room_ir(
        self, room: np.ndarray | None = None, room_mix_db: float = choices.ROOM_MIX_DB,
        reverb: bool = True,
    ) -> np.ndarray | None:  # fmt: skip
        """The impulse response the runtime convolves with instead of the model's own.

        Args:
            room: the wet IR ``[m]`` (float, at the model's `sample_rate`; the room only: no
                direct sound, which the dry path carries; `open_room` makes one), or None
                for the model's own room.
            room_mix_db: the wet path's level in dB relative to `room` (0: as learned or as
                given).
            reverb: False: the dry render (no room), which takes neither `room` nor a level.
        Returns:
            None where the model's own room plays unchanged (bit for bit as without these
            arguments), else ``10**(room_mix_db / 20) * room`` ``[m]`` float64.
        Raises:
            ValueError: a room or a level with ``reverb=False``, a level without any room
                (the model has none of its own), a room that is not ``[m]`` finite numbers.
        """
        if not reverb:
            if room is not None or room_mix_db != 0.0:
                raise ValueError("a dry render (no reverb) takes no room and no room level")
            return None
        if room is None and room_mix_db == 0.0:
            return None
        base = self.runtime.reverb_ir if room is None else np.asarray(room, np.float64)
        if base is None:
            raise ValueError(f"{self.name} has no room of its own to set the level of; give a "
                             "room (--room MODEL|IR.wav)")  # fmt: skip
        if base.ndim != 1 or not np.isfinite(base).all():
            raise ValueError(f"a room is a [samples] impulse response of finite numbers, not "
                             f"{list(base.shape)}")  # fmt: skip
        return np.asarray(base, np.float64) * 10.0 ** (float(room_mix_db) / 20.0)

    def open_room(self, spec: str, progress: pretrained.Progress | None = None):
        """``--room MODEL|IR.wav`` -> an `engine.room_io.RoomIR` at this model's rate (its
        ``wet`` is `render`'s `room`; ``notes`` say what was mixed or resampled).

        An existing file is an impulse-response file (`room_io.file_room`: mono, resampled,
        at most `choices.MAX_ROOM_IR_S` s); anything else a model name or folder, resolved
        as `open` does, whose runtime files hold its learned room.

        Raises:
            InputError: the file is not audio, silent or too long; a missing path.
            ModelError: an unknown model, or one without a room.
        """
        from ddspcli.engine import room_io  # SciPy: only when a room is asked for

        if Path(spec).is_file():
            return room_io.file_room(spec, self.sample_rate)
        if not Path(spec).exists() and (Path(spec).suffix or os.sep in spec):
            raise InputError(f"--room {spec}: no such file or model folder")
        resolved = resolve_model(spec, progress)
        rt = runtime.load(runtime_folder(resolved.folder, None, progress))
        return room_io.learned_room(rt.reverb_ir, rt.sample_rate, resolved.name,
                                    self.sample_rate)  # fmt: skip
