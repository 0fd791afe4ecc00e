"""The status line of engine.cli.spinner: on a terminal only, erased before any other output, on an exception, on
Ctrl-C and when the command ends; handed over by a launcher to rank 0."""

from __future__ import annotations

import argparse
import sys
import threading
import time

import pytest

from engine.cli import spinner
from engine.io.text import TerminalStream

ERASE = "\r\x1b[K"


class _Stream:
    """A stream that records what is written; `tty`: whether it says it is a terminal."""

    encoding = "utf-8"

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""
        self.lock = threading.Lock()

    def isatty(self):
        return self.tty

    def write(self, text):
        with self.lock:
            self.text += text
        return len(text)

    def flush(self):
        pass


@pytest.fixture
def streams(monkeypatch):
    """A `use()` that makes stdout piped and stderr a terminal, as TerminalStreams (as engine.cli.main sets them).

    Called in the test itself: pytest's own capture puts its streams back between a fixture and the test."""
    out, err = _Stream(False), _Stream(True)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv(spinner.HANDOFF_ENV, raising=False)

    def use(stderr: _Stream = err):
        monkeypatch.setattr(sys, "stdout", TerminalStream(out))
        monkeypatch.setattr(sys, "stderr", TerminalStream(stderr))
        return out, stderr

    return use


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def _spinner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "trainconsole-status"]


def test_the_line_is_drawn_at_once_and_erased_before_the_first_output(streams):
    out, err = streams()
    with spinner.showing("loading PyTorch"):
        assert err.text.startswith(ERASE) and "trainconsole: loading PyTorch..." in err.text  # before anything slow
        spinner.say("setting up the run")
        assert err.text.rsplit(ERASE, 1)[-1].endswith("trainconsole: setting up the run...")
        print("Run folder : runs/x")
        assert err.text.endswith(ERASE), "erased before the output"
        drawn = err.text
        spinner.say("not shown: output has begun")
        assert err.text == drawn and not _spinner_threads()
    assert out.text == "Run folder : runs/x\n"
    assert err.text == drawn  # nothing more at the end: the line was erased once


def test_an_error_message_on_stderr_erases_the_line_first(streams):
    _, err = streams()
    with spinner.showing("loading PyTorch"):
        print("trainconsole: error: bad", file=sys.stderr)
    assert err.text.endswith(ERASE + "trainconsole: error: bad\n")


@pytest.mark.parametrize("raised", [RuntimeError("a bug"), KeyboardInterrupt()])
def test_an_exception_or_ctrl_c_erases_the_line_and_puts_the_streams_back(streams, raised):
    out, err = streams()
    before = sys.stdout, sys.stderr
    with pytest.raises(type(raised)):
        with spinner.showing("loading PyTorch"):
            raise raised
    assert err.text.endswith(ERASE) and not _spinner_threads()
    assert (sys.stdout, sys.stderr) == before


def test_the_line_turns_while_nothing_else_is_written(streams):
    _, err = streams()
    with spinner.showing("loading PyTorch"):
        _wait_until(lambda: err.text.count(ERASE) >= 3, "two more frames")
        frames = {chunk[0] for chunk in err.text.split(ERASE) if chunk}
    assert len(frames) >= 2, err.text  # the frame changes: the command is alive


def test_nothing_is_written_when_stderr_is_not_a_terminal(streams):
    _, piped = streams(_Stream(False))
    streams_before = sys.stdout, sys.stderr
    with spinner.showing("loading PyTorch"):
        assert (sys.stdout, sys.stderr) == streams_before
        spinner.say("setting up the run")
        print("x", file=sys.stderr)
    assert piped.text == "x\n" and not _spinner_threads()


def test_json_and_the_console_show_no_line():
    def args(command, **kw):
        return argparse.Namespace(command=command, **kw)

    assert spinner.first_status(args("run", json=True)) is None
    assert spinner.first_status(args("env", json=True)) is None
    assert spinner.first_status(args(None)) is None and spinner.first_status(args("view")) is None
    assert spinner.first_status(args("run", json=False)) == "loading PyTorch"
    assert spinner.first_status(args("env", json=False)) == "loading PyTorch"


def test_workers_other_than_rank_0_show_nothing(monkeypatch, streams):
    _, err = streams()
    monkeypatch.setenv("RANK", "1")
    with spinner.showing("loading PyTorch"):
        pass
    assert err.text == ""


def test_rank_0_takes_the_line_over_from_its_launcher(monkeypatch, streams):
    _, err = streams()
    with spinner.showing("starting 2 processes"):
        with spinner.handed_over():
            handoff = spinner.os.environ[spinner.HANDOFF_ENV]
            launcher = spinner._shown
            # rank 0, started with this environment, shows its own line: the launcher's is erased
            monkeypatch.setenv("RANK", "0")
            monkeypatch.setenv("WORLD_SIZE", "2")
            spinner._take_over_from_launcher()
            _wait_until(lambda: not launcher.shown, "the launcher's line erased")
            assert err.text.endswith(ERASE)
            assert spinner.HANDOFF_ENV not in spinner.os.environ  # rank 0's own children are not told
        assert spinner.HANDOFF_ENV not in spinner.os.environ
    assert not spinner.os.path.exists(handoff)  # the hand-over's folder is removed
    assert not _spinner_threads()


def test_a_worker_of_several_says_whose_line_it_is(monkeypatch, streams):
    _, err = streams()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with spinner.showing("loading PyTorch"):
        assert "trainconsole: process 0 of 2: loading PyTorch..." in err.text


@pytest.mark.parametrize(
    "argv",
    [
        ["/venv/bin/trainconsole"],  # the console: it paints its own screen
        ["/venv/bin/trainconsole", "run", "--json"],
        ["/venv/bin/trainconsole", "env", "--help"],
        ["/venv/bin/pytest", "run"],  # another program that imports engine.cli
    ],
)
def test_no_early_line_where_a_command_shows_none_or_the_program_is_not_ours(streams, argv):
    _, err = streams()
    spinner.start_early(argv)
    assert err.text == "" and spinner._shown is None


@pytest.mark.parametrize("entry", ["/venv/bin/trainconsole", "/src/engine/__main__.py"])
def test_the_early_line_goes_on_as_the_command_s_own(streams, entry):
    """Drawn before the commands' modules load; the command's `showing` changes its text, and ends it."""
    out, err = streams()
    spinner.start_early([entry, "run", "--set", "training.epochs=1"])
    assert "trainconsole: starting..." in err.text
    early = spinner._shown
    with spinner.showing("loading PyTorch"):
        assert spinner._shown is early and len(_spinner_threads()) == 1
        assert err.text.endswith("trainconsole: loading PyTorch...")
    assert err.text.endswith(ERASE) and not _spinner_threads()
    print("after")
    assert out.text == "after\n"


def test_the_early_line_is_erased_for_a_command_that_shows_none(streams):
    _, err = streams()
    spinner.start_early(["/venv/bin/trainconsole", "view", "runs/x"])
    with spinner.showing(None):  # the console opens: nothing of the line is left under it
        assert err.text.endswith(ERASE) and not _spinner_threads()
