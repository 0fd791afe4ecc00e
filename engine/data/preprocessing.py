"""One preprocessing for every source: fitted on the training split only, stated, and kept with the checkpoint.

Tables (CSV files, `TensorDataset` factories, `Dataset` subclasses alike) are
standardised per feature; images trained from scratch by the mean and std of
each channel of their own training images; `data.normalize` chooses ImageNet's
statistics or none instead. A checkpoint holds `Preprocessing.state()`, so
`eval` and `--resume` apply the numbers the model was trained with, not new
ones fitted on whatever data is at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.settings.config import SettingsError

NORMALIZE_MODES = ("auto", "none", "imagenet")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STD_FLOOR = 1e-8  # a constant feature or channel is centred, not divided by ~0
CHUNK_ROWS = 4096  # statistics are summed in float64 chunks: a uint8 split is never copied whole as floats


@dataclass(frozen=True)
class Preprocessing:
    """What turns a raw sample into the model's input: `(x - mean) / std`, missing cells filled first."""

    kind: str  # "per-feature", "per-channel", "imagenet" or "none"
    mean: torch.Tensor  # broadcasts against one sample: the sample's shape (tables) or (channels, 1, 1) (images)
    std: torch.Tensor
    fitted_on: int = 0  # training samples the statistics came from (0: fixed numbers)
    fill: torch.Tensor | None = None  # per-feature value of a missing (NaN) cell: the training mean
    categories: dict[str, list[str]] = field(default_factory=dict)  # csv text columns one-hot encoded, in order
    columns: dict[str, str] = field(default_factory=dict)  # csv columns dropped or read as dates: name → role
    restored: bool = False  # read back from a checkpoint rather than fitted now
    target: tuple[float, float] | None = None  # regression: the training target's (mean, std) it is standardised by

    def apply_target(self, y: torch.Tensor) -> torch.Tensor:
        """A regression target in the file's units → the standardised one the model is trained on."""
        return y if self.target is None else (y.float() - self.target[0]) / self.target[1]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (or one sample) of raw values → the model's input; uint8 pixels are scaled to [0, 1] first."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        if self.fill is not None:
            x = torch.where(torch.isnan(x), self.fill.to(x.device), x)
        return (x - mean) / std

    def describe(self) -> str:
        where = "from the checkpoint" if self.restored else f"fitted on the {self.fitted_on} training samples"
        if self.kind == "per-feature":
            text = f"per-feature standardisation of {self.mean.numel()} features ({where})"
        elif self.kind == "per-channel":
            text = f"per-channel mean {_short(self.mean)} and std {_short(self.std)} of the images ({where})"
        elif self.kind == "imagenet":
            text = f"ImageNet's per-channel mean {_short(self.mean)} and std {_short(self.std)}"
        else:
            text = "none (pixels scaled to [0, 1])" if self.mean.dim() == 3 else "none (raw values)"
        if self.fill is not None:
            text += ", missing cells filled with the training mean"
        if self.categories:
            text += f", one-hot text columns {', '.join(self.categories)}"
        if dropped := [n for n, r in self.columns.items() if r == "drop"]:
            text += f", columns dropped: {', '.join(dropped)}"
        if self.target is not None:
            text += f", target standardised (mean {self.target[0]:.4g}, std {self.target[1]:.4g})"
        return text

    def state(self) -> dict[str, Any]:
        """Tensors and plain types only: what a checkpoint holds (torch.load(weights_only=True) reads it)."""
        return {
            "kind": self.kind,
            "mean": self.mean.clone(),
            "std": self.std.clone(),
            "fitted_on": self.fitted_on,
            "fill": None if self.fill is None else self.fill.clone(),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "columns": dict(self.columns),
            "target": None if self.target is None else [float(self.target[0]), float(self.target[1])],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessing:
        return cls(
            str(state["kind"]),
            torch.as_tensor(state["mean"]).float(),
            torch.as_tensor(state["std"]).float(),
            int(state.get("fitted_on", 0)),
            None if state.get("fill") is None else torch.as_tensor(state["fill"]).float(),
            {str(k): [str(c) for c in v] for k, v in (state.get("categories") or {}).items()},
            {str(k): str(v) for k, v in (state.get("columns") or {}).items() if v in ("drop", "date")},
            restored=True,
            target=_target_state(state.get("target")),
        )

    def fits(self, in_shape: tuple[int, ...]) -> bool:
        """Whether these statistics broadcast against samples of `in_shape` without changing their shape."""
        try:
            return torch.broadcast_shapes(tuple(self.mean.shape), in_shape) == in_shape
        except RuntimeError:
            return False


def _target_state(value: Any) -> tuple[float, float] | None:
    """A checkpoint's (mean, std) of a regression target; anything else is refused as a damaged checkpoint."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        mean, std = float(value[0]), float(value[1])
        if math.isfinite(mean) and math.isfinite(std) and std > 0:
            return mean, std
    raise SettingsError(f"the checkpoint's preprocessing: target = {str(value)[:60]!r} is not a (mean, std > 0) pair")


def _short(t: torch.Tensor) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in t.flatten().tolist()) + ")"


def _moments(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std (StandardScaler's ddof=0) over `dims`, NaN cells left out, in float64 chunks."""
    total = count = squares = None
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = x[start : start + CHUNK_ROWS].double()
        if x.dtype == torch.uint8:
            chunk = chunk / 255.0
        seen = ~torch.isnan(chunk)
        chunk = torch.nan_to_num(chunk, nan=0.0)
        s, n, q = chunk.sum(dims), seen.sum(dims), (chunk * chunk).sum(dims)
        total, count, squares = (s, n, q) if total is None else (total + s, count + n, squares + q)
    count = count.clamp(min=1)
    mean = total / count
    var = (squares / count - mean * mean).clamp(min=0.0)
    return mean.float(), var.sqrt().float()


def fit(x_train: torch.Tensor, is_image: bool, mode: str, fill_missing: bool = False) -> Preprocessing:
    """Fit `mode` (data.normalize) on the training samples `x_train` (float, or uint8 pixels) only."""
    if mode not in NORMALIZE_MODES:
        raise SettingsError(f"data.normalize = {mode!r}: allowed: {', '.join(NORMALIZE_MODES)}")
    n = len(x_train)
    if is_image:
        channels = x_train.shape[1]
        shape = (channels, 1, 1)
        if mode == "imagenet":
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            if channels != 3:  # grayscale: ImageNet's statistics averaged over its three channels
                mean, std = mean.mean().repeat(channels), std.mean().repeat(channels)
            return Preprocessing("imagenet", mean.reshape(shape), std.reshape(shape))
        if mode == "none":
            return Preprocessing("none", torch.zeros(shape), torch.ones(shape))
        mean, std = _moments(x_train, (0, *range(2, x_train.dim())))
        std = torch.where(std > STD_FLOOR, std, torch.ones_like(std))
        return Preprocessing("per-channel", mean.reshape(shape), std.reshape(shape), n)
    if mode == "imagenet":
        raise SettingsError(
            "data.normalize = 'imagenet': ImageNet's statistics are for images, this dataset's samples are "
            f"of shape {tuple(x_train.shape[1:])}; use 'auto' (per-feature standardisation) or 'none'"
        )
    mean, std = _moments(x_train, (0,))
    fill = mean if fill_missing else None
    if mode == "none":
        return Preprocessing("none", torch.zeros_like(mean), torch.ones_like(std), n, fill)
    std = torch.where(std > STD_FLOOR, std, torch.ones_like(std))
    return Preprocessing("per-feature", mean, std, n, fill)
