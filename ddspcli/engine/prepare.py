"""Audio files -> sharded TFRecords + statistics, resumable, locally or on Apache Beam.

Two phases:

1. **Features per file** (the slow part; parallel): decode, hash, compute f0/confidence/loudness
   once over the whole file, and store them in ``OUTDIR/.cache/features/<key>.npz`` keyed by the
   file's sha256 and the feature settings. A rerun after Ctrl-C or kill -9 finds finished files
   there. This phase runs in-process, in a local process pool, or as a Beam pipeline (any Beam
   runner; ``runner="dask"`` is Beam's DaskRunner on a dask.distributed cluster, see
   `ddspcli.engine.cluster`). Each file's record names the host and process that handled it.
2. **Shards** (sequential, deterministic): files sorted by path, split train/eval by file (by
   time with one file), cut into examples, written to temporary shard names and renamed; then
   ``statistics.json`` and, last, ``dataset.json``. The same inputs give byte-identical shards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ddspcli import __version__, choices, storage
from ddspcli.engine import audio, cluster, data, features
from ddspcli.errors import DdspError, OutputError, RunError, UsageError

CACHE_DIR = ".cache/features"
RECORDS_DIR = ".cache/records"


@dataclass(frozen=True)
class PrepareSettings:
    """How a dataset is cut; stored in ``dataset.json``."""

    example_secs: float = 4.0
    hop_secs: float = 1.0
    eval_fraction: float = 0.1
    examples_per_shard: int = 256
    features: features.FeatureSettings = field(default_factory=features.FeatureSettings)

    def samples(self, seconds: float) -> int:
        """Seconds -> samples, rounded to whole feature frames."""
        hop = self.features.hop
        return round(seconds * self.features.sample_rate / hop) * hop


@dataclass
class FileRecord:
    """One input file's fate (JSON-ready through `asdict`)."""

    path: str
    status: str = "ok"  # ok | skipped
    reason: str = ""
    sha256: str = ""
    duration_s: float = 0.0
    cache: str = ""
    split: str = ""
    examples: int = 0
    host: str = ""  # where the features were computed or found (not in dataset.json)
    pid: int = 0
    cached: bool = False  # found in the cache, not computed by this run


def cache_key(sha256: str, settings: features.FeatureSettings) -> str:
    """Cache file stem: the file hash and every setting that changes the features."""
    relevant = {k: v for k, v in settings.to_dict().items() if k not in ("block_s", "batch_size")}
    # Datasets made before the loudness choice existed keep their cache keys.
    if relevant.get("loudness") == choices.Loudness.A_WEIGHTED.value:
        del relevant["loudness"]
    text = json.dumps({"sha256": sha256, "features": relevant}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def features_for_file(
    path: str, weights: str, settings: features.FeatureSettings, outdir: str
) -> dict:
    """Phase 1 for one file: compute (or find cached) features. Never raises for bad input.

    Returns:
        a `FileRecord` as a dict (status ``skipped`` with a reason for unusable files).
    """
    record = FileRecord(path=path, host=socket.gethostname(), pid=os.getpid())
    try:
        record.sha256 = storage.sha256_of(path)
        cache = storage.join(outdir, CACHE_DIR, f"{cache_key(record.sha256, settings)}.npz")
        record.cache = cache
        if storage.exists(cache):
            with storage.open_read(cache) as f, np.load(f) as npz:
                record.duration_s = float(npz["duration_s"])
            record.cached = True
            return asdict(record)
        samples, _ = audio.read_audio(path, settings.sample_rate)
        record.duration_s = len(samples) / settings.sample_rate
        feats = features.compute_features(samples, weights, settings)
        storage.makedirs(storage.join(outdir, CACHE_DIR))
        buffer = io.BytesIO()  # object stores cannot tell() on a file being written
        np.savez(buffer, duration_s=record.duration_s, **feats)
        with storage.atomic_write(cache) as f:
            f.write(buffer.getvalue())
    except DdspError as err:
        record.status, record.reason = "skipped", str(err)
    except OSError as err:
        record.status, record.reason = "skipped", f"cannot read {path}: {err.strerror or err}"
    return asdict(record)


def _worker_init(threads: int) -> None:
    """Pool worker: split the cores between workers instead of oversubscribing them."""
    from ddspcli.engine._tensorflow import tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def run_features_local(
    files: list[str],
    weights: str,
    settings: features.FeatureSettings,
    outdir: str,
    workers: int,
    done: Callable[[dict], None],
) -> list[dict]:
    """Phase 1 in this process (one worker) or a spawn-context process pool."""
    if workers <= 1:
        results = []
        for path in files:
            results.append(features_for_file(path, weights, settings, outdir))
            done(results[-1])
        return results
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(features_for_file, p, weights, settings, outdir): p for p in files}
        by_path = {}
        for future in concurrent.futures.as_completed(futures):
            by_path[futures[future]] = future.result()
            done(by_path[futures[future]])
    return [by_path[p] for p in files]


