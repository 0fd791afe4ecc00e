"""Names from files reach the terminal as text, never as escape sequences (issue 21): the real CLI in a subprocess,
on a run folder copied in under a hostile name and on a run named so with --set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
TINY = ["--set", "training.epochs=1", "--set", "device.device='cpu'", "--set", "device.threads=1"]
# a window title, the clipboard through OSC 52, CSI colours and erase-screen (C1), markup, mathtext, a bidi override;
# a folder's name (no "/": the closing tags of markup are the console tests')
HOSTILE = (
    "\x1b]0;pwned\x07 \x1b]52;c;ZWNobyBoaQ==\x07 \x1b[31mred\x1b[0m \x9b2J [bold]b [link=file:x]l $x^{$ \u202eevil"
)
HOSTILE_TOML = json.dumps(HOSTILE)  # a TOML basic string: JSON's \u escapes read the same


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def tc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, capture_output=True, timeout=240, env=_env())
    return done


def unsafe(output: bytes) -> list[str]:
    """The code points of `output` a terminal could act on: C0 but newline and tab, DEL, C1, bidi and format
    characters, undecodable bytes."""
    text = output.decode("utf-8", errors="surrogateescape")
    return sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        }
    )


def assert_clean(done: subprocess.CompletedProcess) -> None:
    assert unsafe(done.stdout) == [] and unsafe(done.stderr) == [], (done.stdout, done.stderr)


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory) -> Path:
    """runs/ holding one finished run under a plain name and the same folder copied in under HOSTILE."""
    home = tmp_path_factory.mktemp("hostile")
    done = tc(home, "run", *TINY)
    assert done.returncode == 0, done.stderr
    shutil.copytree(home / "runs" / "digits-mlp", home / "runs" / HOSTILE)
    return home / "runs"


def test_checkpoints_shows_a_hostile_run_name_escaped(hostile_runs):
    done = tc(hostile_runs.parent, "checkpoints", str(hostile_runs))
    assert done.returncode == 0, done.stderr
    assert_clean(done)
    out = done.stdout.decode()
    assert "\\x1b]0;pwned\\x07" in out and "\\x9b2J" in out and "\\u202eevil" in out
    assert "[bold]b [link=file:x]l $x^{$" in out, "markup and dollars are shown as written"


def test_checkpoints_json_is_valid_and_holds_the_name_as_it_is(hostile_runs):
    done = tc(hostile_runs.parent, "checkpoints", str(hostile_runs), "--json")
    assert done.returncode == 0, done.stderr
    assert_clean(done)
    assert HOSTILE in {run["name"] for run in json.loads(done.stdout)}


def test_plot_of_a_hostile_run_writes_its_png_and_prints_clean_text(hostile_runs, tmp_path):
    """`$x^{$` read as mathtext would fail the figure; the printed path holds the name escaped."""
    done = tc(hostile_runs.parent, "plot", str(hostile_runs / HOSTILE), str(hostile_runs / "digits-mlp"))
    assert done.returncode == 0, done.stderr
    assert_clean(done)
    assert (hostile_runs / HOSTILE / "curves.png").read_bytes().startswith(b"\x89PNG")
    single = tc(hostile_runs.parent, "plot", str(hostile_runs / HOSTILE), "--out", str(tmp_path / "one.png"))
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "one.png").read_bytes().startswith(b"\x89PNG")


def test_wait_and_errors_naming_a_hostile_path_print_clean_lines(hostile_runs):
    waited = tc(hostile_runs.parent, "wait", str(hostile_runs / HOSTILE))
    assert waited.returncode == 0, waited.stderr
    assert_clean(waited)
    assert b"\\x1b]0;pwned" in waited.stdout
    for args in (("view", f"missing-{HOSTILE}"), ("checkpoints", f"missing-{HOSTILE}"), ("plot", f"no-{HOSTILE}")):
        done = tc(hostile_runs.parent, *args)  # an error, or "no runs in ...": one line naming the path escaped
        assert_clean(done)
        assert len((done.stdout + done.stderr).splitlines()) == 1 and b"\\x1b]0;pwned" in done.stdout + done.stderr


def test_a_run_name_with_escape_sequences_is_refused_in_one_clean_line(tmp_path):
    done = tc(tmp_path, "run", *TINY, "--set", f"run.name={HOSTILE_TOML}")
    assert done.returncode == 2
    assert_clean(done)
    assert len(done.stderr.splitlines()) == 1 and b"run.name" in done.stderr


def test_a_headless_resume_of_a_hostile_folder_prints_its_name_escaped(hostile_runs):
    """The header and the closing lines name the run folder; --json holds it as it is, in valid JSON."""
    last = str(hostile_runs / HOSTILE / "checkpoints" / "last.pth")
    done = tc(hostile_runs.parent, "run", *TINY, "--set", "training.epochs=2", "--resume", last)
    assert done.returncode == 0, done.stderr
    assert_clean(done)
    out = done.stdout.decode()
    assert out.count("\\x1b]0;pwned\\x07") >= 2 and "Epoch [2/2]" in out
    json_done = tc(hostile_runs.parent, "run", *TINY, "--set", "training.epochs=3", "--json", "--resume", last)
    assert json_done.returncode == 0, json_done.stderr
    assert_clean(json_done)
    events = [json.loads(line) for line in json_done.stdout.splitlines()]
    assert events[0]["run_dir"].endswith(HOSTILE)
