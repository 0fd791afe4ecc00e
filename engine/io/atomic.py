"""Atomic file writes: a temporary file in the same folder, fsync, rename, fsync the folder.

A crash or `kill -9` at any moment leaves either the old file or the new one,
never a torn one; settings and checkpoints are both written this way. By
default a symlink is written through (its target is replaced, the link stays:
the user's own settings.toml may be a link into a dotfiles repository), an
existing file keeps its permission bits, and a file its owner made read-only
(`chmod a-w`) is refused (WriteProtected), though a rename in its folder
would pass: an atomic replace must not bypass write protection. A run folder's files are written with
`follow_symlinks=False`: a downloaded run folder must not turn a write into an
overwrite of some other file, so a symlink there is refused, never followed.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

TMP_SUFFIX = ".tmp"


class NotARegularFile(OSError):
    """A run folder's file is a symbolic link, a folder or a device: nothing was written through it.

    The message is one line.
    """


class WriteProtected(PermissionError):
    """The file to replace is read-only: nothing was written. The message is one line."""

    def __str__(self) -> str:
        return f"{self.filename} is read-only; it was not replaced (make it writable to save over it)"


def _read_umask() -> int:
    mask = os.umask(0)  # read once at import: os.umask is process-wide, not thread-safe
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def refuse_unless_regular(path: str | os.PathLike) -> None:
    """Raise NotARegularFile when `path` exists as anything but a regular file; a missing path is fine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = "symbolic link" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode) else "special file"
    raise NotARegularFile(f"{path} is a {kind}; a run folder's files are written only as regular files inside it")


def refuse_if_write_protected(path: str | os.PathLike) -> None:
    """Raise WriteProtected when `path` exists and may not be written: no write permission for this user, or, for
    root (whom modes do not stop), no write bit at all. A read-only disk is left to the write, which names it."""
    try:
        mode = os.stat(path).st_mode
        read_only_disk = os.statvfs(path).f_flag & os.ST_RDONLY
    except FileNotFoundError:
        return
    if not read_only_disk and (not mode & 0o222 or not os.access(path, os.W_OK)):
        raise WriteProtected(errno.EACCES, "read-only", str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, follow_symlinks: bool = True,
                 durable: bool = True) -> None:
    """Call `write(fh)` on a temporary file, then rename it over `path`; `durable`: flushed to the disk first (a
    cache that is checked when read back, and made again, need not be).

    On error the old file stays and the error propagates.

    A write that fails on the disk (full, read-only) raises that OSError, even where `write` turned it into
    its own error (torch's zip writer reports "file write failed" or "unexpected pos").
    """
    if follow_symlinks:
        path = Path(os.path.realpath(path))  # renaming over a symlink would replace the link, not its target
        refuse_if_write_protected(path)
    else:
        path = Path(path)
        refuse_unless_regular(path)  # the rename would only replace a link, but a link here is a trap: say so
    mode = _mode_to_keep(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as fh:
            recorder = _WriteErrors(fh)
            try:
                write(recorder)  # type: ignore[arg-type]
            except Exception as e:
                if recorder.error is not None and recorder.error is not e:
                    raise recorder.error from None
                raise
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        if not durable:
            return
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


class _WriteErrors:
    """The file as `write` sees it, keeping the first OSError of a write (a full disk).

    A caller may wrap that OSError in an error of its own.
    """

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _mode_to_keep(path: Path) -> int:
    """The permission bits of the file being replaced (a chmod 600 stays 600); the usual mode for a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def open_regular(path: str | os.PathLike, flags: int) -> int:
    """`os.open` of a regular file inside its folder, created if missing.

    Never through a symlink, a hard link or into a FIFO.
    """
    refuse_unless_regular(path)  # before open: opening a FIFO for writing would block
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:  # it became a link since the check
            refuse_unless_regular(path)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(
                f"{path} is a special file; a run folder's files are written only as regular files inside it"
            )
        if st.st_nlink > 1:
            raise NotARegularFile(
                f"{path} is a hard link shared with another file; "
                "a run folder's files are written only as regular files inside it"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: str | os.PathLike) -> int:
    """`open_regular` for appending lines.

    A last line that a full disk or a kill left without its newline is ended first.
    """
    fd = open_regular(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            write_all(fd, b"\n")
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a short write is how a nearly full disk answers)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of writes that a kill interrupted (call only while holding the run's lock).

    Only regular files and links themselves are removed; a folder that happens to match is left alone.
    """
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_symlink() or p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