def run_features_beam(
    files: list[str], weights: str, settings: features.FeatureSettings, outdir: str,
    beam_options: list[str],
) -> list[dict]:  # fmt: skip
    """Phase 1 as an Apache Beam pipeline (DirectRunner by default; any runner via options).

    Each element is one file path; the transform is `features_for_file`, so the cache it fills
    is the same as local mode's. On a cluster, OUTDIR (and the inputs) must be on storage every
    worker sees, e.g. ``gs://bucket/data`` or a shared folder; each worker leaves its file's
    record in ``OUTDIR/.cache/records/`` for the driver.

    Raises:
        RunError: Beam is missing, or the cluster failed (see `cluster.explain_failure`).
    """
    beam, PipelineOptions = _import_beam()
    pipeline = beam.Pipeline(options=PipelineOptions(beam_options))
    (
        pipeline
        | "Files" >> beam.Create(files)
        | "Features" >> beam.Map(_features_to_record_file, weights, settings, outdir)
    )
    result = None
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:
        raise (cluster.explain_failure(err) or err) from None
    finally:
        client = getattr(result, "client", None)  # the DaskRunner's; Beam leaves it open
        if client is not None:
            client.close()
    return [json.loads(storage.read_text(_record_path(outdir, p))) for p in files]


def check_beam_options(beam_options: list[str]) -> None:
    """Fail before any work on options Beam cannot run: an unknown ``--runner`` (Beam's own
    list in the message), or Beam's ``DaskRunner`` named directly (it needs the cluster
    set-up `--runner dask` does).

    Raises:
        UsageError: naming the option (exit 2). RunError: Beam is not installed.
    """
    _, PipelineOptions = _import_beam()
    from apache_beam.runners import runner as beam_runner

    try:
        name = PipelineOptions(beam_options).get_all_options().get("runner")
    except ValueError as err:
        raise UsageError(f"--beam-options: {err}") from None
    if name and name.split(".")[-1] == "DaskRunner":
        raise UsageError("--beam-options --runner=DaskRunner: use ddsp's --runner dask "
                         "--scheduler ADDRESS, which sets the Dask runner up")  # fmt: skip
    try:
        if name:
            beam_runner.create_runner(name)
    except (ValueError, ImportError) as err:  # unknown, or its extra is not installed
        raise UsageError(f"--beam-options --runner={name}: {err}") from None


def _import_beam():
    """``(apache_beam, PipelineOptions)``, without the warnings Beam logs while importing its
    optional cloud modules (they would be extra stderr lines of every run).

    Raises:
        RunError: Beam is not installed.
    """
    import logging

    root = logging.getLogger()
    quiet = logging.NullHandler()
    root.addHandler(quiet)  # no handler at all would make `logging.warning` print to stderr
    logging.disable(logging.WARNING)
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise RunError("--runner beam needs Apache Beam: pip install 'ddspcli[beam]'") from None
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(quiet)
    return beam, PipelineOptions


def _record_path(outdir: str, path: str) -> str:
    """Where a Beam worker leaves one file's record for the driver to read."""
    key = hashlib.sha256(path.encode()).hexdigest()[:32]
    return storage.join(outdir, RECORDS_DIR, f"{key}.json")


