"""Data-parallel training across processes started by torchrun: who this process is, and what ranks agree on.

torchrun (or `trainconsole run --processes N`, engine.launch) starts one process per GPU, or N on the CPU,
each with RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE in its environment. Every rank runs the same
Trainer on its shard of the data (engine.data.loaders); DistributedDataParallel averages the gradients.
What the ranks must decide together, they decide from values reduced across all of them: epoch metrics as
sums and counts, and the stop, pause and NaN flags, so that no rank is left waiting in a collective.
A process started without torchrun is a group of one, and nothing here costs it anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import torch

from engine.settings.config import SettingsError

# how long a rank waits in a collective for the others (torch's default is 30 minutes; a pause is not one)
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Group:
    """This process's place among the run's processes; `Group()` is a run of one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine: they share its cores

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_environment(environ=os.environ) -> Group:
    """The group torchrun describes in the environment (a group of one without it)."""
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", "0"))
        local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as e:
        raise SettingsError(f"torchrun's environment is not understood ({e}): RANK, WORLD_SIZE, LOCAL_RANK") from None
    if world < 1 or not 0 <= rank < world:
        raise SettingsError(f"torchrun's environment is not understood: RANK={rank}, WORLD_SIZE={world}")
    return Group(rank, world, local_rank, max(1, local_world))


def under_launcher(environ=os.environ) -> bool:
    """This process is one of a torchrun's workers (it must not launch processes of its own)."""
    return "TORCHELASTIC_RUN_ID" in environ or int(environ.get("WORLD_SIZE", "1")) > 1


def device_for(group: Group, device: torch.device) -> torch.device:
    """One GPU per process on a machine (LOCAL_RANK); the CPU is shared."""
    if group.active and device.type == "cuda":
        if group.local_rank >= torch.cuda.device_count():
            raise SettingsError(
                f"LOCAL_RANK {group.local_rank}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                "start at most that many processes per node (--nproc_per_node)"
            )
        return torch.device("cuda", group.local_rank)
    return device


def join(group: Group, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo on the CPU (torchrun gave the rendezvous)."""
    import torch.distributed as dist

    if not group.active or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)


def leave(group: Group) -> None:
    import torch.distributed as dist

    if group.active and dist.is_initialized():
        dist.destroy_process_group()


class Collectives:
    """What ranks agree on; in a group of one every method returns its input."""

    def __init__(self, group: Group, device: torch.device):
        self.group = group
        self.local: Callable | None = None  # averaging through shared memory, once data_parallel has set it up
        # gloo reduces CPU tensors, NCCL GPU ones
        self.device = device if device.type == "cuda" else torch.device("cpu")

    def sums(self, *values: float | int | torch.Tensor) -> list[float]:
        """Each value summed over the ranks, in one collective (float64: counts stay exact)."""
        if not self.group.active:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.stack([torch.as_tensor(v, dtype=torch.float64).to(self.device).reshape(()) for v in values])
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def any(self, *flags: bool) -> list[bool]:
        """Each flag true on any rank: stop, pause and NaN are decided together."""
        if not self.group.active:
            return list(flags)
        if self.local is not None:  # shared memory: a gloo collective here cost a fifth of a small model's speed
            t = torch.tensor([1.0 if f else 0.0 for f in flags])
            self.local(t)
            return [bool(v > 0) for v in t.tolist()]
        import torch.distributed as dist

        t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def gather(self, value) -> list:
        """Every rank's value of a picklable object, in rank order, on every rank."""
        if not self.group.active:
            return [value]
        import torch.distributed as dist

        values: list = [None] * self.group.world_size
        dist.all_gather_object(values, value)
        return values

    def from_main(self, value):
        """Rank 0's value of a picklable object (the run folder it made, an error it met)."""
        if not self.group.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def data_parallel(self, model: torch.nn.Module, fused: bool, compile: bool) -> tuple[Callable, Callable | None]:
        """The forward a training step calls, and for the fused MLP step the averaging of its gradients.

        Autograd steps go through DistributedDataParallel, which starts every rank from rank 0's weights and
        averages the gradients in each backward. The fused step writes its gradients itself: they are
        averaged in one collective (`gradient_averager`), and the plain model is its forward.
        """
        params = list(model.parameters())
        size = sum(p.numel() for p in params)
        local = None
        if self.device.type == "cpu" and self.group.local_world_size == self.group.world_size:
            if all(p.dtype == torch.float32 for p in params):  # every rank on this machine: shared memory
                from engine.training.local_reduce import LocalAllReduce

                # the fused step writes its gradients straight into the shared rows; DDP's buckets are copied in
                local = self.local = LocalAllReduce.open(self, 16 if fused else max(16, size), size if fused else 0)
        if fused:
            return model, self.gradient_averager(params)
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
        if local is not None:
            from engine.training.local_reduce import comm_hook

            ddp.register_comm_hook(local, comm_hook)
        return (torch.compile(ddp) if compile else ddp), None

    def gradient_averager(self, params: list[torch.Tensor]) -> Callable[[], None]:
        """For a step that writes its gradients itself (the fused MLP step): their mean over the ranks, in place.

        Each parameter's .grad becomes a view of one flat buffer, reduced in one collective a step: on this
        machine the buffer is this rank's row of shared memory (`self.local.own`), else one gloo all-reduce.
        The ranks start from rank 0's weights, as DDP's do.
        """
        import torch.distributed as dist

        weights = torch.nn.utils.parameters_to_vector(params)
        dist.broadcast(weights, src=0)
        torch.nn.utils.vector_to_parameters(weights, params)
        local = self.local
        if local is not None:
            flat = local.own
        else:
            flat = torch.zeros(weights.numel(), dtype=params[0].dtype, device=params[0].device)
        flat.zero_()
        offset = 0
        for p in params:
            p.grad = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        if local is not None:
            return local.reduce_own
        world = float(self.group.world_size)

        def average() -> None:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(world)

        return average

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
            self.local = None

    def barrier(self) -> None:
        if self.group.active:
            import torch.distributed as dist

            dist.barrier()
