"""Where `ddsp live` reads and writes audio: files, WAV streams on stdin/stdout, sound cards.

Sources yield float32 mono blocks at their own rate; sinks take float32 mono blocks. WAV on
a pipe is parsed here rather than by libsndfile because streaming writers (sox, arecord,
ffmpeg) put an unknown length (0 or 0xFFFFFFFF) in the header and libsndfile reads zero
frames from a stream whose length field is 0; the formats are those pipes carry: integer PCM
(8, 16, 24, 32 bit) and IEEE float (32, 64 bit), plain or WAVE_FORMAT_EXTENSIBLE.

Sound cards go through PortAudio (`sounddevice`), imported only when a device is used, so
files and pipes work on a machine without PortAudio.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from ddspcli import storage
from ddspcli.errors import DdspError, InputError, OutputClosedError, OutputError

STDIO = "-"
WAVE_FORMAT_PCM, WAVE_FORMAT_FLOAT, WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE
UNKNOWN_SIZES = (0, 0xFFFFFFFF)


class DeviceError(DdspError):
    """A sound device is missing, busy, or cannot do what was asked (exit 3, an input)."""

    exit_code = InputError.exit_code


# ---------------------------------------------------------------------------------------------
# WAV streams.


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says about its samples."""

    sample_rate: int
    channels: int
    bits: int
    is_float: bool

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    def decode(self, data: bytes) -> np.ndarray:
        """Raw little-endian frames -> float32 ``[n, channels]`` in [-1, 1]."""
        n = len(data) // self.frame_bytes
        data = data[: n * self.frame_bytes]
        if self.is_float:
            x = np.frombuffer(data, "<f4" if self.bits == 32 else "<f8").astype(np.float32)
        elif self.bits == 8:
            x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
        elif self.bits == 24:
            b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend
            x = ints.astype(np.float32) / 8388608.0
        else:
            dtype = {16: "<i2", 32: "<i4"}[self.bits]
            x = np.frombuffer(data, dtype).astype(np.float32) / float(2 ** (self.bits - 1))
        return x.reshape(n, self.channels)


