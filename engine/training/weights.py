"""What every checkpoint shares: its format's version, its one-line error, and the weights it puts back."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint cannot be written or read; the message is one line."""


def model_state(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The model weights of a full checkpoint or of a bare state_dict (best.pth)."""
    if isinstance(checkpoint, dict) and "model_state_dict" in checkpoint:
        return checkpoint["model_state_dict"]
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError("not a model checkpoint: no model_state_dict and not a state_dict of tensors")


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """`load_state_dict`, with a one-line error naming missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(
                f"shape mismatch (checkpoint vs model): {', '.join(shapes[:4])}{' ...' if len(shapes) > 4 else ''}"
            )
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        raise CheckpointError(f"{source} does not fit this model ({type(model).__name__}): {'; '.join(parts)}")
    model.load_state_dict(state)
