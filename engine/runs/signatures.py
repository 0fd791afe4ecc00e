"""Where a run keeps its signature (engine.settings.user_code.sign_settings): beside its settings, in its checkpoints.

`signature.json` in the run folder covers its `settings.toml`; a full checkpoint carries the signature of its own
`settings` under the key `signature`, so a checkpoint copied out of its folder is still recognised. Both are
read as data from elsewhere: a signature.json that is a link, not a regular file, too large or not JSON is no
signature.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from engine.runs.checkpoints import atomic_save, load_checkpoint
from engine.runs.folder import SIGNATURE_FILE, write_run_file
from engine.runs.records import toml_tables
from engine.runs.safe_reads import RefusedFile, json_object, read_bytes
from engine.settings.config import Settings, SettingsError, from_dict
from engine.settings.user_code import SIGNED_SETTINGS, named_imports, sign_settings

SIGNATURE_BYTES_MAX = 4096


def write_folder_signature(run_dir: Path, settings: Settings) -> tuple[str | None, str]:
    """Sign the settings.toml the run folder records (as it reads back); the signature of `settings` as its
    checkpoints store them, or (None, why) when the key cannot be used.

    An unsigned run leaves no signature.json behind: one left from earlier settings would only fail to check.
    """
    signature, why = sign_settings(settings.to_dict())
    path = run_dir / SIGNATURE_FILE
    if signature is None:
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
        return None, why
    folder_signed, _ = sign_settings(toml_tables(run_dir / "settings.toml"))
    if folder_signed is not None:
        _write(run_dir, folder_signed)
    return signature, ""


def folder_settings(settings_file: Path) -> tuple[Settings, dict[str, Any]]:
    """A run folder's settings.toml read once: as Settings, and as the tables its signature covers."""
    stored = toml_tables(settings_file)
    return from_dict(stored, str(settings_file)), stored


def _write(run_dir: Path, signature: str) -> None:
    write_run_file(run_dir / SIGNATURE_FILE, json.dumps({"signed": SIGNED_SETTINGS, "signature": signature}) + "\n")


def folder_signature(run_dir: Path) -> Any:
    """The signature a run folder's signature.json holds; None when it has none that can be read."""
    try:
        raw = read_bytes(run_dir / SIGNATURE_FILE, SIGNATURE_BYTES_MAX + 1)
    except RefusedFile:
        return None
    if raw is None or len(raw) > SIGNATURE_BYTES_MAX:
        return None
    data = json_object(raw.strip())
    return data.get("signature") if data is not None else None


def checkpoint_signature(checkpoint: Any) -> Any:
    """The signature a full checkpoint carries; None for weights or an unsigned one."""
    return checkpoint.get("signature") if isinstance(checkpoint, dict) else None


def with_signature(checkpoint: Any, signature: str | None) -> Any:
    """A full checkpoint with the run's signature of its settings added; anything else as it is."""
    if signature is None or not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("settings"), dict):
        return checkpoint
    return {**checkpoint, "signature": signature}


# -- trainconsole trust ----------------------------------------------------------------------------------------------
class TrustRefused(SettingsError):
    """A run folder or checkpoint that cannot be signed; the message is one line."""


def _own(path: Path) -> None:
    """`path` is this user's own, and no link: signing a file another user can change would trust their next edit."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise TrustRefused(f"{path}: no such file or folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise TrustRefused(f"{path}: a symbolic link; trust the real path, after inspecting it")
    if st.st_uid != os.geteuid():
        raise TrustRefused(
            f"{path}: owned by user id {st.st_uid}, not by you; copy it into a folder of your own and trust the copy"
        )


def _sign(stored: dict[str, Any]) -> str:
    signature, why = sign_settings(stored)
    if signature is None:
        raise TrustRefused(f"cannot sign: {why}")
    return signature


def _trust_checkpoint(path: Path) -> Settings | None:
    """Sign a full checkpoint's settings in place; None for weights only (they name no code)."""
    _own(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("settings"), dict):
        return None
    settings = from_dict(checkpoint["settings"], f"{path} settings")
    atomic_save({**checkpoint, "signature": _sign(checkpoint["settings"])}, path)
    return settings


def trust(target: str | Path) -> list[tuple[Path, set[str]]]:
    """Sign a run folder (its settings.toml and full checkpoints) or one checkpoint as the user's own.

    Returns each file signed with the import paths its settings may now use.
    """
    target = Path(target)
    _own(target)
    if not target.is_dir():
        settings = _trust_checkpoint(target)
        if settings is None:
            raise TrustRefused(f"{target}: holds weights only, no settings: there is nothing to sign")
        return [(target, named_imports(settings))]
    settings_file = target / "settings.toml"
    _own(settings_file)
    settings, stored = folder_settings(settings_file)
    _write(target, _sign(stored))
    signed = [(settings_file, named_imports(settings))]
    ck_dir = target / "checkpoints"
    full = [ck_dir / "last.pth", *sorted(ck_dir.glob("epoch_*.pth"))] if ck_dir.is_dir() else []
    for path in full:
        if os.path.lexists(path):
            done = _trust_checkpoint(path)
            signed += [(path, named_imports(done))] if done is not None else []
    return signed
