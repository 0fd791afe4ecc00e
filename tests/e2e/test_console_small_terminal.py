"""The real console at 80x24 without colours (tmux): every screen's footer on one line with ? Help and q Quit,
Tab into a text field types at its end, and quitting with an unsaved setting asks in a centred dialog, then saves."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from run_watch import tmux_new_session, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
WIDTH, HEIGHT = 80, 24


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


def _footer_whole(line: str) -> bool:
    """The footer's line: ? Help and q Quit both there, whole."""
    return "? Help" in line and "q Quit" in line


def test_small_terminal_footer_tab_and_unsaved_question(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text(f'# mine\n[run]\nruns_dir = "{tmp_path / "runs"}"\n\n[lr_find]\nsteps = 20\n')
    session = f"tc-small-{uuid.uuid4().hex[:8]}"
    screen = lambda: _tmux("capture-pane", "-p", "-t", session)  # noqa: E731
    lines = lambda: screen().rstrip("\n").split("\n")  # noqa: E731
    try:
        tmux_new_session(
            "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT), "-e", "TERM=screen", "-e", "NO_COLOR=1",
            f"cd {tmp_path} && {TRAINCONSOLE} -c settings.toml",
        )  # fmt: skip
        for key, title in (("1", "Train on:"), ("3", "No run yet"), ("4", "runs"), ("2", "File:")):
            _tmux("send-keys", "-t", session, key)
            wait_until(lambda: title in screen() and _footer_whole(lines()[-1]), f"screen {key}", 30, screen)
            assert len(lines()) <= HEIGHT and all(len(line) <= WIDTH for line in lines())
        # Tab from the screen's tabs into the file's path: a text field has the focus once q is no longer a key
        _tmux("send-keys", "-t", session, "Tab")
        wait_until(lambda: "q Quit" not in lines()[-1], "the path field's focus", 20, screen)
        _tmux("send-keys", "-t", session, "x")  # at the end: the text was not selected whole
        wait_until(lambda: "settings.tomlx" in screen(), "x after the path", 20, screen)
        _tmux("send-keys", "-t", session, "BSpace")
        _tmux("send-keys", "-t", session, "Escape")  # out of the field: the screen keys work again
        wait_until(lambda: "settings.toml " in screen() and "q Quit" in lines()[-1], "the field left", 20, screen)
        # an unsaved edit: the learning-rate finder's suggestion, put in training.lr (its dialog fits the terminal)
        _tmux("send-keys", "-t", session, "C-l")
        wait_until(lambda: "Learning-rate finder: suggested" in screen(), "the finder's suggestion", 120, screen)
        assert len(lines()) <= HEIGHT and "a apply the suggested rate" in screen(), screen()
        _tmux("send-keys", "-t", session, "a")
        wait_until(lambda: "training.lr = " in screen(), "training.lr set, unsaved", 20, screen)
        _tmux("send-keys", "-t", session, "q")
        wait_until(lambda: "Unsaved changes" in screen() and "Cancel (esc)" in screen(), "the question", 20, screen)
        assert "training.lr" in screen(), screen()
        shown = lines()
        buttons = next(line for line in shown if "Save (s)" in line)
        left, right = buttons.index("█"), WIDTH - 1 - buttons.rindex("█")  # the dialog's thick border
        assert "Discard (d)" in buttons and abs(left - right) <= 1, "\n".join(shown)  # the three buttons, centred
        _tmux("send-keys", "-t", session, "s")
        wait_until(lambda: not _alive(session), "the console to quit once saved", 20, screen)
        assert "lr = " in settings.read_text() and settings.read_text().startswith("# mine\n")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
