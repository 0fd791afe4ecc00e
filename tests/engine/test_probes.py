"""The gradient probes (engine/training/probes.py): each badge on a small run built to show it, none on a healthy
run, and a probe that leaves the model as it found it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.events import Diagnostic
from engine.models.networks import CNN, MLP
from engine.training.probes import (
    ActivationLayer,
    GradientProbe,
    GradientRecord,
    ProbeRules,
    diagnose_gradients,
    probe_activations,
    probed_batches,
)

BATCH = 64


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0).clamp_min(1e-6), torch.tensor(d.target)


def stack(widths: list[int], activation: type[nn.Module], scale: float = 1.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), activation()]
    net = nn.Sequential(*layers[:-1])
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


def train(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, epochs: int):
    """The badge of each epoch (None for none), probing as a trainer would: the batches `probed_batches` picks,
    then the activations on a full batch of the epoch."""
    probe, batches = GradientProbe(model), (len(x) + BATCH - 1) // BATCH
    badges = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        for i in range(batches):
            index = order[i * BATCH:(i + 1) * BATCH]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
            if i + 1 in probed_batches(batches):
                probe.record()
        badges.append(diagnose_gradients(epoch, probe.take(), probe_activations(model, x[order[:BATCH]])))
    return badges


def statuses(badges: list[Diagnostic | None]) -> list[str]:
    return [b.status if b else "ok" for b in badges]


# -- which batches ---------------------------------------------------------------------------------------------------
def test_the_probed_batches_are_the_first_and_the_last_or_evenly_spaced():
    assert probed_batches(29) == {1, 29}
    assert probed_batches(1) == {1} and probed_batches(0) == set()
    assert probed_batches(100, 1) == {100}
    assert probed_batches(9, 3) == {1, 5, 9}
    assert probed_batches(2, 5) == {1, 2}


# -- each problem on a run built to show it --------------------------------------------------------------------------
def test_a_deep_sigmoid_net_shows_vanishing_gradients(digits, one_torch_thread):
    torch.manual_seed(0)
    model = stack([64] + [64] * 9 + [10], nn.Sigmoid)
    x, y = digits
    (badge,) = train(model, torch.optim.SGD(model.parameters(), lr=0.1), x[:512], y[:512], epochs=1)
    assert badge.status == "vanishing_gradients" and badge.label == "VANISHING GRADIENTS"
    assert "first layer 0" in badge.message and "last layer 18" in badge.message and "usual fix" in badge.message
    assert badge.evidence["first_to_last"] < ProbeRules().vanishing_ratio


def test_large_initial_weights_show_exploding_gradients_from_the_first_batch(digits, one_torch_thread):
    torch.manual_seed(0)
    model = stack([64, 128, 128, 128, 10], nn.ReLU, scale=20)
    (badge,) = train(model, torch.optim.SGD(model.parameters(), lr=0.01), *digits, epochs=1)
    assert badge.status == "exploding_gradients"
    assert badge.evidence["grad_to_weight"] > ProbeRules().exploding_ratio
    assert "training.grad_clip" in badge.message


def test_a_high_rate_on_a_relu_net_kills_its_units(digits, one_torch_thread):
    torch.manual_seed(0)
    model = stack([64, 128, 128, 10], nn.ReLU)
    badges = train(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), *digits, epochs=3)
    assert "dying_relu" in statuses(badges)
    badge = next(b for b in badges if b and b.status == "dying_relu")
    assert badge.evidence["dying_relu_share"] >= 0.5 and "units of " in badge.message and "LeakyReLU" in badge.message


def test_unstandardised_features_saturate_a_tanh_net(one_torch_thread):
    from sklearn.datasets import load_wine

    d = load_wine()
    torch.manual_seed(0)
    model = stack([13, 64, 64, 3], nn.Tanh)
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    badges = train(model, torch.optim.SGD(model.parameters(), lr=0.01), x, y, epochs=1)
    assert statuses(badges) == ["saturated_units"]
    assert badges[0].evidence["saturated_units_share"] >= 0.5 and "standardise" in badges[0].message


def test_healthy_runs_raise_nothing(digits, one_torch_thread):
    torch.manual_seed(0)
    mlp = MLP(64, 10, (256, 128), 0.3)
    assert statuses(train(mlp, torch.optim.Adam(mlp.parameters(), lr=1e-3), *digits, epochs=3)) == ["ok"] * 3
    cnn = CNN((1, 8, 8), 10)
    images = (digits[0].reshape(-1, 1, 8, 8), digits[1])
    assert statuses(train(cnn, torch.optim.Adam(cnn.parameters(), lr=1e-3), *images, epochs=1)) == ["ok"]


# -- what the activation probe sees ----------------------------------------------------------------------------------
class Functional(nn.Module):
    """Activations as functions and methods, no activation module: the chapter's style."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.out = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x), inplace=True)
        x = self.fc2(x).tanh()
        x = torch.sigmoid(self.fc3(x))
        return torch.sigmoid(self.out(x))


