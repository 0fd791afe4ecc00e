"""The CLI's commands for runs in other processes: start one detached, stop, pause or resume it, wait for it.

    trainconsole run --detach [--json] ...   start in its own session; print the run's name, folder and pid
    trainconsole stop|pause|resume [RUN]     send the command; wait for the run to acknowledge it
    trainconsole wait RUN                    block until the run ends; exit with its code (0, 1, 130)
    trainconsole attach [RUN]                open the console on the run (tui.cli opens it)

RUN is a run folder or the name of one in runs_dir; without it, the newest running run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from engine.cli.exits import EXIT_ALREADY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.events import RunFailed, RunFinished
from engine.runs.folder import RunFolderError
from engine.runs.records import read_events
from engine.io.text import printable, shown_path

ACK_TIMEOUT_S = 30.0
SETTINGS_ERRORS = ("SettingsError", "DataError", "CheckpointError", "RunFolderError", "UntrustedCode")


def add_parsers(subparsers) -> None:
    """attach, stop, pause, resume and wait: each names a run, or takes the newest running one."""
    at = subparsers.add_parser("attach", help="open the console on a run in progress (default: the newest running run)")
    at.add_argument("run", nargs="?", default=None, help="a run folder, or a run's name in runs_dir")
    at.add_argument("--runs-dir", default=None, help="default: run.runs_dir of the settings")
    for name, what in (
        ("stop", "stop a run at the next batch boundary, last.pth saved"),
        ("pause", "pause a run"),
        ("resume", "resume a paused run"),
        ("wait", "wait until a run ends; exit with its code"),
    ):
        cmd = subparsers.add_parser(name, help=what)
        cmd.add_argument(
            "run", nargs="?", default=None, help="a run folder or a run's name (default: the newest running)"
        )
        cmd.add_argument("--runs-dir", default=None, help="default: run.runs_dir of the settings")


def detached_args(args, resume_from: Path | None = None) -> list[str]:
    """`run`'s own arguments for the detached process: the same run, minus --detach and --json.

    `resume_from`: the checkpoint `--resume` was resolved to, passed on as it is.
    """
    out = []
    config = getattr(args, "config_run", None) or args.config
    if config:
        out += [
            "-c",
            str(Path(config).resolve()),
        ]  # the process starts in the same folder; a resolved path reads as well
    for text in args.overrides:
        out += ["--set", text]
    # the checkpoint as the user named it (the process starts in this folder): its run folder, which the run
    # records and every line shows, stays relative when they gave it relative
    if resume_from is not None:
        out += ["--resume", str(resume_from)]
    elif args.resume:
        out += ["--resume", args.resume]
    for path in args.allowed:
        out += ["--allow-import", path]
    return out


def start_detached(args, settings, resume_from: Path | None) -> int:
    """The settings were checked (a bad file stopped before this); the run folder is made here, the process started."""
    from engine.runs.commands import is_running
    from engine.runs.detach import spawn_detached
    from engine.runs.folder import check_run_folder, create_run_dir
    from engine.settings.defaults import run_name

    if resume_from is not None:
        run_dir = resume_from.parent.parent
        check_run_folder(run_dir)
        if is_running(run_dir):  # its lock would refuse the new process, after this one had said it started
            raise RunFolderError(f"{run_dir}: another process is training in this run folder")
    else:
        run_dir = create_run_dir(settings.run.runs_dir, run_name(settings))
    process = spawn_detached(detached_args(args), run_dir)
    facts = {"name": run_dir.name, "run_dir": str(run_dir), "pid": process.pid}
    if args.json:
        print(json.dumps(facts))
    else:
        print(f"Run        : {run_dir.name} (detached, process {process.pid})")
        shown = shown_path(run_dir)
        print(f"Run folder : {shown}")
        print(f"Follow it  : trainconsole attach {shown}   (stop, pause, resume, wait: the same argument)")
    sys.stdout.flush()
    return EXIT_OK


def _run_dir(args) -> Path:
    from engine.runs.detach import find_run
    from engine.settings.config import load_settings

    runs_dir = args.runs_dir or load_settings(_own_settings(args)).run.runs_dir
    run_dir = find_run(args.run, runs_dir)
    if args.run is None:  # picked for the user: say which (and when it is a sweep's trial)
        in_sweep = (run_dir.parent / "sweep.toml").is_file()
        trial = f" (a trial of the sweep {printable(run_dir.parent.name)})" if in_sweep else ""
        print(f"trainconsole: {args.command}: the newest running run, {shown_path(run_dir)}{trial}", file=sys.stderr)
    return run_dir


def _own_settings(args) -> str | None:
    path = args.config or "settings.toml"
    return path if Path(path).is_file() else None


def cmd_command(args) -> int:
    """stop, pause or resume a running run, and wait for its acknowledgment."""
    from engine.runs.commands import NotRunning, send_command, wait_for_ack

    run_dir = _run_dir(args)
    shown = shown_path(run_dir)
    try:
        command_id = send_command(run_dir, args.command, by="cli")
    except NotRunning as e:
        print(f"trainconsole: {printable(e)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as e:
        raise RunFolderError(f"cannot send {args.command} to {run_dir}: {e.strerror or e}") from None
    ack = wait_for_ack(run_dir, command_id, ACK_TIMEOUT_S)
    if ack is None:
        print(f"trainconsole: {shown} did not acknowledge {args.command} (it ended, or is stuck)", file=sys.stderr)
        return EXIT_FAILED
    if not ack.changed:  # paused when told to pause, running when told to resume: the run is as asked already
        print(f"trainconsole: run {shown} is {printable(ack.detail)}", file=sys.stderr)
        return EXIT_ALREADY
    print(f"{shown}: {printable(ack.detail)}")
    return EXIT_OK


def exit_code(run_dir: Path) -> tuple[int, str]:
    """The exit code the run's process had (or would have had), and a line saying why."""
    shown = shown_path(run_dir)
    found = read_events(run_dir / "events.jsonl")
    if found.note():
        print(f"trainconsole: {printable(found.note())}", file=sys.stderr)
    final = None
    for event in found.items:
        if isinstance(event, (RunFinished, RunFailed)):
            final = event
    if final is None:
        return EXIT_FAILED, f"{shown}: interrupted (its process ended without finishing); --resume continues it"
    if isinstance(final, RunFailed):
        code = EXIT_USAGE if final.error_type in SETTINGS_ERRORS and not final.epoch else EXIT_FAILED
        return code, f"{shown}: failed: {printable(final.error)}"
    code = {"completed": EXIT_OK, "early_stopped": EXIT_OK, "stopped": EXIT_INTERRUPTED}.get(final.status, EXIT_FAILED)
    return code, f"{shown}: {final.status}: {printable(final.reason)}"


def cmd_wait(args) -> int:
    """Block until the run ends; its exit code."""
    from engine.runs.commands import is_running

    run_dir = _run_dir(args)
    while is_running(run_dir):
        time.sleep(0.2)
    time.sleep(0.05)  # the last event is written before the lock goes; this only spares a reread on slow disks
    code, line = exit_code(run_dir)
    print(line, file=sys.stderr if code else sys.stdout)
    return code


def record_setup_failure(run_dir: Path, error: Exception) -> None:
    """A detached run's set-up failed (no one sees its stderr): its folder records why, for `wait` and the lists."""
    from engine.runs.folder import RunRecorder

    try:
        recorder = RunRecorder(run_dir)
        recorder.on_event(RunFailed(f"{type(error).__name__}: {error}", type(error).__name__, "", str(run_dir), 0))
        recorder.close()
    except Exception:
        pass  # a folder that cannot be written: its output.log has the error
