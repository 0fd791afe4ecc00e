"""`trainconsole plot` of two real runs of one seed: both drawn, and the note says they overlap."""

from __future__ import annotations

import pytest
from test_cli import TINY, cli, runs_in

pytestmark = pytest.mark.slow


def test_plot_of_two_runs_of_the_same_seed_notes_that_they_overlap(tmp_path):
    for name in ("seed0-a", "seed0-b"):
        done = cli(tmp_path, "run", *TINY, "--set", "run.seed=0", "--set", f"run.name={name!r}")
        assert done.returncode == 0, done.stderr
    a, b = runs_in(tmp_path)
    assert a.name == "seed0-a" and b.name == "seed0-b"
    assert (a / "metrics.jsonl").read_bytes() != b""

    out = tmp_path / "both.png"
    plotted = cli(tmp_path, "plot", str(a), str(b), "--out", str(out))
    assert plotted.returncode == 0, plotted.stderr
    assert out.is_file() and out.stat().st_size > 0
    assert "trainconsole: note: runs seed0-a and seed0-b overlap (the later drawn with x markers)" in plotted.stderr
    assert "overlap" not in plotted.stdout  # stdout stays the picture's path, for scripts

    alone = cli(tmp_path, "plot", str(a), "--out", str(tmp_path / "one.png"))
    assert alone.returncode == 0 and "overlap" not in alone.stderr, alone.stderr
