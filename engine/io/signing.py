"""The user's own signature: an HMAC-SHA256 with a secret key only this user can read, as Jupyter signs notebooks.

A run the user made is signed when it is created; a file from elsewhere (downloaded, edited, another user's)
does not carry a signature that checks out under this key. The key is 32 random bytes in
`$XDG_STATE_HOME/trainconsole/trust/key` (`~/.local/state/...`), made with mode 0600 inside a 0700 folder. A key
file that is a link, not a regular file, not the user's own, or readable by others is refused (KeyRefused, one
line): anyone who can read the key can sign. Neither the key folder nor the key is ever reached through a link.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

KEY_BYTES = 32
KEY_NAME = "key"
SIGNATURE_CHARS = 64  # SHA-256, in hex
PRIVATE = 0o077  # the bits that must be clear: nobody but the owner reads, writes or enters


class KeyRefused(Exception):
    """The signing key cannot be used safely; the message is one line naming the path and why."""


def key_folder() -> Path:
    """`$XDG_STATE_HOME/trainconsole/trust` (`~/.local/state/trainconsole/trust`)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "trainconsole" / "trust"


def _check_private(st: os.stat_result, path: Path, what: str) -> None:
    if st.st_uid != os.geteuid():
        raise KeyRefused(f"{path}: {what} is owned by user id {st.st_uid}, not by you; not used")
    if st.st_mode & PRIVATE:
        raise KeyRefused(
            f"{path}: {what} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); not used "
            f"(chmod go-rwx it if it is yours)"
        )


def _open_folder(create: bool) -> int | None:
    """A descriptor of the key folder, checked private; None when it does not exist and `create` is false."""
    folder = key_folder()
    if create:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)  # whatever the umask
        except FileExistsError:
            pass
        except OSError as e:
            raise KeyRefused(f"{folder}: cannot create the signing key's folder: {e.strerror or e}") from None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        why = "a symbolic link or not a folder" if e.errno in (errno.ELOOP, errno.ENOTDIR) else e.strerror or e
        raise KeyRefused(f"{folder}: the signing key's folder cannot be used: {why}") from None
    try:
        _check_private(os.fstat(fd), folder, "the signing key's folder")
    except KeyRefused:
        os.close(fd)
        raise
    return fd


def _read_key(folder_fd: int) -> bytes | None:
    """The key in the folder; None when there is none."""
    path = key_folder() / KEY_NAME
    try:
        fd = os.open(KEY_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        why = "a symbolic link" if e.errno == errno.ELOOP else e.strerror or e
        raise KeyRefused(f"{path}: the signing key cannot be used: {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyRefused(f"{path}: the signing key is not a regular file; not used")
        _check_private(st, path, "the signing key")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise KeyRefused(f"{path}: the signing key is {len(key)} bytes, not {KEY_BYTES}; not used")
    return key


def _create_key(folder_fd: int) -> bytes:
    """A new key, written whole under a temporary name and linked into place: a reader never sees half a key, and
    of two processes creating it at once, the first link wins and both use its key."""
    temporary = f".key-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=folder_fd)
    try:
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, KEY_NAME, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary, dir_fd=folder_fd)
    key = _read_key(folder_fd)
    assert key is not None  # linked above, by this process or another
    return key


def user_key(create: bool = False) -> bytes | None:
    """This user's signing key (made when `create` and there is none yet); None when there is none.

    KeyRefused when it exists but cannot be used safely.
    """
    try:
        folder_fd = _open_folder(create)
        if folder_fd is None:
            return None
        try:
            key = _read_key(folder_fd)
            return key if key is not None or not create else _create_key(folder_fd)
        finally:
            os.close(folder_fd)
    except KeyRefused:
        raise
    except OSError as e:
        raise KeyRefused(f"{key_folder()}: the signing key cannot be used: {e.strerror or e}") from None


def canonical_json(data: Any) -> bytes:
    """One encoding per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr).encode("ascii")


def _mac(key: bytes, purpose: str, data: Any) -> str:
    # the purpose keeps a signature made for one kind of thing from passing for another
    return hmac.new(key, purpose.encode("utf-8") + b"\n" + canonical_json(data), hashlib.sha256).hexdigest()


def sign(purpose: str, data: Any) -> str:
    """The signature of `data` under this user's key (made on first use); KeyRefused when the key is not safe."""
    key = user_key(create=True)
    assert key is not None
    return _mac(key, purpose, data)


def verify(purpose: str, data: Any, signature: Any) -> bool:
    """Whether `signature` is this user's for `data`; False without a key; KeyRefused when the key is not safe."""
    if not (isinstance(signature, str) and signature.isascii() and len(signature) == SIGNATURE_CHARS):
        return False
    key = user_key(create=False)
    if key is None:
        return False
    return hmac.compare_digest(_mac(key, purpose, data), signature)
