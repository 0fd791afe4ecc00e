"""Runs that outlive the terminal: attaching to a long run, and a detached run's speed while a console watches it.

    .venv/bin/python benchmarks/attach.py [--epochs 1000] [--paints 3] [--rounds 3] [--quick]

(a) A detached run trains ~1,000 short epochs (digits, `model.hidden=[8]`, batch 256) and is paused with
`trainconsole pause`. The console, in a 120×40 tmux pane, lists it on the checkpoints screen; the clock runs from
`tmux send-keys a` until the pane shows the last epoch's row (tmux polled every ~5 ms), as `make bench` times its
keys. Then the same from starting `trainconsole attach RUN` in a new pane (Python, imports and all).
(b) The chapter's MLP on the benchmark's MNIST-shaped data (batch 64, `val_fraction = 0`): `trainconsole run`
headless against `trainconsole run --detach` with `trainconsole attach` watching from a tmux pane, in alternating
rounds; each run's samples/s is the median over its epochs after the first (EpochCompleted.samples_per_s).

Prints the figures and the machine's load; writes nothing (BENCHMARKS.md's section is edited by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mnist_files import write_mnist  # noqa: E402

from engine.runs.folder import read_jsonl  # noqa: E402

TRAINCONSOLE = Path(sys.executable).with_name("trainconsole")
ENV = {**os.environ, "TERM": "xterm-256color"}


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def row_shown(screen: str, epoch: int) -> bool:
    """The training screen's epoch table shows the row of `epoch` (a paused run's status line says Paused)."""
    return "train loss" in screen and any(
        line.split()[:1] == [str(epoch)] and "%" in line for line in screen.splitlines()
    )


class Tmux:
    def __init__(self) -> None:
        self.base = ["tmux", "-L", f"trainconsole-attach-{os.getpid()}"]

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.base + list(args), capture_output=True, text=True, env=ENV)

    def new(self, name: str, cwd: Path, command: str) -> None:
        self("new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-c", str(cwd), command).check_returncode()

    def wait(self, name: str, shown, limit: float = 60.0) -> float:
        """Seconds until the pane shows what `shown` looks for (tmux polled every ~5 ms)."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            if shown(self("capture-pane", "-p", "-t", name).stdout):
                return time.perf_counter() - start
            time.sleep(0.005)
        screen = self("capture-pane", "-p", "-t", name).stdout
        raise RuntimeError(f"pane {name}: not shown within {limit:.0f} s; it shows:\n{screen}")

    def kill(self, name: str) -> None:
        self("kill-session", "-t", name)

    def close(self) -> None:
        self("kill-server")


def kill_run(run_dir: Path) -> None:
    """The detached process of run_dir, if it still lives (a benchmark leaves nothing training)."""
    try:
        pid = json.loads((run_dir / "status.json").read_text())["pid"]
        os.kill(pid, 9)
    except (OSError, ValueError, KeyError):
        pass


def long_history(tmp: Path, epochs: int) -> tuple[Path, int]:
    """A detached run paused after at least `epochs` epochs: its folder and its last epoch."""
    (tmp / "long.toml").write_text(
        f'[run]\nruns_dir = "{tmp / "runs"}"\nname = "long"\nseed = 0\n[device]\ndevice = "cpu"\nthreads = 1\n'
        f"[data]\nbatch_size = 256\n[model]\nhidden = [8]\n[training]\nepochs = {epochs * 100}\n",
        encoding="utf-8",
    )
    started = cli("run", "--detach", "--json", "-c", "long.toml", cwd=tmp)
    started.check_returncode()
    run_dir = Path(json.loads(started.stdout)["run_dir"])
    begin = time.perf_counter()
    while len(list(read_jsonl(run_dir / "metrics.jsonl"))) < epochs:
        if time.perf_counter() - begin > 900:
            raise RuntimeError(f"{run_dir}: fewer than {epochs} epochs in 15 minutes")
        time.sleep(0.5)
    cli("pause", str(run_dir), cwd=tmp).check_returncode()
    last = list(read_jsonl(run_dir / "metrics.jsonl"))[-1]["epoch"]
    print(f"[--] {run_dir.name}: paused after epoch {last} ({time.perf_counter() - begin:.0f} s)", file=sys.stderr)
    return run_dir, last


