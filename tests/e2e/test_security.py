"""Files from elsewhere run no code: a checkpoint's or run folder's settings import nothing on their own,
and no module lying in the current folder stands in for a dependency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
TINY = ["--set", "training.epochs=1", "--set", "device.device='cpu'", "--set", "device.threads=1"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def tc(cwd: Path, *args: str, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "engine", *args] if module else [str(TRAINCONSOLE), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240, env=_env())


def one_line_refusal(done: subprocess.CompletedProcess, *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished digits run (best.pth, last.pth, settings.toml) to tamper with."""
    home = tmp_path_factory.mktemp("trained")
    done = tc(home, "run", *TINY)
    assert done.returncode == 0, done.stderr
    return home / "runs" / "digits-mlp"


def _evil_options(marker: Path) -> dict:
    return {"command": f"touch {marker}"}


def test_a_checkpoints_settings_import_no_code(trained, tmp_path):
    marker = tmp_path / "PWNED"
    checkpoint = torch.load(trained / "checkpoints" / "last.pth", weights_only=True)
    checkpoint["settings"]["data"]["dataset"] = "os:system"
    checkpoint["settings"]["data"]["options"] = _evil_options(marker)
    evil = tmp_path / "downloaded.pth"
    torch.save(checkpoint, evil)
    one_line_refusal(tc(tmp_path, "eval", str(evil)), "refused data.dataset = 'os:system'", "--allow-import os:system")
    one_line_refusal(tc(tmp_path, "run", "--resume", str(evil), "--set", "training.epochs=3"), "refused", "os:system")
    checkpoint["settings"]["data"]["dataset"] = "digits"
    checkpoint["settings"]["data"]["options"] = {}
    checkpoint["settings"]["model"]["name"] = "os:system"
    torch.save(checkpoint, evil)
    one_line_refusal(tc(tmp_path, "eval", str(evil)), "refused model.name = 'os:system'")
    assert not marker.exists()
    # naming it yourself is the way to allow it: the command then runs (and fails, os.system is no dataset)
    checkpoint["settings"]["model"]["name"] = "mlp"
    checkpoint["settings"]["data"]["dataset"] = "os:system"
    checkpoint["settings"]["data"]["options"] = _evil_options(marker)
    torch.save(checkpoint, evil)
    allowed = tc(tmp_path, "eval", str(evil), "--allow-import", "os:system")
    assert marker.exists() and "returned int" in allowed.stderr


def test_a_run_folders_settings_import_no_code(trained, tmp_path):
    marker = tmp_path / "PWNED"
    run = tmp_path / "downloaded-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pth").write_bytes((trained / "checkpoints" / "best.pth").read_bytes())
    text = (trained / "settings.toml").read_text()
    text = text.replace('dataset = "digits"', 'dataset = "os:system"').replace(
        "options = {}", f'options = {{ command = "touch {marker}" }}', 1
    )
    (run / "settings.toml").write_text(text)
    one_line_refusal(tc(tmp_path, "eval", str(run)), "settings.toml: refused data.dataset = 'os:system'")
    assert not marker.exists()


USER_CODE = (
    "import torch\n"
    "from torch.utils.data import TensorDataset\n"
    "def make(seed=0):\n"
    "    x = torch.randn(120, 4, generator=torch.Generator().manual_seed(seed))\n"
    "    return TensorDataset(x, (x[:, 0] > 0).long())\n"
)


def test_code_the_user_named_runs_from_the_settings_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the user's signing key (engine.io.signing)
    project = tmp_path / "project"
    project.mkdir()
    (project / "mydata.py").write_text(USER_CODE)
    (project / "settings.toml").write_text(
        f'[run]\nruns_dir = "{tmp_path / "runs"}"\n[data]\ndataset = "mydata:make"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = tc(elsewhere, "run", "-c", str(project / "settings.toml"), *TINY)  # found in the settings file's folder
    assert done.returncode == 0, done.stderr
    # the user's own settings name mydata:make: resuming and evaluating its checkpoint needs no flag
    (run_dir,) = (tmp_path / "runs").iterdir()  # named after the dataset function: make-mlp
    last = run_dir / "checkpoints" / "last.pth"
    assert tc(project, "run", "--resume", str(last), "--set", "training.epochs=2").returncode == 0
    assert tc(project, "eval", str(last)).returncode == 0
    # from a folder whose settings do not name it, the same checkpoint is refused to another user (it is signed
    # with this user's key: tests/e2e/test_own_runs.py)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-user"))
    refused = tc(elsewhere, "eval", str(last))
    one_line_refusal(refused, "refused data.dataset = 'mydata:make'")
    missing = tc(elsewhere, "run", *TINY, "--set", "data.dataset=nosuchmodule:make")
    assert missing.returncode == 2 and f"then in {elsewhere}" in missing.stderr, missing.stderr


@pytest.mark.parametrize("module", [False, True], ids=["script", "python-m"])
def test_a_module_in_the_current_folder_never_shadows_a_dependency(tmp_path, module):
    marker = tmp_path / "SHADOWED"
    for name in ("tomlkit", "torch", "textual", "sklearn"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}\\n')\nraise SystemExit('shadowed')\n"
        )
    done = tc(tmp_path, "env", module=module)
    assert done.returncode == 0 and "PyTorch" in done.stdout, done.stderr
    assert not marker.exists(), marker.read_text()
    # a user dataset named like a dependency gets the dependency, not the file beside the settings
    named = tc(tmp_path, "run", *TINY, "--set", "data.dataset=tomlkit:parse", module=module)
    assert named.returncode == 2 and not marker.exists(), named.stderr