def _features_to_record_file(
    path: str, weights: str, settings: features.FeatureSettings, outdir: str
) -> None:
    """Beam transform: `features_for_file`, its record written beside the cache (any storage)."""
    record = features_for_file(path, weights, settings, outdir)
    storage.makedirs(storage.join(outdir, RECORDS_DIR))
    storage.write_text(_record_path(outdir, path), json.dumps(record))


def assign_splits(records: list[FileRecord], eval_fraction: float) -> str:
    """Choose eval files: about `eval_fraction` of the duration, never a long file by chance.

    Files are taken in content-hash order (stable, independent of names) while they keep the
    eval share at most twice the target; if every file is longer than that, the shortest one is
    the eval file. Training always keeps at least one file.

    Returns:
        ``file`` (records get ``train``/``eval``), or ``time`` for a single usable file (its
        last `eval_fraction` becomes eval).
    """
    usable = [r for r in records if r.status == "ok"]
    if len(usable) == 1 or eval_fraction <= 0:
        for r in usable:
            r.split = "train" if eval_fraction <= 0 else "time"
        return "time" if usable and eval_fraction > 0 else "file"
    total = sum(r.duration_s for r in usable)
    target = eval_fraction * total
    eval_s = 0.0
    for r in sorted(usable, key=lambda r: r.sha256):
        fits = eval_s + r.duration_s <= 2.0 * target and eval_s + r.duration_s < total
        if eval_s < target and fits:
            r.split, eval_s = "eval", eval_s + r.duration_s
        else:
            r.split = "train"
    if eval_s == 0.0 and usable:
        min(usable, key=lambda r: (r.duration_s, r.sha256)).split = "eval"
    return "file"


def _file_windows(record: FileRecord, n_audio: int, feats, settings: PrepareSettings):
    """``{split: [(start, length), ...]}`` for one file (a time split for ``time``)."""
    n, hop = settings.samples(settings.example_secs), settings.samples(settings.hop_secs)
    frame_hop = settings.features.hop
    if record.split != "time":
        return {
            record.split: data.example_windows(n_audio, feats["loudness_db"], n, hop, frame_hop)
        }
    cut = settings.samples(n_audio / settings.features.sample_rate * (1 - settings.eval_fraction))
    return {
        "train": data.example_windows(n_audio, feats["loudness_db"], n, hop, frame_hop, 0, cut),
        "eval": data.example_windows(n_audio, feats["loudness_db"], n, hop, frame_hop, cut),
    }


def _load_cached(record: FileRecord) -> dict[str, np.ndarray]:
    with storage.open_read(record.cache) as f, np.load(f) as npz:
        return {k: npz[k] for k in features.FEATURE_KEYS}


class _ShardWriter:
    """Writes examples into ``split-XXXXX-of-NNNNN.tfrecord``, each via a temporary name."""

    def __init__(self, outdir: str, split: str, total: int, per_shard: int) -> None:
        from ddspcli.engine._tensorflow import tf

        self._tf = tf
        self.names = data.shard_names(split, max(1, math.ceil(total / per_shard))) if total else []
        self.outdir, self.per_shard = outdir, per_shard
        self._index, self._count, self._writer, self._tmp = -1, 0, None, None

    def write(self, record: bytes) -> None:
        if self._writer is None or self._count == self.per_shard:
            self._roll()
        self._writer.write(record)
        self._count += 1

    def _roll(self) -> None:
        self.close()
        self._index += 1
        self._tmp = storage.temporary_name(storage.join(self.outdir, self.names[self._index]))
        self._writer = self._tf.io.TFRecordWriter(self._tmp)
        self._count = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            storage.rename(self._tmp, storage.join(self.outdir, self.names[self._index]))
            self._writer = None


