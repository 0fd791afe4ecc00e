"""`trainconsole eval` of a regression: MAE, RMSE and R², the residuals' quantiles and the worst rows.

The same pass as training's validation (eval mode, no_grad), with every prediction kept: predictions and targets
are turned back into the target's units with the training split's mean and std the checkpoint recorded.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from engine.training.precision import autocast

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
WORST_ROWS = 5


@torch.no_grad()
def predictions(model: nn.Module, batches: Any, device: torch.device,
                amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions, targets) of the split in batch order, standardised, float64 on the CPU."""
    model.eval()
    outputs, targets = [], []
    for xb, yb in batches:
        with autocast(device, amp_dtype):
            out = model(xb.to(device, non_blocking=True))
        outputs.append(out.reshape(-1).double().cpu())
        targets.append(yb.reshape(-1).double().cpu())
    return torch.cat(outputs), torch.cat(targets)


def residual_summary(pred: torch.Tensor, target: torch.Tensor, mean: float, std: float) -> dict[str, Any]:
    """The residuals (target - prediction) in the target's units: scores, quantiles, the worst rows of the split."""
    y, p = target * std + mean, pred * std + mean
    residual = y - p
    n = len(y)
    total = float(((y - y.mean()) ** 2).sum())
    sse = float((residual**2).sum())
    worst = torch.argsort(residual.abs(), descending=True)[:WORST_ROWS].tolist()
    return {
        "mae": float(residual.abs().mean()) if n else math.nan,
        "rmse": math.sqrt(sse / n) if n else math.nan,
        "r2": 1.0 - sse / total if total > 0 else math.nan,
        "target_mean": mean,
        "target_std": std,
        "residual_quantiles": {f"{q:g}": float(torch.quantile(residual, q)) for q in QUANTILES} if n else {},
        "worst_rows": [{"row": i, "target": float(y[i]), "prediction": float(p[i]), "residual": float(residual[i])}
                       for i in worst],
    }


def format_residuals(r: dict[str, Any]) -> str:
    """A regression's evaluation as text (in place of the confusion matrix)."""
    lines = [
        f"Checkpoint : {r['checkpoint']}",
        f"Split      : {r['split']} ({r['samples']} samples)",
        f"Loss       : {r['loss']:.4f} (standardised target)",
        f"MAE        : {r['mae']:.4g}",
        f"RMSE       : {r['rmse']:.4g}",
        f"R²         : {r['r2']:.4f}",
        "Residuals (target - prediction), quantiles:",
        "  " + "  ".join(f"{q}: {v:.4g}" for q, v in r["residual_quantiles"].items()),
        f"Worst {len(r['worst_rows'])} rows of the split (position in the split, as the validation pass reads it):",
    ]
    for w in r["worst_rows"]:
        lines.append(f"  row {w['row']:>6}  target {w['target']:.4g}  prediction {w['prediction']:.4g}  "
                     f"residual {w['residual']:+.4g}")
    return "\n".join(lines)
