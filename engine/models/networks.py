"""Built-in models (the chapter's MLP, a small CNN), torchvision classifiers and user models."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from engine.settings.config import ModelSettings, SettingsError
from engine.models.registry import BUILTIN_MODELS, builtin_builder
from engine.settings.names import AUTO
from engine.settings.user_code import call_with_options, import_object


class MLP(nn.Module):
    """Chapter 4.2's ReseauMNIST, generalised: flatten, then Linear → ReLU → Dropout per hidden size.

    With hidden=[256, 128], dropout=0.3 and a 28×28 input it has the same
    layers and the same 235,146 parameters.
    With hidden=[] it is one linear layer: multinomial logistic regression.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.3):
        super().__init__()
        # Named fc1, dropout1, ... like the chapter's class, so its state_dict keys match
        # and the chapter's own `ReseauMNIST().load_state_dict(...)` reads our checkpoints.
        self.depth = len(hidden)
        width = in_features
        for i, size in enumerate(hidden, start=1):
            setattr(self, f"fc{i}", nn.Linear(width, size))
            setattr(self, f"dropout{i}", nn.Dropout(dropout))
            width = size
        setattr(self, f"fc{self.depth + 1}", nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"dropout{i}")(torch.relu(getattr(self, f"fc{i}")(x)))
        return getattr(self, f"fc{self.depth + 1}")(x)


CNN_POOLED_PX = 4  # blocks are added until the image is this small: the head then sees a whole digit, not a stroke
CNN_WIDTH_MAX = 256


def cnn_widths(in_shape: Sequence[int], channels: Sequence[int]) -> list[int]:
    """`channels`, then blocks of twice the last width (at most 256) while the pooled image is larger than 4 px.

    Two blocks leave a 32 px image at 8x8, which the global average pool blurs into an underfitting model (68 %
    training accuracy on 32 px digits after 20 epochs); a third block takes it to 4x4 and learns (BENCHMARKS.md).
    """
    widths, h, w = list(channels), in_shape[1], in_shape[2]
    for _ in widths:
        if min(h, w) >= 4:
            h, w = h // 2, w // 2
    while min(h, w) > CNN_POOLED_PX:
        widths.append(min(widths[-1] * 2, CNN_WIDTH_MAX))
        h, w = h // 2, w // 2
    return widths


class CNN(nn.Module):
    """A small conv net: per block conv3×3 → BatchNorm → ReLU → max-pool (while the image is ≥ 4 px).

    Blocks are added to `channels` until the image is pooled to 4 px or less (`cnn_widths`), so the default learns
    on the 28-64 px images people have without tuning.
    """

    def __init__(
        self, in_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64), dropout: float = 0.3
    ):
        super().__init__()
        c, h, w = in_shape
        blocks: list[nn.Module] = []
        for out in cnn_widths(in_shape, channels):
            blocks += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            if min(h, w) >= 4:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ToThreeChannels(nn.Module):
    """Lets torchvision's 3-channel classifiers take grayscale images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def build_mlp(settings: ModelSettings, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(math.prod(in_shape), num_classes, settings.hidden, settings.dropout)


def build_cnn(settings: ModelSettings, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(in_shape) != 3:
        raise SettingsError(
            f"model.name = 'cnn': needs images (channels, height, width), the dataset gives shape {in_shape}; use mlp"
        )
    return CNN(in_shape, num_classes, settings.channels, settings.dropout)


def build_model(settings: ModelSettings, in_shape: Sequence[int], num_classes: int) -> nn.Module:
    """The model `model.name` names.

    Built-in (engine.models.registry), the user's `package.module:Class`, or torchvision's.
    """
    in_shape = tuple(in_shape)
    if settings.name == AUTO:  # a caller's slip, named: auto is chosen from the dataset, which ModelSettings lacks
        raise SettingsError("model.name = 'auto' reached build_model: resolve it first (engine.settings.defaults)")
    if settings.name in BUILTIN_MODELS:
        return builtin_builder(settings.name)(settings, in_shape, num_classes)
    if ":" in settings.name:
        cls = import_object(settings.name, "class or function", "model.name")
        given = {"in_shape": in_shape, "in_features": math.prod(in_shape), "num_classes": num_classes}
        model = call_with_options(cls, settings.options, given, "model.name")
        if not isinstance(model, nn.Module):
            raise SettingsError(
                f"model.name = '{settings.name}': returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model
    from torchvision import models

    if len(in_shape) != 3:
        raise SettingsError(
            f"model.name = '{settings.name}': torchvision models need images, "
            f"the dataset gives shape {in_shape}; use mlp"
        )
    try:  # weights=None: random weights, never a hub download
        net = models.get_model(settings.name, weights=None, num_classes=num_classes, **settings.options)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"model.name = '{settings.name}': {e}") from None
    return nn.Sequential(ToThreeChannels(), net) if in_shape[0] == 1 else net


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
