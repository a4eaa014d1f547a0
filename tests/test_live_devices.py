"""`ddsp live` on real sound devices: a PulseAudio server started by the test with a null sink,
its monitor as the input, reached through PortAudio (`sounddevice`).

Needs the `pulseaudio` server and the PortAudio library (`.ci/run` installs both:
``apt-get install pulseaudio libportaudio2``); without them these tests say why they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _missing() -> str | None:
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        return "no PulseAudio server here (apt-get install pulseaudio)"
    import ctypes.util
    import importlib.util

    # Not imported here: PortAudio lists the devices it can open when it is first loaded,
    # which must happen after the server below has started.
    if importlib.util.find_spec("sounddevice") is None:
        return "the sounddevice package is not installed"
    if ctypes.util.find_library("portaudio") is None:
        return "the PortAudio library is missing (apt-get install libportaudio2)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """A private PulseAudio server: null sink ``ddsp_null`` (16 kHz mono) as the default
    output, its monitor as the default input. Yields the environment that reaches it."""
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PULSE_SERVER": f"unix:{runtime}/native",
           "HOME": str(runtime)}  # fmt: skip
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         "--disable-shm=yes", "--log-target=stderr",
         "-L", f"module-native-protocol-unix socket={runtime}/native auth-anonymous=1",
         "-L", "module-null-sink sink_name=ddsp_null rate=16000 channels=1",
         "-L", "module-always-sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 15
    while time.time() < deadline:
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    else:
        server.kill()
        pytest.skip(f"PulseAudio did not start: {server.stderr.read(2000).decode()}")
    for cmd in (["pactl", "set-default-sink", "ddsp_null"],
                ["pactl", "set-default-source", "ddsp_null.monitor"]):  # fmt: skip
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "HOME")}
    os.environ.update({k: env[k] for k in saved})
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()
    server.wait(timeout=10)


def _pulse_device(kind: str) -> int:
    """PortAudio's ``pulse`` device (the ALSA plugin that talks to the server)."""
    from ddspcli.engine import liveio

    return liveio.find_device("pulse", kind)


def test_the_round_trip_through_the_null_sink_is_measured(pulse):
    from ddspcli.engine import live

    ms = live.measure_round_trip(_pulse_device("input"), _pulse_device("output"), SR)
    print(f"round trip through PulseAudio's null sink: {ms:.1f} ms")
    assert 0.0 < ms < 1000.0


def test_device_input_carries_the_instrument(pulse, tmp_path):
    """PortAudio plays a tone into the null sink; `ddsp live -i pulse` records the monitor
    for 2 s into a WAV: the model's rendering of the tone, every block on time."""
    import json

    import sounddevice as sd
    from clirun import ddsp

    t = np.arange(20 * SR) / SR
    sd.play((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), SR,
            device=_pulse_device("output"))  # fmt: skip
    try:
        run = ddsp("live", "-m", "violin", "-i", "pulse", "-o", tmp_path / "rec.wav",
                   "--seconds", "2", "--stats-json", tmp_path / "rec.json")  # fmt: skip
    finally:
        sd.stop()
    assert run.returncode == 0, run.stderr
    audio, rate = sf.read(tmp_path / "rec.wav")
    assert rate == SR and len(audio) >= 2 * SR
    assert np.sqrt(np.mean(audio[SR // 2 :] ** 2)) > 1e-3  # the instrument, not silence
    stats = json.loads((tmp_path / "rec.json").read_text())
    assert stats["blocks"] == 100 and stats["notes"] >= 1
    print(f"device input: {stats}")


def test_device_output_plays_the_instrument(pulse, tmp_path):
    """`ddsp live -o pulse` plays a 2 s tone file, paced by the device; PortAudio records the
    monitor meanwhile: the instrument arrives, and the run ends when the file does."""
    import json

    import sounddevice as sd
    from clirun import ddsp

    t = np.arange(2 * SR) / SR
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 330 * t), SR)
    pieces = []
    monitor = sd.InputStream(samplerate=SR, channels=1, device=_pulse_device("input"),
                             callback=lambda x, *_: pieces.append(x[:, 0].copy()))  # fmt: skip
    with monitor:
        start = time.perf_counter()
        run = ddsp("live", "-m", "flute-sf", "-i", tmp_path / "tone.wav", "-o", "pulse",
                   "--stats-json", tmp_path / "play.json")  # fmt: skip
        took = time.perf_counter() - start
    assert run.returncode == 0, run.stderr
    heard = np.concatenate(pieces)
    assert np.sqrt(np.mean(heard**2)) > 1e-3
    stats = json.loads((tmp_path / "play.json").read_text())
    assert stats["blocks"] >= 100 and took >= 2.0  # real time: not faster than the audio
    print(f"device output: {stats}")


def test_a_device_that_does_not_exist_is_one_line(pulse, tmp_path, data_dir):
    from clirun import ddsp

    from ddspcli.errors import EXIT_INPUT

    run = ddsp("live", "-i", "no-such-card", "-o", tmp_path / "x.wav")
    assert run.returncode == EXIT_INPUT and b"no input devices match" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    run = ddsp("live", "-i", data_dir / "speech_arctic_a0001.wav", "-o", "99")
    assert run.returncode == EXIT_INPUT and b"no output device 99" in run.stderr
    listed = ddsp("live", "--list-devices")
    assert listed.returncode == 0 and b"pulse" in listed.stderr + listed.stdout
