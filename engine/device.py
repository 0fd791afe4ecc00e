"""Device detection (chapter 1.3), the environment report (1.2) and CPU threading."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from typing import Any

from engine.settings.config import SettingsError


# torch's OpenMP threads otherwise spin-wait for ~300,000 turns after each parallel op, and a run collapses when
# another process takes a core; here they spin 10,000 turns (tens of µs: the gap between two ops of a step) and then
# sleep. A process that takes a core mid-run is CoreWatch's job. BENCHMARKS.md has the measurements.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}


def apply_openmp_defaults() -> None:
    """OPENMP_DEFAULTS, where the user set no value of their own; only effective before torch is first imported."""
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str = "auto"):
    """`auto` picks cuda, then mps, then cpu; asking for a device that is not there is a SettingsError."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available(torch):
            raise SettingsError("device.device = 'mps': Apple MPS is not available on this machine; use auto or cpu")
        return torch.device("mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(
                f"device.device = '{name}': CUDA is not available on this machine (torch {torch.__version__}); "
                "use auto or cpu"
            )
        index = int(name.partition(":")[2] or torch.cuda.current_device())
        count = torch.cuda.device_count()
        if index >= count:
            raise SettingsError(
                f"device.device = '{name}': this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    raise SettingsError(f"device.device = '{name}': allowed: auto, cpu, cuda, cuda:N or mps")


def on_device(settings, device: str):
    """The same settings on another device (a GPU run evaluated or resumed on a laptop).

    fp16 autocast needs CUDA: elsewhere it becomes fp32. The device must exist here.
    """
    if (
        resolve_device(device).type != "cuda" and settings.training.precision == "fp16"
    ):  # resolve first: a missing device is an error
        settings = settings.replace("training.precision", "fp32")
    return settings.replace("device.device", device)


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple Silicon GPU (MPS)"
    return platform.processor() or platform.machine() or "CPU"


def gpu_memory(index: int) -> dict[str, int]:
    """Free and total bytes of one CUDA device, as the driver sees them (all processes)."""
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return {"free": int(free), "total": int(total), "used": int(total - free)}


def _running_elsewhere() -> int:
    """Processes running right now besides this one: the fewest of three quick looks at /proc/loadavg.

    The 1-minute load average would still count a run that ended seconds ago.
    """
    try:
        counts = []
        for _ in range(3):
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)
            time.sleep(0.01)
        return max(0, min(counts))
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        try:
            return int(os.getloadavg()[0] + 0.5)
        except OSError:
            return 0


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """The cores this process may run on (its affinity), within its cgroup's CPU quota (a container's --cpus)."""
    cores, limit = len(_allowed_cpus()), cgroup_cpu_limit()
    return cores if limit is None else max(1, min(cores, math.ceil(limit)))


CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_cpu_limit(root: str = CGROUP_ROOT, own: str = "/proc/self/cgroup") -> float | None:
    """The CPUs' worth of time this process's cgroup may take (2.5: 250 ms each 100 ms); None where unlimited.

    cgroup v2's cpu.max, else v1's cpu.cfs_quota_us over cpu.cfs_period_us; read in this process's own cgroup,
    then at the mount's root (where a container sees its own cgroup).
    """
    v2, v1 = _own_cgroups(own)
    for folder in _own_then_root(root, v2):
        fields = _read_words(os.path.join(folder, "cpu.max"))
        if fields is not None:
            return _cpu_share(*fields[:2]) if len(fields) >= 2 else None
    for folder in _own_then_root(os.path.join(root, "cpu"), v1):
        quota, period = (_read_words(os.path.join(folder, f"cpu.cfs_{n}_us")) for n in ("quota", "period"))
        if quota and period:
            return _cpu_share(quota[0], period[0])
    return None


def _own_cgroups(own: str) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and v1 cpu controller path, from /proc/self/cgroup (None: not found)."""
    v2 = v1 = None
    for line in (_read_words(own, lines=True) or []):
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _own_then_root(mount: str, path: str | None) -> list[str]:
    own = os.path.join(mount, path.lstrip("/")) if path else mount
    return [own, mount] if own.rstrip("/") != mount else [mount]


def _read_words(path: str, lines: bool = False) -> list[str] | None:
    """A small kernel file's words (or lines); None where it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(4096)
    except (OSError, ValueError):
        return None
    return text.splitlines() if lines else text.split()


