"""Runs whose curves coincide (the same seed) are found, drawn so both show, and named in a note."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.outputs.compare import coinciding, overlap_note, overlapping_runs, same_curve
from engine.outputs.readers import read_run


def fake_run(folder: Path, val_losses: list[float], train_shift: float = 0.0) -> Path:
    folder.mkdir(parents=True)
    rows = [
        {"epoch": i, "train_loss": 1 / i + train_shift, "val_loss": v, "train_acc": 0.9, "val_acc": 1 - v / 3}
        for i, v in enumerate(val_losses, 1)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_same_curve_needs_a_shared_finite_point_and_every_shared_point_equal():
    assert same_curve({1: 0.5, 2: 0.4}, {1: 0.5, 2: 0.4 * (1 + 1e-9)})
    assert same_curve({1: 0.5, 2: 0.4}, {1: 0.5})  # a shorter run that follows the same curve is hidden by it
    assert not same_curve({1: 0.5, 2: 0.4}, {1: 0.5, 2: 0.41})
    assert not same_curve({1: 0.5}, {2: 0.5})
    assert not same_curve({1: math.nan}, {1: math.nan})


def test_coinciding_pairs_each_later_series_with_the_first_it_repeats():
    ys = [1.0, 0.5, 0.25]
    series = {"a": ys, "b": [1.0, 0.6, 0.3], "c": list(ys), "d": list(ys)}
    assert coinciding(series) == [("a", "c"), ("a", "d")]
    assert coinciding({"train": ys, "val": [1.0, 0.6, 0.3]}) == []
    assert overlap_note([("a", "c")]) == "runs a and c overlap"
    assert overlap_note([("a", "c"), ("b", "d")], "") == "a and c overlap; b and d overlap"
    assert overlap_note([]) == ""


def test_runs_overlap_only_when_every_curve_they_share_coincides(tmp_path):
    a = read_run(fake_run(tmp_path / "a", [1.0, 0.6, 0.5]))
    b = read_run(fake_run(tmp_path / "b", [1.0, 0.6, 0.5]))
    c = read_run(fake_run(tmp_path / "c", [1.0, 0.6, 0.5], train_shift=0.1))  # same val, other train curve
    assert overlapping_runs([a, b, c]) == [("a", "b")]
    assert overlapping_runs([a, c]) == []


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_the_png_marks_the_later_of_two_identical_runs_and_notes_it(tmp_path, plt):
    from engine.outputs.curves import draw_curves

    runs = [read_run(fake_run(tmp_path / name, [1.0, 0.6, 0.5, 0.55])) for name in ("seed0-a", "seed0-b")]
    fig = draw_curves(runs)
    lines = [line for line in fig.axes[0].get_lines() if line.get_xdata().size]
    markers = [line.get_marker() for line in lines]
    assert markers == ["None", "None", "x", "x"], markers  # a's train and val plain, b's drawn over them with x
    assert [line.get_linestyle() for line in lines] == [":", "-", "None", "None"]  # b's markers alone: a shows
    (legend,) = fig.legends
    assert [h.get_marker() for h in legend.legend_handles] == ["None", "x"]  # the key says b is the x
    assert [t.get_text() for t in fig.texts] == ["runs seed0-a and seed0-b overlap"]

    other = read_run(fake_run(tmp_path / "other", [1.0, 0.7, 0.6, 0.65]))
    fig = draw_curves([runs[0], other])
    assert fig.texts == [] and all(line.get_marker() == "None" for line in fig.axes[0].get_lines())


def test_train_and_val_differ_by_line_style_not_colour_alone(tmp_path, plt):
    from engine.outputs.curves import draw_curves

    fig = draw_curves([read_run(fake_run(tmp_path / "one", [1.0, 0.6, 0.5]))])
    for ax in fig.axes:
        styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
        train = next(style for label, style in styles.items() if label.startswith("Train"))
        val = next(style for label, style in styles.items() if label.startswith("Val"))
        assert (train, val) == (":", "-"), styles
