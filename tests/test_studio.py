"""`ddsp studio` in a real browser: Debian's chromium, driven by selenium (issue 30).

One server (a `ddsp studio` subprocess on a free port) and one headless chromium serve every
test of this file. The server runs with a guard (`sitecustomize`) that refuses and records
every connection to an address that is not this machine's loopback; the browser's own
requests are read from its performance log. Skips, saying why, without chromium,
chromedriver, gradio or selenium.

Set ``DDSP_STUDIO_SCREENSHOT=docs/studio.png`` to write the README's screenshot.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "speech_198-209-0000.wav"
OTHER = ROOT / "tests" / "data" / "speech_arctic_a0001.wav"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1400,2200")  # fmt: skip
WAIT_S = 120

_missing = [n for n in ("chromium", "chromedriver") if shutil.which(n) is None]
_missing += [m for m in ("gradio", "selenium") if importlib.util.find_spec(m) is None]
SKIP_WHY = (f"the studio browser test needs {', '.join(_missing)} (apt-get install chromium "
            "chromium-driver; pip install 'ddspcli[studio]' selenium)")  # fmt: skip

# Refuse (and log) any connection from the server to a non-loopback address.
GUARD = '''
import os, socket
_log = os.environ["STUDIO_NET_LOG"]
_connect = socket.socket.connect
def _local(address):
    host = address[0] if isinstance(address, tuple) else address
    return not isinstance(host, str) or host in ("127.0.0.1", "::1", "localhost", "0.0.0.0") \\
        or host.startswith("127.") or host.startswith("/")
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        with open(_log, "a") as f:
            f.write(repr(address) + "\\n")
        raise OSError("studio test: no network")
    return _connect(self, address)
socket.socket.connect = connect
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``ddsp studio --port N`` with its TMPDIR in a fresh folder; yields a namespace."""
    if _missing:
        pytest.skip(SKIP_WHY)
    base = tmp_path_factory.mktemp("studio")
    tmp, guard = base / "tmp", base / "guard"
    tmp.mkdir()
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "DDSP_OFFLINE": "1",
           "STUDIO_NET_LOG": str(base / "net.log"),
           "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")])}
    ddsp = Path(sys.executable).with_name("ddsp")
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(ddsp), "studio", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"ddsp studio did not start: {(base / 'server.log').read_text()}")
        time.sleep(0.3)
    roots = list(tmp.glob("ddsp-studio-*"))
    assert len(roots) == 1, roots
    ns = type("Server", (), {})()
    ns.url, ns.proc, ns.root, ns.base, ns.tmp = url, proc, roots[0], base, tmp
    ns.net_log = base / "net.log"
    yield ns
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={server.base / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.downloads = server.base / "downloads"
    driver.downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(driver.downloads)})
    driver.requests = []
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def reference(server):
    """``ddsp transfer EXAMPLE --model violin --octave 1`` and its JSON summary."""
    out = server.base / "cli.violin.wav"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ddsp")), "-q", "transfer", str(EXAMPLE), "--model",
         "violin", "--octave", "1", "-o", str(out), "--json"],
        capture_output=True, env={**os.environ, "DDSP_OFFLINE": "1"}, check=True,
    )  # fmt: skip
    return out, json.loads(done.stdout)[0]


def test_without_gradio_one_line_and_exit_6(monkeypatch):
    """No browser needed: a light install without the extra says how to get it."""
    import importlib.util as util

    from clirun import ddsp

    find = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "gradio" else
                        find(name, *a))  # fmt: skip
    done = ddsp("studio", text=True)
    assert done.returncode == 6
    assert done.stderr.strip().splitlines() == [
        "ddsp: error: `ddsp studio` needs Gradio, which this install lacks: "
        "pip install 'ddspcli[studio]'"]  # fmt: skip