def test_functional_activations_are_seen_and_named_by_the_layer_before_them():
    layers = probe_activations(Functional(), torch.randn(16, 4))
    assert [(a.name, a.kind, a.units) for a in layers] == [
        ("fc1 -> relu", "relu", 8), ("fc2 -> tanh", "tanh", 8), ("fc3 -> sigmoid", "sigmoid", 8)
    ]  # the output's sigmoid is left out: a confident output is saturated by design


def test_a_reused_activation_module_and_a_convolution_count_by_call_and_by_channel():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(1, 3, 3, padding=1), nn.ReLU()
            with torch.no_grad():
                self.conv.bias.copy_(torch.tensor([-100.0, 0.0, 100.0]))

        def forward(self, x):
            return self.act(self.act(self.conv(x)) - 50).mean((2, 3))

    layers = probe_activations(Twice(), torch.rand(8, 1, 5, 5))
    assert [(a.name, a.units, a.stuck) for a in layers] == [("act", 3, 1), ("act #2", 3, 2)]


def test_dead_and_saturated_units_are_counted_on_a_built_net():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.zero_(), net[0].bias.copy_(torch.tensor([-1.0, -1.0, -1.0, 1.0]))  # three units never fire
        net[2].weight.zero_(), net[2].bias.copy_(torch.tensor([-9.0, 9.0, 0.0, 0.0]))  # two pinned, one each way
    relu, sigmoid = probe_activations(net, torch.randn(32, 2))
    assert (relu.name, relu.kind, relu.stuck, relu.share) == ("1", "relu", 3, 0.75)
    assert (sigmoid.name, sigmoid.kind, sigmoid.stuck) == ("3", "sigmoid", 2)


def test_a_model_without_activations_gives_nothing_to_judge():
    for model in (MLP(64, 10, hidden=()), nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))):
        assert probe_activations(model, torch.randn(8, 64 if isinstance(model, MLP) else 4)) == []
    assert diagnose_gradients(1, [], []) is None


def test_the_probe_leaves_the_model_as_it_found_it():
    torch.manual_seed(0)
    model = CNN((1, 8, 8), 10)
    model.train()
    model.features[1].eval()  # a user's frozen batch norm stays frozen
    stats, inputs = [b.clone() for b in model.buffers()], torch.randn(16, 1, 8, 8)
    rng = torch.get_rng_state()
    probe_activations(model, inputs)
    assert model.training and not model.features[1].training and model.features[5].training
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))  # no batch-norm statistic moved
    assert torch.equal(rng, torch.get_rng_state())  # no dropout mask drawn: the run's random stream is the same
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_forward_pass_that_fails_still_puts_everything_back():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            torch.relu(self.fc(x))
            raise RuntimeError("user code")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="user code"):
        probe_activations(model, torch.randn(8, 4))
    assert model.training and not model.fc._forward_hooks and not model.fc._forward_pre_hooks
    assert torch.relu(torch.ones(2, 2)).sum() == 4  # no mode left on the stack


def test_the_probe_sees_only_its_own_threads_activations():
    """The console trains in a worker thread; a forward pass elsewhere must neither be counted nor slowed."""
    import threading

    started, done = threading.Event(), threading.Event()

    class Waits(nn.Module):
        def forward(self, x):
            started.set()
            done.wait(timeout=60)
            return torch.relu(x)

    def elsewhere():
        started.wait(timeout=60)
        for _ in range(20):
            torch.relu(torch.ones(BATCH, 8))
        done.set()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    layers = probe_activations(nn.Sequential(Waits(), nn.Linear(8, 2)), torch.ones(BATCH, 8))
    thread.join()
    assert [a.name for a in layers] == ["0"]


