"""`training.accel`: "auto" trains to the numbers of plain PyTorch ("off"), and "off" is plain PyTorch.

Runs of the built-in MLP on digits, seeded, through the Trainer (no run folder); and the private
`torch._fused_adam_` call, which must give way to the public `optimizer.step()` when torch changes it.
"""

from __future__ import annotations

import copy
import os
import statistics
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import engine.training.accel.fused_adam as fused_adam
from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.models.networks import MLP
from engine.settings.config import TrainingSettings
from engine.training.accel.dropout import Dropout
from engine.training.accel.fused_mlp import FusedMLPStep
from engine.training.loop import PlainStep
from engine.training.optim import build_optimizer
from engine.training.trainer import Trainer

METRICS = ("train_loss", "val_loss", "train_acc", "val_acc")


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One thread: the matrix products sum in the same order in both runs."""


def train(settings, *, set_threads: bool = False) -> tuple[Trainer, list]:
    events: list = []
    trainer = Trainer(settings, events.append, set_threads=set_threads)
    trainer.setup()
    final = trainer.run()
    assert isinstance(final, RunFinished) and final.status == "completed", final
    return trainer, events


def started(events) -> RunStarted:
    return next(e for e in events if isinstance(e, RunStarted))


def epochs(events) -> list[EpochCompleted]:
    return [e for e in events if isinstance(e, EpochCompleted)]


# -- parity of whole runs ---------------------------------------------------------------------------------------
def test_without_dropout_auto_and_off_give_the_same_metrics_every_epoch(tiny_settings):
    runs = {}
    for accel in ("auto", "off"):
        settings = tiny_settings("training.epochs=3", "model.dropout=0.0", f"training.accel={accel!r}")
        runs[accel] = train(settings)[1]
    assert started(runs["auto"]).step.startswith("fused MLP step")
    assert started(runs["off"]).step.startswith("autograd")
    auto, off = epochs(runs["auto"]), epochs(runs["off"])
    assert len(auto) == len(off) == 3
    for a, o in zip(auto, off):
        for name in METRICS:
            assert getattr(a, name) == pytest.approx(getattr(o, name), rel=0, abs=1e-5), (a.epoch, name)
    assert off[-1].val_acc > off[0].val_acc, "the runs learned: their metrics moved"


def test_with_dropout_validation_accuracy_agrees_within_one_point_over_three_seeds(tiny_settings):
    """Other masks, other runs: the mean of three seeds' final validation accuracy within 1 point.

    One seed alone can differ by 1.7 points (seed 11: 359 validation samples, one is 0.28 points).
    """
    final: dict[str, list[float]] = {"auto": [], "off": []}
    losses: dict[str, list[float]] = {"auto": [], "off": []}
    for seed in (0, 1, 2):
        for accel in final:
            s = tiny_settings("training.epochs=3", "model.dropout=0.3", f"run.seed={seed}", f"training.accel={accel!r}")
            events = train(s)[1]
            assert started(events).step.startswith("fused MLP step" if accel == "auto" else "autograd")
            final[accel].append(epochs(events)[-1].val_acc)
            losses[accel].append(epochs(events)[-1].train_loss)
    assert losses["auto"] != losses["off"], "dropout drew other masks: the runs differ"
    assert min(final["off"]) > 0.8, "the runs learned"
    assert statistics.mean(final["auto"]) == pytest.approx(statistics.mean(final["off"]), abs=0.01), final


# -- "off" is plain PyTorch -----------------------------------------------------------------------------------
def count_steps(optimizer: torch.optim.Optimizer) -> list[int]:
    """[how often optimizer.step() ran from now on]: the scaler (plain step) and the fused step both call it."""
    calls = [0]
    public_step = optimizer.step

    def counted(*args, **kwargs):
        calls[0] += 1
        return public_step(*args, **kwargs)

    optimizer.step = counted
    return calls


@pytest.mark.parametrize("accel", ["auto", "off"])
def test_off_trains_with_nn_dropout_autograd_and_the_optimizer_s_own_step(tiny_settings, accel):
    trainer = Trainer(
        tiny_settings("training.epochs=2", "model.dropout=0.3", f"training.accel={accel!r}"), [], set_threads=False
    )
    trainer.setup()
    dropouts = [m for m in trainer.model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts
    calls = count_steps(trainer.optimizer)
    events = []
    trainer.add_listener(events.append)
    trainer.run()
    steps = 2 * started(events).batches_per_epoch
    if accel == "off":
        assert all(type(m) is nn.Dropout for m in dropouts)
        assert type(trainer.step) is PlainStep
        assert calls[0] == steps, "every step through torch.optim"
    else:  # the contrast: what "off" must not do
        assert all(type(m) is Dropout for m in dropouts)
        assert type(trainer.step) is FusedMLPStep
        assert calls[0] == 1, "the first step creates Adam's state, the others call the kernel directly"


def test_off_leaves_torch_s_thread_count_unless_device_threads_is_set(tiny_settings):
    unusual = len(os.sched_getaffinity(0)) + 1  # more than the cores: no thread plan would choose it
    try:
        counts = {}
        for accel, threads in (("off", 0), ("auto", 0), ("off", 2)):
            torch.set_num_threads(unusual)
            s = tiny_settings("training.epochs=1", f"device.threads={threads}", f"training.accel={accel!r}")
            events = train(s, set_threads=True)[1]
            counts[accel, threads] = (started(events).threads, torch.get_num_threads())
    finally:
        torch.set_num_threads(1)
    assert counts["off", 0] == (unusual, unusual)
    assert counts["auto", 0][1] != unusual, "the contrast: auto sets the threads it timed"
    assert counts["off", 2] == (2, 2)


# -- the private fused Adam kernel --------------------------------------------------------------------------
def test_this_torch_has_the_fused_adam_kernels_with_the_expected_arguments():
    for name in ("_fused_adam_", "_fused_adamw_"):
        if not hasattr(torch, name):
            pytest.skip(f"torch {torch.__version__} has no torch.{name}: the fused step calls optimizer.step()")
        assert fused_adam.private_kernel(name) is not None, (
            f"torch {torch.__version__} changed the arguments of torch.{name}: update EXPECTED_ARGUMENTS in "
            "engine/training/accel/fused_adam.py after checking the call in direct_fused_adam"
        )


class TorchWithout:
    """torch as `fused_adam` sees it, less one attribute: a release that removed the kernel."""

    def __init__(self, missing: str):
        self.missing = missing

    def __getattr__(self, name: str):
        if name == self.missing:
            raise AttributeError(name)
        return getattr(torch, name)


def schema(names):
    arguments = [SimpleNamespace(name=n) for n in names]
    return SimpleNamespace(default=SimpleNamespace(_schema=SimpleNamespace(arguments=arguments)))


CHANGES = {
    "kernel missing": lambda mp, kernel: mp.setattr(fused_adam, "torch", TorchWithout(kernel)),
    "an argument renamed": lambda mp, kernel: mp.setattr(
        torch.ops.aten, kernel, schema([*fused_adam.EXPECTED_ARGUMENTS[:-1], "found_inf_or_nan"])
    ),
    "an argument added": lambda mp, kernel: mp.setattr(
        torch.ops.aten, kernel, schema([*fused_adam.EXPECTED_ARGUMENTS, "capturable"])
    ),
    "no schema": lambda mp, kernel: mp.setattr(torch.ops.aten, kernel, SimpleNamespace()),
}


def fused_steps(model: MLP, optimizer_name: str, steps: int = 5) -> tuple[list[torch.Tensor], int]:
    """The parameters after `steps` fused MLP steps from the same start, and how often optimizer.step ran."""
    model = copy.deepcopy(model)
    optimizer = build_optimizer(
        model, TrainingSettings(optimizer=optimizer_name, weight_decay=0.01), torch.device("cpu")
    )
    calls = count_steps(optimizer)
    step = FusedMLPStep(model, optimizer, label_smoothing=0.0, grad_clip=0.0)
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        step(torch.randn(32, 64, generator=g), torch.randint(0, 10, (32,), generator=g))
    return [p.detach().clone() for p in model.parameters()], calls[0]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("optimizer_name, kernel", [("adam", "_fused_adam_"), ("adamw", "_fused_adamw_")])
def test_a_changed_fused_adam_kernel_falls_back_to_the_optimizer_s_step(monkeypatch, change, optimizer_name, kernel):
    if fused_adam.private_kernel(kernel) is None:
        pytest.skip(f"torch {torch.__version__} offers no usable torch.{kernel} to compare with")
    torch.manual_seed(5)
    model = MLP(64, 10, (32, 16), 0.0)
    with_kernel, kernel_calls = fused_steps(model, optimizer_name)
    assert kernel_calls == 1, "with the kernel only the first step (Adam's state) goes through optimizer.step"

    CHANGES[change](monkeypatch, kernel)
    assert fused_adam.private_kernel(kernel) is None
    probe = build_optimizer(copy.deepcopy(model), TrainingSettings(optimizer=optimizer_name), torch.device("cpu"))
    assert fused_adam.direct_fused_adam(probe) is None
    without, public_calls = fused_steps(model, optimizer_name)
    assert public_calls == 5, "every step through optimizer.step()"
    for a, b in zip(with_kernel, without):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    assert with_kernel[0].sub(model.fc1.weight).abs().max() > 1e-4, "the parameters moved"
