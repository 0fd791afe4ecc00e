"""engine.training.advice: every badge explains itself, names only real settings, and shows its evidence."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.events import Diagnostic
from engine.settings.config import Settings, section_fields
from engine.training.advice import (
    ADVICE,
    advice_for,
    badge_epochs,
    badge_summary,
    epoch_spans,
    explain,
    format_value,
)

# every status the diagnostics and the gradient probes give (issue 23)
KNOWN = (
    "ok",
    "nan",
    "diverging",
    "not_learning",
    "overfitting",
    "underfitting",
    "vanishing_gradients",
    "exploding_gradients",
    "dying_relu",
    "saturated_units",
)
SECTIONS = tuple(f.name for f in Settings.__dataclass_fields__.values())
SETTING = re.compile(rf"\b({'|'.join(SECTIONS)})\.([a-z_]+)\b")


def _texts(advice) -> list[str]:
    return [advice.title, advice.meaning, *advice.what_to_try]


@pytest.mark.parametrize("status", KNOWN)
def test_every_known_badge_has_its_own_advice(status):
    advice = ADVICE[status]
    assert advice.title and len(advice.meaning) > 40
    assert advice.what_to_try and all(item.strip() for item in advice.what_to_try)
    assert advice_for(Diagnostic(status, "")) is advice


def test_every_setting_the_advice_names_is_a_real_setting():
    named = {m.groups() for advice in ADVICE.values() for text in _texts(advice) for m in SETTING.finditer(text)}
    assert len(named) > 10  # the pattern finds them: a typo in it would make this test pass vacuously
    missing = [f"{s}.{k}" for s, k in sorted(named) if k not in {f.name for f in section_fields(s)}]
    assert not missing, f"advice names settings that do not exist: {missing}"


def test_the_setting_check_catches_a_name_that_does_not_exist():
    m = SETTING.search("set data.csv_label to the label's column")
    assert m and "csv_label" not in {f.name for f in section_fields(m.group(1))}


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("overfitting", ("model.dropout", "training.weight_decay", "data.augment", "training.patience", "best.pth")),
        ("diverging", ("training.lr", "lr-find", "training.grad_clip", "data.normalize")),
        ("not_learning", ("data.label_column", "training.lr", "model.hidden")),
        ("vanishing_gradients", ("ReLU", "sigmoid", "initialisation")),
        ("exploding_gradients", ("training.lr", "training.grad_clip", "initialisation")),
        ("dying_relu", ("training.lr", "LeakyReLU", "initialisation")),
        ("saturated_units", ("data.normalize", "initialisation", "training.lr")),
    ],
)
def test_what_to_try_names_the_chapter_s_remedies(status, words):
    text = " ".join(ADVICE[status].what_to_try)
    assert all(word in text for word in words), [w for w in words if w not in text]


def test_an_explanation_shows_the_badge_the_epoch_the_message_and_each_evidence_number():
    diagnostic = Diagnostic(
        "overfitting",
        "val-train loss gap +0.6123 > 0.5",
        {"loss_gap": 0.6123, "acc_gap": 0.1234, "train_loss": 0.1111, "val_loss": 0.7234},
    )
    lines = explain(diagnostic, 12).lines()
    text = "\n".join(lines)
    assert lines[0] == "OVERFITTING at epoch 12"
    assert "val-train loss gap +0.6123 > 0.5" in text
    for shown in ("loss_gap", "+0.6123", "acc_gap", "+12.3%", "train_loss", "0.1111", "val_loss", "0.7234"):
        assert shown in text, shown
    assert ADVICE["overfitting"].meaning in text
    assert all(f"- {item}" in text for item in ADVICE["overfitting"].what_to_try)


def test_an_unknown_badge_still_shows_its_message_its_evidence_and_a_generic_line():
    explanation = explain(Diagnostic("loss_spikes", "3 spikes in 5 epochs", {"spikes": 3.0}), 7)
    text = "\n".join(explanation.lines())
    assert explanation.lines()[0] == "LOSS SPIKES at epoch 7"
    assert "3 spikes in 5 epochs" in text and "spikes" in text and "3" in text
    assert "no explanation for this badge" in text


def test_a_badge_known_only_by_its_status_says_its_evidence_was_not_recorded():
    text = "\n".join(explain(Diagnostic("nan", ""), 4, recorded=False).lines())
    assert "not recorded" in text and ADVICE["nan"].meaning in text


def test_the_json_form_has_stable_keys_and_no_nan_literal():
    data = explain(Diagnostic("nan", "train_loss is nan", {"train_loss": math.nan, "val_loss": 2.5}), 3).to_dict()
    assert {"epoch", "status", "message", "evidence", "meaning", "what_to_try"} <= data.keys()
    assert data["evidence"] == {"train_loss": "nan", "val_loss": 2.5}
    json.dumps(data, allow_nan=False)


def test_wrapped_lines_fit_the_width_and_keep_every_word():
    explanation = explain(Diagnostic("overfitting", "gap", {"loss_gap": 0.7}), 5)
    wrapped = explanation.lines(width=60)
    assert all(len(line) <= 60 for line in wrapped)
    assert " ".join(" ".join(wrapped).split()) == " ".join(" ".join(explanation.lines()).split())


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("val_acc", 0.9512, "95.1%"),
        ("acc_gap", 0.123, "+12.3%"),
        ("loss_gap", -0.25, "-0.2500"),
        ("train_loss", 1.82769, "1.8277"),
        ("bar", 0.0, "0"),
        ("epoch", 12.0, "12"),
        ("grad_norm", 12345.678, "1.235e+04"),
        ("first_to_last_ratio", 2.5e-5, "2.5e-05"),
        ("train_loss", math.inf, "inf"),
    ],
)
def test_evidence_numbers_read_as_their_kind(name, value, shown):
    assert format_value(name, value) == shown


def test_the_badges_of_a_run_in_one_line():
    statuses = [(1, "ok"), (2, "ok"), (12, "overfitting"), (13, "overfitting"), (20, "overfitting"), (21, "nan")]
    assert badge_epochs(statuses) == {"overfitting": [12, 13, 20], "nan": [21]}
    assert badge_summary(statuses) == "overfitting: epochs 12-13, 20; nan: epoch 21"
    assert badge_summary([(1, "ok"), (2, "")]) == "every epoch OK"


@given(st.sets(st.integers(1, 200), min_size=1))
def test_epoch_spans_name_every_epoch_and_no_other(epochs):
    text = epoch_spans(sorted(epochs)).split(" ", 1)[1]
    named = set()
    for part in text.split(", "):
        first, _, last = part.partition("-")
        named |= set(range(int(first), int(last or first) + 1))
    assert named == epochs
