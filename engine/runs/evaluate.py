"""`trainconsole eval`: a checkpoint's loss, accuracy, per-class accuracy and confusion matrix (a regression's:
MAE, RMSE, R² and its residuals, engine.runs.residuals).

The numbers come from the same validation pass as training (chapter 6.1's
eval mode, no_grad, sample-weighted means) on the same split, so evaluating
best.pth reproduces the val_acc recorded for its epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection

import torch

from engine.runs import checkpoints as ck
from engine.runs.signatures import checkpoint_signature, folder_signature
from engine.runs.signatures import folder_settings as read_folder_settings
from engine.settings.config import Settings, SettingsError, from_dict, load_settings
from engine.settings.defaults import resolve_defaults
from engine.data.loaders import build_data
from engine.device import on_device, resolve_device
from engine.models.networks import build_model
from engine.training.loop import validate
from engine.training.regression import criterion_for
from engine.runs.residuals import format_residuals, predictions, residual_summary
from engine.training.precision import resolve_precision
from engine.training.snapshot import stored_preprocessing
from engine.settings.user_code import check_untrusted


def _settings_for(path: Path, checkpoint: Any, config: str | None, allowed_imports: Collection[str]) -> Settings:
    """The user's -c settings, else the checkpoint's own or its run folder's.

    Those may name only code the user allowed, or signed as their own.
    """
    if config:
        return load_settings(config)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("settings"), dict):
        settings = from_dict(checkpoint["settings"], f"{path} settings")
        signature = checkpoint_signature(checkpoint)
        return check_untrusted(settings, str(path), allowed_imports, signature, stored=checkpoint["settings"])
    folder_settings = path.parent.parent / "settings.toml"  # best.pth holds weights only: use its run's settings
    if os.path.lexists(folder_settings):
        signature = folder_signature(folder_settings.parent)
        settings, stored = read_folder_settings(folder_settings)
        return check_untrusted(settings, str(folder_settings), allowed_imports, signature, stored=stored)
    raise ck.CheckpointError(f"{path}: holds no settings and {folder_settings} does not exist; pass -c SETTINGS")


def _preprocessing_for(path: Path, checkpoint: Any) -> dict[str, Any] | None:
    """The preprocessing the model was trained with: the checkpoint's, or for best.pth (weights only) last.pth's."""
    stored = stored_preprocessing(checkpoint)
    sibling = path.parent / "last.pth"
    if stored is None and sibling.is_file() and sibling != path:
        try:
            stored = stored_preprocessing(ck.load_checkpoint(sibling))
        except ck.CheckpointError:
            return None  # fitted again on the training split, as a run from before checkpoints recorded it
    exported = path.parent / "preprocessing.pth"  # what a script from `trainconsole export-script` saves beside it
    if stored is None and exported.is_file():
        try:
            state = ck.load_checkpoint(exported)
        except ck.CheckpointError:
            return None
        stored = state if isinstance(state, dict) and "mean" in state and "std" in state else None
    return stored


def _on_split(settings: Settings, split: str) -> Settings:
    """The settings that evaluate on `split`: the test split is the one a val_fraction of 0 validates on."""
    if split != "test":
        return settings
    try:
        return settings.replace("data.val_fraction", 0.0)
    except SettingsError:
        raise SettingsError(
            f"--split test: dataset '{settings.data.dataset}' has no test split; evaluate on --split val"
        ) from None


def evaluate_checkpoint(
    target: str | Path,
    config: str | None = None,
    split: str = "val",
    device: str | None = None,
    allowed_imports: Collection[str] = (),
) -> dict[str, Any]:
    """`device` overrides the run's own (a run trained on a GPU server, evaluated on a laptop).

    Settings read from the checkpoint or its run folder may import only the code in `allowed_imports`
    (engine.settings.user_code).
    """
    path = Path(target)
    if path.is_dir():
        path = path / "checkpoints" / "best.pth"
    checkpoint = ck.load_checkpoint(path)
    # a -c settings file may say model.name = auto: the model chosen as the run chose it
    settings = _on_split(resolve_defaults(_settings_for(path, checkpoint, config, allowed_imports)), split)
    if device is not None:
        settings = on_device(settings, device)
    device = resolve_device(settings.device.device)
    fitted = _preprocessing_for(path, checkpoint)
    data = build_data(settings.data, settings.run.seed, device, augment=False, fitted=fitted,
                      task=settings.model.task)
    model = build_model(settings.model, data.in_shape, data.num_classes).to(device)
    ck.load_weights(model, ck.model_state(checkpoint), str(path))
    report = {"checkpoint": str(path), "split": "test" if split == "test" else "val",
              "epoch": checkpoint.get("epoch") if isinstance(checkpoint, dict) and "model_state_dict" in checkpoint
              else None}
    if data.task == "regression":
        return {**report, **_regression(settings, data, model, device)}
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=settings.training.label_smoothing)
    k = data.num_classes
    confusion = torch.zeros(k, k, dtype=torch.long, device=device)
    amp_dtype, _ = resolve_precision(settings.training.precision, device)
    sums = validate(model, model, data.val, criterion, device, amp_dtype, confusion)  # the pass training makes
    seen = sums.seen
    confusion = confusion.cpu()
    per_class_total = confusion.sum(1)
    per_class = [(float(confusion[i, i]) / int(per_class_total[i])) if per_class_total[i] else None for i in range(k)]
    return {
        **report,
        "samples": seen,
        "loss": float(sums.loss_sum) / max(seen, 1),
        "accuracy": float(confusion.trace()) / max(seen, 1),
        "classes": data.class_names,
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def _regression(settings: Settings, data: Any, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """A regression's report: its loss as training reports it, and the residuals in the target's units."""
    amp_dtype, _ = resolve_precision(settings.training.precision, device)
    pred, target = predictions(model, data.val, device, amp_dtype)
    criterion = criterion_for(settings.training, "regression")
    loss = float(criterion(pred.float(), target.float())) if len(target) else float("nan")
    mean, std = data.preprocessing.target
    return {"task": "regression", "samples": len(target), "loss": loss, **residual_summary(pred, target, mean, std)}


def format_evaluation(r: dict[str, Any]) -> str:
    """The report as text: the confusion matrix as narrow as its numbers, each row ending in its class's accuracy;
    a regression's residual summary (engine.runs.residuals)."""
    if r.get("task") == "regression":
        return format_residuals(r)
    lines = [
        f"Checkpoint : {r['checkpoint']}",
        f"Split      : {r['split']} ({r['samples']} samples)",
        f"Loss       : {r['loss']:.4f}",
        f"Accuracy   : {r['accuracy']:.2%}",
        "Confusion matrix (rows: true class, columns: predicted):",
    ]
    names = [str(c)[:8] for c in r["classes"]]
    width = max(max(len(n) for n in names), max(len(str(v)) for row in r["confusion_matrix"] for v in row))
    lines.append(" " * width + "".join(f" {n:>{width}}" for n in names) + "     acc")
    for name, row, acc in zip(names, r["confusion_matrix"], r["per_class_accuracy"]):
        lines.append(
            f"{name:>{width}}"
            + "".join(f" {v:>{width}}" for v in row)
            + f" {f'{acc:.1%}' if acc is not None else '-':>7}"
        )
    return "\n".join(lines)
