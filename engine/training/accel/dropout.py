"""Dropout with a cheaper mask on the CPU, swapped into the built-in models when `training.accel = "auto"`.

The models are built with `nn.Dropout` (engine.models.networks); `use_fast_dropout` changes the class of
their dropout modules in place: no parameters or buffers differ, so state_dicts and checkpoints are those of
`nn.Dropout`. The masks have the same expectation as `nn.Dropout`'s, from other random draws.
"""

from __future__ import annotations

import torch
from torch import nn

LANE_LEVELS = 1 << 16  # a mask lane is a 16-bit random number: the keep probability is exact to 1/65536


def dropout_mask(shape: torch.Size, keep: float) -> torch.Tensor:
    """A float32 CPU tensor of `shape`: 1/keep where an element is kept, 0 where it is dropped.

    Each element is kept with probability `keep`, which must be a multiple of
    1/65536 (see `keep_probability`). The random bits come from the global
    torch generator, so seeding and its saved state make a run repeatable.
    They are drawn 64 at a time, four 16-bit lanes per draw: torch's CPU
    `bernoulli_` draws one Mersenne Twister number per element and was, on
    small steps, the biggest cost after the matrix products. The lanes are
    compared as floats, in place: a comparison that makes a bool tensor, or
    arithmetic on an int16 one, is several times slower here.
    """
    n = shape.numel()
    words = torch.randint(WORD_LOW, WORD_HIGH, (mask_words(n),), dtype=torch.int64)
    lanes = words.view(torch.int16)[:n].view(shape).float()  # integers, uniform over [-32768, 32767]
    return lanes.lt_(lane_threshold(keep)).mul_(1.0 / keep)  # below: 1 -> 1/keep, above: 0


# the random words of a mask: randint over the whole int64 range (its high bound is exclusive)
WORD_LOW, WORD_HIGH = -(2**63), 2**63 - 1


def mask_words(n: int) -> int:
    """The random 64-bit words a mask of n elements draws: four 16-bit lanes each."""
    return (n + 3) // 4


def lane_threshold(keep: float) -> float:
    """A half-integer: exactly round(keep * 65536) of the lane values [-32768, 32767] lie below it."""
    return keep * LANE_LEVELS - LANE_LEVELS // 2 - 0.5


def keep_probability(keep: float) -> float:
    """The probability `dropout_mask` keeps an element with: `keep` rounded to a multiple of 1/65536."""
    return round(keep * LANE_LEVELS) / LANE_LEVELS


class Dropout(nn.Dropout):
    """`nn.Dropout` with a cheaper mask on the CPU; the same module everywhere else.

    Kept elements are scaled by 1 / (the exact keep probability), so the
    expected output equals the input, as with `nn.Dropout`. It holds no
    parameters or buffers: state_dicts are those of `nn.Dropout`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = keep_probability(1.0 - self.p)
        if not self.training or x.device.type != "cpu" or self.inplace or keep in (0.0, 1.0):
            return super().forward(x)
        return x * dropout_mask(x.shape, keep).to(x.dtype)


def use_fast_dropout(model: nn.Module) -> int:
    """Every plain `nn.Dropout` of `model` becomes a `Dropout` (same state); the number changed."""
    changed = 0
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = Dropout
            changed += 1
    return changed
