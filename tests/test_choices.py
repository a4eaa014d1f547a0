"""One source of truth (issue 21): every ``--help`` default and choice is the engine's, taken from
`ddspcli.choices`; options that the help promises do something (``--no-viterbi``) do it."""

from __future__ import annotations

import json
import re
import typing
from enum import Enum

import numpy as np
import pytest
import soundfile as sf
from clirun import ddsp

from ddspcli import choices
from ddspcli.engine import features, model, train


def _params() -> dict[tuple[str, str], object]:
    """(command path, option) -> click parameter, for every option of every command."""
    from ddspcli import cli

    found, stack = {}, [((), cli.build_command())]
    while stack:
        path, command = stack.pop()
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))
        for param in getattr(command, "params", []):
            found[(" ".join(path), param.opts[0])] = param
    return found


PARAMS = _params()


def _enum_of(param) -> type[Enum] | None:
    annotation = param.type_descriptor.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate
    return None


def help_text(*command: str) -> str:
    run = ddsp(*command, "--help", env={"COLUMNS": "200"})
    assert run.returncode == 0, run.stderr
    return " ".join(run.stdout.decode().split())


def test_engine_defaults_are_the_choices():
    assert features.DEFAULT_PITCH_HOP_MS == choices.PITCH_HOP_MS
    assert features.FeatureSettings().pitch_model == choices.FEATURES_PITCH_MODEL.value
    for name, hop_ms in choices.PITCH_HOP_MS.items():  # the hop the engine really uses
        settings = features.FeatureSettings(pitch_model=name)
        assert settings.pitch_stride * 1000 / settings.frame_rate == hop_ms
    assert choices.values(choices.Variant) == model.VARIANTS
    defaults = train.TrainSettings()
    assert (defaults.steps, defaults.batch_size, defaults.learning_rate) == (
        choices.TRAIN_STEPS, choices.TRAIN_BATCH_SIZE, choices.TRAIN_LEARNING_RATE)
    assert (defaults.checkpoint_every, defaults.keep, defaults.summary_every) == (
        choices.TRAIN_CHECKPOINT_EVERY, choices.TRAIN_KEEP, choices.TRAIN_SUMMARY_EVERY)
    assert defaults.strategy == choices.Strategy.AUTO.value


EXPECTED_DEFAULTS = {
    ("features", "--pitch-model"): choices.FEATURES_PITCH_MODEL,
    ("prepare", "--pitch-model"): choices.FEATURES_PITCH_MODEL,
    ("transfer", "--pitch-model"): choices.TRANSFER_PITCH_MODEL,
    ("fit", "--variant"): choices.DEFAULT_VARIANT,
    ("fit", "--strategy"): choices.Strategy.AUTO,
    ("fit", "--batch-size"): choices.TRAIN_BATCH_SIZE,
    ("fit", "--learning-rate"): choices.TRAIN_LEARNING_RATE,
    ("fit", "--checkpoint-every"): choices.TRAIN_CHECKPOINT_EVERY,
    ("fit", "--keep"): choices.TRAIN_KEEP,
    ("fit", "--summary-every"): choices.TRAIN_SUMMARY_EVERY,
    ("prepare", "--runner"): choices.Runner.LOCAL,
    ("generate", "--z-mode"): choices.ZMode.SAMPLE,
    **{(cmd, "--room-mix"): choices.ROOM_MIX_DB for cmd in ("transfer", "generate", "live")},
    **{(cmd, "--room"): None for cmd in ("transfer", "generate", "live")},
}


@pytest.mark.parametrize("key", sorted(EXPECTED_DEFAULTS), ids=" ".join)
def test_option_defaults_come_from_choices(key):
    assert PARAMS[key].default == EXPECTED_DEFAULTS[key]