def test_a_model_in_eval_mode_under_no_grad_is_probed_and_left_in_eval():
    model = MLP(64, 10, (32,), 0.0).eval()
    with torch.no_grad():
        layers = probe_activations(model, torch.randn(16, 64))
        assert GradientProbe(model).record() is None  # no step: no gradient to read
    assert [a.name for a in layers] == ["fc1 -> relu"] and not model.training


# -- what the gradient probe reads ---------------------------------------------------------------------------------
def test_the_gradient_probe_reads_each_layer_with_a_gradient_in_the_models_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    model[2].requires_grad_(False)  # frozen: no gradient, not a layer the probe judges
    probe = GradientProbe(model)
    F.cross_entropy(model(torch.randint(0, 10, (16, 2))), torch.randint(0, 3, (16,))).backward()
    record = probe.record()
    assert record.layers == ("4",)  # the embedding's gradient reaches only the rows used: left out
    w = model[4].requires_grad_(False)
    assert record.grad_norms[0] == pytest.approx(math.hypot(w.weight.grad.norm(), w.bias.grad.norm()), rel=1e-5)
    assert record.weight_norms[0] == pytest.approx(math.hypot(w.weight.norm(), w.bias.norm()), rel=1e-5)
    assert probe.take() == [record] and probe.take() == []


# -- the rules, on numbers given -----------------------------------------------------------------------------------
def record(grads, weights=None) -> GradientRecord:
    names = tuple(f"fc{i}" for i in range(1, len(grads) + 1))
    return GradientRecord(names, tuple(grads), tuple(weights or [1.0] * len(grads)))


def test_vanishing_must_hold_on_every_probed_batch():
    assert diagnose_gradients(2, [record([1e-6, 1e-3, 1.0])] * 2).status == "vanishing_gradients"
    assert diagnose_gradients(2, [record([1e-6, 1e-3, 1.0]), record([1e-2, 0.1, 1.0])]) is None


def test_exploding_needs_one_probed_batch_over_the_line():
    badge = diagnose_gradients(1, [record([3.0, 4.0, 3.0], [1.0, 1.0, 0.5]), record([0.0, 0.0, 0.0])])
    assert badge.status == "exploding_gradients" and badge.evidence["grad_to_weight"] == 4.0
    assert "most in fc3: 3 against 0.5" in badge.message  # the batch that crossed, not the calm one after it
    assert diagnose_gradients(1, [record([1.1, 1.2, 1.0]), record([0.3, 0.2, 0.1])]) is None  # a brisk healthy rate


def test_a_model_of_one_layer_has_no_exploding_gradients_unless_they_are_not_finite():
    # a healthy linear regression's first batches: gradients several times its small initial weights
    assert diagnose_gradients(1, [record([3.0], [0.5])] * 2) is None
    assert diagnose_gradients(1, [record([3.0, 3.0], [0.5, 0.5])] * 2).status == "exploding_gradients"
    assert diagnose_gradients(1, [record([float("inf")])]).status == "exploding_gradients"


def test_a_non_finite_gradient_explodes_only_when_it_is_the_latest():
    inf = float("inf")
    badge = diagnose_gradients(1, [record([0.1, 0.1]), record([inf, 0.1])])
    assert badge.status == "exploding_gradients" and "fc1" in badge.message and "not finite" in badge.message
    # a GradScaler's first steps overflow while it finds its scale; the step after is the state that counts
    assert diagnose_gradients(1, [record([inf, 0.1]), record([0.1, 0.1])]) is None


def test_one_badge_names_the_cause_and_the_rest_of_what_was_seen():
    dead = [ActivationLayer("fc1 -> relu", "relu", 100, 90), ActivationLayer("fc2 -> relu", "relu", 100, 10)]
    badge = diagnose_gradients(3, [record([0.0, 0.0, 1.0])] * 2, dead)
    assert badge.status == "dying_relu" and badge.label == "DYING RELU"
    assert "90 of 100 units of fc1 -> relu" in badge.message and "also vanishing gradients" in badge.message
    assert badge.evidence["dying_relu_share"] == 0.9 and badge.evidence["first_to_last"] == 0.0
    assert all(isinstance(v, float) for v in badge.evidence.values())


def test_small_layers_and_healthy_shares_are_not_judged():
    tiny = [ActivationLayer("head", "sigmoid", 2, 2)]
    some_dead = [ActivationLayer("fc1 -> relu", "relu", 128, 40)]
    assert diagnose_gradients(1, [record([0.05, 0.1, 0.2])] * 2, tiny + some_dead) is None
