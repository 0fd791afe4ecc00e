"""How soon each command a newcomer types shows its first character (issue 25, "First hour").

    python benchmarks/first_char.py [--rounds 3] [--write]

A command that stays silent for a second looks hung; the goal is a first character in under 1 s each. Each command
runs as a newcomer types it: the installed `trainconsole` script, in a fresh folder without settings.toml (the
built-in defaults: digits), on a pseudo-terminal of 120x40 that is its controlling terminal, as in a terminal
window. Its time is from the fork to its first output byte, the median of the rounds; each round runs every
command once, in the order a newcomer types them. The commands that go on (lr-find, the console) are stopped at
their first byte; the others run to their end, so `checkpoints`, `eval` and `explain` find the run that `run` made.
--write puts the table into BENCHMARKS.md (section "First character"); BENCH_QUICK=1 makes it one round.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import fcntl
import os
import platform
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]
from report_section import REPORT, write_section  # noqa: E402 (benchmarks/ is the script's folder)

SECTION = "## First character"
SCRIPT = Path(sys.executable).parent / "trainconsole"
NEWEST_RUN = "RUN"  # stands for the run folder the last `run` made
TIMEOUT_S = 300.0
ROWS, COLS = 40, 120
ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


@dataclass(frozen=True)
class Command:
    typed: str  # as the table shows it
    args: tuple[str, ...]
    stop_at_first_byte: bool = False


COMMANDS = (
    Command("trainconsole --help", ("--help",)),
    Command("trainconsole env", ("env",)),
    Command("trainconsole run --set training.epochs=1", ("run", "--set", "training.epochs=1")),
    Command("trainconsole checkpoints", ("checkpoints",)),
    Command("trainconsole eval RUN", ("eval", NEWEST_RUN)),
    Command("trainconsole explain RUN", ("explain", NEWEST_RUN)),
    Command("trainconsole lr-find", ("lr-find",), stop_at_first_byte=True),
    Command("trainconsole (the console)", (), stop_at_first_byte=True),
)


@dataclass(frozen=True)
class Timing:
    first_byte_s: float | None  # None: it printed nothing
    ended_s: float | None  # None: stopped at its first byte
    exit_code: int
    output: str


def _child(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """In the forked child: the terminal's size, then the command; never returns."""
    try:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    finally:
        os._exit(127)


def _read(fd: int, timeout_s: float) -> bytes | None:
    """The next bytes of the terminal, b"" once every holder of its other end has closed it, None on a time-out."""
    ready, _, _ = select.select([fd], [], [], timeout_s)
    if not ready:
        return None
    try:
        return os.read(fd, 65536)
    except OSError as e:  # Linux answers EIO once the child side is closed
        if e.errno == errno.EIO:
            return b""
        raise


def measure(argv: list[str], cwd: Path, env: dict[str, str], stop_at_first_byte: bool) -> Timing:
    """Run argv on a new pseudo-terminal; the time to its first output byte and, unless stopped there, to its end."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        _child(argv, cwd, env)
    first, out, stopped = None, bytearray(), False
    try:
        while chunk := _read(fd, max(0.0, start + TIMEOUT_S - time.perf_counter())):
            if first is None:
                first = time.perf_counter() - start
            out += chunk
            if stop_at_first_byte and not stopped:
                os.kill(pid, signal.SIGTERM)  # as a closed window would (SIGHUP) or `kill`: it stops cleanly
                stopped = True
        if chunk is None:  # silent past the time-out
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(fd)
    ended = None if stop_at_first_byte else time.perf_counter() - start
    return Timing(first, ended, os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace"))


def first_line(output: str) -> str:
    """The first line of text a reader sees, without terminal escapes, for the table."""
    for line in ESCAPES.sub("", output).replace("\r", "\n").splitlines():
        if line.strip():
            return line.strip()[:70]
    return ""


def newest_run(folder: Path) -> str:
    runs = sorted((folder / "runs").iterdir(), key=lambda p: p.stat().st_mtime) if (folder / "runs").is_dir() else []
    return f"runs/{runs[-1].name}" if runs else "runs/missing"


def one_round(folder: Path, env: dict[str, str]) -> dict[str, Timing]:
    found = {}
    for command in COMMANDS:
        args = [newest_run(folder) if a == NEWEST_RUN else a for a in command.args]
        found[command.typed] = measure([str(SCRIPT), *args], folder, env, command.stop_at_first_byte)
        timing = found[command.typed]
        first = "nothing" if timing.first_byte_s is None else f"{timing.first_byte_s:.3f} s"
        print(f"  {command.typed}: first byte {first}, exit {timing.exit_code}", flush=True)
    return found


def _seconds(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "—"
    spread = f" ({min(known):.2f}–{max(known):.2f})" if len(known) > 1 else ""
    return f"{statistics.median(known):.2f} s{spread}" + ("" if len(known) == len(values) else " (some: never)")


def table(rounds: list[dict[str, Timing]]) -> list[str]:
    lines = [
        "| Command | First byte, median (min–max) | Under 1 s | Ended after, median | Exit | First line it shows |",
        "|---------|------------------------------|-----------|---------------------|------|---------------------|",
    ]
    for command in COMMANDS:
        timings = [found[command.typed] for found in rounds]
        firsts = [t.first_byte_s for t in timings]
        known = [f for f in firsts if f is not None]
        under = "yes" if known and len(known) == len(firsts) and statistics.median(known) < 1.0 else "**no**"
        ended = "stopped at its first byte" if command.stop_at_first_byte else _seconds([t.ended_s for t in timings])
        exits = ", ".join(sorted({str(t.exit_code) for t in timings}))
        shown = first_line(timings[0].output).replace("|", "\\|").replace("`", "'") or "(terminal set-up codes only)"
        lines.append(f"| `{command.typed}` | {_seconds(firsts)} | {under} | {ended} | {exits} | {shown} |")
    return lines


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "engine", "tui")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes in engine/ or tui/" if dirty else "")


def header(rounds: int, loads: tuple[float, float]) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return [
        SECTION,
        "",
        "<!-- written by `python benchmarks/first_char.py --write` -->",
        f"Commit {commit()}; {cpu or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.date.today()}; 1-minute load {loads[0]:.2f} at start, {loads[1]:.2f} at the end (a shared machine: "
        "other processes take its cores at times).",
        "Each command as a newcomer types it (the installed script, a fresh folder without settings.toml: digits, "
        f"the defaults), on a {COLS}x{ROWS} pseudo-terminal: the time from the fork to its first output byte, "
        f"{rounds} round(s) of every command in this order (median, min–max). The goal is under 1 s each: a silent "
        "command looks hung. RUN is the folder the round's `run` made. The walk-through with their output: "
        "docs/first-hour.md.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of every command (the median is reported)")
    p.add_argument("--write", action="store_true", help=f"write the table into {REPORT.name}")
    args = p.parse_args(argv)
    rounds = 1 if os.environ.get("BENCH_QUICK") == "1" else args.rounds
    if not SCRIPT.exists():
        p.error(f"{SCRIPT} is missing: install the project first (make run)")
    env = {**os.environ, "TERM": "xterm-256color", "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("COLUMNS", "LINES"):  # the pseudo-terminal gives the size
        env.pop(name, None)
    load = os.getloadavg()[0]
    found = []
    for i in range(rounds):
        print(f"round {i + 1} of {rounds}", flush=True)
        with tempfile.TemporaryDirectory(prefix="trainconsole-first-char-") as tmp:
            found.append(one_round(Path(tmp), env))
    text = "\n".join([*header(rounds, (load, os.getloadavg()[0])), *table(found), ""])
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
