"""`ddsp prepare` end to end: generated audio folder -> shards -> reader."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli.engine import data, features, prepare
from ddspcli.errors import EXIT_INPUT, EXIT_OUTPUT

FAST = ("--pitch-model", "tiny", "--pitch-hop-ms", "32")
SR = 16000


def tone(f0: float, seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write_long(path: Path, minutes: float, f0: float) -> None:
    """A long tone written block by block (never all in memory)."""
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for i in range(int(minutes * 60)):
            t = (np.arange(SR) + i * SR) / SR
            f.write((0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32))


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory, crepe_weights):
    crepe_weights("tiny")
    root = tmp_path_factory.mktemp("audio")
    sf.write(root / "a220.wav", tone(220.0, 6.5), SR)
    sf.write(root / "b330.flac", tone(330.0, 9.3), SR)
    (root / "sub").mkdir()
    sf.write(root / "sub" / "c440.wav", tone(440.0, 5.0), SR)
    sf.write(root / "sub" / "d_stereo44k.wav", tone(262.0, 7.0, 44100, 2), 44100)
    write_long(root / "long.wav", 10.0, 196.0)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    sf.write(root / "zero.wav", np.zeros((0, 1), np.float32), SR)
    (root / "notes.wav").write_text("this is text, not audio\n")
    (root / ".hidden").mkdir()
    sf.write(root / ".hidden" / "secret.wav", tone(100.0, 5.0), SR)
    return root


def run_prepare(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    run = ddsp(*args)
    if check:
        assert run.returncode == 0, run.stderr.decode()
    return run


@pytest.fixture(scope="module")
def prepared(audio_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "ds"
    run = run_prepare("prepare", str(audio_folder), "-o", str(out), *FAST, "--json")
    return out, run


def test_bad_files_are_skipped_with_a_partial_status(prepared):
    _, run = prepared
    assert run.returncode == EXIT_INPUT
    report = json.loads(run.stdout)
    skipped = {Path(s["path"]).name for s in report["skipped"]}
    assert skipped == {"corrupt.wav", "zero.wav", "notes.wav"}
    assert report["files_used"] == 5
    assert "--skip-bad" in run.stderr.decode()


def test_shapes_counts_and_f0_read_back(prepared):
    out, _ = prepared
    info = data.read_info(out)
    assert info["n_samples"] == 64000 and info["n_frames"] == 1000
    assert not any("secret" in f["path"] for f in info["files"])  # hidden folder skipped
    for split in data.SPLITS:
        ds = data.make_dataset(out, split, batch_size=4, shuffle=False, repeat=False)
        count = 0
        for batch in ds:
            assert batch["audio"].shape[1:] == (64000,)
            for key in features.FEATURE_KEYS:
                assert batch[key].shape[1:] == (1000,)
            count += int(batch["audio"].shape[0])
        assert count == info["splits"][split]["examples"] > 0
    # Windows: 4 s every 1 s; the window starting after the last full one becomes a padded
    # example only with >= 2 s of sound in it (all these tones sound throughout).
    durations = {"a220.wav": 6.5, "b330.flac": 9.3, "c440.wav": 5.0, "d_stereo44k.wav": 7.0,
                 "long.wav": 600.0}  # fmt: skip
    expected = {}
    for name, seconds in durations.items():
        full = int(seconds - 4) + 1
        expected[name] = full + (seconds - full >= 2)
    got = {Path(f["path"]).name: f["examples"] for f in info["files"] if f["status"] == "ok"}
    assert got == expected
    # Each file's pitch is near the truth in its examples (the long file is in there).
    ds = data.make_dataset(out, "train", batch_size=64, shuffle=False, repeat=False)
    medians = set()
    for batch in ds:
        for f0, conf in zip(batch["f0_hz"].numpy(), batch["f0_confidence"].numpy(), strict=True):
            if (conf > 0.8).mean() > 0.5:
                medians.add(round(float(np.median(f0[conf > 0.8]))))
    truths = [196, 220, 262, 330, 440]
    assert medians and all(min(abs(m - t) / t for t in truths) < 0.01 for m in medians)


def test_split_by_file_and_statistics(prepared):
    out, _ = prepared
    info = data.read_info(out)
    splits = {f["split"] for f in info["files"] if f["status"] == "ok"}
    assert splits == {"train", "eval"}
    stats = json.loads((out / data.STATISTICS_JSON).read_text())
    assert len(stats["loudness_quantiles"]) == 101
    assert 50 < stats["mean_pitch"] < 70  # MIDI of the train tones (196-440 Hz)
    lo, hi = stats["f0_hz_range"]
    assert lo > 180 and hi < 460


def test_finished_dataset_is_not_overwritten(prepared, audio_folder):
    out, _ = prepared
    run = run_prepare("prepare", str(audio_folder / "a220.wav"), "-o", str(out), *FAST)
    assert run.returncode == EXIT_OUTPUT and "--force" in run.stderr.decode()


def shard_digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("*.tfrecord"))
    }


def test_interrupted_run_resumes_to_identical_shards(audio_folder, tmp_path):
    small = tmp_path / "in"
    small.mkdir()
    for name in ("a220.wav", "b330.flac", "long.wav"):
        os.symlink(audio_folder / name, small / name)
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "ddspcli", "prepare", str(small), "-o", str(out), *FAST]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / prepare.CACHE_DIR
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("*.npz"))) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # kill -9 in the middle of the work
    proc.wait()
    assert not (out / data.DATASET_JSON).exists()
    finished = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert finished
    run_prepare("prepare", str(small), "-o", str(out), *FAST, check=True)
    for name, mtime in finished.items():  # cached features were reused, not recomputed
        assert (cache / name).stat().st_mtime_ns == mtime
    first = shard_digests(out)
    run_prepare("prepare", str(small), "-o", str(out), *FAST, "--force", check=True)
    assert shard_digests(out) == first  # a rerun gives byte-identical shards


def test_one_file_is_split_by_time(audio_folder, tmp_path):
    out = tmp_path / "one"
    run_prepare("prepare", str(audio_folder / "b330.flac"), "-o", str(out), *FAST,
                "--eval-fraction", "0.3", check=True)  # fmt: skip
    info = data.read_info(out)
    assert info["split_by"] == "time"
    assert info["splits"]["train"]["examples"] >= 2 and info["splits"]["eval"]["examples"] >= 1


def read_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    batches = list(data.make_dataset(folder, split, batch_size=1000, shuffle=False, repeat=False))
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


def test_beam_and_process_pool_give_the_same_examples_as_local(audio_folder, tmp_path):
    import apache_beam  # noqa: F401  (in the test extra: a missing Beam fails, never skips)

    small = tmp_path / "in"
    small.mkdir()
    for name in ("a220.wav", "b330.flac", "sub/c440.wav"):
        os.symlink(audio_folder / name, small / Path(name).name)
    local, beam, pool = tmp_path / "local", tmp_path / "beam", tmp_path / "pool"
    run_prepare("prepare", str(small), "-o", str(local), *FAST, "--workers", "1", check=True)
    run_prepare("prepare", str(small), "-o", str(beam), *FAST, "--runner", "beam",
                "--beam-options", "--runner=DirectRunner", check=True)  # fmt: skip
    # Beam's DirectRunner computes in this process with the same threads: identical bytes.
    assert shard_digests(beam) == shard_digests(local)
    assert (beam / data.STATISTICS_JSON).read_text() == (local / data.STATISTICS_JSON).read_text()
    # Two workers with one TF thread each sum in another order: same examples up to rounding.
    run_prepare("prepare", str(small), "-o", str(pool), *FAST, "--workers", "2", check=True)
    for split in data.SPLITS:
        ours, theirs = read_split(pool, split), read_split(local, split)
        np.testing.assert_array_equal(ours["audio"], theirs["audio"])
        np.testing.assert_allclose(ours["loudness_db"], theirs["loudness_db"], atol=1e-3)
        np.testing.assert_allclose(ours["f0_confidence"], theirs["f0_confidence"], atol=1e-3)
        sure = theirs["f0_confidence"] > 0.5
        np.testing.assert_allclose(ours["f0_hz"][sure], theirs["f0_hz"][sure], rtol=1e-3)


def test_remote_storage_through_gfile_with_beam(audio_folder, crepe_weights, tmp_path):
    """Inputs and OUTDIR on a `tf.io.gfile` filesystem (ram://, as gs:// would be on Dataflow)."""
    import apache_beam  # noqa: F401
    import tensorflow as tf

    from ddspcli.engine import audio

    root = f"ram://ddsp-{os.getpid()}"
    tf.io.gfile.makedirs(f"{root}/in/.hidden")
    for name in ("a220.wav", "b330.flac"):
        tf.io.gfile.copy(str(audio_folder / name), f"{root}/in/{name}")
    tf.io.gfile.copy(str(audio_folder / "a220.wav"), f"{root}/in/.hidden/skip.wav")
    files = audio.find_audio([f"{root}/in"])
    assert files == [f"{root}/in/a220.wav", f"{root}/in/b330.flac"]
    settings = prepare.with_features(prepare.PrepareSettings(), pitch_model="tiny",
                                     pitch_hop_ms=32.0)  # fmt: skip
    weights = str(crepe_weights("tiny"))
    info, records = prepare.prepare(files, f"{root}/ds", weights, settings, runner="beam",
                                    beam_options=["--runner=DirectRunner"])  # fmt: skip
    assert [r.status for r in records] == ["ok", "ok"]
    assert tf.io.gfile.exists(f"{root}/ds/{data.DATASET_JSON}")
    assert not tf.io.gfile.glob(f"{root}/ds/.*.tmp")
    local_files = [str(audio_folder / "a220.wav"), str(audio_folder / "b330.flac")]
    prepare.prepare(local_files, tmp_path / "ds", weights, settings)
    for split in data.SPLITS:
        if not info["splits"][split]["examples"]:
            continue
        remote, local = read_split(f"{root}/ds", split), read_split(tmp_path / "ds", split)
        np.testing.assert_array_equal(remote["audio"], local["audio"])
        np.testing.assert_allclose(remote["f0_hz"], local["f0_hz"], rtol=1e-4)
    with pytest.raises(Exception, match="already holds"):
        prepare.check_outdir(f"{root}/ds", force=False)


def test_eval_files_are_chosen_near_the_eval_fraction():
    from ddspcli.engine.prepare import FileRecord, assign_splits

    def records(durations):
        # Hashes descend, so hash order is the reverse of the list order.
        return [FileRecord(f"f{i}", sha256=f"{99 - i:064x}", duration_s=d)
                for i, d in enumerate(durations)]  # fmt: skip

    # Three renders of 106, 140 and 41 s, 10% target: the 41 s one (14%), not a long one.
    rs = records([106.0, 140.0, 41.0])
    assert assign_splits(rs, 0.1) == "file"
    assert [r.split for r in rs] == ["train", "train", "eval"]
    # Every file longer than twice the target: the shortest is the eval file.
    rs = records([300.0, 200.0, 250.0])
    assign_splits(rs, 0.1)
    assert [r.split for r in rs] == ["train", "eval", "train"]
    # Many short files: eval gathers about the target share, in hash order.
    rs = records([10.0] * 20)
    assign_splits(rs, 0.1)
    assert sum(r.split == "eval" for r in rs) == 2
