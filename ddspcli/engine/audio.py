"""Audio I/O at the edges of the engine: decode, mix to mono, resample, write WAV atomically.

Everything here works on numpy arrays; the TF code lives in `dsp`. The path ``-`` means
stdin (for reading) or stdout (for writing), so commands compose in shell pipelines.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from ddspcli import storage
from ddspcli.errors import DdspWarning, InputError, OutputError, UsageError

STDIO = "-"
DEFAULT_SAMPLE_RATE = 16000
READABLE_FORMATS = "WAV, FLAC, OGG (Vorbis/Opus), MP3, AIFF"
# Containers audio outputs are written in, by file suffix; stdout, devices and FIFOs get WAV.
WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
FLAC_SUBTYPE = "PCM_24"  # FLAC holds integers only: a FLOAT output becomes 24-bit


def output_format(dest: str | os.PathLike[str]) -> str:
    """``WAV`` or ``FLAC``: the container an audio output named `dest` is written in.

    Raises:
        UsageError: a file named for another format (``out.csv``, ``out.mp3``): exit 2.
    """
    text = os.fspath(dest)
    if storage.is_stdout(text) or storage.is_stream(text):
        return "WAV"
    suffix = Path(text).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise UsageError(f"{text}: audio is written as WAV or FLAC; name the file .wav or .flac")
    return WRITE_FORMATS[suffix]


def output_subtype(container: str, subtype: str) -> str:
    """The sample format of an output: `subtype` (``PCM_16``, ``PCM_24``, ``FLOAT``) where the
    container holds it, else the nearest it does (FLAC: 24-bit for FLOAT)."""
    if container == "FLAC" and not sf.check_format("FLAC", subtype.upper()):
        return FLAC_SUBTYPE
    return subtype


@dataclass(frozen=True)
class AudioInfo:
    """What a decoded file was before mixing and resampling."""

    source: str
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {**asdict(self), "duration_s": self.duration_s}


def read_audio(
    source: str | Path,
    sample_rate: int | None = DEFAULT_SAMPLE_RATE,
    *,
    mono: bool = True,
) -> tuple[np.ndarray, AudioInfo]:
    """Decode an audio file (or stdin for ``-``), mix to mono and resample.

    Args:
        source: path to a WAV/FLAC/OGG/MP3/AIFF file, or ``-`` for stdin.
        sample_rate: output rate in Hz; ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(audio, info)``: audio is float32 in [-1, 1], shape ``[n_samples]`` when `mono`,
        else ``[n_samples, channels]``; `info` describes the file as stored.

    Raises:
        InputError: missing path, a folder, an empty or non-audio file, an unsupported
            codec or sample format, zero samples, or NaN/inf samples.
    """
    with _sound_file(source) as (f, info):
        rate = info.sample_rate if sample_rate is None else sample_rate
        name = info.source
        audio = _decode_mono(f, rate, name) if mono else _decode_all(f, rate, name)
    if audio.shape[0] == 0:
        raise InputError(f"{info.source} contains no audio samples; give a file with sound in it")
    return np.ascontiguousarray(audio, dtype=np.float32), info


@contextlib.contextmanager
def _sound_file(source: str | Path) -> Iterator[tuple[sf.SoundFile, AudioInfo]]:
    """The open file and its `AudioInfo`; a cut WAV warns (`warn_if_truncated`), and a decoding
    failure in the block becomes one `InputError` line saying why and what to do."""
    name, handle = _open_source(source)
    head = _head(handle, 1 << 16)  # the WAV header, to compare its length with the data's
    try:
        with sf.SoundFile(handle) as f:
            info = AudioInfo(name, f.format, f.subtype, f.samplerate, f.channels, f.frames)
            warn_if_truncated(info, head)
            yield f, info
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise InputError(_decode_failure_message(name, handle, err)) from None
    finally:
        if not isinstance(handle, str):
            handle.close()


def declared_wav_frames(head: bytes) -> int | None:
    """Frames a RIFF/WAVE header promises (its ``data`` chunk size / block align).

    Args:
        head: the file's first bytes (the chunks before ``data`` must be inside).
    Returns:
        The frame count, or None when `head` is not a WAV header with a ``data`` chunk, or the
        size is the "unknown length" that streaming writers put there (0 or 0xFFFFFFFF, as
        sox, arecord and ffmpeg write to a pipe).
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align, at = 0, 12
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], struct.unpack("<I", head[at + 4 : at + 8])[0]
        if chunk == b"fmt " and at + 22 <= len(head):
            block_align = struct.unpack("<H", head[at + 20 : at + 22])[0]
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF) or block_align == 0:
                return None
            return size // block_align
        at += 8 + size + (size & 1)
    return None


