"""The user's own runs are recognised by a signature with their key (engine.io.signing); nothing else is.

The key: 32 bytes, mode 0600, in a 0700 folder of $XDG_STATE_HOME; one that is a link, not a regular file, not the
user's or readable by others is refused in one line, and its runs are then refused as any folder from elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from engine.io import signing
from engine.runs import signatures
from engine.runs.records import run_settings, toml_tables
from engine.runs.resume import resume_settings
from engine.settings.config import from_dict, to_toml
from engine.settings.user_code import UntrustedCode, check_untrusted, sign_settings, signed_imports

USER_CODE = ("model.name='mymodels:Net'", "data.dataset='mydata:make'")
OTHER_UID = 65534  # nobody


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    """This test's own state folder: the key it makes is not the user's real one."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


def _key_path(state: Path) -> Path:
    return state / "trainconsole" / "trust" / "key"


def _as_root():
    if os.geteuid() != 0:
        pytest.skip("a file of another user's is made with chown, which needs root")


def _run_folder(tmp_path: Path, settings) -> Path:
    """A run folder as RunSession writes it: settings.toml and its signature."""
    run_dir = tmp_path / "runs" / "mine"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "settings.toml").write_text(to_toml(settings))
    signatures.write_folder_signature(run_dir, settings)
    return run_dir


def _folder_settings(run_dir: Path):
    path = run_dir / "settings.toml"
    return check_untrusted(run_settings(path), str(path), (), signatures.folder_signature(run_dir))


def test_the_key_is_made_once_private_and_signatures_check_out(state, tiny_settings):
    settings = tiny_settings(*USER_CODE)
    signature, why = sign_settings(settings.to_dict())
    key = _key_path(state)
    assert signature is not None and why == ""
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert len(key.read_bytes()) == signing.KEY_BYTES
    assert sign_settings(settings.to_dict())[0] == signature  # the same key, not a new one each time
    assert signed_imports(settings, signature, settings.to_dict()) == ({"mymodels:Net", "mydata:make"}, "")
    assert [p.name for p in key.parent.iterdir()] == ["key"]  # no temporary left


def test_a_signature_allows_exactly_the_settings_it_covers(state, tiny_settings):
    settings = tiny_settings(*USER_CODE)
    signature, _ = sign_settings(settings.to_dict())
    assert check_untrusted(settings, "last.pth", (), signature) is settings
    edited = settings.replace("training.lr", 0.5)
    with pytest.raises(UntrustedCode, match="trainconsole trust last.pth"):
        check_untrusted(edited, "last.pth", (), signature)
    moved = tiny_settings("model.name='mymodels:Net'", "data.dataset='mydata:other'")
    with pytest.raises(UntrustedCode, match="refused data.dataset = 'mydata:other'"):
        check_untrusted(moved, "last.pth", (), signature)
    for bad in (None, "", "zz" * 32, "é" * 64, 7, ["x"]):
        with pytest.raises(UntrustedCode, match="--allow-import mydata:make"):
            check_untrusted(settings, "last.pth", (), bad)


def test_another_users_key_does_not_check_out(state, tiny_settings, monkeypatch, tmp_path):
    settings = tiny_settings(*USER_CODE)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "someone-else"))
    theirs, _ = sign_settings(settings.to_dict())
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    # no key of one's own yet: nothing is trusted
    assert signed_imports(settings, theirs, settings.to_dict()) == (set(), "")
    mine, _ = sign_settings(settings.to_dict())
    assert mine != theirs and signed_imports(settings, theirs, settings.to_dict()) == (set(), "")


def test_a_run_folder_is_recognised_until_its_settings_are_edited(state, tiny_settings, tmp_path):
    settings = tiny_settings(*USER_CODE).with_resolved_paths()
    run_dir = _run_folder(tmp_path, settings)
    assert _folder_settings(run_dir).model.name == "mymodels:Net"  # settings.toml read back signs the same
    (run_dir / "settings.toml").write_text(to_toml(settings.replace("run.seed", 43)))  # edited after signing
    with pytest.raises(UntrustedCode, match=f"trainconsole trust {run_dir}`"):
        _folder_settings(run_dir)
    assert signatures.trust(run_dir) == [(run_dir / "settings.toml", {"mymodels:Net", "mydata:make"})]
    assert _folder_settings(run_dir).run.seed == 43


def test_a_signature_json_from_elsewhere_is_no_signature(state, tiny_settings, tmp_path):
    run_dir = _run_folder(tmp_path, tiny_settings(*USER_CODE))
    real = run_dir / "signature.json"
    moved = tmp_path / "elsewhere.json"
    real.rename(moved)
    real.symlink_to(moved)  # the signature's content is right: only the link is wrong
    with pytest.raises(UntrustedCode):
        _folder_settings(run_dir)
    real.unlink()
    os.mkfifo(real)  # never waited on
    assert signatures.folder_signature(run_dir) is None
    real.unlink()
    real.write_text("[" * 10_000)
    assert signatures.folder_signature(run_dir) is None


