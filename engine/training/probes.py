"""Gradient probes: what a few batches of an epoch show about the training itself, beyond the loss curves.

Two cheap looks, off the hot path:

- `GradientProbe.record()` after a training step, on a few batches the caller picks (`probed_batches`): each
  parameterised layer's gradient norm, read from `.grad` (the next step's zero_grad has not run yet), and its
  weight norm, as one host copy. No extra backward pass.
- `probe_activations(model, inputs)` once an epoch: one eval-mode, no-grad forward pass of one training batch
  that counts, per activation, the dead ReLU units (zero on every sample) and the saturated sigmoid and tanh units.
  Activations are seen where they are computed, as `nn.ReLU`-like modules or as functional calls
  (`torch.relu(self.fc1(x))`), through a `TorchFunctionMode` held for that one pass.

`diagnose_gradients` turns both into one badge, with the layer in its message, the numbers in its evidence and
the usual fix. The thresholds (`ProbeRules`) were chosen on the runs of benchmarks/probe_corpus.py (BENCHMARKS.md,
'Gradient probes').
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from engine.events import Diagnostic

PROBED_BATCHES = 2  # gradient records per epoch


@dataclass(frozen=True)
class ProbeRules:
    """When a probe's numbers make a badge (measured on benchmarks/probe_corpus.py)."""

    vanishing_ratio: float = 1e-4  # the first layer's gradient/weight ratio below this share of the last layer's
    exploding_ratio: float = 2.0  # the median layer's gradient norm above this multiple of its weight norm, on a batch
    dead_share: float = 0.5  # share of a ReLU layer's units zero on every sample of the batch
    saturated_share: float = 0.5  # share of a sigmoid/tanh layer's units saturated on (nearly) every sample
    saturated_samples: float = 0.95  # a unit is saturated when this share of its values is, on the same side
    saturation_margin: float = 0.01  # sigmoid below this or above 1 - this; tanh within 2 x this of -1 or 1
    min_units: int = 4  # smaller activation layers are not judged (a share of 1 or 2 units says little)


FIXES = {
    "exploding_gradients": "lower the learning rate, clip gradients (training.grad_clip), use a smaller "
    "initialisation or normalisation layers",
    "dying_relu": "lower the learning rate, use LeakyReLU or GELU, or He initialisation with a small positive bias",
    "vanishing_gradients": "use ReLU-family activations, He (Kaiming) initialisation, batch normalisation or "
    "residual connections",
    "saturated_units": "standardise the inputs, use a smaller (Xavier) initialisation, batch normalisation or "
    "ReLU-family activations",
}


def probed_batches(batches: int, k: int = PROBED_BATCHES) -> frozenset[int]:
    """Which batches of an epoch (counted from 1) the gradient probe reads: `k` evenly spaced, the first and last
    among them, so that a run broken from its first step is seen in its first epoch."""
    k = min(k, batches)
    if k <= 1:
        return frozenset({batches}) if k == 1 else frozenset()
    return frozenset(1 + round(i * (batches - 1) / (k - 1)) for i in range(k))


# -- gradients -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GradientRecord:
    """One probed batch: per parameterised layer (in the model's order), its gradient and weight norms."""

    layers: tuple[str, ...]
    grad_norms: tuple[float, ...]
    weight_norms: tuple[float, ...]

    def relative(self) -> list[float]:
        """Each layer's gradient norm over its weight norm (inf for a zero weight with a gradient)."""
        return [g / w if w > 0 else (0.0 if g == 0 else math.inf) for g, w in zip(self.grad_norms, self.weight_norms)]

    def finite(self) -> bool:
        return all(math.isfinite(g) for g in self.grad_norms)