def test_warning_when_host_is_not_loopback(tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("needs gradio")
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ddsp")), "studio", "--host",
                             "0.0.0.0", "--port", str(port)], stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(tmp_path)}, text=True)  # fmt: skip
    try:
        first = proc.stderr.readline()
        assert first.startswith("warning: --host 0.0.0.0: the page (no login) is reachable")
        assert "SSH tunnel" in first
    finally:
        proc.terminate()
        proc.wait(30)
    assert not list(tmp_path.iterdir())  # its temporary folder removed on SIGTERM


# ---------------------------------------------------------------------------------------------
# Page helpers.


def _open(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run"))
    _record_requests(driver)


def _record_requests(driver) -> None:
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            driver.requests.append(message["params"]["request"]["url"])


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#status").text


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#take input[type=file]").send_keys(str(path))


def _wait(driver, condition, what: str, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        condition, message=f"waited {timeout} s for {what}"
    )


def _set_number(driver, elem_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value, Keys.TAB)


def _pick(driver, elem_id: str, option: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
    box.click()
    item = f"#{elem_id} li[role=option][aria-label='{option}']"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, item), f"the option {option}", 10)
    driver.find_element(By.CSS_SELECTOR, item).click()
    _wait(driver, lambda d: box.get_attribute("value") == option, f"{elem_id} = {option}", 10)


def _download_link(driver) -> str | None:
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, "#download a[href*='.wav']")
    return links[0].get_attribute("href") if links else None


def _transfer(driver, clip: Path) -> str:
    """Upload `clip`, violin, octave 1, run; the output's download link once it is there."""
    from selenium.webdriver.common.by import By

    _upload(driver, clip)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#input-plot img"), "input plot")
    _pick(driver, "model", "violin")
    _set_number(driver, "octave", "1")
    driver.find_element(By.CSS_SELECTOR, "#run").click()
    return _wait(driver, lambda d: _download_link(d), "the output")


def _serving(server) -> bool:
    with urllib.request.urlopen(server.url, timeout=10) as r:
        return r.status == 200 and server.proc.poll() is None


def _files_named(root: Path, name: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name == name]


# ---------------------------------------------------------------------------------------------
# Must show 1 and 4: the example clip through the page equals `ddsp transfer`; screenshot.


def test_page_output_equals_cli_and_follows_the_voice(server, browser, reference):
    import soundfile as sf
    from selenium.webdriver.common.by import By

    _open(browser, server.url)
    href = _transfer(browser, EXAMPLE)
    assert "violin" in _status(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#plot img"), "no transfer plot"
    stems = " ".join(a.get_attribute("href") or "" for a in
                     browser.find_elements(By.CSS_SELECTOR, "#stems a"))  # fmt: skip
    assert ".violin.harmonic.wav" in stems and ".violin.noise.wav" in stems, stems
    assert href.startswith(server.url)
    browser.find_element(By.CSS_SELECTOR, "#download a[href*='.wav']").click()
    target = browser.downloads / "speech_198-209-0000.violin.wav"
    _wait(browser, lambda d: target.is_file() and not list(d.downloads.glob("*.crdownload")),
          "the download", 30)  # fmt: skip
    page, rate = sf.read(target, dtype="int16")
    cli_out, summary = reference
    cli, cli_rate = sf.read(cli_out, dtype="int16")
    # (a) the same pipeline (engine.transfer.run_job): bit-exact, 0 LSB of 16-bit PCM.
    assert rate == cli_rate == 16000
    assert page.shape == cli.shape
    assert np.array_equal(page, cli), f"max diff {np.abs(page.astype(int) - cli).max()} LSB"
    # (b) its pitch follows the input: the voice check's rule (pYIN, >= 85% of steady
    # co-voiced frames within 50 cents of the input x the applied shift).
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import voice_check

    from ddspcli.engine import audio

    x = audio.read_audio(EXAMPLE, voice_check.RATE)[0]
    y = audio.read_audio(target, voice_check.RATE)[0]
    verdict = voice_check.score(*voice_check.track(x), *voice_check.track(y),
                                summary["adjustments"]["semitones"])  # fmt: skip
    assert verdict["passed"], verdict
    shot = os.environ.get("DDSP_STUDIO_SCREENSHOT")
    dest = Path(shot) if shot else server.base / "studio.png"
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(max(int(height) + 100, 1200), 3000))
    assert browser.save_screenshot(str(dest))
    assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _record_requests(browser)


