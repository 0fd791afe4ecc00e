"""Averaging gradients between the processes of one machine through shared memory, not gloo's sockets.

gloo moves a CPU gradient over TCP: for the chapter's MLP (235,146 weights, ~1 MB) an all-reduce of two
processes took ~2 ms on the 2-core machine here, longer than the step itself (BENCHMARKS.md). Processes on
one machine can instead share one buffer, and one byte through a pipe to each other process says "I am here".

Two ways through it:
- `__call__(t)` (small tensors: the stop/pause flags; DDP's gradient buckets): every rank copies `t` into its
  slot, then adds up all slots in rank order. Two sets of slots are used in turn: a rank can be at most one
  such call ahead of the others (it waits for their bytes of the previous one), so the set it writes has been
  read by all.
- `reduce_own()` (the fused step's gradients, written in place into `own`, this rank's row of the buffer):
  a reduce-scatter. Each rank sums one 1/N-th of the rows, in rank order, into a result row; after a second
  meeting every rank copies the whole result back into its own row. Each rank adds 1/N of the data instead of
  all of it, and nothing is copied in. Every rank gets bit-identical gradients.

A rank that arrives first spins on the pipes for a moment before it sleeps: waking a process through a pipe
costs tens of microseconds, a tenth of a small model's step. It never spins where the ranks outnumber the
cores. The file is reserved up front (a full /dev/shm fails here, not as a SIGBUS mid-run) and unlinked as
soon as every rank has opened it: nothing is left behind in /dev/shm, whatever happens to the processes.
Where there is no such memory (a full /dev/shm, Windows), `LocalAllReduce.open` answers None and the
gradients go through gloo.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from engine.device import usable_cores

SPIN_S = 200e-6  # how long a rank polls its pipes before it sleeps on them


def shared_folder() -> str | None:
    """/dev/shm where it can be written (memory, not disk), else the temporary folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def reserve(path: Path, size: int) -> None:
    """A file of `size` bytes whose memory is taken now: a full /dev/shm fails here, not as a SIGBUS mid-run."""
    with open(path, "wb") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except (AttributeError, OSError) as e:  # not on macOS; some file systems cannot
            if getattr(e, "errno", None) == errno.ENOSPC:
                raise
            fh.truncate(size)


class LocalAllReduce:
    """The mean over the ranks, in place; every rank makes the same calls in the same order.

    `capacity`: the largest tensor `__call__` takes; `own_size`: the length of `own`, the row `reduce_own`
    averages (0: none). `open` answers None where shared memory cannot be had (the caller then uses gloo).
    """

    @classmethod
    def open(cls, collectives: Any, capacity: int, own_size: int = 0) -> LocalAllReduce | None:
        if not hasattr(os, "mkfifo"):  # Windows
            return None
        floats = _floats(collectives.group.world_size, capacity, own_size)
        folder = None
        if collectives.group.is_main:
            folder = tempfile.mkdtemp(prefix="trainconsole-reduce-", dir=shared_folder())
            try:
                reserve(Path(folder) / "slots", floats * 4)
            except OSError as e:
                shutil.rmtree(folder, ignore_errors=True)
                print(f"trainconsole: no shared memory for the gradients ({e}); they go through gloo", file=sys.stderr)
                folder = None
        folder = collectives.from_main(folder)
        return None if folder is None else cls(collectives, Path(folder), capacity, own_size)

    def __init__(self, collectives: Any, folder: Path, capacity: int, own_size: int = 0):
        """`collectives`: engine.training.distributed.Collectives, over gloo; `folder`: rank 0's, with "slots"."""
        group = collectives.group
        self.rank, self.world = group.rank, group.world_size
        self.capacity, self.own_size = capacity, own_size
        floats = _floats(self.world, capacity, own_size)
        others = [r for r in range(self.world) if r != self.rank]
        for sender in others:  # a pipe per (sender, receiver): each sender's bytes arrive in its own order
            os.mkfifo(folder / f"{sender}-{self.rank}", 0o600)
        collectives.barrier()
        # O_RDWR: opening a FIFO so never waits for the other end
        self.inboxes = [os.open(folder / f"{sender}-{self.rank}", os.O_RDWR) for sender in others]
        self.outboxes = [os.open(folder / f"{self.rank}-{receiver}", os.O_RDWR) for receiver in others]
        for fd in self.inboxes:
            os.set_blocking(fd, False)
        memory = torch.from_file(str(folder / "slots"), shared=True, size=floats)
        collectives.barrier()
        if group.is_main:
            shutil.rmtree(folder, ignore_errors=True)  # mapped and opened: the memory and pipes live on
        start = 2 * self.world * capacity
        self.slots = memory[:start].view(2, self.world, capacity)
        self.rows = memory[start : start + self.world * own_size].view(self.world, own_size)
        self.results = memory[start + self.world * own_size :].view(2, own_size)
        self.own = self.rows[self.rank]
        bounds = [own_size * r // self.world for r in range(self.world + 1)]
        self.share = slice(bounds[self.rank], bounds[self.rank + 1])
        self.spin_s = SPIN_S if group.local_world_size <= usable_cores() else 0.0
        self.calls = self.own_calls = 0

    def __call__(self, flat: torch.Tensor) -> None:
        n = flat.numel()
        slots = self.slots[self.calls % 2, :, :n]
        self.calls += 1
        slots[self.rank].copy_(flat.reshape(-1))
        self._meet()
        out = flat.reshape(-1)
        _sum_rows(slots, out, self.world)

    def reduce_own(self) -> None:
        """`own` becomes the mean of every rank's `own`."""
        result = self.results[self.own_calls % 2]
        self.own_calls += 1
        self._meet()  # every row is written
        share = self.share
        _sum_rows(self.rows[:, share], result[share], self.world)
        self._meet()  # every share is summed, and no rank reads a row any more: each may write its own again
        self.own.copy_(result)

    def _meet(self) -> None:
        """Tell every other rank this one is here, and wait until each has said so too."""
        for fd in self.outboxes:
            os.write(fd, b"\0")
        for fd in self.inboxes:
            spin_until = None
            while True:
                try:
                    if os.read(fd, 1):
                        break
                except BlockingIOError:
                    pass
                now = time.perf_counter()
                if spin_until is None:
                    spin_until = now + self.spin_s
                elif now >= spin_until:
                    select.select([fd], [], [])

    def close(self) -> None:
        for fd in self.inboxes + self.outboxes:
            os.close(fd)
        self.inboxes = self.outboxes = []


def _floats(world: int, capacity: int, own_size: int) -> int:
    """The shared file's length: two sets of `world` slots of `capacity`, then `world` rows and 2 results."""
    return 2 * world * capacity + (world + 2) * own_size


def _sum_rows(rows: torch.Tensor, out: torch.Tensor, world: int) -> None:
    """out = the mean of rows[0], rows[1], ..., added in rank order (the same bits on every rank)."""
    if world == 1:
        out.copy_(rows[0])
        return
    torch.add(rows[0], rows[1], out=out)
    for r in range(2, world):
        out.add_(rows[r])
    out.mul_(1.0 / world)


def comm_hook(reduce: LocalAllReduce, bucket):
    """A DistributedDataParallel communication hook that averages each gradient bucket with `reduce`."""
    tensor = bucket.buffer()
    reduce(tensor)
    future: torch.futures.Future = torch.futures.Future()
    future.set_result(tensor)
    return future
