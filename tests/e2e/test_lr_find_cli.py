"""`trainconsole lr-find` through the real CLI: JSON, the text curve, a bad setting, a symlink at --png."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FEW = ("--set", "lr_find.steps=20", "--set", "device.device='cpu'", "--set", "device.threads=1")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def trainconsole(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The `trainconsole` script (the console's entry point, which draws the curve with plotext)."""
    script = Path(sys.executable).parent / "trainconsole"
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=_env())


def test_json_gives_the_points_the_suggestion_and_the_command(tmp_path):
    done = trainconsole(tmp_path, "lr-find", "--json", *FEW)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 10 <= len(result["points"]) <= 20
    assert set(result["points"][0]) == {"lr", "loss", "smoothed"}
    assert result["points"][0]["lr"] == pytest.approx(1e-7)
    assert result["stopped"] in ("completed", "diverged") and result["method"] == "steepest"
    lr = result["suggestion"]
    assert lr is not None and 1e-7 <= lr <= 10
    assert result["command"].endswith(f"--set training.lr={lr:.3g}")
    assert list(tmp_path.iterdir()) == [], "nothing written: no runs folder, no checkpoint"


def test_text_shows_the_curve_the_suggestion_and_the_command_and_png_writes_a_picture(tmp_path):
    settings = tmp_path / "mine.toml"
    settings.write_text("[training]\noptimizer = 'adam'\n")
    done = trainconsole(tmp_path, "lr-find", "-c", str(settings), *FEW, "--png", "curve.png")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("learning rate" in line for line in lines) and any("┤" in line for line in lines), "the plotext curve"
    assert "\x1b" not in done.stdout
    suggested = next(line for line in lines if line.startswith("suggested learning rate: "))
    lr = suggested.split(": ")[1].split()[0]
    command = lines[-2]  # the same settings file and --set values, the lr_find ones left out, and the rate
    assert command.startswith(f"trainconsole run -c {settings} --set ") and "device.threads=1" in command
    assert command.endswith(f" --set training.lr={lr}") and "lr_find" not in command
    assert lines[-1] == "curve.png"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    done = trainconsole(tmp_path, "lr-find", "--set", "lr_find.suggestion=steep")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "lr_find.suggestion = 'steep': unknown (did you mean 'steepest'?)" in done.stderr
    assert done.stdout == ""


def test_a_symlink_at_png_is_refused_and_its_target_unchanged(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "curve.png").symlink_to(target)
    done = trainconsole(tmp_path, "lr-find", *FEW, "--png", "curve.png")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert target.read_text() == "keep me" and (tmp_path / "curve.png").is_symlink()
