"""How long the processes of this machine take to average the chapter's MLP's gradients right now.

    python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/reduce_probe.py

Prints (rank 0) the median µs of `LocalAllReduce.reduce_own` on 235,146 floats, the ranks in lock step: what
a 2-process step pays on top of its compute. benchmarks/processes.py runs it beside each 2-process run, since
on a shared VM it varies with how the host places the two cores: ~110 µs or ~580 µs here, minutes apart.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.training import distributed  # noqa: E402
from engine.training.local_reduce import LocalAllReduce  # noqa: E402

MLP_WEIGHTS = 235_146
CALLS, ROUNDS = 200, 5


def main() -> None:
    torch.set_num_threads(1)
    group = distributed.from_environment()
    device = torch.device("cpu")
    distributed.join(group, device)
    collectives = distributed.Collectives(group, device)
    reduce = LocalAllReduce.open(collectives, 16, MLP_WEIGHTS)
    assert reduce is not None, "no shared memory here"
    reduce.own.normal_()
    collectives.barrier()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            reduce.reduce_own()
        times.append((time.perf_counter() - start) / CALLS)
    if group.is_main:
        print(f"{1e6 * statistics.median(times):.0f}")
    reduce.close()
    distributed.leave(group)


if __name__ == "__main__":
    main()
