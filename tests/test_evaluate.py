"""Reconstruction scores (`engine/evaluate.py`)."""

from __future__ import annotations

import numpy as np
import pytest

from ddspcli.engine import evaluate, model


def test_frame_errors_against_known_offsets():
    n = 100
    reference = {
        "f0_hz": np.full(n, 440.0),
        "f0_confidence": np.r_[np.full(50, 0.9), np.full(50, 0.5)],
        "loudness_db": np.full(n, -20.0),
    }
    measured = {
        "f0_hz": np.r_[np.full(10, 440.0 * 2 ** (0.5 / 12)), np.zeros(10), np.full(n - 20, 466.16)],
        "f0_confidence": np.ones(n + 1),
        "loudness_db": np.r_[np.full(n, -23.0), 0.0],  # one frame longer: ignored
    }
    loud, semis = evaluate.frame_errors(reference, measured)
    np.testing.assert_allclose(loud, 3.0)
    assert len(semis) == 50  # confident frames only
    np.testing.assert_allclose(semis[:10], 0.5, atol=1e-9)
    np.testing.assert_allclose(semis[10:20], 12.0)  # no pitch where there should be one
    np.testing.assert_allclose(semis[20:], 1.0, atol=1e-3)


def test_a_trained_model_scores_better_than_an_untrained_one(tone_model, crepe_weights):
    weights = str(crepe_weights("tiny"))
    trained = model.load_model_dir(str(tone_model["run"]))
    config = (tone_model["run"] / model.CONFIG_GIN).read_text()
    untrained = model.LoadedModel(model.build_model(config), trained.info, {}, "untrained")
    good = evaluate.evaluate(trained, str(tone_model["tones"]), weights)
    bad = evaluate.evaluate(untrained, str(tone_model["tones"]), weights)
    for scores in (good, bad):
        assert scores.examples == 4 and scores.seconds == pytest.approx(4.0)
        assert np.isfinite([scores.spectral_loss, scores.loudness_l1_db]).all()
    assert good.spectral_loss < 0.6 * bad.spectral_loss
    assert good.loudness_l1_db < bad.loudness_l1_db
    assert good.f0_l1_semitones < 0.2 and good.f0_outliers < 0.05


def test_eval_command_table_json_and_plot(tone_model, tmp_path):
    import json

    from clirun import ddsp as run_ddsp

    run_dir, tones = str(tone_model["run"]), str(tone_model["tones"])

    def ddsp(*args):
        return run_ddsp(*args, text=True)

    plot = tmp_path / "eval.png"
    run = ddsp("eval", run_dir, "--data", tones, "--json", "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    [scores] = json.loads(run.stdout)  # a list, one object per model
    assert scores["model"] == "run" and scores["steps"] == 600 and scores["examples"] == 4
    assert np.isfinite([scores["spectral_loss"], scores["loudness_l1_db"]]).all()
    assert plot.read_bytes()[:4] == b"\x89PNG"
    table = ddsp("eval", run_dir, "--data", tones, "--max-examples", "2")
    assert table.returncode == 0, table.stderr
    assert "loud dB" in table.stdout and "run" in table.stdout and "…" not in table.stdout
    missing = ddsp("eval", run_dir, "--data", str(tmp_path / "nothing"))
    assert missing.returncode == 3 and "not a prepared dataset" in missing.stderr