def test_page_room_equals_cli(server, browser, tmp_path):
    """Issue 29: the page's room (an uploaded impulse response at -6 dB) gives the numbers of
    ``ddsp transfer --room IR.wav --room-mix -6`` with the same settings, bit for bit; the
    stems then hold the room's wet part."""
    import soundfile as sf
    from selenium.webdriver.common.by import By

    rate = 16000
    t = np.arange(int(0.5 * rate)) / rate
    ir = 0.03 * np.exp(-6.9 * t / 0.4) * np.random.default_rng(2).standard_normal(len(t))
    ir[:80], ir[0] = 0.0, 1.0
    hall = tmp_path / "hall.wav"
    sf.write(hall, ir.astype(np.float32), rate, subtype="FLOAT")
    cli_out = tmp_path / "cli.wav"
    subprocess.run([str(Path(sys.executable).with_name("ddsp")), "-q", "transfer", str(EXAMPLE),
                    "--model", "violin", "--octave", "1", "--room", str(hall), "--room-mix",
                    "-6", "-o", str(cli_out)], env={**os.environ, "DDSP_OFFLINE": "1"},
                   check=True)  # fmt: skip
    _open(browser, server.url)
    _upload(browser, EXAMPLE)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#input-plot img"), "input plot")
    _pick(browser, "model", "violin")
    _set_number(browser, "octave", "1")
    browser.find_element(By.XPATH, "//*[@id='room']//label[contains(., 'an impulse "
                                   "response')]").click()  # fmt: skip
    browser.find_element(By.CSS_SELECTOR, "#room-ir input[type=file]").send_keys(str(hall))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#room-ir [aria-label='hall.wav']"),
          "the impulse response uploaded", 30)  # fmt: skip
    _set_number(browser, "room-mix", "-6")
    browser.find_element(By.CSS_SELECTOR, "#run").click()
    href = _wait(browser, lambda d: _download_link(d), "the output")
    page_out = Path(urllib.request.unquote(href.split("file=", 1)[1]))
    assert page_out.is_relative_to(server.root)
    page, cli = sf.read(page_out, dtype="int16")[0], sf.read(cli_out, dtype="int16")[0]
    assert page.shape == cli.shape
    assert np.array_equal(page, cli), f"max diff {np.abs(page.astype(int) - cli).max()} LSB"
    stems = " ".join(a.get_attribute("href") or "" for a in
                     browser.find_elements(By.CSS_SELECTOR, "#stems a"))  # fmt: skip
    assert ".violin.reverb.wav" in stems, stems
    _record_requests(browser)


# ---------------------------------------------------------------------------------------------
# Must show 2: bad input through the page.


def _bad_upload(server, browser, path: Path, expected: str) -> None:
    _open(browser, server.url)
    _upload(browser, path)
    _wait(browser, lambda d: expected in _status(d) or expected in d.page_source,
          f"the message {expected!r}", 60)  # fmt: skip
    _record_requests(browser)
    assert _serving(server)
    _wait(browser, lambda d: not _files_named(server.root, path.name), "the upload removed", 10)


