"""Written only where meant (issue 21): a symlink pre-placed where trainconsole writes a PNG, metrics.csv or a
TensorBoard event file never sends the write to its target; a read-only settings.toml is not saved over."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.runs.folder import RunFolderError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
TINY = ["--set", "training.epochs=1", "--set", "device.device='cpu'", "--set", "device.threads=1"]
VICTIM_TEXT = b"the user's own file\n"


def tc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, capture_output=True, text=True, timeout=240, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("exports")
    done = tc(home, "run", *TINY, "--set", "logging.tensorboard='false'")
    assert done.returncode == 0, done.stderr
    return home / "runs" / "digits-mlp"


@pytest.fixture
def copied_run(trained, tmp_path) -> Path:
    """A copy of the trained run, as a run folder downloaded from elsewhere, and a victim file beside it."""
    run = tmp_path / "runs" / "copied"
    shutil.copytree(trained, run)
    (tmp_path / "victim.txt").write_bytes(VICTIM_TEXT)
    return run


def refused_or_regular(done: subprocess.CompletedProcess, path: Path, says: str = "symbolic link") -> None:
    """One line on stderr (exit 2) that `says` why, or the path now holds a regular file of its own."""
    if done.returncode == 0:
        assert not path.is_symlink() and path.is_file(), done.stdout
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert says in lines[0], lines[0]


def test_plot_never_writes_through_a_symlink_at_the_png(copied_run):
    victim = copied_run.parent.parent / "victim.txt"
    (copied_run / "curves.png").symlink_to(victim)
    done = tc(copied_run.parent.parent, "plot", str(copied_run))
    refused_or_regular(done, copied_run / "curves.png")
    assert victim.read_bytes() == VICTIM_TEXT

    out = copied_run.parent.parent / "mine.png"  # --out naming a link is refused too
    out.symlink_to(victim)
    refused_or_regular(tc(copied_run.parent.parent, "plot", str(copied_run), "--out", str(out)), out)
    assert victim.read_bytes() == VICTIM_TEXT


def test_a_png_is_replaced_atomically_as_a_regular_file(copied_run):
    (copied_run / "curves.png").write_bytes(b"old")
    done = tc(copied_run.parent.parent, "plot", str(copied_run))
    assert done.returncode == 0, done.stderr
    assert (copied_run / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert not any(p.name.endswith(".tmp") for p in copied_run.iterdir()), "no temporary file left behind"


def test_a_resume_never_writes_metrics_csv_through_a_symlink(copied_run):
    victim = copied_run.parent.parent / "victim.txt"
    (copied_run / "metrics.csv").unlink()
    (copied_run / "metrics.csv").symlink_to(victim)
    last = copied_run / "checkpoints" / "last.pth"
    done = tc(copied_run.parent.parent, "run", *TINY, "--set", "training.epochs=2", "--resume", str(last))
    refused_or_regular(done, copied_run / "metrics.csv", says="metrics.csv is a symbolic link")
    assert victim.read_bytes() == VICTIM_TEXT


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_the_tensorboard_event_file_is_created_new_never_through_what_lies_at_its_name(tmp_path, monkeypatch, kind):
    """TensorBoard's own writer opens its file by name at every flush (following a link, blocking on a FIFO): ours
    is created with O_EXCL; a link or FIFO at the name it picks is refused at once, its target untouched."""
    pytest.importorskip("tensorboard")
    import engine.outputs.tensorboard as tensorboard

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM_TEXT)
    name = "events.out.tfevents.planted"
    if kind == "symlink":
        (run_dir / name).symlink_to(victim)
    else:
        os.mkfifo(run_dir / name)
    monkeypatch.setattr(tensorboard, "event_file_name", lambda: name)
    outcome: list = []
    opener = threading.Thread(target=lambda: outcome.append(_open_writer(tensorboard, run_dir)), daemon=True)
    opener.start()
    opener.join(timeout=60)  # a FIFO opened for writing would block here for good: the join says so
    assert outcome, "the writer blocked on what lies at its file's name"
    assert isinstance(outcome[0], RunFolderError) and "\n" not in str(outcome[0]), outcome
    assert victim.read_bytes() == VICTIM_TEXT


def _open_writer(tensorboard, run_dir: Path):
    try:
        return tensorboard.TensorBoardWriter(run_dir)
    except Exception as e:
        return e


def test_tensorboard_names_are_unpredictable_and_in_order():
    from engine.outputs.tensorboard import event_file_name

    first, second = event_file_name(), event_file_name()
    assert first != second and "tfevents" in first
    assert first.rsplit(".", 1)[1] != second.rsplit(".", 1)[1], "a random part: nothing can be planted beforehand"


# -- settings.toml: the user's own file keeps its write protection ------------------------------------------------

SAVE = (
    "import sys\n"
    "from engine.settings.config import SettingsError, load_settings, save_settings\n"
    "path = sys.argv[1]\n"
    "try:\n"
    "    save_settings(load_settings(path).replace('training.epochs', 9), path)\n"
    "except SettingsError as e:\n"
    "    print(e, file=sys.stderr)\n"
    "    sys.exit(2)\n"
)


@pytest.fixture
def other_user():
    """An unprivileged user for the test, deleted after it; skipped where users cannot be created."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("creating a user needs root, useradd and runuser")
    name = f"tc{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd refused: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def _as(user, *args: str) -> subprocess.CompletedProcess:
    """SAVE run by `user`: this Python where the user may run it, else the system's of the same version, with this
    environment's packages (a Python under root's home is out of the user's reach)."""
    import sysconfig

    python = sys.executable
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    runuser = shutil.which("runuser")
    if subprocess.run([runuser, "-u", user.pw_name, "--", python, "-c", ""], capture_output=True).returncode:
        if not system.exists():
            pytest.skip(f"{user.pw_name} cannot run {python}, and there is no {system}")
        python = str(system)
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": path}
    command = [runuser, "-u", user.pw_name, "--", python, "-c", SAVE, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/", env=env)


def test_a_save_over_a_read_only_settings_file_is_refused_for_its_owner(other_user, tmp_path_factory):
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tc-settings-", dir="/tmp"))  # a folder the user owns and may write in
    try:
        os.chown(folder, other_user.pw_uid, other_user.pw_gid)
        path = folder / "settings.toml"
        path.write_text("[training]\nepochs = 3\n")
        os.chown(path, other_user.pw_uid, other_user.pw_gid)
        reach = _as(other_user, str(path))  # writable: saved, as the user
        if reach.returncode != 0 and ("Error" in reach.stderr or "denied" in reach.stderr):
            pytest.skip(f"the user cannot load the project: {reach.stderr.strip().splitlines()[-1]}")
        assert reach.returncode == 0, reach.stderr
        assert "epochs = 9" in path.read_text()

        path.write_text("[training]\nepochs = 3\n")
        path.chmod(0o444)  # chmod a-w, by its owner: a rename in the folder would still pass
        done = _as(other_user, str(path))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and lines == [f"{path} is read-only; not saved (make it writable, or save to "
                                                  "another file)"], done.stderr  # fmt: skip
        assert path.read_text() == "[training]\nepochs = 3\n" and (path.stat().st_mode & 0o777) == 0o444
        assert sorted(p.name for p in folder.iterdir()) == ["settings.toml"], "no temporary file left behind"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_root_keeps_a_settings_file_with_no_write_bit(tmp_path):
    """Root, whom modes do not stop, is refused where the file has no write bit at all; one bit is enough."""
    from engine.settings.config import SettingsError, load_settings, save_settings

    path = tmp_path / "settings.toml"
    path.write_text("[training]\nepochs = 3\n")
    path.chmod(0o444)
    with pytest.raises(SettingsError, match=r"settings.toml is read-only; not saved"):
        save_settings(load_settings(path).replace("training.epochs", 9), path)
    assert path.read_text() == "[training]\nepochs = 3\n"

    link = tmp_path / "link.toml"  # through a link the same: the target is what is protected
    link.symlink_to(path)
    with pytest.raises(SettingsError, match="read-only"):
        save_settings(load_settings(link).replace("training.epochs", 9), link)

    path.chmod(0o644)
    save_settings(load_settings(path).replace("training.epochs", 9), path)
    assert "epochs = 9" in path.read_text() and (path.stat().st_mode & 0o777) == 0o644
