"""The headless progress line: the run's time left, the epoch's beside it, on one row of the terminal."""

from __future__ import annotations

import pytest

from engine.cli.printers import progress_line
from engine.events import BatchProgressed


def _tick(run_eta_s: float | None = 130.0, at_most: bool = False, batch: int = 120) -> BatchProgressed:
    return BatchProgressed(3, batch, 469, 9000.0, 5.0, 0.4321, run_eta_s, at_most)


def test_a_wide_terminal_shows_the_bar_the_run_eta_and_the_epoch_eta():
    line = progress_line(_tick(), columns=200)
    assert line.startswith("  epoch 3 [#####...............] 120/469  loss 0.4321  9,000 samples/s")
    assert line.endswith("run 2:10 left (epoch 0:05)")


def test_under_early_stopping_the_run_eta_says_at_most():
    assert progress_line(_tick(at_most=True), columns=200).endswith("run at most 2:10 left (epoch 0:05)")


def test_an_event_of_an_older_version_shows_the_epoch_eta_as_before():
    assert progress_line(_tick(run_eta_s=None), columns=200).endswith("9,000 samples/s  ETA 0:05")


@pytest.mark.parametrize("columns", [40, 60, 80, 100])
@pytest.mark.parametrize("at_most", [False, True])
def test_the_line_never_wraps_and_keeps_the_run_eta_while_it_fits(columns, at_most):
    """A wrapped line could not be erased by the next one: the bar narrows and goes, then the epoch's ETA."""
    line = progress_line(_tick(at_most=at_most, batch=469), columns)
    assert len(line) <= columns - 1
    run = f"run {'at most ' * at_most}2:10 left"
    if columns >= 80:
        assert run in line
    if columns == 100:
        assert "(epoch 0:05)" in line and "] 469/469" in line  # room for a bar too