class GradientProbe:
    """Reads the gradients a step left in `.grad`; `take()` hands over the epoch's records and starts anew."""

    def __init__(self, model: nn.Module):
        self.layers: list[tuple[str, list[nn.Parameter]]] = []  # (name, its own trainable parameters)
        for name, module in model.named_modules():
            if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                continue  # an embedding's gradient reaches only the rows a batch used: its ratio means nothing
            params = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if params:
                self.layers.append((name or type(model).__name__, params))
        self.records: list[GradientRecord] = []

    def record(self) -> GradientRecord | None:
        """After a step: the norms of the layers that have a gradient (None when none has: eval or frozen)."""
        names, norms = [], []
        with torch.no_grad():
            for name, params in self.layers:
                grads = [p.grad for p in params if p.grad is not None]
                if not grads:
                    continue
                names.append(name)
                norms.append(_norm(grads))
                norms.append(_norm([p for p in params if p.grad is not None]))
            if not names:
                return None
            device = norms[0].device
            values = torch.stack([n.to(device) for n in norms]).tolist()  # the one sync
        record = GradientRecord(tuple(names), tuple(values[0::2]), tuple(values[1::2]))
        self.records.append(record)
        return record

    def take(self) -> list[GradientRecord]:
        records, self.records = self.records, []
        return records


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(t.detach().float()) for t in tensors]
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))


# -- activations ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivationLayer:
    """One activation of the probe's forward pass and how many of its units are stuck."""

    name: str  # the activation module ("features.2"), or the layer that fed a functional call ("fc1 -> relu")
    kind: str  # "relu", "sigmoid" or "tanh"
    units: int  # a linear layer's features (last dimension), a convolution's channels (dimension 1)
    stuck: int  # relu: zero on every sample; sigmoid, tanh: saturated on (nearly) every sample

    @property
    def share(self) -> float:
        return self.stuck / self.units if self.units else 0.0


@functools.cache
def _activation_kinds() -> dict[Callable, str]:
    """The functions and methods that compute each activation; nn.ReLU, nn.Sigmoid and nn.Tanh call them."""
    kinds = {}
    for kind in ("relu", "sigmoid", "tanh"):
        for name in (kind, f"{kind}_"):
            for owner in (torch, F, torch.Tensor):
                if hasattr(owner, name):
                    kinds[getattr(owner, name)] = kind
    return kinds


# Makers of outputs that hold channels in dimension 1 (a linear layer's units are its last dimension)
CHANNELS_FIRST = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.GroupNorm,
)


class _Watch(TorchFunctionMode):
    """For one forward pass: which module runs, who made each tensor, and each activation's stuck units."""

    def __init__(self, model: nn.Module, batch: int, rules: ProbeRules):
        super().__init__()
        self.batch, self.rules, self.kinds = batch, rules, _activation_kinds()
        self.names = {m: name or type(model).__name__ for name, m in model.named_modules()}
        self.running: list[nn.Module] = []
        self.made_by: dict[int, tuple[weakref.ref, nn.Module]] = {}  # by id of a module's output
        self.found: list[tuple[str, str, int, torch.Tensor, weakref.ref]] = []
        self.calls: dict[str, int] = {}

    def hook(self, model: nn.Module) -> list:
        handles = []
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(lambda m, args: self.running.append(m)))
            handles.append(m.register_forward_hook(self._left))
        return handles

    def _left(self, module: nn.Module, args, output) -> None:
        if self.running and self.running[-1] is module:
            self.running.pop()
        if isinstance(output, torch.Tensor) and self._maker(output) is None:  # the innermost maker is kept
            self.made_by[id(output)] = (weakref.ref(output), module)

    def _maker(self, tensor) -> nn.Module | None:
        made = self.made_by.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        return made[1] if made is not None and made[0]() is tensor else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        kind = self.kinds.get(func)
        if kind is not None and isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 2:
            if out.shape[0] == self.batch:  # an activation of the batch, not a transform of some weight
                maker = self._maker(args[0] if args else None)
                units_dim = 1 if out.dim() >= 4 or isinstance(maker, CHANNELS_FIRST) else -1
                units, stuck = _stuck_units(out, kind, units_dim, self.rules)
                self.found.append((self._name(kind, maker), kind, units, stuck, weakref.ref(out)))
        return out

    def _name(self, kind: str, maker: nn.Module | None) -> str:
        inner = self.running[-1] if self.running else None
        if inner is not None and not any(True for _ in inner.children()) and not _has_parameters(inner):
            name = self.names[inner]  # an activation module: nn.ReLU, nn.Sigmoid, nn.Tanh
        elif maker is not None:
            name = f"{self.names[maker]} -> {kind}"  # torch.relu(self.fc1(x))
        else:
            name = f"{self.names.get(inner, '?')}: {kind}"
        self.calls[name] = self.calls.get(name, 0) + 1
        return name if self.calls[name] == 1 else f"{name} #{self.calls[name]}"


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _stuck_units(out: torch.Tensor, kind: str, units_dim: int, rules: ProbeRules) -> tuple[int, torch.Tensor]:
    per_unit = out.detach().movedim(units_dim, 0).reshape(out.shape[units_dim], -1).float()
    if kind == "relu":
        return per_unit.shape[0], (per_unit.amax(1) <= 0).sum()
    m = rules.saturation_margin
    low, high = (m, 1 - m) if kind == "sigmoid" else (-1 + 2 * m, 1 - 2 * m)  # tanh(x) = 2 sigmoid(2x) - 1
    pinned = torch.maximum((per_unit < low).float().mean(1), (per_unit > high).float().mean(1))
    return per_unit.shape[0], (pinned >= rules.saturated_samples).sum()


