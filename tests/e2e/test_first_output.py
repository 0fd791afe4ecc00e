"""No silence at the start (issue 25): on a terminal, `run` and `env` show their status line before PyTorch is
imported, and erase it before their first real line; piped, or with --json, they print nothing extra.

The order of the bytes on the terminal is what is checked, never a time: with PYTHONPROFILEIMPORTTIME Python
itself writes a line on stderr as each module is imported, so the status line must come before the first of
torch's.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from engine.events import EVENT_TYPES

pytestmark = pytest.mark.slow

TINY = ("--set", "training.epochs=1", "--set", "device.device='cpu'", "--set", "device.threads=1")
STATUS = b"trainconsole: loading PyTorch..."
ERASE = b"\r\x1b[K"
# the status line, each time it is drawn ("\r", erase line, a frame, the text, "..."), and erased
FRAMES = re.compile(rb"\r\x1b\[K(?:[^\r\n\x1b ]+ trainconsole: [^\r\n\x1b]*\.\.\.)?")
TORCH_IMPORTED = re.compile(rb"import time:[^\n]*\|\s+torch[.\s]")


def _env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "RANK", "WORLD_SIZE", "LOCAL_RANK", "TRAINCONSOLE_STATUS_HANDOFF")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "OMP_NUM_THREADS": "1", **extra}


def on_a_terminal(
    cwd: Path, *args: str, env: dict[str, str] | None = None, ctrl_c_at: bytes | None = None, exit_code: int = 0
) -> bytes:
    """`python -m engine ARGS` with stdout and stderr on one terminal of 120 columns: every byte it wrote there.

    `ctrl_c_at`: SIGINT, as Ctrl-C sends it, as soon as the terminal shows this."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env=env or _env(),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        # Ctrl-C as a terminal's foreground job gets it: a suite started in the background (`make test &`, CI) runs
        # with SIGINT ignored, which Python and so the command would inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 600
    try:
        while True:
            assert time.monotonic() < deadline, f"still running; the terminal shows: {b''.join(chunks)[-2000:]!r}"
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has ended
                break
            if not data:
                break
            chunks.append(data)
            if ctrl_c_at is not None and ctrl_c_at in b"".join(chunks):
                proc.send_signal(signal.SIGINT)
                ctrl_c_at = None
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    out = b"".join(chunks)
    assert proc.wait(timeout=60) == exit_code, out[-3000:]
    return out


def _piped(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=_env(), capture_output=True, timeout=600
    )


def _before(out: bytes, first_line: bytes) -> bytes:
    """What the terminal got before the command's first real line; that line must be there."""
    before, found, _ = out.partition(first_line)
    assert found, out[-3000:]
    return before


@pytest.mark.parametrize("command", [("run", *TINY), ("env",)], ids=["run", "env"])
def test_the_status_line_comes_before_torch_is_imported(tmp_path, command):
    out = on_a_terminal(tmp_path, *command, env=_env(PYTHONPROFILEIMPORTTIME="1"))
    torch = TORCH_IMPORTED.search(out)
    assert torch is not None, "Python reported no import of torch: the test sees nothing"
    assert STATUS in out[: torch.start()], out[: torch.start()][-2000:]


def test_run_erases_its_status_line_before_its_first_line(tmp_path):
    out = on_a_terminal(tmp_path, "run", *TINY)
    before = _before(out, b"Run folder :")
    assert STATUS in before and b"trainconsole: setting up the run" in before, before
    assert before.endswith(ERASE), "the line was erased before the run's first line"
    assert FRAMES.sub(b"", before) == b"", "nothing but the status line before the run's first line"
    after = out[len(before) :]
    assert b"trainconsole:" not in after, "no status line once the run has begun"


def test_env_erases_its_status_line_before_its_report(tmp_path):
    out = on_a_terminal(tmp_path, "env")
    before = _before(out, b"Python       :")
    assert STATUS in before and before.endswith(ERASE)
    assert FRAMES.sub(b"", before) == b""
    assert b"trainconsole:" not in out[len(before) :]


@pytest.mark.parametrize("command", [("run", *TINY), ("env",)], ids=["run", "env"])
def test_piped_commands_print_nothing_extra(tmp_path, command):
    done = _piped(tmp_path, *command)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert b"\x1b" not in done.stdout and b"trainconsole:" not in done.stdout


def test_json_on_a_terminal_is_the_events_alone(tmp_path):
    out = on_a_terminal(tmp_path, "run", "--json", *TINY)
    assert b"\x1b" not in out and b"\r" not in out.replace(b"\r\n", b"")
    events = [json.loads(line) for line in out.split(b"\r\n") if line]
    assert [e["type"] for e in events][0] == "RunStarted" and events[-1]["type"] == "RunFinished"
    assert all(e["type"] in EVENT_TYPES for e in events)


def test_run_processes_2_says_what_it_waits_for_until_rank_0_shows_the_run(tmp_path):
    out = on_a_terminal(tmp_path, "run", "--processes", "2", *TINY)
    before = _before(out, b"Run folder :")
    assert b"trainconsole: starting 2 processes" in before, before
    assert b"trainconsole: process 0 of 2: " in before, before  # rank 0 took the line over
    assert before.endswith(ERASE) and FRAMES.sub(b"", before) == b"", before
    assert b"trainconsole:" not in out[len(before) :], "no status line once the run has begun"


def test_ctrl_c_while_pytorch_loads_is_one_line_on_a_clean_line(tmp_path):
    out = on_a_terminal(tmp_path, "run", *TINY, ctrl_c_at=STATUS, exit_code=130)
    assert STATUS in out
    assert FRAMES.sub(b"", out) == b"trainconsole: interrupted\r\n", out[-3000:]  # no traceback, nothing left