def attach_paint(tmp: Path, tmux: Tmux, run_dir: Path, last: int, paints: int, visit: bool = False) -> dict:
    """(a): seconds from the `a` key to the last epoch's row, and from starting `trainconsole attach`.

    `visit`: the training screen is shown once before (3, then 4), so that its first composition is not timed.
    """
    console = shlex.join([str(TRAINCONSOLE), "-c", "long.toml"])
    after_key, from_start = [], []
    for i in range(paints):
        tmux.new(f"a{i}", tmp, console)
        tmux.wait(f"a{i}", lambda text: "Environment" in text and "Quit" in text)
        if visit:
            tmux("send-keys", "-t", f"a{i}", "3")
            tmux.wait(f"a{i}", lambda text: "No run yet" in text)
        tmux("send-keys", "-t", f"a{i}", "4")
        tmux.wait(f"a{i}", lambda text: run_dir.name in text and "paused" in text)
        time.sleep(1.0)  # the screen settles (its table filled, its first draw done) before the clock starts
        start = time.perf_counter()
        tmux("send-keys", "-t", f"a{i}", "a")
        tmux.wait(f"a{i}", lambda text: row_shown(text, last))
        after_key.append(time.perf_counter() - start)
        tmux.kill(f"a{i}")

        start = time.perf_counter()
        tmux.new(f"c{i}", tmp, shlex.join([str(TRAINCONSOLE), "attach", str(run_dir)]))
        tmux.wait(f"c{i}", lambda text: row_shown(text, last))
        from_start.append(time.perf_counter() - start)
        tmux.kill(f"c{i}")
    print(f"[--] after a: {', '.join(f'{t:.3f} s' for t in after_key)}", file=sys.stderr)
    print(f"[--] from attach's start: {', '.join(f'{t:.2f} s' for t in from_start)}", file=sys.stderr)
    return {"epochs": last, "after_key_s": after_key, "from_start_s": from_start}


def steady_rate(run_dir: Path) -> float:
    epochs = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "EpochCompleted"]
    return statistics.median(e["samples_per_s"] for e in epochs[1:])


def watched_vs_headless(tmp: Path, tmux: Tmux, rounds: int, epochs: int, train: int) -> dict:
    """(b): samples/s of a headless run and of a detached run with one console attached, alternating."""
    root = tmp / "data"
    if not (root / "MNIST").exists():
        write_mnist(root, train=train, test=train // 6)
    (tmp / "mnist.toml").write_text(
        f'[run]\nruns_dir = "{tmp / "runs"}"\nseed = 0\n[device]\ndevice = "cpu"\n'
        f'[data]\ndataset = "mnist"\nroot = "{root}"\nbatch_size = 64\nval_fraction = 0.0\n'
        f"[training]\nepochs = {epochs}\n",
        encoding="utf-8",
    )
    headless, watched = [], []
    for i in range(rounds):
        done = cli("run", "-c", "mnist.toml", "--set", f"run.name=headless-{i}", cwd=tmp)
        done.check_returncode()
        headless.append(steady_rate(tmp / "runs" / f"headless-{i}"))
        print(f"[{i}] headless {headless[-1]:,.0f} samples/s", file=sys.stderr, flush=True)

        started = cli("run", "--detach", "--json", "-c", "mnist.toml", "--set", f"run.name=watched-{i}", cwd=tmp)
        started.check_returncode()
        run_dir = Path(json.loads(started.stdout)["run_dir"])
        try:
            tmux.new(f"w{i}", tmp, shlex.join([str(TRAINCONSOLE), "attach", str(run_dir)]))
            tmux.wait(f"w{i}", lambda text: any(w in text for w in ("Attached", "Running", "Run finished")), 120)
            waited = cli("wait", str(run_dir), cwd=tmp)
            if waited.returncode != 0:
                raise RuntimeError(waited.stderr)
            screen = tmux("capture-pane", "-p", "-t", f"w{i}").stdout
            if not row_shown(screen, epochs):  # the console followed it to the end
                raise RuntimeError(f"the attached console did not show epoch {epochs}:\n{screen}")
        finally:
            tmux.kill(f"w{i}")
            kill_run(run_dir)
        watched.append(steady_rate(run_dir))
        print(f"[{i}] detached, attached {watched[-1]:,.0f} samples/s", file=sys.stderr, flush=True)
    ratios = [w / h for w, h in zip(watched, headless)]
    return {"headless": headless, "watched": watched, "ratios": ratios, "ratio": statistics.median(ratios)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1000, help="(a): the history's length")
    p.add_argument("--paints", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="(b): headless/attached pairs (0: none)")
    p.add_argument("--visit", action="store_true", help="(a): show the training screen once before the key")
    p.add_argument("--quick", action="store_true", help="a smoke run: 100 epochs, 1 paint, 1 small round")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.paints, args.rounds = 100, 1, 1
    out: dict = {"load_at_start": os.getloadavg(), "cores": os.cpu_count()}
    tmux = Tmux()
    with tempfile.TemporaryDirectory(prefix="trainconsole-attach-") as name:
        tmp = Path(name)
        run_dir = None
        try:
            run_dir, last = long_history(tmp, args.epochs)
            out["attach"] = attach_paint(tmp, tmux, run_dir, last, args.paints, args.visit)
            kill_run(run_dir)
            if args.rounds:
                out["throughput"] = watched_vs_headless(
                    tmp, tmux, args.rounds, 3 if args.quick else 5, 12_000 if args.quick else 60_000
                )
        finally:
            tmux.close()
            if run_dir is not None:
                kill_run(run_dir)
    out["load_at_end"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
