"""Bad audio inputs shared by the decoding tests and the CLI tests (a helper, not a test)."""

from __future__ import annotations

import struct

import numpy as np
import soundfile as sf


def wav_bytes_with_format_tag(tag: int) -> bytes:
    """A syntactically valid RIFF/WAVE file whose fmt chunk names codec `tag`."""
    data = b"\x00\x01" * 100
    fmt = struct.pack("<HHIIHH", tag, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bad_inputs(tmp_path):
    """(path, expected message part) for each kind of bad input."""
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio at all\n")
    sf.write(tmp_path / "zero.wav", np.zeros([0, 1], np.float32), 16000)
    nan = np.zeros(1000, np.float32)
    nan[500] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    (tmp_path / "codec.wav").write_bytes(wav_bytes_with_format_tag(0x9999))
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100)
    (tmp_path / "folder").mkdir()
    return [
        (tmp_path / "missing.wav", "no such file"),
        (tmp_path / "folder", "is a directory"),
        (tmp_path / "empty.wav", "is empty (0 bytes)"),
        (tmp_path / "notes.txt", "not a readable audio file"),
        (tmp_path / "zero.wav", "contains no audio samples"),
        (tmp_path / "nan.wav", "NaN or infinite samples (first at sample 500)"),
        (tmp_path / "codec.wav", "unsupported sample format in WAV file (codec 0x9999)"),
        (tmp_path / "song.m4a", "MP4/M4A (AAC or ALAC) is not supported"),
    ]