def _cpu_share(quota: str, period: str) -> float | None:
    """quota / period as CPUs; None for no limit ("max", -1) or what is not a pair of positive numbers."""
    try:
        share = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return share if share > 0 else None


def _busy_jiffies(cpus: set[int], stat: str = "/proc/stat") -> int | None:
    """Clock ticks the given CPUs spent on anything but idling, since boot (None where /proc/stat is not there)."""
    try:
        with open(stat) as fh:
            total = 0
            for line in fh:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *fields = line.split()
                if int(name[3:]) in cpus:
                    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
                    total += sum(values) - values[3] - values[4]
            return total
    except (OSError, ValueError):
        return None


class CoreWatch:
    """Sizes a running CPU training to the cores other processes leave free.

    `choose_threads` counts the free cores once, when a run starts. A process
    that starts later takes one of them, and torch's threads then wait on each
    other at every parallel op: a 2-thread run beside a busy process lost half
    its speed here. Every `window_s` the watch compares the CPU time the
    allowed cores spent busy with this process's own, and returns a new
    thread count: fewer at once when other processes took cores, the chosen
    count again once they have left them for two windows in a row.
    """

    def __init__(
        self,
        chosen: int,
        window_s: float = 1.0,
        *,
        cpus: set[int] | None = None,
        stat: str = "/proc/stat",
        clock=time.monotonic,
        own_cpu_s=None,
    ):
        self.chosen = self.threads = chosen
        self.window_s = window_s
        self.cpus = cpus if cpus is not None else _allowed_cpus()
        self.stat, self.clock = stat, clock
        self.own_cpu_s = own_cpu_s or (lambda: sum(os.times()[:2]))
        self.tick_s = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self._clear_windows = 0
        self.last_elsewhere = 0.0
        self._start()

    def _start(self) -> None:
        self._t, self._busy, self._own = self.clock(), _busy_jiffies(self.cpus, self.stat), self.own_cpu_s()

    def elsewhere(self) -> float | None:
        """Cores' worth of CPU other processes used since the last look; None before a window has passed."""
        now = self.clock()
        if self._busy is None or now - self._t < self.window_s:
            return None
        busy, own = _busy_jiffies(self.cpus, self.stat), self.own_cpu_s()
        if busy is None:
            return None
        others = ((busy - self._busy) * self.tick_s - (own - self._own)) / (now - self._t)
        self._t, self._busy, self._own = now, busy, own
        self.last_elsewhere = max(0.0, others)
        return self.last_elsewhere

    def poll(self) -> int | None:
        """A new thread count when the free cores changed, else None (cheap before a window has passed)."""
        others = self.elsewhere()
        if others is None:
            return None
        fit = max(1, min(self.chosen, int(len(self.cpus) - others + 0.5)))
        if fit < self.threads:
            self._clear_windows = 0
            self.threads = fit
            return fit
        if fit > self.threads:
            self._clear_windows += 1
            if self._clear_windows >= 2:
                self._clear_windows = 0
                self.threads = fit
                return fit
        else:
            self._clear_windows = 0
        return None


def free_cores(window_s: float = 0.1) -> int:
    """Cores this process may use, less the ones other processes kept busy for `window_s` (at least 1).

    Measured from /proc/stat less this process's own CPU time, so this
    process's other threads (the console's interface, a worker) never count.
    Without /proc/stat: less the processes running right now.
    """
    cpus = _allowed_cpus()
    watch = CoreWatch(len(cpus), window_s, cpus=cpus)
    time.sleep(window_s)
    others = watch.elsewhere()
    if others is None:
        return max(1, len(cpus) - _running_elsewhere())
    return max(1, len(cpus) - int(others + 0.5))


# Below this many FLOPs per training step, waking more OpenMP threads costs more than they save
# (the chapter's MLP at batch 64 trains faster on 1 thread, at batch 1024 on all; BENCHMARKS.md).
PARALLEL_STEP_FLOPS = 300e6


