"""Atomic file writes: a temporary file in the same folder, fsync, rename, fsync the folder.

A crash or `kill -9` at any moment leaves either the old file or the new one,
never a torn one; settings and checkpoints are both written this way. A
symlink is written through (its target is replaced, the link stays) and an
existing file keeps its permission bits.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

TMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0)  # read once at import: os.umask is process-wide, not thread-safe
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(fh)` on a temporary file, then rename it over `path`; on error the old file stays and the error propagates."""
    path = Path(os.path.realpath(path))  # renaming over a symlink would replace the link, not its target
    mode = _mode_to_keep(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _mode_to_keep(path: Path) -> int:
    """The permission bits of the file being replaced (a chmod 600 stays 600); the usual mode for a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of writes that a kill interrupted (call only while holding the run's lock)."""
    stale = list(Path(folder).glob(f".*{TMP_SUFFIX}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
