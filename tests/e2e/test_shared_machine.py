"""A shared machine: another local user, with the read access a run folder's default permissions give, can watch a
run but not lock, stop or pause it. Two unprivileged users are made for the test (it runs as root) and deleted after."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from engine.runs.records import read_events

REPO = Path(__file__).resolve().parents[2]
SETTINGS = """\
[run]
runs_dir = "{runs}"
seed = 0
[device]
device = "cpu"
threads = 1
[data]
batch_size = 1
[model]
hidden = [256, 128]
[training]
epochs = 50
"""
FLOCK = (
    "import fcntl, os, sys\n"
    "try:\n"
    "    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "    print('locked')\n"
    "except OSError as e:\n"
    "    print('refused', e.strerror)\n"
)


def make_user(tag: str) -> pwd.struct_passwd:
    name = f"tc{tag}{os.getpid() % 100000}"
    done = subprocess.run(["useradd", "-M", "-N", "-s", "/bin/sh", name], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot create a local user to test with: {done.stderr.strip() or done.returncode}")
    return pwd.getpwnam(name)


@pytest.fixture
def two_users():
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("making two local users needs root and useradd")
    users = []
    try:
        users.append(make_user("a"))
        users.append(make_user("b"))
        yield users
    finally:
        for user in users:  # userdel refuses while a process of the user is still going away: try until it is gone
            deadline = time.monotonic() + 30
            while subprocess.run(["userdel", user.pw_name], capture_output=True).returncode not in (0, 6):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)


def python_for(user: pwd.struct_passwd, env: dict) -> list[str]:
    """An interpreter the user may run, with this checkout's packages; skip when there is none."""
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    for python in candidates:
        try:
            done = as_user(user, [python, "-c", "import torch, engine"], env, Path("/"), timeout=300)
        except OSError:  # not executable by that user (inside a 0700 home, say)
            continue
        if done.returncode == 0:
            return [python]
    pytest.skip(f"no Python another user may run has this checkout's packages (tried {', '.join(candidates)})")


def as_user(user, args, env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, user=user.pw_uid, group=user.pw_gid, extra_groups=[], env=env, cwd=cwd,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def env_for(user, home: Path) -> dict:
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": f"{REPO}:{site}",  # the venv's own interpreter may sit where another user cannot reach
        "LANG": "C.UTF-8",
    }


def test_another_user_cannot_lock_stop_or_pause_your_run(two_users):
    a, b = two_users
    base = Path(tempfile.mkdtemp(prefix="trainconsole-users-", dir="/tmp"))  # not under pytest's 0700 folder
    os.chmod(base, 0o755)
    try:
        check_the_run_is_yours(a, b, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_the_run_is_yours(a, b, base: Path) -> None:
    homes = {}
    for user in (a, b):
        homes[user.pw_name] = base / f"home-{user.pw_name}"
        homes[user.pw_name].mkdir()
        os.chown(homes[user.pw_name], user.pw_uid, user.pw_gid)
    work = base / "work"
    work.mkdir()
    (work / "settings.toml").write_text(SETTINGS.format(runs=work / "runs"))
    os.chown(work, a.pw_uid, a.pw_gid)
    env_a, env_b = env_for(a, homes[a.pw_name]), env_for(b, homes[b.pw_name])
    python = python_for(a, env_a)
    pid = None
    try:
        old = os.umask(0o022)  # the usual default: what another user may read
        try:
            started = as_user(a, [*python, "-m", "engine", "run", "--detach", "--json"], env_a, work)
        finally:
            os.umask(old)
        assert started.returncode == 0, started.stderr
        facts = json.loads(started.stdout)
        run_dir, pid = Path(facts["run_dir"]), facts["pid"]
        deadline = time.monotonic() + 300
        while not any(type(e).__name__ == "BatchProgressed" for e in read_events(run_dir / "events.jsonl").items):
            assert time.monotonic() < deadline, (run_dir / "output.log").read_text()
            time.sleep(0.2)
        assert oct((run_dir / ".lock").stat().st_mode & 0o777) == "0o600"
        assert oct((run_dir / ".control" / "commands.jsonl").stat().st_mode & 0o777) == "0o600"

        flocked = as_user(b, [*python, "-c", FLOCK, str(run_dir / ".lock")], env_b, base)
        assert flocked.stdout.startswith("refused"), flocked.stdout + flocked.stderr
        listed = as_user(b, [*python, "-m", "engine", "checkpoints", str(run_dir.parent)], env_b, base)
        assert listed.returncode == 0 and "running" in listed.stdout, listed.stdout + listed.stderr
        for command in ("stop", "pause"):
            refused = as_user(b, [*python, "-m", "engine", command, str(run_dir)], env_b, base)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert refused.stderr.strip().count("\n") == 0 and "only its owner" in refused.stderr, refused.stderr

        events_before = len(read_events(run_dir / "events.jsonl").items)
        deadline = time.monotonic() + 120
        while len(read_events(run_dir / "events.jsonl").items) <= events_before + 1:  # A's run goes on
            assert time.monotonic() < deadline
            time.sleep(0.2)
        kinds = {type(e).__name__ for e in read_events(run_dir / "events.jsonl").items}
        assert not kinds & {"RunPaused", "RunFinished", "CommandReceived"}, kinds
        stopped = as_user(a, [*python, "-m", "engine", "stop", str(run_dir)], env_a, work)
        assert stopped.returncode == 0, stopped.stderr  # its owner still can
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
