"""Shared-memory averaging between real processes (gloo on a file rendezvous only shares the folder's name).

Each rank writes values of its own, some ranks late (so that the others spin, and sleep), and the test checks
that every rank got the same bits, equal to the mean, through both paths interleaved as a run interleaves them:
the fused step's gradients (`reduce_own`) and the stop/pause flags (`__call__`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

SIZE = 1_001  # not a multiple of the ranks: the last share is longer
ROUNDS = 24


def values(rank: int, k: int) -> torch.Tensor:
    return torch.randn(SIZE, generator=torch.Generator().manual_seed(1000 * k + rank))


def worker(rank: int, world: int, folder: str, spin: bool) -> None:
    import torch.distributed as dist

    from engine.training import local_reduce
    from engine.training.distributed import Collectives, Group

    if not spin:
        local_reduce.SPIN_S = 0.0
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    collectives = Collectives(Group(rank, world, rank, world), torch.device("cpu"))
    reduce = local_reduce.LocalAllReduce.open(collectives, 16, SIZE)
    owns, flags = [], []
    for k in range(ROUNDS):
        if (k + rank) % 3 == 0:
            time.sleep(0.002 * (1 + k % 4))  # late: the others spin, then sleep on their pipes
        reduce.own.copy_(values(rank, k))
        reduce.reduce_own()
        owns.append(reduce.own.clone())
        if k % 3 == 0:
            t = torch.tensor([float(rank == k % world), 0.0, 1.0])
            reduce(t)
            flags.append(t)
    reduce.close()
    torch.save({"own": owns, "flags": flags}, f"{folder}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("world, spin", [(2, True), (3, True), (2, False)])
def test_every_rank_gets_the_same_mean(tmp_path: Path, world: int, spin: bool):
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker, args=(r, world, str(tmp_path), spin)) for r in range(world)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * world
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    for k in range(ROUNDS):
        mean = torch.stack([values(r, k).double() for r in range(world)]).mean(0)
        first = results[0]["own"][k]
        torch.testing.assert_close(first.double(), mean, rtol=0, atol=1e-6)
        for other in results[1:]:
            assert torch.equal(other["own"][k], first)  # bit for bit: the ranks' weights never drift apart
    for j, k in enumerate(range(0, ROUNDS, 3)):
        for result in results:
            assert result["flags"][j].tolist() == pytest.approx([1.0 / world, 0.0, 1.0])
    if os.path.isdir("/dev/shm"):  # unlinked once every rank had it open
        assert not [n for n in set(os.listdir("/dev/shm")) - before if n.startswith("trainconsole-reduce-")]


def full_worker(rank: int, folder: str) -> None:
    """Rank 0 finds no room for the shared file: every rank is told to go through gloo instead."""
    import errno

    import torch.distributed as dist

    from engine.training import local_reduce
    from engine.training.distributed import Collectives, Group

    def full(path, size):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    local_reduce.reserve = full
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    collectives = Collectives(Group(rank, 2, rank, 2), torch.device("cpu"))
    opened = local_reduce.LocalAllReduce.open(collectives, 16, SIZE)
    Path(folder, f"{rank}.txt").write_text(repr(opened))
    dist.destroy_process_group()


def test_no_room_in_shared_memory_means_gloo_on_every_rank(tmp_path: Path, capfd):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=full_worker, args=(r, str(tmp_path))) for r in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert [(tmp_path / f"{r}.txt").read_text() for r in range(2)] == ["None", "None"]
    err = capfd.readouterr().err
    assert err.count("no shared memory for the gradients") == 1 and "they go through gloo" in err
