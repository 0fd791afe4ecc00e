"""The suite's own folders (tests/conftest.py): each test process, each pytest-xdist worker too, keeps its state,
cache and tmux servers apart from the user's and from the other workers'."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

# as the end-to-end modules copy it at import, before any fixture runs
ENV_AT_IMPORT = dict(os.environ)


@pytest.mark.parametrize("name", ["XDG_STATE_HOME", "XDG_CACHE_HOME", "TMUX_TMPDIR"])
def test_the_folders_are_set_before_test_modules_are_imported(name):
    folder = Path(ENV_AT_IMPORT[name])
    assert folder.is_dir() and not folder.is_relative_to(Path.home())
    assert os.environ[name] == str(folder)
    assert "TMUX" not in ENV_AT_IMPORT


def test_one_process_folder_holds_them_all():
    folders = {Path(os.environ[name]).parent for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "TMUX_TMPDIR")}
    assert len(folders) == 1
    assert folders.pop().name.startswith("tc-tests-")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_tmux_session_of_a_test_lives_in_this_process_own_server():
    session = f"tc-iso-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(["tmux", "new-session", "-d", "-s", session, "sleep 60"], capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr
        socket = subprocess.run(
            ["tmux", "display", "-p", "-t", session, "#{socket_path}"], capture_output=True, text=True
        ).stdout.strip()
        assert Path(socket).is_relative_to(os.environ["TMUX_TMPDIR"]), socket
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
