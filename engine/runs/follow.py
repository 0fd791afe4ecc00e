"""Following a run folder's `events.jsonl` as it grows: what `attach`, `wait` and the control commands read.

The writer appends one whole line per event; a reader keeps its byte offset, takes complete lines only and
holds back a half-written last one until its newline arrives. Reading never locks or slows the writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class EventFollower:
    """New complete lines of an append-only JSON-lines file, from where the last call stopped."""

    def __init__(self, path: str | os.PathLike, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self._partial = b""

    def read_new(self, limit: int = 64 * 2**20) -> list[dict[str, Any]]:
        """The JSON objects appended since the last call (at most `limit` bytes read at once)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return []  # not there yet (a run still starting), or not a regular file: nothing to follow
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:  # rewritten from the start (never by us): read it again
                self.offset, self._partial = 0, b""
            if size == self.offset:
                return []
            data = os.pread(fd, min(size - self.offset, limit), self.offset)
        finally:
            os.close(fd)
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" after a final newline, else the torn line held back
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue  # a line torn by a full disk: the writer ends it before the next
            if isinstance(event, dict):
                events.append(event)
        return events
