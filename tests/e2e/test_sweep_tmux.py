"""The console's sweep screen in a real terminal (tmux) during a real 2-worker sweep started detached: its trials
shown as they run, one pruned from the console (p), then the whole sweep stopped (s)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from run_watch import exited, read_jsonl, tmux_new_session, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("engine.cli.sweep") is None, reason="no `trainconsole sweep` yet"),
]

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
STUDY = "tmux-sweep"
# long enough trials that both are still training when the keys are pressed; the sweep is stopped long before
SETTINGS = """\
[run]
name = "{study}"
runs_dir = "{runs}"
[training]
epochs = 40
[sweep]
trials = 6
pruner = "none"
[sweep.space]
"training.lr" = {{log_uniform = [1e-3, 1e-2]}}
"""


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


def _states(text: str) -> dict[int, str]:
    """Each trial's state as the table shows it (its number first, `*` before the best one's)."""
    rows = (
        re.match(r"^\s*\*?(\d+)\s+(running|complete|pruned|failed|stopped|waiting)\s", line)
        for line in text.splitlines()
    )
    return {int(m.group(1)): m.group(2) for m in rows if m}


def _trial_line(text: str, number: int) -> str:
    return next((line for line in text.splitlines() if re.match(rf"^\s*\*?{number}\s+[a-z]+\s", line)), "")


def _start_sweep(tmp_path: Path) -> int:
    out = subprocess.run(
        [str(TRAINCONSOLE), "sweep", "-c", "settings.toml", "--workers", "2", "--detach"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"process (\d+)", out.stdout)
    assert found, out.stdout
    return int(found.group(1))


def _end_sweep(sweep_dir: Path, pid: int) -> None:
    """The sweep asked to stop if the test left it running, then ended for good (it and its workers)."""
    if exited(pid):
        return
    subprocess.run([str(TRAINCONSOLE), "stop", str(sweep_dir)], capture_output=True, timeout=60)
    try:
        wait_until(lambda: exited(pid), "the sweep to stop", timeout=60)
    except AssertionError:
        try:
            os.killpg(pid, signal.SIGKILL)  # the detached sweep leads a session of its own, its workers in it
        except (ProcessLookupError, PermissionError):
            pass


@pytest.mark.timeout(900)  # two trainings and the console on a machine other tests load too
def test_prune_a_trial_and_stop_the_sweep_from_the_console(tmp_path):
    runs = tmp_path / "runs"
    (tmp_path / "settings.toml").write_text(SETTINGS.format(study=STUDY, runs=runs))
    sweep_dir = runs / STUDY
    session = f"tc-sweep-{uuid.uuid4().hex[:8]}"
    pid = _start_sweep(tmp_path)
    try:
        tmux_new_session(
            "-d", "-s", session, "-x", "80", "-y", "24", f"cd {tmp_path} && {TRAINCONSOLE} -c settings.toml"
        )

        def shown() -> str:
            return _tmux("capture-pane", "-p", "-t", session)

        wait_until(lambda: "Environment" in shown() and "Quit" in shown(), "the console", 60, shown)
        _tmux("send-keys", "-t", session, "5")
        # both workers' trials running, trial 0 past its first epoch (a prune is taken at an epoch's end)
        wait_until(lambda: "2 running" in shown(), "two trials running", 240, shown)
        wait_until(lambda: read_jsonl(sweep_dir / "trial-0000" / "metrics.jsonl"), "trial 0's first epoch", 120)
        wait_until(lambda: _states(shown()).get(0) == "running", "trial 0 running on screen", 30, shown)

        _tmux("send-keys", "-t", session, "p")
        wait_until(lambda: "Prune trial 0" in shown(), "the prune question", 30, shown)
        _tmux("send-keys", "-t", session, "y")
        wait_until(lambda: _states(shown()).get(0) == "pruned", "trial 0 pruned", 120, shown)
        assert "user" in _trial_line(shown(), 0), shown()  # why: the user asked
        wait_until(lambda: _states(shown()).get(2) == "running", "the next trial on trial 0's worker", 120, shown)

        _tmux("send-keys", "-t", session, "s")
        wait_until(lambda: "Stop the sweep" in shown(), "the stop question", 30, shown)
        _tmux("send-keys", "-t", session, "y")
        wait_until(lambda: exited(pid), "the sweep's process to end", 180, shown)
        states = wait_until(lambda: "running" not in _states(shown()).values() and _states(shown()), "none running",
                            30, shown)  # fmt: skip
        assert states[0] == "pruned" and "complete" not in states.values(), states  # stopped long before the end
        assert "stopped" in states.values(), states  # the trials the stop interrupted

        _tmux("send-keys", "-t", session, "q")
        wait_until(lambda: not _alive(session), "the console to quit", 30, shown)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        _end_sweep(sweep_dir, pid)


def test_a_settings_file_without_a_sweep_table_is_refused_in_the_commands_own_line(tmp_path):
    """The console's n runs `trainconsole sweep --detach`: a refusal reaches it as the command's one line."""
    from tui.sweep_files import start_sweep

    (tmp_path / "settings.toml").write_text(f'[run]\nruns_dir = "{tmp_path / "runs"}"\n')
    with pytest.raises(RuntimeError) as refused:
        start_sweep(tmp_path / "settings.toml")
    assert "[sweep.space]" in str(refused.value) and "\n" not in str(refused.value), refused.value
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
