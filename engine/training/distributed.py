"""Data-parallel training across processes started by torchrun: who this process is, and what ranks agree on.

torchrun (or `trainconsole run --processes N`, engine.launch) starts one process per GPU, or N on the CPU,
each with RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE in its environment. Every rank runs the same
Trainer on its shard of the data (engine.data.loaders); DistributedDataParallel averages the gradients.
What the ranks must decide together, they decide from values reduced across all of them: epoch metrics as
sums and counts, and the stop, pause and NaN flags, so that no rank is left waiting in a collective.
A process started without torchrun is a group of one, and nothing here costs it anything.

A rank that fails says why in torchrun's store, which lives in torchrun's agent and so outlives any worker:
the others, whose collectives then fail ("Connection closed by peer"), read there who failed first and how,
and name a rank that said nothing and whose process is gone as dead (`Collectives.failure`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from engine.settings.config import SettingsError

if TYPE_CHECKING:
    from engine.data.loaders import DataBundle

# how long a rank waits in a collective for the others: a stuck (not dead) rank fails the run after it; long
# enough for a slow validation or checkpoint save on a busy machine (a pause is no wait in a collective)
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
# how long a failed rank waits for the others to say in the store how they ended: on this host a dead one is
# seen within SETTLE_S; a rank on another host may say nothing until this one has ended
SETTLE_S = 0.5
PEER_WAIT_S = 5.0
STORE_TIMEOUT = timedelta(seconds=10)


class ProcessFailed(SettingsError):
    """Another process of the run failed or died (at set-up: the run never started, as with a bad setting)."""


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


def agent_store(environ=os.environ):
    """torchrun's key-value store, under a prefix of this attempt's; None where the workers have none of its."""
    import torch.distributed as dist

    if environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    try:
        store = dist.TCPStore(
            environ["MASTER_ADDR"], int(environ["MASTER_PORT"]), is_master=False, timeout=STORE_TIMEOUT
        )
    except (KeyError, ValueError, RuntimeError):
        return None
    return dist.PrefixStore(f"trainconsole/{environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)


def one_line(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def process_gone(host_pid: str) -> bool | None:
    """Whether the process "HOST PID" has ended (a zombie has); None where that cannot be known (another host)."""
    host, _, pid = host_pid.rpartition(" ")
    if host != socket.gethostname() or not (pid.isascii() and pid.isdigit()):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True if Path("/proc/self").exists() else None  # no /proc at all (macOS): not known
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def check_shards(data: DataBundle, batch_size: int, world: int) -> None:
    """Every process gets a whole batch to train on and a validation sample: else one line, before anything starts."""
    train, val = data.train.num_samples, data.val.num_samples
    if train < world * batch_size:
        raise SettingsError(
            f"{train} training samples are too few for {world} processes at data.batch_size = {batch_size} "
            f"(each process trains on a batch of its own: {world * batch_size} samples a step); "
            "use fewer processes or a smaller batch_size"
        )
    if 0 < val < world:
        raise SettingsError(
            f"{val} validation sample(s) are too few for {world} processes (each validates a share of its own); "
            "use fewer processes or a larger data.val_fraction"
        )


class Collectives:
    """What ranks agree on; in a group of one every method returns its input."""

    def __init__(self, group: Group, device: torch.device, store=None):
        self.group = group
        # gloo reduces CPU tensors, NCCL GPU ones
        self.device = device if device.type == "cuda" else torch.device("cpu")
        self.store = store  # torchrun's (agent_store): where a failed rank says why
        self.verdict: tuple[int, str, bool] | None = None  # failure()'s answer, once found
        if store is not None:
            self._post(f"pid/{group.rank}", f"{socket.gethostname()} {os.getpid()}")

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
        if fused:
            return model, self.gradient_averager(list(model.parameters()))
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
        return (torch.compile(ddp) if compile else ddp), None

    def gradient_averager(self, params: list[torch.Tensor]) -> Callable[[], None]:
        """For a step that writes its gradients itself (the fused MLP step): their mean over the ranks, in place.

        Each parameter's .grad becomes a view of one flat buffer, reduced in one all-reduce a step. The ranks
        start from rank 0's weights, as DDP's do.
        """
        import torch.distributed as dist

        weights = torch.nn.utils.parameters_to_vector(params)
        dist.broadcast(weights, src=0)
        torch.nn.utils.vector_to_parameters(weights, params)
        flat = torch.zeros(weights.numel(), dtype=params[0].dtype, device=params[0].device)
        offset = 0
        for p in params:
            p.grad = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        world = float(self.group.world_size)

        def average() -> None:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(world)

        return average

    def barrier(self) -> None:
        if self.group.active:
            import torch.distributed as dist

            dist.barrier()

    # -- when a rank fails ------------------------------------------------------
    def post_run_dir(self, run_dir: Path) -> None:
        """Rank 0's run folder, for the rank that records the run's failure if rank 0 dies."""
        self._post("run_dir", str(run_dir))

    def main_run_dir(self) -> Path | None:
        text = self._get("run_dir")
        return Path(text) if text else None

    def failure(self, error: BaseException) -> tuple[int, str, bool]:
        """This rank failed with `error`: (the rank that failed first, a line naming it and why, whether this
        rank records the failure in the run folder: rank 0, or the first rank alive when rank 0 is not).

        It says why in the store and leaves a gloo process group; then it hears what the others said
        (`_hear_from_peers`). The first to say is the cause, unless a rank died without a word.
        """
        if self.verdict is not None:
            return self.verdict
        rank, world, own = self.group.rank, self.group.world_size, one_line(error)
        posted = self.store is not None and self._post(f"error/{rank}", f"{self._add('failures')} {own}")
        if self.device.type == "cpu":  # gloo closes its sockets; NCCL's peers are ended by torchrun's agent
            leave(self.group)
        if not posted:
            self.verdict = (rank, f"process {rank} of {world} failed: {own}", rank == 0)
            return self.verdict
        posts, silent, dead = self._hear_from_peers()
        said = {r: text.partition(" ") for r, text in posts.items()}  # rank: (order, " ", what)
        recorder = rank == min(r for r in range(world) if r not in dead)
        if dead:
            line = f"process {dead[0]} of {world} died (it ended without a word: killed, or out of memory)"
            self.verdict = (dead[0], line, recorder)
        else:
            first = min(said, key=lambda r: int(said[r][0]) if said[r][0].isascii() and said[r][0].isdigit() else world)
            if first == rank and silent and "timed out" in own.lower():
                self.verdict = (silent[0], f"process {silent[0]} of {world} stopped answering: {own}", recorder)
            else:
                self.verdict = (first, f"process {first} of {world} failed: {said[first][2]}", recorder)
        return self.verdict

    def _hear_from_peers(self) -> tuple[dict[int, str], list[int], list[int]]:
        """What each rank posted, the ranks that posted nothing, and those of them known to be dead.

        A killed process on this host is seen gone within SETTLE_S; one alive and silent then is busy, stuck, or
        waiting for this rank to end. A silent rank on another host is waited for (PEER_WAIT_S), then taken for dead.
        """
        started = time.monotonic()
        while True:
            posts = {r: self._get(f"error/{r}") for r in range(self.group.world_size)}
            silent = [r for r, text in posts.items() if not text]
            gone = {r: process_gone(self._get(f"pid/{r}") or "") for r in silent}
            dead = [r for r in silent if gone[r]]
            waited = time.monotonic() - started
            if len(dead) == len(silent) or (waited > SETTLE_S and None not in gone.values()):
                break
            if waited > PEER_WAIT_S:
                dead = [r for r in silent if gone[r] is not False]
                break
            time.sleep(0.05)
        return {r: text for r, text in posts.items() if text}, silent, dead

    def _post(self, key: str, value: str) -> bool:
        if self.store is None:
            return False
        try:
            self.store.set(key, value)
            return True
        except Exception:  # the store went with torchrun's agent: nobody is left to read it
            return False

    def _get(self, key: str) -> str | None:
        if self.store is None:
            return None
        try:
            return self.store.get(key).decode("utf-8", "replace") if self.store.check([key]) else None
        except Exception:
            return None

    def _add(self, key: str) -> int:
        try:
            return int(self.store.add(key, 1))
        except Exception:
            return 0