def test_a_checkpoint_copied_alone_is_recognised_and_a_resume_allowed(state, tiny_settings, tmp_path):
    settings = tiny_settings(*USER_CODE).with_resolved_paths()
    signature, _ = sign_settings(settings.to_dict())
    checkpoint = signatures.with_signature({"settings": settings.to_dict(), "epoch": 1}, signature)
    path = tmp_path / "copied.pth"
    torch.save(checkpoint, path)
    resumed, epoch = resume_settings(path, (), ["training.epochs=5"])
    assert (resumed.training.epochs, resumed.model.name, epoch) == (5, "mymodels:Net", 1)
    checkpoint["settings"]["model"]["name"] = "mymodels:Other"
    torch.save(checkpoint, path)
    with pytest.raises(UntrustedCode, match="refused data.dataset = 'mydata:make'"):  # edited: none allowed
        resume_settings(path)
    assert signatures.trust(path) == [(path, {"mymodels:Other", "mydata:make"})]
    assert resume_settings(path)[0].model.name == "mymodels:Other"


def _refused_key(settings, signature, *words: str) -> None:
    with pytest.raises(UntrustedCode) as refused:
        check_untrusted(settings, "last.pth", (), signature)
    line = str(refused.value)
    assert "\n" not in line and all(w in line for w in words), line
    assert sign_settings(settings.to_dict()) == (None, line[line.index("recognised: ") + len("recognised: "):-1])


def test_a_key_open_to_others_or_a_link_is_refused_in_one_line(state, tiny_settings, tmp_path):
    settings = tiny_settings(*USER_CODE)
    signature, _ = sign_settings(settings.to_dict())
    key = _key_path(state)
    key.chmod(0o644)
    _refused_key(settings, signature, "--allow-import", str(key), "open to other users (mode 644)")
    key.chmod(0o600)
    key.parent.chmod(0o755)
    _refused_key(settings, signature, "the signing key's folder is open to other users")
    key.parent.chmod(0o700)
    real = tmp_path / "real-key"
    key.rename(real)
    key.symlink_to(real)
    _refused_key(settings, signature, "a symbolic link")
    key.unlink()
    key.mkdir()
    _refused_key(settings, signature, "not a regular file")
    key.rmdir()
    key.write_bytes(b"short")
    key.chmod(0o600)
    _refused_key(settings, signature, "5 bytes, not 32")


def test_a_key_folder_that_is_a_link_is_refused(state, tiny_settings, tmp_path):
    settings = tiny_settings(*USER_CODE)
    signature, _ = sign_settings(settings.to_dict())
    folder = _key_path(state).parent
    folder.rename(tmp_path / "moved")
    folder.symlink_to(tmp_path / "moved")
    _refused_key(settings, signature, "the signing key's folder cannot be used: a symbolic link")


def test_a_key_or_run_of_another_user_is_refused(state, tiny_settings, tmp_path):
    _as_root()
    settings = tiny_settings(*USER_CODE)
    signature, _ = sign_settings(settings.to_dict())
    key = _key_path(state)
    os.chown(key, OTHER_UID, OTHER_UID)
    _refused_key(settings, signature, f"owned by user id {OTHER_UID}, not by you")
    os.chown(key, 0, 0)
    run_dir = _run_folder(tmp_path, settings)
    os.chown(run_dir, OTHER_UID, OTHER_UID)
    with pytest.raises(signatures.TrustRefused, match=f"owned by user id {OTHER_UID}, not by you"):
        signatures.trust(run_dir)
    os.chown(run_dir, 0, 0)
    os.chown(run_dir / "settings.toml", OTHER_UID, OTHER_UID)
    with pytest.raises(signatures.TrustRefused, match="settings.toml: owned by user id"):
        signatures.trust(run_dir)


def test_a_run_signs_its_folder_and_checkpoints(state, tiny_settings, tmp_path):
    from engine.api import Run

    settings = tiny_settings("training.epochs=1")
    run = Run(settings, (), set_threads=False)
    assert run.run().status == "completed"
    run_dir = Path(run.run_dir)
    signature = signatures.folder_signature(run_dir)
    stored = toml_tables(run_dir / "settings.toml")
    assert signed_imports(run_settings(run_dir / "settings.toml"), signature, stored)[0] == set()  # built-ins only
    assert signing.verify("trainconsole run settings v1", stored, signature)
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert signing.verify("trainconsole run settings v1", last["settings"], last["signature"])


def test_a_signature_keeps_checking_when_a_later_version_adds_a_setting(state):
    """What is signed is the settings as stored: a key the schema gained since reads as its default, and the
    stored tables, which the signature covers, are unchanged."""
    settings = from_dict({"model": {"name": "mymodels:Net"}}, "test")
    stored = settings.to_dict()
    del stored["data"]["columns"]  # as a run folder written before data.columns existed stores it
    signature, _ = sign_settings(stored)
    now = from_dict(stored, "an older run folder")
    assert check_untrusted(now, "runs/x/settings.toml", (), signature, stored=stored) is now
    stored["model"]["name"] = "theirs:Net"
    with pytest.raises(UntrustedCode):
        check_untrusted(from_dict(stored, "edited"), "runs/x/settings.toml", (), signature, stored=stored)
