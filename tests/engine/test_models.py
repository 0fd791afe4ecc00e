"""Built-in models (the chapter's MLP, a small CNN), torchvision classifiers and user models."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn as nn

from engine.settings.config import ModelSettings, SettingsError, from_dict
from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.models.networks import CNN, MLP, build_model, count_parameters
from engine.api import Run
from chapter import ReseauMNIST


def settings(**values) -> ModelSettings:
    """The model settings of `values`, the mlp unless they name another (auto needs a dataset: test_defaults)."""
    return from_dict({"model": {"name": "mlp", **values}}).model


def test_mlp_is_the_chapters_reseau_mnist():
    model = build_model(settings(), (1, 28, 28), 10)
    assert isinstance(model, MLP)
    assert count_parameters(model) == 235_146 == count_parameters(ReseauMNIST())
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    chapter = ReseauMNIST()
    chapter.load_state_dict(model.state_dict())  # strict: same keys, same shapes
    model.eval(), chapter.eval()
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(model(x), chapter(x), atol=1e-6)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]


def test_mlp_other_sizes():
    model = build_model(settings(hidden=[16, 8, 4], dropout=0.0), (3,), 2)
    assert count_parameters(model) == (3 * 16 + 16) + (16 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)
    assert model(torch.randn(7, 3)).shape == (7, 2)
    linear = build_model(settings(hidden=[]), (1, 8, 8), 10)
    assert count_parameters(linear) == 64 * 10 + 10 and linear(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_mlp_without_hidden_layers_is_logistic_regression_and_learns(tiny_settings):
    s = tiny_settings("model.name=mlp", "model.hidden=[]", "training.epochs=3", "training.lr=0.05")
    model = build_model(s.model, (1, 8, 8), 10)
    assert [type(m) for m in model.children()] == [nn.Linear], "one linear layer, no dropout"
    events = []
    final = Run(s, events.append).run()
    assert isinstance(final, RunFinished), getattr(final, "traceback", final)
    assert [e for e in events if isinstance(e, EpochCompleted)][-1].val_acc > 0.8


def test_built_in_models_never_see_options():
    """Options would be silently ignored by mlp and cnn, so the settings refuse them (test_config)."""
    with pytest.raises(SettingsError, match="model.options = {'hidden': \\[8\\]}: the built-in mlp takes no options"):
        settings(options={"hidden": [8]})
    with pytest.raises(SettingsError, match="the built-in cnn takes no options"):
        settings(name="cnn", options={"channels": [8]})


def test_mlp_dropout_is_active_only_in_train_mode():
    model = build_model(settings(dropout=0.5), (20,), 3)
    x = torch.randn(64, 20)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_cnn_shapes_on_small_and_large_images():
    for shape in ((1, 8, 8), (3, 32, 32), (1, 3, 3)):
        model = build_model(settings(name="cnn", channels=[4, 8]), shape, 7)
        assert isinstance(model, CNN)
        assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_cnn_refuses_flat_features():
    with pytest.raises(SettingsError, match="model.name = 'cnn'.*use mlp"):
        build_model(settings(name="cnn"), (20,), 3)


def test_torchvision_model_with_random_weights_on_grayscale():
    model = build_model(settings(name="resnet18"), (1, 8, 8), 10)
    model.eval()
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    fresh = build_model(settings(name="resnet18"), (1, 8, 8), 10)
    first = lambda m: next(p for p in m.parameters())  # noqa: E731
    assert not torch.equal(first(model), first(fresh)), "random weights, not a downloaded checkpoint"


def test_torchvision_model_options_and_errors():
    model = build_model(settings(name="resnet18", options={"zero_init_residual": True}), (3, 16, 16), 4)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0, "the option reached torchvision"
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(SettingsError, match="model.name = 'resnet18': BasicBlock only supports"):
        build_model(settings(name="resnet18", options={"width_per_group": 32}), (3, 16, 16), 4)
    with pytest.raises(SettingsError, match="model.name = 'resnet18'"):
        build_model(settings(name="resnet18", options={"no_such_option": 1}), (3, 16, 16), 4)
    with pytest.raises(SettingsError, match="need images"):
        build_model(settings(name="resnet18"), (20,), 4)


def test_resnet18_trains_one_epoch_on_digits(tiny_settings):
    s = tiny_settings("model.name=resnet18", "training.epochs=1", "data.val_fraction=0.9", "data.batch_size=60")
    events = []
    final = Run(s, events.append).run()
    assert isinstance(final, RunFinished), getattr(final, "traceback", final)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.parameters == count_parameters(build_model(s.model, (1, 8, 8), 10))
    assert len([e for e in events if isinstance(e, EpochCompleted)]) == 1


USER_MODELS = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, in_features, num_classes, width=8, scale=1.0):
        super().__init__()
        self.width, self.scale = width, scale
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x) * self.scale

def make_net(in_shape, num_classes, width=8):
    return Net(in_shape[0] * in_shape[1] * in_shape[2], num_classes, width=width)

def not_a_module(num_classes):
    return "nope"

class Broken(nn.Module):
    def __init__(self, num_classes):
        raise ValueError(f"cannot make {num_classes} classes")
"""


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "usermodels_pkg.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usermodels_pkg"
    sys.modules.pop("usermodels_pkg", None)


def test_user_model_class_with_options(user_models):
    model = build_model(settings(name=f"{user_models}:Net", options={"width": 5, "scale": 2.0}), (1, 8, 8), 10)
    assert type(model).__name__ == "Net" and model.width == 5 and model.scale == 2.0
    assert count_parameters(model) == 64 * 5 + 5 + 5 * 10 + 10


def test_user_model_factory_receives_shape_and_options(user_models):
    model = build_model(settings(name=f"{user_models}:make_net", options={"width": 3}), (1, 8, 8), 4)
    assert model.width == 3 and model(torch.randn(2, 1, 8, 8)).shape == (2, 4)


def test_user_model_errors(user_models):
    with pytest.raises(SettingsError, match="not a torch.nn.Module"):
        build_model(settings(name=f"{user_models}:not_a_module"), (1, 8, 8), 10)
    with pytest.raises(SettingsError, match="has no class or function 'Missing'"):
        build_model(settings(name=f"{user_models}:Missing"), (1, 8, 8), 10)
    with pytest.raises(SettingsError, match="cannot import module 'no_such_models_xyz'"):
        build_model(settings(name="no_such_models_xyz:Net"), (1, 8, 8), 10)
    with pytest.raises(SettingsError, match="colour"):
        build_model(settings(name=f"{user_models}:Net", options={"colour": 1}), (1, 8, 8), 10)
    with pytest.raises(SettingsError, match="model.name: Broken.*raised ValueError: cannot make 10 classes"):
        build_model(settings(name=f"{user_models}:Broken"), (1, 8, 8), 10)


def test_user_model_trains(tiny_settings, user_models):
    s = tiny_settings(f"model.name='{user_models}:Net'", "model.options={ width = 16 }")
    events = []
    final = Run(s, events.append).run()
    assert isinstance(final, RunFinished), getattr(final, "traceback", final)
    assert next(e for e in events if isinstance(e, RunStarted)).parameters == 64 * 16 + 16 + 16 * 10 + 10
