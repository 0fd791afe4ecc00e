"""The real console in a real terminal (tmux): train, see the run listed, quit cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from run_watch import tmux_new_session

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _wait_for(session: str, condition, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _screen(session)
        if condition(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out; the terminal shows:\n{text}")


BADGES = (" OK ", " OVERFITTING ", " UNDERFITTING ", " NaN ")


def _finished_run_drawn(text: str) -> bool:
    """The training screen of a finished 5-epoch run, fully painted: both charts keyed, the last row, a badge."""
    return (
        "Run finished" in text
        and text.count("━ train") == 2
        and text.count("▀▄ val") == 2
        and any(line.split()[:1] == ["5"] for line in text.splitlines())
        and any(badge in text for badge in BADGES)
    )


def _alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "width,height,env,resize_to",
    [
        (120, 40, {"TERM": "xterm-256color"}, None),
        (80, 24, {"TERM": "xterm-256color"}, None),
        (100, 30, {"TERM": "screen", "NO_COLOR": "1"}, (80, 24)),  # no colours, an old TERM, resized mid-run
        (200, 60, {"TERM": "screen", "NO_COLOR": "1"}, (80, 24)),
        (80, 24, {"TERM": "screen", "NO_COLOR": "1"}, (200, 60)),
    ],
    ids=["120x40", "80x24", "no-color-screen-resized", "200x60-to-80x24", "80x24-to-200x60"],
)
def test_train_list_and_quit_in_a_real_terminal(tmp_path, width, height, env, resize_to):
    (tmp_path / "settings.toml").write_text(f'[run]\nruns_dir = "{tmp_path / "runs"}"\n[training]\nepochs = 5\n')
    session = f"tc-e2e-{uuid.uuid4().hex[:8]}"
    command = f"cd {tmp_path} && {TRAINCONSOLE} -c settings.toml"
    try:
        tmux_new_session(
            "-d",
            "-s",
            session,
            "-x",
            str(width),
            "-y",
            str(height),
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
            command,
        )
        _wait_for(session, lambda t: "Environment" in t and "Quit" in t, 20)
        _tmux("send-keys", "-t", session, "3")
        _wait_for(session, lambda t: "Start" in t and "No run yet" in t, 10)
        _tmux("send-keys", "-t", session, "s")
        if resize_to:
            _wait_for(session, lambda t: "Running" in t or "Run finished" in t, 30)
            _tmux("resize-window", "-t", session, "-x", str(resize_to[0]), "-y", str(resize_to[1]))
        # the screen is read once it shows everything: after a resize the charts are drawn again a moment after
        # "Run finished" appears (on a busy machine, several refreshes later), so their keys are waited for too
        _wait_for(session, lambda t: "Run finished" in t, 60)
        text = _wait_for(session, _finished_run_drawn, 30)
        assert text.count("━ train") == 2 and text.count("▀▄ val") == 2, text  # both charts, each keyed in its title
        assert any(line.split()[:1] == ["5"] for line in text.splitlines()), text  # the last epoch row
        assert any(badge in text for badge in BADGES), text
        run_dirs = list((tmp_path / "runs").iterdir())
        assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoints" / "last.pth").is_file()
        _tmux("send-keys", "-t", session, "4")
        text = _wait_for(session, lambda t: run_dirs[0].name in t and "completed" in t, 20)
        assert all(column in text for column in ("val loss", "val acc", "size", "best.pth", "last.pth")), (
            text
        )  # no table cut off
        _tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 5
        while _alive(session) and time.monotonic() < deadline:
            if "Stop and quit" in _screen(session):
                _tmux("send-keys", "-t", session, "y")
            time.sleep(0.1)
        assert not _alive(session), _screen(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