def probe_activations(model: nn.Module, inputs: torch.Tensor, rules: ProbeRules | None = None) -> list[ActivationLayer]:
    """One no-grad forward pass of `inputs` (a full training batch: a unit idle on 5 samples is not dead) in eval
    mode, so that no batch-norm statistic moves and no dropout draws a random number: every ReLU, sigmoid and tanh
    it computes, with its stuck units. The model's own output is left out (a confident sigmoid output is saturated
    by design). Each module's train/eval mode is put back and the hooks removed, also when the forward pass fails.
    """
    rules = rules or ProbeRules()
    modes = {m: m.training for m in model.modules()}
    watch = _Watch(model, inputs.shape[0], rules)
    handles = watch.hook(model)
    try:
        model.eval()
        with torch.no_grad(), watch:
            output = model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    stuck = torch.stack([s for *_, s, _ in watch.found]).tolist() if watch.found else []  # the one sync
    return [
        ActivationLayer(name, kind, units, n)
        for (name, kind, units, _, made), n in zip(watch.found, stuck)
        if made() is not output
    ]


# -- the badge -----------------------------------------------------------------------------------------------------
def grad_to_weight(records: Sequence[GradientRecord]) -> float | None:
    """The median layer's gradient norm over its weight norm, the largest over the probed batches (a broken
    initialisation shows on the first batch; the net may have settled by the last). Infinite when the latest batch's
    gradients are not finite (a GradScaler's first steps overflow, and that is no news); None without a record."""
    if not records:
        return None
    if not records[-1].finite():
        return math.inf
    return max(_median(r.relative()) for r in records if r.finite())


def first_to_last(records: Sequence[GradientRecord]) -> float | None:
    """The first layer's gradient/weight ratio over the last layer's, the largest over the probed batches: small
    only when every batch's is. None for a model of one layer, non-finite gradients or a last layer without any."""
    ratios = []
    for record in records:
        relative = record.relative()
        if len(relative) < 2 or not record.finite() or not relative[-1] > 0:
            return None
        ratios.append(relative[0] / relative[-1])
    return max(ratios, default=None)


def worst_layer(layers: Sequence[ActivationLayer], kinds: Sequence[str], rules: ProbeRules) -> ActivationLayer | None:
    """The activation layer of these kinds with the largest share of stuck units (of at least `min_units` units)."""
    judged = [a for a in layers if a.kind in kinds and a.units >= rules.min_units]
    return max(judged, key=lambda a: a.share, default=None)