def test_text_file_named_wav(server, browser, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n" * 50)
    _bad_upload(server, browser, bad, "Cannot use this file")
    assert "notes.wav" in _status(browser)


def test_empty_file(server, browser, tmp_path):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    _bad_upload(server, browser, bad, "empty")


def test_file_over_the_size_limit(server, browser, tmp_path):
    from ddspcli import studio

    # Up to 50 MiB Gradio takes it and the studio refuses it with its own message; beyond,
    # Gradio refuses the upload in the page itself, before a byte is sent.
    for size, message in ((studio.MAX_UPLOAD_MB * 10**6 + 10**6, "takes files up to 50 MB"),
                          (60 * 10**6, "exceed the maximum allowed size of 50")):  # fmt: skip
        bad = tmp_path / f"huge{size}.wav"
        with open(bad, "wb") as f:
            f.truncate(size)
        _bad_upload(server, browser, bad, message)


def test_file_over_the_length_limit(server, browser, tmp_path):
    import soundfile as sf

    from ddspcli import studio

    bad = tmp_path / "long.wav"
    sf.write(bad, np.zeros(int((studio.MAX_SECONDS + 10) * 8000), np.int16), 8000)
    _bad_upload(server, browser, bad, "min long")


def test_folder_that_is_not_a_model(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    (tmp_path / "readme.txt").write_text("not a model")
    _open(browser, server.url)
    _upload(browser, EXAMPLE)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#input-plot img"), "input plot")
    box = browser.find_element(By.CSS_SELECTOR, "#folder textarea, #folder input")
    box.send_keys(str(tmp_path))
    _wait(browser, lambda d: "not a model folder" in d.find_element(By.CSS_SELECTOR, "#card")
          .text, "the model card's message", 20)  # fmt: skip
    browser.find_element(By.CSS_SELECTOR, "#run").click()
    _wait(browser, lambda d: "not a model folder" in _status(d), "the run's message", 60)
    assert _serving(server)
    assert _download_link(browser) is None
    assert not list(tmp_path.glob("*.wav"))  # nothing written into the folder given
    _record_requests(browser)


# ---------------------------------------------------------------------------------------------
# Must show 3: two sessions at once, each with its own output; a closed session is removed.


def test_two_sessions_at_once(server, browser):
    import soundfile as sf
    from selenium.webdriver.common.by import By

    _open(browser, server.url)
    first = browser.current_window_handle
    browser.switch_to.new_window("window")
    second = browser.current_window_handle
    _open(browser, server.url)
    for handle, clip in ((first, EXAMPLE), (second, OTHER)):
        browser.switch_to.window(handle)
        _upload(browser, clip)
    for handle in (first, second):
        browser.switch_to.window(handle)
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#input-plot img"), "plot")
        _set_number(browser, "octave", "1")
        browser.find_element(By.CSS_SELECTOR, "#run").click()
    links = {}
    for handle, clip in ((first, EXAMPLE), (second, OTHER)):
        browser.switch_to.window(handle)
        links[clip] = _wait(browser, lambda d, c=clip: (h := _download_link(d)) and
                            f"{c.stem}.violin.wav" in h and h, "this session's output")  # fmt: skip
        _record_requests(browser)
    folders = {}
    for clip, href in links.items():
        path = Path(urllib.request.unquote(href.split("file=", 1)[1]))
        assert path.is_relative_to(server.root)
        folders[clip] = path.relative_to(server.root).parts[0]
        expected = sf.info(clip).duration
        assert abs(sf.info(path).duration - expected) < 0.01, (clip, path)
    assert folders[EXAMPLE] != folders[OTHER]  # two session folders, two outputs
    browser.switch_to.window(second)
    browser.close()  # the tab closes: its session folder goes
    browser.switch_to.window(first)
    _wait(browser, lambda d: not (server.root / folders[OTHER]).exists(),
          "the closed session's folder removed", 30)  # fmt: skip
    assert (server.root / folders[EXAMPLE]).exists()


# ---------------------------------------------------------------------------------------------
# No request leaves the machine; stopping removes every temporary file.


def test_no_request_leaves_the_machine(server, browser):
    _record_requests(browser)
    assert browser.requests
    local = ("data:", "blob:", "chrome:", "about:", server.url)  # chrome: the new tab's own
    foreign = [u for u in browser.requests if not u.startswith(local)]
    assert not foreign, foreign
    assert not server.net_log.exists(), server.net_log.read_text()


def test_stop_removes_every_temporary_file(server, browser):
    browser.get("about:blank")
    server.proc.terminate()
    server.proc.wait(30)
    assert not server.root.exists()
    assert not list(server.tmp.iterdir())
