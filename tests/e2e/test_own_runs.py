"""A user's own runs with their own model are theirs (issue 25): `eval` and `run --resume` need no --allow-import.

The real CLI, each user's key in its own state folder ($XDG_STATE_HOME): a copy signed by another key, and the
user's own folder edited after it was signed, are refused in one line with the hint, until `trainconsole trust`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_security import one_line_refusal

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
TINY = ("--set", "device.device='cpu'", "--set", "device.threads=1")
USER_MODEL = """from torch import nn


class Net(nn.Sequential):
    def __init__(self, in_features, num_classes, width=8):
        super().__init__(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, num_classes))
"""


def tc(cwd: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_STATE_HOME"] = str(state)
    return subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A folder holding mymodels.py and no settings.toml, a one-epoch run of mymodels:Net in it, its user's state."""
    home = tmp_path_factory.mktemp("own")
    state = home / "state"
    (home / "mymodels.py").write_text(USER_MODEL)
    ok(tc(home, state, "run", *TINY, "--set", "model.name='mymodels:Net'", "--set", "training.epochs=1"))
    (run_dir,) = (home / "runs").iterdir()
    return home, state, run_dir


def test_eval_and_resume_of_ones_own_run_need_no_allow_import(own_run):
    home, state, run_dir = own_run
    ok(tc(home, state, "eval", str(run_dir)))  # best.pth: the folder's settings.toml and its signature
    ok(tc(home, state, "eval", str(run_dir / "checkpoints" / "last.pth")))  # the checkpoint's own signature
    copied = home / "copied.pth"
    shutil.copyfile(run_dir / "checkpoints" / "last.pth", copied)
    ok(tc(home, state, "eval", str(copied)))  # a checkpoint copied alone is still the user's
    resumed = tc(home, state, "run", "--resume", str(run_dir / "checkpoints" / "last.pth"), "--set",
                 "training.epochs=2")
    ok(resumed)
    ok(tc(home, state, "eval", str(run_dir / "checkpoints" / "last.pth")))  # re-signed by the resumed run


def test_a_copy_signed_by_another_key_is_refused_until_trusted(own_run, tmp_path):
    home, state, run_dir = own_run
    theirs = tmp_path / "theirs"
    shutil.copytree(run_dir, theirs, ignore=shutil.ignore_patterns(".lock", ".control"))
    ok(tc(home, tmp_path / "their-state", "trust", str(theirs)))  # signed, but with another user's key
    one_line_refusal(tc(home, state, "eval", str(theirs)), "refused model.name = 'mymodels:Net'",
                     "--allow-import mymodels:Net", f"trainconsole trust {theirs}")
    one_line_refusal(tc(home, state, "run", "--resume", str(theirs / "checkpoints" / "last.pth")),
                     "refused model.name", "--allow-import mymodels:Net")
    shown = tc(home, state, "trust", str(theirs))
    ok(shown)
    assert f"signed {theirs / 'settings.toml'} as yours; it may import: mymodels:Net" in shown.stdout
    assert f"signed {theirs / 'checkpoints' / 'last.pth'} as yours" in shown.stdout
    ok(tc(home, state, "eval", str(theirs)))
    ok(tc(home, state, "eval", str(theirs / "checkpoints" / "last.pth")))


def test_a_folder_edited_after_signing_is_refused_until_trusted(own_run, tmp_path):
    home, state, run_dir = own_run
    mine = tmp_path / "mine"
    shutil.copytree(run_dir, mine, ignore=shutil.ignore_patterns(".lock", ".control"))
    ok(tc(home, state, "eval", str(mine)))  # a copy the user made is theirs as long as it is unchanged
    settings = mine / "settings.toml"
    text, edits = re.subn(r"^seed = (\d+)$", lambda m: f"seed = {int(m[1]) + 1}", settings.read_text(), flags=re.M)
    assert edits == 1
    settings.write_text(text)
    one_line_refusal(tc(home, state, "eval", str(mine)), "refused", "--allow-import", f"trainconsole trust {mine}")
    ok(tc(home, state, "trust", str(mine)))
    ok(tc(home, state, "eval", str(mine)))


def test_trust_refuses_a_folder_of_another_user(own_run, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a folder of another user's is made with chown, which needs root")
    home, state, run_dir = own_run
    theirs = tmp_path / "theirs"
    shutil.copytree(run_dir, theirs, ignore=shutil.ignore_patterns(".lock", ".control"))
    before = (theirs / "signature.json").read_bytes()
    os.chown(theirs, 65534, 65534)
    one_line_refusal(tc(home, state, "trust", str(theirs)), "owned by user id 65534, not by you")
    assert (theirs / "signature.json").read_bytes() == before  # nothing signed