def warn_if_truncated(info: AudioInfo, head: bytes) -> None:
    """Warn (`DdspWarning`) when a WAV file holds fewer frames than its header promises.

    The decoder reads the frames that are there; the warning names both lengths so a cut
    copy or an interrupted recording does not pass unnoticed.
    """
    declared = declared_wav_frames(head)
    if declared is None or declared <= info.frames:
        return
    rate = info.sample_rate
    warnings.warn(
        f"{info.source} is cut short: its header promises {declared / rate:.2f} s "
        f"({declared} frames) but it holds {info.frames / rate:.2f} s ({info.frames} frames); "
        "using what is there",
        DdspWarning,
        stacklevel=2,
    )


def _decode_all(f: sf.SoundFile, sample_rate: int, name: str) -> np.ndarray:
    """All channels, ``[n, channels]``, resampled in one go."""
    data = f.read(dtype="float32", always_2d=True)
    check_finite(data, name)
    if sample_rate != f.samplerate and data.shape[0]:
        data = resample(data, f.samplerate, sample_rate)
    return data


def _decode_mono(f: sf.SoundFile, sample_rate: int, name: str) -> np.ndarray:
    """Decode, mix and resample block by block, so memory holds only the mono output.

    A 60-minute 44.1 kHz stereo file is 1.3 GB as float32; its 16 kHz mono mix is 230 MB.
    """
    chunks = list(mono_blocks(f, sample_rate, name))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def mono_blocks(
    f: sf.SoundFile, sample_rate: int, name: str, block_s: float = 10.0
) -> Iterator[np.ndarray]:
    """The mono mix of an open file, resampled to `sample_rate`, in blocks of about `block_s`.

    Resampling streams through soxr (the library librosa uses), quality HQ; the blocks
    together are ``round(frames * sample_rate / f.samplerate)`` samples, the length of a
    one-shot resample. NaN/inf samples raise `InputError` naming the first one.
    """
    stream = None
    if sample_rate != f.samplerate:
        import soxr

        stream = soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
    offset, emitted = 0, 0
    blocksize = max(1, int(f.samplerate * block_s))
    for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
        check_finite(block, name, offset)
        offset += block.shape[0]
        mono = block.mean(axis=1, dtype=np.float32)
        out = stream.resample_chunk(mono) if stream else mono
        emitted += len(out)
        yield out
    if stream is not None and offset:
        wanted = round(offset * sample_rate / f.samplerate)
        last = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        yield last[: max(0, wanted - emitted)]