def write_dataset(
    outdir: str, records: list[FileRecord], settings: PrepareSettings, split_mode: str
) -> dict:
    """Phase 2: shards, ``statistics.json`` and ``dataset.json`` from cached features."""
    usable = sorted((r for r in records if r.status == "ok"), key=lambda r: r.path)
    plans = []
    for record in usable:
        feats = _load_cached(record)
        n_audio = round(record.duration_s * settings.features.sample_rate)
        plans.append((record, feats, _file_windows(record, n_audio, feats, settings)))
    totals = {s: sum(len(w.get(s, [])) for _, _, w in plans) for s in data.SPLITS}
    writers = {
        s: _ShardWriter(outdir, s, totals[s], settings.examples_per_shard) for s in data.SPLITS
    }
    train_feats = []
    n_samples = settings.samples(settings.example_secs)
    for record, feats, windows in plans:
        samples, _ = audio.read_audio(record.path, settings.features.sample_rate)
        record.examples = sum(len(w) for w in windows.values())
        for split, spans in windows.items():
            for start, length in spans:
                example = data.cut_example(
                    samples, feats, start, length, n_samples, settings.features.hop
                )
                writers[split].write(data.serialize(example))
        if "train" in windows:
            train_feats.append(_train_part(feats, windows["train"], settings.features.hop))
    for writer in writers.values():
        writer.close()
    _remove_stale_shards(outdir, {n for w in writers.values() for n in w.names})
    statistics = data.compute_statistics(train_feats)
    if settings.features.loudness == choices.Loudness.POWER.value:  # a DDSP-VST export's metadata
        per_example = n_samples // settings.features.hop
        statistics["note_ranges"] = data.note_range_statistics(train_feats, per_example)
    info = {
        "format_version": data.FORMAT_VERSION,
        "ddspcli_version": __version__,
        "sample_rate": settings.features.sample_rate,
        "frame_rate": settings.features.frame_rate,
        "example_secs": settings.example_secs,
        "hop_secs": settings.hop_secs,
        "n_samples": n_samples,
        "n_frames": n_samples // settings.features.hop,
        "split_by": split_mode,
        "settings": {**asdict(settings), "features": settings.features.to_dict()},
        "splits": {s: {"examples": totals[s], "shards": writers[s].names} for s in data.SPLITS},
        "files": [_provenance(r) for r in sorted(records, key=lambda r: r.path)],
    }
    _write_json(storage.join(outdir, data.STATISTICS_JSON), statistics)
    _write_json(storage.join(outdir, data.DATASET_JSON), info)
    return info


def _train_part(feats: dict[str, np.ndarray], windows: list[tuple[int, int]], frame_hop: int):
    """The feature frames the train windows cover (for statistics)."""
    if not windows:
        return {k: v[:0] for k, v in feats.items()}
    stop = (windows[-1][0] + windows[-1][1]) // frame_hop
    return {k: v[:stop] for k, v in feats.items()}


def _provenance(record: FileRecord) -> dict:
    keep = ("path", "status", "reason", "sha256", "duration_s", "split", "examples")
    return {k: getattr(record, k) for k in keep if getattr(record, k) not in ("", None)}


def _remove_stale_shards(outdir: str, keep: set[str]) -> None:
    """Delete shards of an earlier run that this one did not write, and interrupted temps."""
    for path in storage.glob(storage.join(outdir, "*.tfrecord")):
        name = storage.basename(path)
        if name not in keep and name.split("-")[0] in data.SPLITS:
            storage.remove(path)
    for path in storage.glob(storage.join(outdir, ".*.tfrecord.*.tmp")):
        storage.remove(path)


def _write_json(path: str, payload: dict) -> None:
    storage.write_text(path, json.dumps(payload, indent=2) + "\n")


def check_outdir(outdir: str | Path, force: bool, *, create: bool = False) -> None:
    """A finished dataset is not overwritten without `force`; an interrupted one is resumed.
    The folder is created only with `create` (when the work starts)."""
    if storage.exists(outdir) and not storage.isdir(outdir):
        raise OutputError(f"{outdir} exists and is not a folder")
    if storage.exists(storage.join(outdir, data.DATASET_JSON)) and not force:
        raise OutputError(f"{outdir} already holds a prepared dataset; pass --force to redo it")
    if not create:
        return
    try:
        storage.makedirs(outdir)
    except OSError as err:
        raise OutputError(f"cannot create {outdir}: {err.strerror or err}") from None