def test_every_choice_option_offers_exactly_the_enum_and_the_help_shows_it():
    enums = {key: _enum_of(p) for key, p in PARAMS.items() if _enum_of(p) is not None}
    assert {("features", "--format"), ("fit", "--variant"), ("fit", "--strategy"),
            ("prepare", "--runner"), ("transfer", "--pitch-model")} <= set(enums)  # fmt: skip
    for (command, option), enum in enums.items():
        text = help_text(*command.split())
        shown = re.search(re.escape(option) + r"[^<│]*<([^>]+)>", text)
        assert shown, (command, option, text)
        assert tuple(shown.group(1).split("|")) == choices.values(enum), (command, option)


@pytest.mark.parametrize("command", ["features", "prepare", "transfer"])
def test_pitch_hop_help_states_the_engine_hops(command):
    text = help_text(command)
    full, tiny = features.DEFAULT_PITCH_HOP_MS["full"], features.DEFAULT_PITCH_HOP_MS["tiny"]
    assert f"default {full:g} for full, {tiny:g} for tiny" in text


@pytest.mark.parametrize("command", ["transfer", "generate", "live"])
def test_room_help_states_the_range_and_the_limit(command):
    text = help_text(command)
    assert f"{choices.MIN_ROOM_MIX_DB:g}..{choices.MAX_ROOM_MIX_DB:+g}" in text
    assert f"at most {choices.MAX_ROOM_IR_S:g} s" in text and choices.ROOM_NONE in text


def test_fit_help_states_the_default_steps():
    assert f"default {train.TrainSettings().steps}" in help_text("fit")


def test_a_bad_choice_is_a_usage_error():
    for args in (("fit", "d", "-o", "r", "--variant", "huge"),
                 ("fit", "d", "-o", "r", "--strategy", "everywhere"),
                 ("prepare", "x.wav", "-o", "d", "--runner", "spark"),
                 ("features", "x.wav", "--format", "xml")):  # fmt: skip
        run = ddsp(*args)
        assert run.returncode == 2, (args, run.stderr)
        assert run.stderr.decode().startswith("ddsp: error:")


def test_no_viterbi_changes_the_pitch_of_a_note_change(tmp_path):
    """A note change (220 Hz, a breath of noise, 330 Hz): without Viterbi smoothing the
    decoded pitch differs (the option used to be parsed and ignored)."""
    rate = 16000
    t = np.arange(2 * rate) / rate
    f0 = np.where(t < 1.0, 220.0, 330.0)
    tone = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / rate)
    tone[(t > 0.8) & (t < 1.2)] = 0.0  # between the notes: noise only
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(tmp_path / "change.wav", (tone + noise).astype(np.float32), rate)
    curves = {}
    for flag in ("--viterbi", "--no-viterbi"):
        out = tmp_path / f"{flag}.json"
        run = ddsp("features", tmp_path / "change.wav", "--pitch-model", "tiny", "-o", out, flag)
        assert run.returncode == 0, run.stderr
        curves[flag] = np.array(json.loads(out.read_text())["f0_hz"])
    cents = 1200 * np.abs(np.log2(curves["--viterbi"] / curves["--no-viterbi"]))
    assert np.mean(cents > 1.0) > 0.01, np.mean(cents > 1.0)


def test_the_readme_states_the_same_choices_and_defaults():
    """The README's command table and prose name the choices and defaults of choices.py."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for option, enum in (("--variant", choices.Variant), ("--pitch-model", choices.PitchModel),
                         ("--format", choices.FeatureFormat)):  # fmt: skip
        assert f"`{option} " + "\\|".join(choices.values(enum)) in readme.replace(
            "[--format ", "`--format ").replace("] [--plot", "` [--plot"), option
    full, tiny = choices.PITCH_HOP_MS["full"], choices.PITCH_HOP_MS["tiny"]
    assert f"By default CREPE {choices.FEATURES_PITCH_MODEL.value} runs every {full:g} ms" in readme
    assert f"CREPE {choices.TRANSFER_PITCH_MODEL.value} every {tiny:g} ms" in readme
    assert f"{choices.TRAIN_STEPS // 1000}k steps, batch {choices.TRAIN_BATCH_SIZE}" in readme
