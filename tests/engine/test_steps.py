"""The fused MLP step makes the updates autograd makes: same losses, same parameters, same random draws."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.settings.config import TrainingSettings
from engine.models.networks import CNN, MLP
from engine.training.optim import build_optimizer, build_scheduler
from engine.training.accel import build_step
from engine.training.accel.dropout import use_fast_dropout
from engine.training.accel.fused_mlp import FusedMLPStep
from engine.training.loop import PlainStep
from engine.api import Run

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """One thread: the two steps' matrix products then sum in the same order run after run."""


def train(fused: bool, model: nn.Module, t: TrainingSettings, batches, scheduler: bool = False):
    """Steps over `batches` from seed 0; the losses, the final parameters and the random state after."""
    model = copy.deepcopy(model)
    use_fast_dropout(model)  # as accel does for the built-in models: the fused step draws its masks alike
    optimizer = build_optimizer(model, t, CPU)
    sched = build_scheduler(optimizer, t, len(batches)) if scheduler else None
    criterion = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = build_step(
        model,
        model,
        criterion,
        optimizer,
        scaler,
        None,
        CPU,
        grad_clip=t.grad_clip,
        label_smoothing=t.label_smoothing,
        fused=fused,
    )
    assert isinstance(step, FusedMLPStep if fused else PlainStep)
    model.train()
    torch.manual_seed(0)
    losses, logits = [], []
    for xb, yb in batches:
        loss, out = step(xb, yb)
        losses.append(float(loss))
        logits.append(out.clone())
        if sched is not None:
            sched.step()
    return losses, logits, [p.detach().clone() for p in model.parameters()], torch.get_rng_state()


def batches(n=6, size=32, features=(1, 8, 8), classes=10, last=20):
    g = torch.Generator().manual_seed(3)
    sizes = [size] * (n - 1) + [last]  # a short last batch, as a split that does not divide evenly gives
    return [(torch.randn(s, *features, generator=g), torch.randint(0, classes, (s,), generator=g)) for s in sizes]


