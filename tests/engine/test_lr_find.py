"""The learning-rate finder: the model and optimizer put back bit for bit, the suggestion on known curves, the stop
on divergence, and its settings checked like every other."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.models.networks import MLP
from engine.settings.config import LrFindSettings, SettingsError, load_settings
from engine.training.lr_find import find_lr, loss_axis, restored, suggest, sweep, sweep_rates
from engine.training.accel import build_step
from engine.training.accel.fused_mlp import FusedMLPStep

CPU = torch.device("cpu")


def _mlp_and_step(fused: bool):
    torch.manual_seed(0)
    model = MLP(64, 10, [32, 16], dropout=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    criterion = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = build_step(model, model, criterion, optimizer, scaler, None, CPU, grad_clip=1.0, label_smoothing=0.0,
                      fused=fused)  # fmt: skip
    return model, optimizer, step


def _batches(n: int = 4):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(32, 64, generator=g), torch.randint(0, 10, (32,), generator=g)) for _ in range(n)]


def _snapshot(model, optimizer):
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = {
        i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
        for i, s in optimizer.state_dict()["state"].items()
    }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    return weights, state, groups, grads, torch.get_rng_state()


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("fused", [True, False], ids=["fused step", "autograd step"])
def test_the_sweep_leaves_weights_and_optimizer_state_bit_identical(fused):
    model, optimizer, step = _mlp_and_step(fused)
    assert isinstance(step, FusedMLPStep) == fused
    for xb, yb in _batches(2):  # the optimizer has state (Adam's moments, its step count) before the sweep
        step(xb, yb)
    optimizer.param_groups[0]["lr"] = 3e-4
    before = _snapshot(model, optimizer)
    rules = LrFindSettings(start_lr=1e-4, end_lr=1.0, steps=12, diverge=0.0)
    with restored(model, optimizer):
        points, stopped = sweep(step, optimizer, _batches(), rules, CPU)
        changed = _snapshot(model, optimizer)
    assert stopped == "completed" and len(points) == 12  # the data cycled three times
    assert not _same(changed[0], before[0]) and not _same(changed[1], before[1]), "the sweep trained"
    assert changed[2][0]["lr"] == pytest.approx(1.0)
    assert _same(_snapshot(model, optimizer), before)
    model_after, optimizer_after, step_after = model, optimizer, step  # and training goes on as it would have
    xb, yb = _batches(1)[0]
    loss_after = step_after(xb, yb)[0]
    fresh, fresh_optimizer, fresh_step = _mlp_and_step(fused)
    for b in _batches(2):
        fresh_step(*b)
    fresh_optimizer.param_groups[0]["lr"] = 3e-4
    torch.set_rng_state(before[4])
    assert torch.equal(fresh_step(xb, yb)[0], loss_after)
    assert _same(model_after.state_dict(), fresh.state_dict())
    assert _same(optimizer_after.state_dict()["state"], fresh_optimizer.state_dict()["state"])


def test_find_lr_on_digits_gives_points_and_a_suggestion(tmp_path):
    settings = load_settings(None, ["lr_find.steps=30", "device.device='cpu'", f"run.runs_dir={str(tmp_path)!r}"])
    seen = []
    result = find_lr(settings, on_point=lambda i, p: seen.append(i))
    assert seen == list(range(len(result.points))) and len(result.points) >= 10
    assert result.points[0].lr == pytest.approx(1e-7)
    assert result.suggestion is not None and 1e-7 <= result.suggestion <= 10
    assert result.index is not None and f"{result.points[result.index].lr:.3g}" == f"{result.suggestion:.3g}"
    assert list(tmp_path.iterdir()) == [], "no run folder, no checkpoint"


def test_a_cancelled_sweep_stops_between_steps():
    model, optimizer, step = _mlp_and_step(True)
    calls = []
    points, stopped = sweep(step, optimizer, _batches(), LrFindSettings(steps=50), CPU,
                            cancelled=lambda: calls.append(1) or len(calls) > 3)  # fmt: skip
    assert stopped == "cancelled" and len(points) == 3


def _synthetic(lrs, centre: float, width: float = 0.5):
    """A loss that falls from 2.3 to 0.3 around log10(lr) = centre (steepest there), then climbs past 1e-1."""
    losses = []
    for lr in lrs:
        x = math.log10(lr)
        losses.append(1.3 - math.tanh((x - centre) / width) + (max(0.0, x + 1) ** 2) * 3)
    return losses


@pytest.mark.parametrize("centre", [-4.0, -3.0, -2.5])
def test_steepest_is_where_the_curve_falls_fastest(centre):
    lrs = sweep_rates(1e-7, 10, 100)
    index = suggest(lrs, _synthetic(lrs, centre), "steepest", skip_begin=10)
    # the forward difference from index to index + 1 straddles the centre
    assert math.log10(lrs[index]) <= centre <= math.log10(lrs[index + 1])


def test_valley_is_the_middle_of_the_longest_descent():
    lrs = sweep_rates(1e-7, 10, 100)
    # flat (noise that rises) to index 40, a strict descent from 40 to 80, then a climb
    losses = [2.0 + 0.001 * (i % 2) for i in range(40)] + [2.0 - 0.04 * i for i in range(40)] + [
        0.5 + 0.3 * i for i in range(20)
    ]
    index = suggest(lrs, losses, "valley", skip_begin=10)
    assert 55 <= index <= 62


def test_too_few_points_give_no_suggestion():
    assert suggest([1e-3, 1e-2], [1.0, 0.5], "steepest", skip_begin=10) is None
    assert suggest([1e-3, 1e-2, 1e-1], [1.0, float("nan"), 0.5], "valley", skip_begin=0) is None


def _loss_step(losses):
    """A step whose loss is read from `losses` (the lr ignored): a curve made to diverge where the test says."""
    it = iter(losses)

    def step(xb, yb):
        return torch.tensor(next(it)), None

    return step


def test_the_sweep_stops_once_the_smoothed_loss_passes_diverge_times_its_lowest():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    losses = [1.0] * 20 + [50.0] * 80
    rules = LrFindSettings(steps=100, smoothing=0.0, diverge=4.0)
    points, stopped = sweep(_loss_step(losses), optimizer, _batches(1), rules, CPU)
    assert stopped == "diverged" and len(points) == 21 and points[-1].loss == 50.0
    smoothed = LrFindSettings(steps=100, smoothing=0.98, diverge=4.0)
    points, stopped = sweep(_loss_step(losses), optimizer, _batches(1), smoothed, CPU)
    assert stopped == "diverged" and 21 < len(points) < 100  # the moving average takes some steps to get there
    never = LrFindSettings(steps=100, smoothing=0.98, diverge=0.0)
    points, stopped = sweep(_loss_step(losses), optimizer, _batches(1), never, CPU)
    assert stopped == "completed" and len(points) == 100


def test_a_non_finite_loss_ends_the_sweep_without_a_point():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    points, stopped = sweep(_loss_step([1.0] * 15 + [float("nan")] + [1.0] * 84), optimizer, _batches(1),
                            LrFindSettings(steps=100), CPU)  # fmt: skip
    assert stopped == "diverged" and len(points) == 15


def test_the_loss_axis_stops_at_one_and_a_half_times_the_start():
    from engine.training.lr_find import LrPoint

    points = [LrPoint(1e-3, 2.0, 2.0), LrPoint(1e-2, 1.0, 1.0), LrPoint(1e-1, 90.0, 9.0)]
    low, top = loss_axis(points)
    assert top == 3.0 and low == pytest.approx(1.0 - 0.04)


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr_find.start_lr=10.0", "lr_find.start_lr = 10 is not below lr_find.end_lr = 10"),
        ("lr_find.end_lr=100", "lr_find.end_lr = 100: must be at most 10.0"),
        ("lr_find.steps=5", "lr_find.steps = 5: must be at least 10"),
        ("lr_find.smoothing=1", "lr_find.smoothing = 1: must be at most 0.999"),
        ("lr_find.diverge=-1", "lr_find.diverge = -1: must be at least 0.0"),
        ("lr_find.suggestion=steep", "lr_find.suggestion = 'steep': unknown (did you mean 'steepest'?); allowed: "
                                     "steepest, valley"),  # fmt: skip
    ],
)
def test_bad_lr_find_settings_are_one_line_naming_the_key(override, message):
    with pytest.raises(SettingsError) as error:
        load_settings(None, [override])
    assert message in str(error.value) and "\n" not in str(error.value)
