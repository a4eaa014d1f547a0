"""The official library's dataset_statistics.pkl: read with an allow-list, never executed."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from ddspcli.engine import magenta_stats
from ddspcli.errors import ModelError

# Written by ddsp 3.7.0's own compute_dataset_statistics + pickle.dump under numpy 2.2
# (../shared/reference/ddsp-3.7.0/checkpoints/solo_small; see tests/data/README.md).
OFFICIAL = "ddsp370_dataset_statistics.pkl"


def test_the_official_pickle_loads_and_maps_onto_our_statistics(data_dir):
    raw = magenta_stats.load(data_dir / OFFICIAL)
    assert len(raw) == 37
    assert isinstance(raw["quantile_transform"], magenta_stats.QuantileTransformerState)
    stats = magenta_stats.to_statistics(raw)
    assert stats["mean_pitch"] == pytest.approx(68.53, abs=0.01)  # the README's figures
    assert stats["pitch_range"] == pytest.approx([63.79, 73.87], abs=0.01)
    assert stats["f0_hz_range"][0] == pytest.approx(440 * 2 ** ((63.7925 - 69) / 12), rel=1e-4)
    q = np.array(stats["loudness_quantiles"])
    assert len(q) == 101 and np.all(np.diff(q) >= 0)
    # The transformer was fitted on note-on loudness: its ends are the note-on extremes.
    assert q[0] == pytest.approx(float(raw["min_loudness_note"]), abs=1e-4)
    assert q[-1] == pytest.approx(float(raw["max_loudness_note"]), abs=1e-4)
    assert stats["note_on_loudness"]["mean"] == pytest.approx(8.209, abs=1e-3)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_calls_os_system_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "dataset_statistics.pkl"
    path.write_bytes(pickle.dumps({"mean_pitch_note": 60.0, "x": _Exploit(str(marker))}))
    with pytest.raises(ModelError, match=r"refused to unpickle it: it names (posix|os)\.system"):
        magenta_stats.load(path)
    assert not marker.exists()  # the command never ran


def test_numpy_1x_names_load_too(tmp_path):
    """numpy 1.x wrote ``numpy.core.multiarray``; numpy 2 writes ``numpy._core.multiarray``."""
    raw = {"mean_pitch_note": np.float32(61.5), "arr": np.arange(4.0)}
    data = pickle.dumps(raw, protocol=3)  # GLOBAL opcodes: "module\nname\n", no framing
    assert b"numpy._core.multiarray" in data
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    loaded = magenta_stats.load(path)
    assert float(loaded["mean_pitch_note"]) == 61.5 and loaded["arr"].tolist() == [0, 1, 2, 3]
    path.write_bytes(pickle.dumps(raw, protocol=2))  # bytes as _codecs.encode(text, "latin1")
    assert magenta_stats.load(path)["arr"].tolist() == [0, 1, 2, 3]


def test_not_a_pickle_and_a_truncated_one_are_one_clear_error(tmp_path, data_dir):
    text = tmp_path / "text.pkl"
    text.write_text("not a pickle\n")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes((data_dir / OFFICIAL).read_bytes()[:5000])
    for path in (text, cut):
        with pytest.raises(ModelError, match="is not a readable statistics pickle") as err:
            magenta_stats.load(path)
        assert "\n" not in str(err.value)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelError, match="holds a list"):
        magenta_stats.load(listed)
    with pytest.raises(ModelError, match="lack"):
        magenta_stats.to_statistics({"mean_pitch_note": 60.0})