CASES = {
    "chapter MLP, adam": ({"hidden": (48, 24), "dropout": 0.3}, {}),
    "no dropout": ({"hidden": (32,), "dropout": 0.0}, {}),
    "linear model": ({"hidden": (), "dropout": 0.3}, {}),
    "three hidden layers": ({"hidden": (40, 30, 20), "dropout": 0.5}, {}),
    "adamw with weight decay": ({"hidden": (32, 16), "dropout": 0.2}, {"optimizer": "adamw", "weight_decay": 0.05}),
    "adam with weight decay": ({"hidden": (32, 16), "dropout": 0.2}, {"weight_decay": 0.01}),
    "sgd with momentum": ({"hidden": (32, 16), "dropout": 0.3}, {"optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-3}),
    "label smoothing": ({"hidden": (32, 16), "dropout": 0.3}, {"label_smoothing": 0.1}),
    "gradient clipping": ({"hidden": (32, 16), "dropout": 0.3}, {"grad_clip": 0.05, "lr": 0.01}),
}


@pytest.mark.parametrize("case", CASES)
def test_fused_step_matches_autograd(case):
    model_kw, training_kw = CASES[case]
    torch.manual_seed(5)
    model = MLP(64, 10, **model_kw)
    t = TrainingSettings(**training_kw)
    data = batches()
    auto_losses, auto_logits, auto_params, auto_rng = train(False, model, t, data)
    fused_losses, fused_logits, fused_params, fused_rng = train(True, model, t, data)
    assert fused_losses == pytest.approx(auto_losses, rel=1e-5, abs=1e-6)
    for a, f in zip(auto_logits, fused_logits):
        torch.testing.assert_close(f, a, rtol=1e-5, atol=1e-5)
    for a, f in zip(auto_params, fused_params):
        torch.testing.assert_close(f, a, rtol=1e-5, atol=1e-6)
    assert torch.equal(fused_rng, auto_rng), (
        "the fused step must draw its dropout masks like engine.training.accel.dropout.Dropout"
    )
    assert auto_params[0].sub(model.fc1.weight).abs().max() > 1e-4, "the parameters moved"


def test_fused_step_follows_a_per_batch_scheduler():
    torch.manual_seed(5)
    model = MLP(64, 10, (32,), 0.3)
    t = TrainingSettings(scheduler="onecycle", epochs=1, lr=0.01)
    data = batches()
    auto = train(False, model, t, data, scheduler=True)
    fused = train(True, model, t, data, scheduler=True)
    for a, f in zip(auto[2], fused[2]):
        torch.testing.assert_close(f, a, rtol=1e-5, atol=1e-6)


def test_direct_adam_keeps_the_optimizer_state_dict():
    """After fused steps the optimizer's state_dict is what optimizer.step() would have left (checkpoints hold it)."""
    torch.manual_seed(5)
    model = MLP(64, 10, (32,), 0.0)
    t = TrainingSettings()
    data = batches(n=4)
    states = []
    for fused in (False, True):
        m = copy.deepcopy(model)
        opt = build_optimizer(m, t, CPU)
        step = build_step(
            m,
            m,
            nn.CrossEntropyLoss(),
            opt,
            torch.amp.GradScaler("cpu", enabled=False),
            None,
            CPU,
            grad_clip=0.0,
            label_smoothing=0.0,
            fused=fused,
        )
        for xb, yb in data:
            step(xb, yb)
        states.append(opt.state_dict())
    auto, fused = states
    assert auto["param_groups"] == fused["param_groups"]
    for i, s in auto["state"].items():
        assert float(fused["state"][i]["step"]) == float(s["step"]) == 4
        torch.testing.assert_close(fused["state"][i]["exp_avg"], s["exp_avg"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fused["state"][i]["exp_avg_sq"], s["exp_avg_sq"], rtol=1e-5, atol=1e-9)


def test_autograd_is_used_where_the_fused_step_does_not_apply():
    opt_args = dict(criterion=nn.CrossEntropyLoss(), scaler=torch.amp.GradScaler("cpu", enabled=False))

    def kind(model, amp_dtype=None, forward=None, fused=True):
        opt = torch.optim.Adam(model.parameters())
        return type(
            build_step(
                model,
                forward or model,
                opt_args["criterion"],
                opt,
                opt_args["scaler"],
                amp_dtype,
                CPU,
                grad_clip=0.0,
                label_smoothing=0.0,
                fused=fused,
            )
        )

    mlp = MLP(16, 3, (8,), 0.3)
    assert kind(mlp) is FusedMLPStep
    assert kind(mlp, fused=False) is PlainStep
    assert kind(mlp, amp_dtype=torch.bfloat16) is PlainStep
    assert kind(mlp, forward=lambda x: mlp(x)) is PlainStep  # compiled
    assert kind(MLP(16, 3, (8,), 0.999995)) is PlainStep  # keep rounds to 0: nn.Dropout's path
    assert kind(CNN((1, 8, 8), 3, (4,))) is PlainStep
    assert kind(nn.Sequential(nn.Flatten(), nn.Linear(16, 3))) is PlainStep


def test_a_run_says_which_step_it_uses(tiny_settings):
    for value, expected in (("auto", "fused MLP step"), ("off", "autograd")):
        events = []
        Run(
            tiny_settings("training.epochs=1", f"training.accel={value}"), events.append, set_threads=False
        ).run()
        started = events[0]
        assert started.step.startswith(expected)
        assert events[-1].status == "completed"


def test_fused_step_survives_zero_grad_set_to_none():
    """The gradients are written into .grad.

    A zero_grad(set_to_none=True) in between must not make a step skip its update.
    """
    torch.manual_seed(5)
    model = MLP(64, 10, (16,), 0.0)
    t = TrainingSettings()
    opt = build_optimizer(model, t, CPU)
    step = build_step(
        model,
        model,
        nn.CrossEntropyLoss(),
        opt,
        torch.amp.GradScaler("cpu", enabled=False),
        None,
        CPU,
        grad_clip=0.0,
        label_smoothing=0.0,
        fused=True,
    )
    ((xb, yb),) = batches(n=1)
    step(xb, yb)
    opt.zero_grad(set_to_none=True)
    before = model.fc1.weight.detach().clone()
    step(xb, yb)
    assert not torch.equal(model.fc1.weight, before)


def test_a_step_s_masks_drawn_at_once_are_the_ones_dropout_draws_layer_by_layer():
    from engine.training.accel.dropout import dropout_mask, keep_probability
    from engine.training.accel.fused_mlp import _BatchBuffers

    keeps = [keep_probability(0.7), None, keep_probability(0.5)]
    shapes = [(5, 7), (5, 4), (5, 3)]  # 35 and 15 elements: not whole words of four lanes
    torch.manual_seed(3)
    expected = [
        dropout_mask(torch.Size(shape), keep) if keep is not None else None for shape, keep in zip(shapes, keeps)
    ]
    after = torch.get_rng_state()
    torch.manual_seed(3)
    buffers = _BatchBuffers(5, [w for _, w in shapes], keeps, 0.0)
    buffers.draw()
    assert torch.equal(torch.get_rng_state(), after)
    for got, want in zip(buffers.masks, expected):
        assert (got is None and want is None) or torch.equal(got, want)
    first = [m.clone() for m in buffers.masks if m is not None]
    buffers.draw()  # the next step: new masks in the same buffers
    assert not all(torch.equal(m, f) for m, f in zip([m for m in buffers.masks if m is not None], first))