def choose_threads(requested: int = 0, reserve: int = 0, step_flops: float | None = None, sharing: int = 1) -> int:
    """Threads for torch's intra-op pool: the request; else 1 for small steps; else the free cores less `reserve`.

    `sharing` processes of one run on this machine (torchrun's) split its cores: each would count the
    others, loading at the same moment, as busy.
    """
    if requested > 0:
        return requested
    if step_flops is not None and step_flops < PARALLEL_STEP_FLOPS:
        return 1
    if sharing > 1:
        return max(1, len(_allowed_cpus()) // sharing)
    return max(1, free_cores() - reserve)


# A step this large trains faster on every free core beyond doubt: a run starts there without a trial.
CLEARLY_PARALLEL_STEP_FLOPS = 3e9


def thread_choices(requested: int = 0, step_flops: float | None = None, sharing: int = 1) -> tuple[int, ...]:
    """The thread counts a CPU run may use: one, or two that its first steps are timed on (ThreadTrial).

    Whether one thread or all the free cores train a small step faster depends on the machine and the model
    (the chapter's MLP at batch 64: 1.36x faster on 2 threads on a quiet machine here, slower on a busy one),
    so unless the user chose, or the step is clearly large, or the run's processes share the cores, the
    first steps are timed on both.
    """
    if requested > 0:
        return (requested,)
    if sharing > 1:
        return (choose_threads(0, step_flops=step_flops, sharing=sharing),)
    cores = len(_allowed_cpus())
    free = free_cores()
    if cores == 1 or (step_flops is not None and step_flops >= CLEARLY_PARALLEL_STEP_FLOPS):
        return (free,)
    # a core that looked busy for the 0.1 s of the count (a process exiting) must not keep a run on one thread for
    # good: the trial times them all, and beside a process that really is busy one thread wins it
    return (1, free if free > 1 else cores)


def training_step_flops(model, sample, batch_size: int) -> float | None:
    """About 3× the forward FLOPs of one sample, times the batch (None when they cannot be counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(sample)
        return 3.0 * counter.get_total_flops() * batch_size
    except Exception:  # a user model the counter cannot trace: fall back to the free cores
        return None
    finally:
        model.train(was_training)


def environment_report() -> dict[str, Any]:
    """Everything chapter 1.2 prints, done right (`total_memory`), plus every GPU and the CPU."""
    import torch

    try:
        import torchvision

        tv_version = torchvision.__version__
    except Exception as e:  # a broken torchvision must not hide the rest of the report
        tv_version = f"unavailable ({type(e).__name__})"
    cuda = torch.cuda.is_available()
    gpus = []
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            mem = gpu_memory(i)
            gpus.append(
                {
                    "index": i,
                    "name": props.name,
                    "total_memory": int(props.total_memory),
                    "free_memory": mem["free"],
                    "used_memory": mem["used"],
                    "capability": f"{props.major}.{props.minor}",
                    "bf16": bool(torch.cuda.is_bf16_supported()) if i == torch.cuda.current_device() else None,
                }
            )
    cores = usable_cores()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": tv_version,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "mps_available": _mps_available(torch),
        "gpus": gpus,
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "free_cores": free_cores(),  # a run's threads: these for big steps, 1 for small ones (choose_threads)
        "auto_device": str(resolve_device("auto")),
    }


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Python       : {report['python']}  ({report['platform']})",
        f"PyTorch      : {report['torch']}",
        f"TorchVision  : {report['torchvision']}",
        "CUDA         : "
        f"{'available, ' + str(report['cuda_version']) if report['cuda_available'] else 'not available'}",
        f"MPS          : {'available' if report['mps_available'] else 'not available'}",
    ]
    for gpu in report["gpus"]:
        lines.append(
            f"GPU {gpu['index']}        : {gpu['name']}  VRAM {_gb(gpu['total_memory'])} total, "
            f"{_gb(gpu['free_memory'])} free, {_gb(gpu['used_memory'])} used  (compute {gpu['capability']})"
        )
    lines.append(
        f"CPU          : {report['cpu']}, {report['cpu_cores']} cores, {report['free_cores']} free now "
        "(runs use them for big steps; small ones time 1 thread against them, and again as they train)"
    )
    lines.append(f"Auto device  : {report['auto_device']}")
    return "\n".join(lines)
