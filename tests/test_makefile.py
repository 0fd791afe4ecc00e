"""`make run` on a clean clone says what its first set-up does, and later calls install nothing unless
pyproject.toml changed. Python is a stub here: `-m venv` makes a .venv whose python logs what pip is asked."""

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRST_SET_UP = "first set-up: installing PyTorch and the rest into .venv, about 2 minutes and 6 GB"
SET_UP_DONE = "set-up done: the command is .venv/bin/trainconsole (or `source .venv/bin/activate`, then trainconsole)"

STUB_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "python $*" >> "$(dirname "$0")/../calls.log"\\n' > "$3/bin/python"
  printf '#!/bin/sh\\necho "the console opens"\\n' > "$3/bin/trainconsole"
  chmod +x "$3/bin/python" "$3/bin/trainconsole"
fi
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def clone(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    python = tmp_path / "python3-stub"
    python.write_text(STUB_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def make_run(folder: Path) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "run", f"PYTHON={folder / 'python3-stub'}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pip_calls(folder: Path) -> list[str]:
    log = folder / ".venv" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_first_set_up_says_so_and_where_the_command_is(clone):
    out = make_run(clone)
    lines = out.splitlines()
    assert lines[0] == FIRST_SET_UP  # before the venv and pip, which take minutes
    assert lines.index(SET_UP_DONE) < lines.index("the console opens")
    assert pip_calls(clone) == ["python -m pip install --quiet --upgrade pip", "python -m pip install -e .[test]"]


def test_a_second_call_installs_nothing_and_a_changed_pyproject_reinstalls_quietly(clone):
    make_run(clone)
    again = make_run(clone)
    assert again.splitlines()[-1] == "the console opens"
    assert FIRST_SET_UP not in again and SET_UP_DONE not in again and "pip install" not in again
    assert len(pip_calls(clone)) == 2

    past = time.time() - 60  # the stamp older than pyproject.toml: as after a pull that changed it
    os.utime(clone / ".venv" / ".installed", (past, past))
    changed = make_run(clone)
    assert "pip install -e" in changed and FIRST_SET_UP not in changed and SET_UP_DONE not in changed
    assert pip_calls(clone)[2:] == ["python -m pip install -e .[test]"]
