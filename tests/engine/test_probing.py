"""The gradient probes inside a run: they change nothing of its numbers, and their badge meets the loss's."""

from __future__ import annotations

import torch
from torch import nn

from engine.events import Diagnostic, EpochCompleted
from engine.training.probing import RunProbes, with_probes
from engine.training.trainer import Trainer


def epochs_of(settings) -> list[EpochCompleted]:
    events = []
    Trainer(settings, events.append, set_threads=False).run()
    return [e for e in events if isinstance(e, EpochCompleted)]


def test_a_probed_run_trains_exactly_as_an_unprobed_one(tiny_settings, one_torch_thread):
    probed = epochs_of(tiny_settings("training.epochs=3", "model.dropout=0.2"))
    plain = epochs_of(tiny_settings("training.epochs=3", "model.dropout=0.2", "diagnostics.probes=false"))
    assert [e.metrics() | {"seconds": 0, "samples_per_s": 0, "time": 0} for e in probed] == [
        e.metrics() | {"seconds": 0, "samples_per_s": 0, "time": 0} for e in plain
    ]
    assert {e.diagnostic.status for e in probed} == {"ok"}  # a healthy run: no probe alarm


def test_a_deep_sigmoid_net_shows_vanishing_gradients_within_three_epochs():
    torch.manual_seed(0)
    layers = [nn.Flatten()]
    for width_in, width_out in [(64, 32)] + [(32, 32)] * 8:
        layers += [nn.Linear(width_in, width_out), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    x, y = torch.randn(256, 1, 8, 8), torch.randint(0, 10, (256,))
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    probes = RunProbes(model, len(batches), batches, torch.device("cpu"))
    optimizer, criterion = torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()
    found = []
    for epoch in (1, 2, 3):
        model.train()
        for batch, (xb, yb) in enumerate(batches, start=1):
            optimizer.zero_grad()
            criterion(model(xb), yb).backward()
            optimizer.step()
            probes.after_step(batch)
        found.append(probes.diagnose(epoch))
    assert any(d is not None and d.status == "vanishing_gradients" for d in found), found


def test_nan_and_diverging_stay_first_and_the_probe_names_the_cause_otherwise():
    probe = Diagnostic("exploding_gradients", "fc1's gradients 40x its weights", {"ratio": 40.0})
    diverging = Diagnostic("diverging", "train loss 1e17", {"train_loss": 1e17})
    merged = with_probes(diverging, probe)
    assert merged.status == "diverging" and "also EXPLODING GRADIENTS: fc1" in merged.message
    assert merged.evidence == {"ratio": 40.0, "train_loss": 1e17}
    overfitting = Diagnostic("overfitting", "gap 0.7", {"loss_gap": 0.7})
    assert with_probes(overfitting, probe).status == "exploding_gradients"
    assert "also OVERFITTING" in with_probes(overfitting, probe).message
    ok = Diagnostic("ok", "loss gap +0.01", {})
    assert with_probes(ok, probe) == probe and with_probes(ok, None) == ok