@contextlib.contextmanager
def open_mono_stream(
    source: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> Iterator[tuple[AudioInfo, Iterator[np.ndarray]]]:
    """``(info, blocks)`` of `source` (a path, URL or ``-``) for reading in bounded memory.

    `blocks` yields the mono mix at `sample_rate` (see `mono_blocks`); decoding errors while
    the block runs are `InputError`s, as in `read_audio`.
    """
    with _sound_file(source) as (f, info):
        yield info, mono_blocks(f, sample_rate, info.source)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with soxr (quality HQ), time on axis 0, channels one by one.

    The same samples as ``librosa.resample(..., res_type="soxr_hq", axis=0)`` (checked by
    tests/test_audio.py), without librosa, which the runtime does not install.

    Args:
        audio: float array ``[n_samples]`` or ``[n_samples, channels]``.
        orig_sr: input rate in Hz.
        target_sr: output rate in Hz.

    Returns:
        float32 ``[ceil(n_samples * target_sr / orig_sr), ...]``.
    """
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr  # imported here: most calls never resample

    n_out = int(np.ceil(audio.shape[0] * float(target_sr) / orig_sr))
    out = np.apply_along_axis(soxr.resample, 0, audio, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[0] < n_out:  # soxr's length can differ from the exact ratio by a sample
        out = np.pad(out, [(0, n_out - out.shape[0])] + [(0, 0)] * (out.ndim - 1))
    return out[:n_out].astype(np.float32, copy=False)


def check_finite(audio: np.ndarray, name: str, offset: int = 0) -> None:
    """Raise `InputError` naming the first NaN or infinite sample of `audio`.

    `offset` is the index of ``audio[0]`` in the whole file (for block-wise decoding).
    """
    bad = ~np.isfinite(audio)
    if bad.any():
        first = offset + int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
        raise InputError(
            f"{name} contains NaN or infinite samples (first at sample {first}); "
            "re-export the audio as finite PCM or float"
        )


def write_wav(
    dest: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    *,
    force: bool = False,
    subtype: str = "PCM_16",
) -> int:
    """Write a WAV or FLAC file (by its name, `output_format`) atomically (temp file + rename),
    or WAV to stdout for ``-``.

    Args:
        dest: output path, or ``-`` for stdout.
        audio: float array ``[n_samples]`` or ``[n_samples, channels]`` in [-1, 1].
        sample_rate: rate in Hz.
        force: overwrite an existing file.
        subtype: soundfile subtype, e.g. ``PCM_16``, ``PCM_24``, ``FLOAT``.

    Returns:
        The number of samples clipped to [-1, 1] (integer subtypes only).

    Raises:
        OutputError: `dest` exists without `force`, or cannot be written.
        InputError: `audio` holds NaN or infinite values.
    """
    if not sf.check_format("WAV", subtype.upper()):
        raise OutputError(f"WAV cannot hold sample format {subtype!r}; use PCM_16, PCM_24 or FLOAT")
    container = output_format(dest)
    subtype = output_subtype(container, subtype)
    audio = np.asarray(audio, dtype=np.float32)
    check_finite(audio, "audio to write")
    clipped = 0
    if subtype.startswith("PCM"):
        clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
        audio = np.clip(audio, -1.0, 1.0)
    if clipped:
        warnings.warn(
            f"{clipped} samples of {dest} were clipped at full scale (0 dBFS); lower --peak-db "
            "or write a FLOAT WAV",
            DdspWarning,
            stacklevel=2,
        )
    # Encoded in memory, then written with OS calls: libsndfile reports a full disk only as
    # "System error", while `storage` names the reason (and never renames over a device).
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format=container, subtype=subtype)
    storage.write_bytes(dest, buffer.getvalue(), force=force)
    return clipped


def _open_source(source: str | Path) -> tuple[str, BinaryIO | str]:
    """Validate a path (or read stdin) and return ``(display name, file or path)``."""
    if str(source) == STDIO:
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("stdin is empty; pipe audio in, e.g. `sox in.mp3 -t wav - | ddsp ...`")
        return "<stdin>", io.BytesIO(data)
    if storage.is_remote(source):
        return _open_remote(str(source))
    path = Path(source)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give an audio file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); give an audio file")
    return str(path), str(path)


def _open_remote(url: str) -> tuple[str, BinaryIO]:
    """A seekable handle on a remote file (``gs://`` etc., through `tf.io.gfile`)."""
    if not storage.exists(url):
        raise InputError(f"no such file: {url}")
    if storage.isdir(url):
        raise InputError(f"{url} is a directory; give an audio file")
    if storage.size(url) == 0:
        raise InputError(f"{url} is empty (0 bytes); give an audio file")
    return url, storage.open_read(url)


def _head(handle: BinaryIO | str, n: int = 64) -> bytes:
    """First `n` bytes of a path or a seekable file (left at its start)."""
    if isinstance(handle, str):
        with open(handle, "rb") as f:
            return f.read(n)
    handle.seek(0)
    head = handle.read(n)
    handle.seek(0)
    return head


def sniff_format(head: bytes) -> str | None:
    """Container format named by a file's first bytes, or None when unrecognised."""
    signatures = [
        (b"RIFF", 0, "WAV"),
        (b"RIFX", 0, "WAV"),
        (b"RF64", 0, "WAV (RF64)"),
        (b"fLaC", 0, "FLAC"),
        (b"OggS", 0, "OGG"),
        (b"ID3", 0, "MP3"),
        (b"FORM", 0, "AIFF"),
        (b"ftyp", 4, "MP4/M4A (AAC or ALAC)"),
        (b"\x1aE\xdf\xa3", 0, "Matroska/WebM"),
        (b"#!AMR", 0, "AMR"),
        (b"0&\xb2u", 0, "WMA/ASF"),
        (b"MAC ", 0, "Monkey's Audio (APE)"),
        (b"wvpk", 0, "WavPack"),
    ]
    for magic, offset, name in signatures:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MP3" if (head[1] & 0x06) != 0 else "AAC (ADTS)"
    return None


def _wav_codec(head: bytes) -> str | None:
    """The format tag of a RIFF/WAVE file's fmt chunk as ``0xNNNN``, if it is in `head`."""
    at = head.find(b"fmt ")
    if at < 0 or len(head) < at + 10:
        return None
    (tag,) = struct.unpack("<H", head[at + 8 : at + 10])
    return f"0x{tag:04X}"


def _decode_failure_message(name: str, handle: BinaryIO | str, err: Exception) -> str:
    """One line saying why `name` could not be decoded and what to do about it."""
    head = _head(handle)
    fmt = sniff_format(head)
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    convert = "convert it first, e.g. `ffmpeg -i IN -ar 16000 OUT.wav`"
    if fmt is None:
        return f"{name} is not a readable audio file (expected {READABLE_FORMATS}); {convert}"
    if fmt.startswith("WAV"):
        codec = _wav_codec(head)
        what = f" (codec {codec})" if codec else ""
        return f"{name}: unsupported sample format in {fmt} file{what}: {reason}; {convert}"
    if fmt in {"FLAC", "OGG", "MP3", "AIFF"}:
        return f"{name}: cannot decode this {fmt} file ({reason}); it may be damaged; {convert}"
    return f"{name}: {fmt} is not supported (readable: {READABLE_FORMATS}); {convert}"


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


def _has_audio_suffix(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in AUDIO_SUFFIXES


def find_audio(inputs: list[str]) -> list[str]:
    """Expand files, folders (recursively, audio suffixes only, hidden entries skipped) and
    glob patterns into a sorted, de-duplicated list of paths; ``-`` passes through.

    Raises:
        InputError: an input that is neither a file, a folder, ``-`` nor a matching pattern,
            or a folder without audio files.
    """
    import glob

    found: list[str] = []
    for item in inputs:
        if item == STDIO:
            found.append(item)
            continue
        if storage.isdir(item):
            files = [p for p in storage.walk_files(item) if _has_audio_suffix(p)]
            if not files:
                raise InputError(
                    f"folder {item} holds no audio files ({', '.join(AUDIO_SUFFIXES)})"
                )
            found.extend(files)
        elif not glob.has_magic(item) or storage.exists(item):
            found.append(item)  # missing files are reported by read_audio with their name
        else:
            matches = storage.glob(item)
            if not matches:
                raise InputError(f"no files match {item}")
            found.extend(matches)
    return list(dict.fromkeys(found))