class WavStreamReader:
    """A WAV (or RF64) stream read as it arrives, e.g. stdin from ``arecord -t wav``.

    Args:
        stream: a binary file object (need not be seekable). name: for messages.
    Raises:
        InputError: not a WAV stream, or a sample format it does not carry.
    """

    def __init__(self, stream: BinaryIO, name: str = "<stdin>") -> None:
        self.stream, self.name = stream, name
        self.format, self.remaining = self._read_header()

    def _exact(self, n: int) -> bytes:
        data = self._read(n)
        if len(data) < n:
            raise InputError(f"{self.name}: the WAV header is cut short ({len(data)} of {n} "
                             "bytes); is the writer sending WAV (`-t wav`)?")  # fmt: skip
        return data

    def _read(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            piece = self.stream.read(n - got)
            if not piece:
                break
            chunks.append(piece)
            got += len(piece)
        return b"".join(chunks)

    def _read_header(self) -> tuple[WavFormat, int | None]:
        head = self._read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            what = "empty" if not head else f"not WAV (it starts with {head[:4]!r})"
            raise InputError(f"{self.name} is {what}; send a WAV stream, e.g. "
                             "`sox in.mp3 -t wav -` or `arecord -t wav`")  # fmt: skip
        fmt, rf64_size = None, None
        while True:
            chunk, size = struct.unpack("<4sI", self._exact(8))
            if chunk == b"ds64":
                body = self._exact(size + (size & 1))
                rf64_size = struct.unpack("<Q", body[8:16])[0]
            elif chunk == b"fmt ":
                fmt = self._parse_fmt(self._exact(size + (size & 1)))
            elif chunk == b"data":
                if fmt is None:
                    raise InputError(f"{self.name}: WAV data before its format chunk")
                if rf64_size is not None and size == 0xFFFFFFFF:
                    return fmt, rf64_size
                return fmt, None if size in UNKNOWN_SIZES else size
            else:
                self._exact(size + (size & 1))

    def _parse_fmt(self, body: bytes) -> WavFormat:
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
            tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID's first field
        ok = (tag == WAVE_FORMAT_PCM and bits in (8, 16, 24, 32)) or (
            tag == WAVE_FORMAT_FLOAT and bits in (32, 64))  # fmt: skip
        if not ok or channels < 1 or rate < 1:
            raise InputError(f"{self.name}: WAV format {tag} with {bits}-bit samples is not "
                             "supported; send 16/24/32-bit PCM or 32-bit float")  # fmt: skip
        return WavFormat(rate, channels, bits, tag == WAVE_FORMAT_FLOAT)

    def read(self, frames: int) -> np.ndarray:
        """Up to `frames` frames ``[n, channels]`` float32; ``n == 0`` at the end."""
        want = frames * self.format.frame_bytes
        if self.remaining is not None:
            want = min(want, self.remaining)
        data = self._read(want)
        if self.remaining is not None:
            self.remaining -= len(data)
        return self.format.decode(data)


def wav_stream_header(sample_rate: int, channels: int = 1) -> bytes:
    """A 32-bit float WAV header whose lengths say "unknown" (0xFFFFFFFF), for a stream."""
    fmt = struct.pack("<HHIIHH", WAVE_FORMAT_FLOAT, channels, sample_rate,
                      sample_rate * channels * 4, channels * 4, 32)  # fmt: skip
    unknown = struct.pack("<I", 0xFFFFFFFF)
    return b"RIFF" + unknown + b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + unknown


# ---------------------------------------------------------------------------------------------
# Sources.


class Source:
    """Float32 mono blocks at `sample_rate` Hz."""

    sample_rate: int
    name: str

    def read(self, frames: int) -> np.ndarray:  # pragma: no cover - interface
        """Up to `frames` samples ``[n]``; ``n == 0`` at the end."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or stream."""


class FileSource(Source):
    """An audio file libsndfile can read (WAV, FLAC, OGG, MP3, AIFF), mixed to mono."""

    def __init__(self, path: str) -> None:
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
        try:
            self._file = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise InputError(f"{path}: cannot decode it as audio ({err})") from None
        self.sample_rate, self.name = self._file.samplerate, path

    def read(self, frames: int) -> np.ndarray:
        return self._file.read(frames, dtype="float32", always_2d=True).mean(axis=1)

    def close(self) -> None:
        self._file.close()


class StdinSource(Source):
    """A WAV stream on stdin (the length may be unknown), mixed to mono."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._reader = WavStreamReader(stream or sys.stdin.buffer, "stdin")
        self.sample_rate, self.name = self._reader.format.sample_rate, "<stdin>"

    def read(self, frames: int) -> np.ndarray:
        return self._reader.read(frames).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Sinks.


class Sink:
    """Takes float32 mono blocks at `sample_rate` Hz."""

    sample_rate: int

    def write(self, block: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output (a file is renamed into place here)."""


class StdoutSink(Sink):
    """A float32 WAV stream on stdout, its lengths "unknown", flushed block by block."""

    def __init__(self, sample_rate: int, stream: BinaryIO | None = None) -> None:
        self.sample_rate = sample_rate
        self._stream = stream or sys.stdout.buffer
        self._put(wav_stream_header(sample_rate))

    def _put(self, data: bytes) -> None:
        try:
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError:
            with contextlib.suppress(OSError):  # no second EPIPE at interpreter exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise OutputClosedError("stdout was closed by its reader") from None

    def write(self, block: np.ndarray) -> None:
        self._put(np.asarray(block, "<f4").tobytes())


class FileSink(Sink):
    """A 32-bit float WAV (or 24-bit FLAC, by its name) written as it grows into a temporary
    file, renamed into place by `close` (also after Ctrl-C and SIGTERM): a reader never sees a
    half-written file under the final name."""

    def __init__(self, path: str, sample_rate: int, *, force: bool):
        from ddspcli.engine import audio

        self.sample_rate, self.path = sample_rate, path
        container = audio.output_format(path)
        self._clip = container != "WAV"  # integer samples: clipped at full scale
        self._context = storage.atomic_write(path, force=force)
        handle = self._context.__enter__()
        self._file = sf.SoundFile(handle, "w", sample_rate, 1,
                                  audio.output_subtype(container, "FLOAT"), format=container)

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32)
        try:
            self._file.write(np.clip(block, -1.0, 1.0) if self._clip else block)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise OutputError(f"cannot write {self.path}: {err}") from None

    def close(self) -> None:
        self._file.close()  # the header's lengths are filled in here
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the temporary file (an error before the end)."""
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(Exception):
            self._context.__exit__(OutputError, OutputError("aborted"), None)


# ---------------------------------------------------------------------------------------------
# Sound devices (PortAudio).


def sounddevice():
    """The `sounddevice` module, or one `DeviceError` line saying how to get PortAudio."""
    try:
        import sounddevice as sd
    except ImportError:
        raise DeviceError("sound devices need the sounddevice package: pip install "
                          "'ddspcli[live]'") from None  # fmt: skip
    except OSError:
        raise DeviceError("sound devices need the PortAudio library, which is not installed "
                          "(Debian/Ubuntu: apt-get install libportaudio2; macOS: brew install "
                          "portaudio); files and pipes work without it") from None  # fmt: skip
    return sd


def list_devices() -> list[dict]:
    """Every PortAudio device: index, name, host API, channels in/out, default rate."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
             "default_samplerate": d["default_samplerate"]}
            for i, d in enumerate(sd.query_devices())]  # fmt: skip


def classify(spec: str) -> str:
    """What ``-i``/``-o`` names: ``stdio`` (``-``), ``file`` (an existing file, or a name with
    a folder or an audio suffix) or ``device`` (``default``, an index, or a device name)."""
    from ddspcli.engine import audio

    if spec == STDIO or storage.is_stdout(spec):
        return "stdio"
    path = Path(spec)
    if path.is_file() or "/" in spec or path.suffix.lower() in audio.AUDIO_SUFFIXES:
        return "file"
    return "device"


def find_device(spec: str, kind: str) -> int | None:
    """The PortAudio index of ``default`` (None: the system default), an index, or a name
    (a case-insensitive substring matching one device with channels of that `kind`).

    Args:
        kind: ``input`` or ``output`` (the device must have channels of that kind).
    Raises:
        DeviceError: no such device, several match, or it has no channels of that kind.
    """
    sd = sounddevice()
    devices = sd.query_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    if spec == "default":
        index = sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            raise DeviceError(f"there is no default {kind} device; see `ddsp live --list-devices`")
        return None
    if spec.isdigit():
        index = int(spec)
        if index >= len(devices):
            raise DeviceError(f"no {kind} device {index}: there are {len(devices)} "
                              "(`ddsp live --list-devices`)")  # fmt: skip
    else:
        name = spec.lower()
        found = [i for i, d in enumerate(devices) if name in d["name"].lower() and d[key] > 0]
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise DeviceError(f"{what} {kind} devices match {spec!r}; see `ddsp live "
                              "--list-devices`")  # fmt: skip
        index = found[0]
    if devices[index][key] < 1:
        raise DeviceError(f"device {index} ({devices[index]['name']}) has no {kind} channels")
    return index


def iter_blocks(source: Source, frames: int) -> Iterator[np.ndarray]:
    """`source` in blocks of `frames` samples (the last may be shorter)."""
    while True:
        block = source.read(frames)
        if len(block) == 0:
            return
        yield block
