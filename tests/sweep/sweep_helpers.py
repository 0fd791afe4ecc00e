"""What the sweep tests share: a tiny digits sweep file, the CLI in a subprocess, waiting for a condition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]


def sweep_file(tmp_path: Path, space: str, *, trials: int, epochs: int = 2, sweep: str = "",
               name: str = "tiny") -> Path:
    """A settings file of a digits sweep: a small mlp on one CPU thread, runs in tmp_path/runs."""
    path = tmp_path / "sweep.toml"
    path.write_text(f"""
[run]
name = "{name}"
runs_dir = "{tmp_path / 'runs'}"
seed = 0
[device]
device = "cpu"
threads = 1
[model]
hidden = [32]
[training]
epochs = {epochs}
[diagnostics]
probes = false
[sweep]
trials = {trials}
{sweep}
[sweep.space]
{space}
""", encoding="utf-8")
    return path


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def start_sweep(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "sweep", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sweep(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`trainconsole sweep ARGS` to its end."""
    return subprocess.run([sys.executable, "-m", "engine", "sweep", *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file that may be being appended to."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("\n")]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_starts(run_dir: Path) -> list[dict]:
    return [e for e in read_jsonl(run_dir / "events.jsonl") if e.get("type") == "RunStarted"]
