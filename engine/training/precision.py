"""The numbers a run computes in: fp32, or autocast to bf16 or fp16 (with a GradScaler) on a GPU."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from engine.settings.config import SettingsError


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """The autocast context of a precision (`amp_dtype` None: fp32, no autocast)."""
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()


def resolve_precision(setting: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """`training.precision` on a device: the autocast dtype (None: fp32) and how the run's first lines name it."""
    if setting == "fp32" or (setting == "auto" and device.type != "cuda"):
        return None, "fp32"
    if setting == "auto":
        return (
            (torch.bfloat16, "bf16 autocast")
            if torch.cuda.is_bf16_supported()
            else (torch.float16, "fp16 autocast + GradScaler")
        )
    if setting == "fp16":
        if device.type != "cuda":
            raise SettingsError(
                f"training.precision = 'fp16': needs a CUDA device (training on {device.type}); use auto, fp32 or bf16"
            )
        return torch.float16, "fp16 autocast + GradScaler"
    return torch.bfloat16, "bf16 autocast"