def prepare(
    files: Iterable[str],
    outdir: str | Path,
    weights: str,
    settings: PrepareSettings | None = None,
    *,
    runner: str = "local",
    workers: int = 1,
    beam_options: list[str] | None = None,
    scheduler: str | None = None,
    scheduler_timeout_s: float = 10.0,
    force: bool = False,
    on_file: Callable[[dict], None] | None = None,
) -> tuple[dict, list[FileRecord]]:
    """Run both phases. Returns ``(dataset.json contents, file records)``.

    `runner`: ``local`` (this process or `workers` processes), ``beam`` (a Beam pipeline with
    `beam_options`), ``dask`` (Beam's DaskRunner on the dask.distributed `scheduler`, checked
    first within `scheduler_timeout_s` seconds; `beam_options` are added to its options).
    """
    settings = settings or PrepareSettings()
    settings.features.validate()
    outdir = os.fspath(outdir)
    if runner == "beam":
        check_beam_options(beam_options or [])
    if runner == "dask":  # before anything is written: a bad cluster changes nothing
        if not scheduler:
            raise ValueError("--runner dask needs --scheduler ADDRESS (tcp://host:8786)")
        cluster.check_scheduler(scheduler, scheduler_timeout_s, __version__)
        beam_options = [*cluster.beam_options(scheduler, scheduler_timeout_s),
                        *(beam_options or [])]  # fmt: skip
    created = not storage.exists(outdir)
    check_outdir(outdir, force, create=True)
    try:
        return _prepare_in(files, outdir, weights, settings, runner, workers, beam_options,
                           on_file)  # fmt: skip
    except BaseException:
        if created:
            _remove_if_empty(outdir)
        raise


def _remove_if_empty(outdir: str) -> None:
    """Remove the output folder a failed run created, if nothing but its empty folders (the
    feature cache's) is in it: a cache with features in it is kept for the rerun."""
    if storage.is_remote(outdir):
        return
    for top, _, files in os.walk(outdir, topdown=False):
        if files:
            return
        with contextlib.suppress(OSError):
            os.rmdir(top)


def _prepare_in(files, outdir, weights, settings, runner, workers, beam_options, on_file):
    """`prepare` once `outdir` exists and the runner was checked."""
    storage.remove(storage.join(outdir, data.DATASET_JSON))  # written last: absent = unfinished
    files = list(files)
    args = (files, str(weights), settings.features, outdir)
    if runner in ("beam", "dask"):
        results = run_features_beam(*args, beam_options or [])
        for result in results:
            (on_file or (lambda _: None))(result)
    else:
        results = run_features_local(*args, workers, on_file or (lambda _: None))
    records = [FileRecord(**r) for r in results]
    split_mode = assign_splits(records, settings.eval_fraction)
    return write_dataset(outdir, records, settings, split_mode), records


def with_features(settings: PrepareSettings, **changes) -> PrepareSettings:
    """Copy of `settings` with some feature settings changed."""
    return replace(settings, features=replace(settings.features, **changes))


def report(info: dict, records: list) -> dict:
    """The summary `ddsp prepare` prints: files used and skipped (with reasons), minutes of
    audio used, examples per split, how the split was made, and ``computed_by``: how many
    files each ``host:pid`` computed in this run (cached files are not counted)."""
    used = [r for r in records if r.status == "ok"]
    computed: dict[str, int] = {}
    for r in used:
        if not r.cached:
            computed[f"{r.host}:{r.pid}"] = computed.get(f"{r.host}:{r.pid}", 0) + 1
    return {
        "output": info["splits"],
        "files_used": len(used),
        "skipped": [{"path": r.path, "reason": r.reason} for r in records if r.status != "ok"],
        "minutes": round(sum(r.duration_s for r in used) / 60.0, 3),
        "examples": {s: info["splits"][s]["examples"] for s in info["splits"]},
        "split_by": info["split_by"],
        "computed_by": computed,
    }
