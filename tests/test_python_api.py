"""README's "Python API": its example is `examples/python_api.py` verbatim, and it runs without
TensorFlow (blocked in the child process), writing stems that sum to the audio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "python_api.py"


def _code_of_example() -> str:
    """The example without its module docstring (README shows the code only)."""
    text = EXAMPLE.read_text()
    return re.sub(r'^""".*?"""\n\n', "", text, count=1, flags=re.S)


def test_readme_shows_the_example_verbatim():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert block == _code_of_example()


def test_the_example_runs_without_tensorflow(tmp_path):
    blocked = (
        "import runpy, sys; sys.modules['tensorflow'] = None; "
        f"sys.argv = ['python_api.py', {str(tmp_path)!r}]; "
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
        "assert sys.modules.get('tensorflow') is None"
    )
    run = subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "shift +24 semitones" in run.stdout or "semitones" in run.stdout
    parts = {p: sf.read(tmp_path / f"speech.violin.{p}.wav", dtype="float32")
             for p in ("audio", "harmonic", "noise")}  # fmt: skip
    speech = sf.info(ROOT / "examples" / "speech_198-209-0000.wav")
    audio, rate = parts["audio"]
    assert rate == 16000 and abs(len(audio) - speech.frames) <= 64
    assert np.abs(audio).max() > 0.01
    # 16-bit files: three roundings of at most half a step each
    np.testing.assert_allclose(parts["harmonic"][0] + parts["noise"][0], audio, atol=2.0**-15 * 1.5)


def test_the_runtime_commands_run_without_tensorflow(tmp_path):
    """`info`, `features` (tiny) and `models list` on a light install: TensorFlow blocked."""
    clip = str(ROOT / "examples" / "speech_198-209-0000.wav")
    for args in (["info", clip, "--json"], ["models", "list"],
                 ["features", clip, "--pitch-model", "tiny", "-o", str(tmp_path / "f.csv")]):
        code = ("import sys; sys.modules['tensorflow'] = None; from ddspcli.cli import run; "
                f"sys.exit(run({args!r}))")  # fmt: skip
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
        assert run.returncode == 0, (args, run.stderr)
