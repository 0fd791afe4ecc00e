"""Averaging gradients between the processes of one machine through shared memory, not gloo's sockets.

gloo moves a CPU gradient over TCP: for the chapter's MLP (235,146 weights, ~1 MB) an all-reduce of two
processes took ~2 ms on the 2-core machine here, longer than the step itself (BENCHMARKS.md). Processes on
one machine can instead write their gradients into one shared buffer and add up everybody's: a copy and a
sum of a megabyte, and one byte through a pipe to each other process to say "mine is there".

Every rank adds the slots in rank order, so all ranks get bit-identical results. Two sets of slots are used
in turn: a rank can be at most one reduction ahead of the others (it waits for their bytes of the previous
one), so the set it writes has been read by all. The files are unlinked as soon as every rank has opened
them: nothing is left behind in /dev/shm, whatever happens to the processes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch


class LocalAllReduce:
    """`reduce(flat)`: the mean of `flat` over the ranks, in place; every rank calls it in the same order."""

    def __init__(self, collectives: Any, capacity: int):
        """`collectives`: engine.training.distributed.Collectives, over gloo: it shares the folder's name."""
        group = collectives.group
        self.rank, self.world = group.rank, group.world_size
        self.capacity = capacity
        folder = None
        if group.is_main:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            folder = tempfile.mkdtemp(prefix="trainconsole-reduce-", dir=shm)
            with open(Path(folder) / "slots", "wb") as fh:
                fh.truncate(2 * self.world * capacity * 4)
        folder = Path(collectives.from_main(folder))
        others = [r for r in range(self.world) if r != self.rank]
        for sender in others:  # a pipe per (sender, receiver): each sender's bytes arrive in its own order
            os.mkfifo(folder / f"{sender}-{self.rank}", 0o600)
        collectives.barrier()
        # O_RDWR: opening a FIFO so never waits for the other end
        self.inboxes = [os.open(folder / f"{sender}-{self.rank}", os.O_RDWR) for sender in others]
        self.outboxes = [os.open(folder / f"{self.rank}-{receiver}", os.O_RDWR) for receiver in others]
        slots = torch.from_file(str(folder / "slots"), shared=True, size=2 * self.world * capacity)
        self.slots = slots.view(2, self.world, capacity)
        collectives.barrier()
        if group.is_main:
            shutil.rmtree(folder, ignore_errors=True)  # mapped and opened: the memory and pipes live on
        self.calls = 0

    def __call__(self, flat: torch.Tensor) -> None:
        n = flat.numel()
        slots = self.slots[self.calls % 2, :, :n]
        self.calls += 1
        slots[self.rank].copy_(flat.reshape(-1))
        for fd in self.outboxes:
            os.write(fd, b"\0")
        for fd in self.inboxes:
            while not os.read(fd, 1):  # one byte from each other rank: its slot is written
                pass
        out = flat.reshape(-1)
        out.copy_(slots[0])
        for r in range(1, self.world):
            out.add_(slots[r])
        out.div_(float(self.world))

    def close(self) -> None:
        for fd in self.inboxes + self.outboxes:
            os.close(fd)
        self.inboxes = self.outboxes = []


def comm_hook(reduce: LocalAllReduce, bucket):
    """A DistributedDataParallel communication hook that averages each gradient bucket with `reduce`."""
    tensor = bucket.buffer()
    reduce(tensor)
    future: torch.futures.Future = torch.futures.Future()
    future.set_result(tensor)
    return future
