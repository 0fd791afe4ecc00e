"""Training-split augmentation: random shifts (and flips, for natural images) of image batches."""

from __future__ import annotations

import torch


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator | None, flip: bool) -> torch.Tensor:
    """Batched augmentation: shift each image by up to `pad` pixels (zero fill) and maybe mirror it."""
    b, c, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out.contiguous()