def diagnose_gradients(
    epoch: int,
    gradients: Sequence[GradientRecord],
    activations: Sequence[ActivationLayer] = (),
    rules: ProbeRules | None = None,
) -> Diagnostic | None:
    """The epoch's gradient-level problem, or None. One badge, the most direct cause first: exploding gradients,
    dead ReLU units, saturated units, vanishing gradients (which the two before cause); the message names what
    else was seen, the evidence holds the numbers of all."""
    rules = rules or ProbeRules()
    found = [
        d
        for d in (
            _exploding(gradients, rules),
            _stuck(worst_layer(activations, ("relu",), rules), rules.dead_share),
            _stuck(worst_layer(activations, ("sigmoid", "tanh"), rules), rules.saturated_share),
            _vanishing(gradients, rules),
        )
        if d is not None
    ]
    if not found:
        return None
    first = found[0]
    message = f"{first.message} at epoch {epoch}; usual fix: {FIXES[first.status]}"
    if len(found) > 1:
        message += "; also " + ", ".join(d.status.replace("_", " ") for d in found[1:])
    evidence = {"epoch": float(epoch)}
    for d in reversed(found):
        evidence.update(d.evidence)
    return Diagnostic(first.status, message, evidence)


def _exploding(gradients: Sequence[GradientRecord], rules: ProbeRules) -> Diagnostic | None:
    ratio = grad_to_weight(gradients)
    if ratio is None or ratio <= rules.exploding_ratio:
        return None
    # gradients explode by multiplying through layers; one layer's large ratio only says its weights start small
    # (a healthy linear regression's first epochs), unless they are not finite
    if math.isfinite(ratio) and len(gradients[-1].layers) < 2:
        return None
    if math.isinf(ratio):
        worst = gradients[-1]
        i = next(j for j, g in enumerate(worst.grad_norms) if not math.isfinite(g))
        message = f"gradients of {worst.layers[i]} are not finite in the latest probed batch"
    else:
        worst = max((r for r in gradients if r.finite()), key=lambda r: _median(r.relative()))
        relative = worst.relative()
        i = max(range(len(relative)), key=relative.__getitem__)
        message = (f"gradient norms reach {ratio:.3g}x the weight norms (median layer of a probed batch), most in "
                   f"{worst.layers[i]}: {worst.grad_norms[i]:.3g} against {worst.weight_norms[i]:.3g}")
    return Diagnostic("exploding_gradients", message, {
        "grad_to_weight": ratio, "grad_norm": worst.grad_norms[i], "weight_norm": worst.weight_norms[i]
    })


def _vanishing(gradients: Sequence[GradientRecord], rules: ProbeRules) -> Diagnostic | None:
    ratio = first_to_last(gradients)
    if ratio is None or ratio >= rules.vanishing_ratio:
        return None
    latest = gradients[-1]
    return Diagnostic(
        "vanishing_gradients",
        f"the first layer {latest.layers[0]}'s gradient/weight ratio is {ratio:.2g}x the last layer "
        f"{latest.layers[-1]}'s (every probed batch)",
        {"first_to_last": ratio, "first_grad_norm": latest.grad_norms[0], "last_grad_norm": latest.grad_norms[-1]},
    )


def _stuck(worst: ActivationLayer | None, share: float) -> Diagnostic | None:
    if worst is None or worst.share < share:
        return None
    if worst.kind == "relu":
        status, what = "dying_relu", "dead (zero on every sample of a batch)"
    else:
        status, what = "saturated_units", f"saturated {worst.kind}, on the same side for nearly every sample"
    return Diagnostic(
        status,
        f"{worst.stuck} of {worst.units} units of {worst.name} are {what}",
        {f"{status}_share": worst.share, f"{status}_units": float(worst.units)},
    )


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0
