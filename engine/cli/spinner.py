"""The status line a command shows on stderr while it has nothing else to show: PyTorch loading, processes starting.

Only on a terminal, and never with --json: piped, nothing is written. The line is drawn at once, turns about ten
times a second, and is erased ("\\r", erase line) before the first other write to stdout or stderr, when the
command ends, on an exception and on Ctrl-C: no trace is left on the line. This module imports no torch: it runs
before torch does.

`run --processes N`: the launcher's line says what it waits for until rank 0's own takes it over (HANDOFF_ENV);
the other ranks show none, their terminal being rank 0's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Iterator, TextIO

from engine.io.text import TerminalStream

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
FRAME_S = 0.1
ERASE_LINE = "\r\x1b[K"
# set by a launcher whose line rank 0 takes over: the file rank 0 creates when it shows its own
HANDOFF_ENV = "TRAINCONSOLE_STATUS_HANDOFF"

_shown: Spinner | None = None  # the line of this process, while one is shown


class Spinner:
    """One status line on `stream` (a terminal): `say` changes its text, `stop` erases it; both thread-safe."""

    def __init__(self, stream: TextIO, text: str, handoff: Path | None = None, within: str = ""):
        self.stream, self.text, self.handoff = stream, text, handoff
        self.within = within  # whose line it is, where that needs saying ("process 0 of 2: ")
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.frames = FRAMES if encoding == "utf8" else ASCII_FRAMES
        self._frame = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._draw()  # the first frame now, before whatever slow thing the command starts next
        self._thread = threading.Thread(target=self._turn, name="trainconsole-status", daemon=True)
        self._thread.start()

    @property
    def shown(self) -> bool:
        return not self._stopped.is_set()

    def say(self, text: str) -> None:
        self.text = text
        self._draw()

    def stop(self) -> None:
        """Erase the line and end the thread; again changes nothing."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            self._write(ERASE_LINE)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _turn(self) -> None:
        while not self._stopped.wait(FRAME_S):
            if self.handoff is not None and self.handoff.exists():  # rank 0 shows its own line now
                self.stop()
                return
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            frame = self.frames[self._frame % len(self.frames)]
            self._frame += 1
            line = f"{frame} trainconsole: {self.within}{self.text}..."
            if not self._write(ERASE_LINE + line[: _columns(self.stream) - 1]):  # a wrapped line could not be erased
                self._stopped.set()  # the terminal has gone: nothing more to draw, nor to erase

    def _write(self, text: str) -> bool:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            return False
        return True


class _ErasingFirst(TerminalStream):
    """stdout or stderr while the line is shown: whatever is written erases the line first, then goes through."""

    def __init__(self, stream: TextIO, spinner: Spinner):
        super().__init__(stream)
        self.spinner = spinner

    def write(self, text: str) -> int:
        if text and self.spinner.shown:
            self.spinner.stop()
        return super().write(text)

    def write_control(self, sequence: str) -> None:
        if self.spinner.shown:
            self.spinner.stop()
        super().write_control(sequence)


def first_status(args) -> str | None:
    """What a command does first, or None where it shows nothing: --json, and the console and `view`, which paint
    their own screen at once."""
    if args.command in (None, "attach", "view") or getattr(args, "json", False):
        return None
    return "loading PyTorch"


def start_early(argv: list[str] | None = None) -> None:
    """The line at once, before the commands' modules load (half a second on a busy machine), for a command of
    `trainconsole` or `python -m engine` (never another program that imports engine.cli): "starting".

    Before the arguments are parsed, so only the plain cases are left out (no arguments: the console; --json;
    --help); `showing` then goes on with it or erases it (the console, `view`), and any output erases it first.
    """
    argv = sys.argv if argv is None else argv
    entry = argv[0] if argv else ""
    ours = Path(entry).name == "trainconsole" or entry.endswith(os.path.join("engine", "__main__.py"))
    if ours and len(argv) > 1 and not {"--json", "-h", "--help"} & set(argv[1:]):
        _start("starting")


@contextlib.contextmanager
def showing(text: str | None) -> Iterator[None]:
    """While inside: `text` on stderr's status line, when stderr is a terminal and `text` is not None (a line
    start_early drew is erased, or goes on with `text`).

    sys.stdout and sys.stderr erase the line before their first write. A worker of `run --processes N` other than
    rank 0 shows nothing.
    """
    global _shown
    if text is None:
        stop()
        _shown = None
        yield
        return
    streams = None
    if _shown is not None and _shown.shown:
        _shown.say(text)
    else:
        streams = _start(text)
    try:
        yield
    finally:
        stop()
        _shown = None
        if streams is not None:
            sys.stdout, sys.stderr = streams


def _start(text: str) -> tuple[TextIO | None, TextIO | None] | None:
    """Show the line where stderr is a terminal: sys.stdout and sys.stderr erase it before their first write.
    The streams they replaced; None where no line is shown."""
    global _shown
    err = sys.stderr
    if err is None or not _is_terminal(err) or os.environ.get("RANK", "0") != "0":
        return None
    _take_over_from_launcher()
    processes = os.environ.get("WORLD_SIZE", "1")  # a torchrun worker's
    within = f"process 0 of {processes}: " if processes.isdigit() and int(processes) > 1 else ""
    spinner = Spinner(_raw(err), text, within=within)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None else _ErasingFirst(_raw(s), spinner) for s in streams)
    _shown = spinner
    atexit.register(spinner.stop)  # whatever ends the process: nothing is left on the line
    return streams


def say(text: str) -> None:
    """The status line's new text, where one is shown (else nothing: piped, --json, or output has begun)."""
    if _shown is not None and _shown.shown:
        _shown.say(text)


def stop() -> None:
    """Erase the status line now, where one is shown."""
    if _shown is not None:
        _shown.stop()


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """While inside, a process started with this environment (rank 0 of torchrun's workers) takes the line over:
    this process's line stays until that one is shown, then is erased."""
    if _shown is None or not _shown.shown:
        yield
        return
    import tempfile  # here: it takes a while to import, and only a launcher needs it

    with tempfile.TemporaryDirectory(prefix="trainconsole-status-") as folder:
        _shown.handoff = Path(folder) / "taken"
        os.environ[HANDOFF_ENV] = str(_shown.handoff)
        try:
            yield
        finally:
            os.environ.pop(HANDOFF_ENV, None)
            stop()


def _take_over_from_launcher() -> None:
    """Rank 0 of `run --processes N`: tell the launcher its line is now this one."""
    handoff = os.environ.pop(HANDOFF_ENV, None)
    if handoff:
        with contextlib.suppress(OSError):
            Path(handoff).touch()


def _raw(stream: TextIO) -> TextIO:
    return stream.stream if isinstance(stream, TerminalStream) else stream


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size().columns
