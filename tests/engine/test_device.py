"""Device choice (chapter 1.3) and the environment report (1.2)."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from engine import device as dev
from engine.settings.config import SettingsError


class FakeCuda:
    def __init__(self, count: int):
        self.count = count

    def is_available(self):
        return self.count > 0

    def device_count(self):
        return self.count

    def current_device(self):
        return 0

    def get_device_properties(self, i):
        return SimpleNamespace(name=f"Fake GPU {i}", total_memory=(i + 1) * 8 * 10**9, major=8, minor=i)

    def mem_get_info(self, i):
        return (i + 1) * 2 * 10**9, (i + 1) * 8 * 10**9

    def is_bf16_supported(self):
        return True


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda torch: False)


def test_auto_falls_back_to_cpu(no_accelerator):
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device("cpu") == torch.device("cpu")


def test_auto_prefers_mps_over_cpu(no_accelerator, monkeypatch):
    monkeypatch.setattr(dev, "_mps_available", lambda torch: True)
    assert dev.resolve_device("auto") == torch.device("mps")


def test_auto_prefers_cuda_over_mps(monkeypatch):
    monkeypatch.setattr(dev, "_mps_available", lambda torch: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert dev.resolve_device("auto") == torch.device("cuda", 0)


def test_missing_cuda_is_a_clear_settings_error(no_accelerator):
    for name in ("cuda", "cuda:0"):
        with pytest.raises(SettingsError, match=f"device.device = '{name}': CUDA is not available"):
            dev.resolve_device(name)


def test_missing_mps_is_a_clear_settings_error(no_accelerator):
    with pytest.raises(SettingsError, match="device.device = 'mps': Apple MPS is not available"):
        dev.resolve_device("mps")


def test_cuda_index_beyond_the_count(monkeypatch):
    fake = FakeCuda(2)
    monkeypatch.setattr(torch.cuda, "is_available", fake.is_available)
    monkeypatch.setattr(torch.cuda, "device_count", fake.device_count)
    monkeypatch.setattr(torch.cuda, "current_device", fake.current_device)
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(SettingsError, match="2 CUDA device"):
        dev.resolve_device("cuda:2")


def test_report_lists_every_gpu_with_total_memory(monkeypatch):
    fake = FakeCuda(2)
    for name in (
        "is_available",
        "device_count",
        "current_device",
        "get_device_properties",
        "mem_get_info",
        "is_bf16_supported",
    ):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    report = dev.environment_report()
    assert [g["name"] for g in report["gpus"]] == ["Fake GPU 0", "Fake GPU 1"]
    assert [g["total_memory"] for g in report["gpus"]] == [8 * 10**9, 16 * 10**9]
    assert [g["free_memory"] for g in report["gpus"]] == [2 * 10**9, 4 * 10**9]
    text = dev.format_report(report)
    assert "Fake GPU 0" in text and "Fake GPU 1" in text and "VRAM 16.0 GB total" in text
    json.dumps(report)


def test_report_on_this_machine_is_json_and_complete():
    report = dev.environment_report()
    json.loads(json.dumps(report))
    for key in (
        "python",
        "torch",
        "torchvision",
        "cuda_available",
        "mps_available",
        "gpus",
        "cpu",
        "cpu_cores",
        "torch_threads",
        "auto_device",
    ):
        assert key in report
    assert report["torch"] == torch.__version__
    assert len(report["gpus"]) == torch.cuda.device_count() if torch.cuda.is_available() else report["gpus"] == []


def test_choose_threads():
    assert dev.choose_threads(3) == 3
    assert 1 <= dev.choose_threads(0) <= (len(__import__("os").sched_getaffinity(0)))
    assert dev.choose_threads(0, reserve=1000) == 1


def test_env_command_text_and_json():
    def start(*args):
        return subprocess.Popen(
            [sys.executable, "-m", "engine", "env", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    text, as_json = start(), start("--json")  # side by side: each pays torch's import
    out, err = text.communicate(timeout=120)
    assert text.returncode == 0, err
    assert "PyTorch" in out and torch.__version__ in out and "Auto device" in out
    out, err = as_json.communicate(timeout=120)
    assert as_json.returncode == 0, err
    report = json.loads(out)
    assert report["torch"] == torch.__version__ and isinstance(report["gpus"], list)
    assert report["cuda_available"] == torch.cuda.is_available()
    assert all("total_memory" in gpu for gpu in report["gpus"])
    assert report["auto_device"] == str(dev.resolve_device("auto"))


def test_small_training_steps_run_on_one_thread():
    import torch

    from engine.device import PARALLEL_STEP_FLOPS, choose_threads, training_step_flops
    from engine.models.networks import MLP

    model = MLP(784, 10)
    per_batch_64 = training_step_flops(model, torch.zeros(1, 1, 28, 28), 64)
    # the chapter's MLP: 235,146 weights, 2 FLOPs per multiply-add, 3x the forward for a training step
    assert per_batch_64 == pytest.approx(3 * 2 * (784 * 256 + 256 * 128 + 128 * 10) * 64, rel=0.01)
    assert model.training  # counted in eval mode, given back in train mode
    assert choose_threads(step_flops=per_batch_64) == 1
    assert choose_threads(step_flops=PARALLEL_STEP_FLOPS * 10) >= 1
    assert choose_threads(3, step_flops=per_batch_64) == 3  # an explicit device.threads wins


def test_on_device_moves_settings_and_drops_fp16_off_cuda():
    from engine.settings.config import Settings, SettingsError
    from engine.device import on_device

    gpu_run = Settings().replace("device.device", "auto").replace("training.precision", "fp16")
    moved = on_device(gpu_run, "cpu")
    assert (moved.device.device, moved.training.precision) == ("cpu", "fp32")
    assert on_device(Settings().replace("training.precision", "bf16"), "cpu").training.precision == "bf16"
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="CUDA is not available"):
            on_device(gpu_run, "cuda:0")


class FakeMachine:
    """A /proc/stat of `cpus` CPUs at `hz` ticks a second, a clock and this process's CPU time, all moved by hand."""

    def __init__(self, tmp_path, cpus: int = 2, hz: int = 100):
        self.path, self.now, self.own, self.busy, self.hz = tmp_path / "stat", 0.0, 0.0, [0] * cpus, hz
        self.write()

    def write(self):
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"] + [f"cpu{i} {b} 0 0 1000 7 0 0 0 0 0" for i, b in enumerate(self.busy)]
        self.path.write_text("\n".join(lines) + "\n")

    def advance(self, seconds, own_cores, other_cores):
        """`seconds` pass with this process busy on `own_cores` cores and other processes on `other_cores`."""
        ticks, n = round((own_cores + other_cores) * seconds * self.hz), len(self.busy)
        self.busy = [b + ticks // n + (i < ticks % n) for i, b in enumerate(self.busy)]
        self.now += seconds
        self.own += own_cores * seconds
        self.write()

    def watch(self, chosen=2):
        cpus = set(range(len(self.busy)))
        watch = dev.CoreWatch(
            chosen, cpus=cpus, stat=str(self.path), clock=lambda: self.now, own_cpu_s=lambda: self.own
        )
        watch.tick_s = 1 / self.hz
        return watch


def test_threads_follow_the_cores_other_processes_leave_free(tmp_path):
    machine = FakeMachine(tmp_path)
    watch = machine.watch()
    machine.advance(0.5, own_cores=2, other_cores=0)
    assert watch.poll() is None  # not a whole window yet
    machine.advance(0.5, own_cores=2, other_cores=0)
    assert watch.poll() is None  # a quiet machine: the chosen 2 threads stay
    machine.advance(1.0, own_cores=1, other_cores=1)  # a busy process takes a core
    assert watch.poll() == 1 and watch.last_elsewhere == pytest.approx(1.0)
    machine.advance(1.0, own_cores=1, other_cores=1)
    assert watch.poll() is None  # still busy: stays at 1
    machine.advance(1.0, own_cores=1, other_cores=0)  # it left: one quiet window is not enough
    assert watch.poll() is None
    machine.advance(1.0, own_cores=1, other_cores=0.2)  # a little noise counts as quiet
    assert watch.poll() == 2
    machine.advance(1.0, own_cores=2, other_cores=0)
    assert watch.poll() is None


def test_threads_never_grow_past_the_chosen_count_or_drop_below_one(tmp_path):
    machine = FakeMachine(tmp_path)
    watch = machine.watch(chosen=1)
    machine.advance(1.0, own_cores=1, other_cores=0)
    assert watch.poll() is None
    machine = FakeMachine(tmp_path)
    watch = machine.watch(chosen=2)
    machine.advance(1.0, own_cores=0.1, other_cores=1.9)
    assert watch.poll() == 1


def test_no_stat_file_means_no_change(tmp_path):
    watch = dev.CoreWatch(2, stat=str(tmp_path / "absent"))
    assert watch.poll() is None and watch.elsewhere() is None


def test_the_busy_time_of_this_machine_s_cpus_is_read():
    assert dev._busy_jiffies(dev._allowed_cpus()) is not None


def machine_for_free_cores(monkeypatch, tmp_path, own_cores: float, other_cores: float, cpus: int = 4) -> FakeMachine:
    """free_cores reads this fake machine: its sleep lets the window pass with the given load."""
    import functools
    import os
    import time

    machine = FakeMachine(tmp_path, cpus, hz=os.sysconf("SC_CLK_TCK"))  # free_cores' watch counts the real tick rate
    monkeypatch.setattr(dev, "_allowed_cpus", lambda: set(range(cpus)))
    watch = functools.partial(
        dev.CoreWatch, stat=str(machine.path), clock=lambda: machine.now, own_cpu_s=lambda: machine.own
    )
    monkeypatch.setattr(dev, "CoreWatch", watch)
    sleep = lambda s: machine.advance(s, own_cores, other_cores)  # noqa: E731
    monkeypatch.setattr(dev, "time", SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    return machine


@pytest.mark.parametrize(
    "own_cores, other_cores, free",
    [
        (0, 0, 4),
        (3, 0, 4),  # this process's own threads, however busy, are not "another process"
        (2, 1, 3),  # a busy process takes a core
        (0, 0.4, 4),  # a little noise rounds away
        (0, 0.6, 3),
        (1, 2.6, 1),
        (0, 9, 1),  # never fewer than one
    ],
)
def test_free_cores_leave_out_the_cores_other_processes_keep_busy_but_not_this_process_s_own(
    monkeypatch, tmp_path, own_cores, other_cores, free
):
    machine_for_free_cores(monkeypatch, tmp_path, own_cores, other_cores)
    assert dev.free_cores(0.3) == free


def test_free_cores_without_proc_stat_count_the_processes_running_elsewhere(monkeypatch, tmp_path):
    machine = machine_for_free_cores(monkeypatch, tmp_path, 0, 0)
    machine.path.unlink()
    monkeypatch.setattr(dev, "_running_elsewhere", lambda: 1)
    assert dev.free_cores(0.3) == 3


def test_free_cores_on_this_machine_are_between_one_and_its_cores():
    import os

    assert 1 <= dev.free_cores(0.05) <= len(os.sched_getaffinity(0))  # all that holds under any load


def test_thread_choices_time_one_thread_against_the_free_cores(monkeypatch):
    monkeypatch.setattr(dev, "_allowed_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(dev, "free_cores", lambda: 3)
    assert dev.thread_choices(2) == (2,)  # the user's count
    assert dev.thread_choices(0, step_flops=1e6) == (1, 3)
    assert dev.thread_choices(0, step_flops=1e12) == (3,)  # clearly parallel: no trial
    assert dev.thread_choices(0, step_flops=1e6, sharing=2) == (1,)  # torchrun's processes share the cores
    monkeypatch.setattr(dev, "free_cores", lambda: 1)  # a core busy for the moment of the count
    assert dev.thread_choices(0, step_flops=1e6) == (1, 4)  # the trial decides, not that moment
    monkeypatch.setattr(dev, "_allowed_cpus", lambda: {0})
    assert dev.thread_choices(0) == (1,)
