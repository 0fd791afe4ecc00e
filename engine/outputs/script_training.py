"""The exported script's model (chapter 4), its loss and optimizer (6.1), and its loop (6.2, 7.3, 8.3)."""

from __future__ import annotations

import inspect
import math

from engine.outputs.script_data import path_line
from engine.settings.config import Settings
from engine.settings.user_code import code_folder, import_object


def model_part(s: Settings, in_shape: tuple[int, ...]) -> str:
    from engine.data.sources import load_source

    m = s.model
    num_classes = load_source(s.data, s.run.seed).num_classes
    if ":" in m.name:
        return _user_model(s, in_shape, num_classes)
    body = _mlp(m, in_shape, num_classes) if m.name == "mlp" else _cnn(m, in_shape, num_classes)
    title = f"# 4. The model ({m.name}): the layers, in the order trainconsole builds them"
    return f"{title}\n{body}\n\n\nmodel = Net().to(device)"


def _mlp(m, in_shape, num_classes) -> str:
    width, init, forward = math.prod(in_shape), [], ["        x = x.flatten(1)"]
    for i, size in enumerate(m.hidden, start=1):
        init.append(f"        self.fc{i} = nn.Linear({width}, {size})")
        if m.dropout > 0:
            init.append(f"        self.dropout{i} = nn.Dropout({m.dropout})")
            forward.append(f"        x = self.dropout{i}(torch.relu(self.fc{i}(x)))")
        else:
            forward.append(f"        x = torch.relu(self.fc{i}(x))")
        width = size
    last = len(m.hidden) + 1
    init.append(f"        self.fc{last} = nn.Linear({width}, {num_classes})")
    forward.append(f"        return self.fc{last}(x)")
    return "\n".join(
        ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()", *init, "",
         "    def forward(self, x):", *forward]
    )  # fmt: skip


def _cnn(m, in_shape, num_classes) -> str:
    from engine.models.networks import cnn_widths

    c, h, w = in_shape
    blocks = []
    for out in cnn_widths(in_shape, m.channels):
        block = f"nn.Conv2d({c}, {out}, 3, padding=1, bias=False), nn.BatchNorm2d({out}), nn.ReLU(),"
        if min(h, w) >= 4:
            block += " nn.MaxPool2d(2),"
            h, w = h // 2, w // 2
        blocks.append(f"            {block}")
        c = out
    dropout = f"nn.Dropout({m.dropout}), " if m.dropout > 0 else "nn.Identity(), "
    return "\n".join(
        ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()",
         "        self.features = nn.Sequential(  # conv3x3 -> BatchNorm -> ReLU -> max-pool, per block", *blocks,
         "        )",
         f"        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), {dropout}"
         f"nn.Linear({c}, {num_classes}))",
         "", "    def forward(self, x):", "        return self.head(self.features(x))"]
    )  # fmt: skip


def _user_model(s: Settings, in_shape, num_classes) -> str:
    m = s.model
    module, _, name = m.name.partition(":")
    factory = import_object(m.name, "class or function", "model.name")
    given = {"in_shape": tuple(in_shape), "in_features": math.prod(in_shape), "num_classes": num_classes}
    try:
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, False
    kwargs = {**{k: v for k, v in given.items() if takes_any or k in params}, **m.options}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return (
        f"# 4. The model: yours, model.name = {m.name!r}\n"
        f"import sys  # noqa: E402\n\n{path_line('CODE', str(code_folder()), 'where the module was found')}\n"
        "sys.path.append(CODE)\n"
        f"from {module} import {name}  # noqa: E402\n\nmodel = {name}({args}).to(device)"
    )


def training_part(s: Settings) -> str:
    t = s.training
    if t.optimizer == "sgd":
        opt = f"torch.optim.SGD(params, lr={t.lr}, momentum={t.momentum}, weight_decay={t.weight_decay})"
    else:
        name = 'Adam' if t.optimizer == 'adam' else 'AdamW'
        opt = f"torch.optim.{name}(params, lr={t.lr}, weight_decay={t.weight_decay})"
    lrs = "torch.optim.lr_scheduler"
    mode = "min" if t.monitor.endswith("loss") else "max"
    scheduler = {
        "step": f"{lrs}.StepLR(optimizer, step_size={t.step_size}, gamma={t.gamma})",
        "cosine": f"{lrs}.CosineAnnealingLR(optimizer, T_max={t.epochs})",
        "onecycle": f"{lrs}.OneCycleLR(optimizer, max_lr={t.lr}, epochs={t.epochs}, "
        f"steps_per_epoch=max(1, len(batches(len(y_train), {s.data.batch_size}))))",
        "plateau": f"{lrs}.ReduceLROnPlateau(optimizer, mode={mode!r}, factor={t.gamma}, "
        f"patience={max(1, t.patience // 2)})",
    }.get(t.scheduler)
    smoothing = f"label_smoothing={t.label_smoothing}" if t.label_smoothing else ""
    lines = [
        "# 6.1 The loss, the optimizer"
        + (f" and the scheduler (training.scheduler = '{t.scheduler}')" if scheduler else ""),
        f"criterion = nn.CrossEntropyLoss({smoothing})",
        "params = [p for p in model.parameters() if p.requires_grad]",
        f"optimizer = {opt}",
    ]
    if scheduler:
        lines.append(f"scheduler = {scheduler}")
    if _amp(s):
        lines += [
            "# mixed precision on a GPU (training.precision = 'auto'): bf16, else fp16 with a GradScaler",
            "amp_dtype = None if device.type != 'cuda' else torch.bfloat16 if torch.cuda.is_bf16_supported() "
            "else torch.float16",
            "scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)",
        ]
    return "\n".join(lines)


def _amp(s: Settings) -> bool:
    """Whether the script writes autocast: precision 'auto' on a device that may be a GPU (fp32 on the CPU)."""
    return s.training.precision == "auto" and s.device.device not in ("cpu", "mps")


def _step_lines(s: Settings) -> list[str]:
    t, amp = s.training, _amp(s)
    lines = ["        optimizer.zero_grad()  # 6.2's five steps: zero_grad, forward, loss, backward, step"]
    if amp:
        lines += [
            "        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):",
            "            out = model(xb)",
            "            loss = criterion(out, yb)",
            "        scaler.scale(loss).backward()",
        ]
        if t.grad_clip > 0:
            lines += ["        scaler.unscale_(optimizer)",
                      f"        nn.utils.clip_grad_norm_(model.parameters(), {t.grad_clip})"]  # fmt: skip
        lines += ["        scaler.step(optimizer)", "        scaler.update()"]
    else:
        lines += ["        out = model(xb)", "        loss = criterion(out, yb)", "        loss.backward()"]
        if t.grad_clip > 0:
            lines.append(f"        nn.utils.clip_grad_norm_(model.parameters(), {t.grad_clip})")
        lines.append("        optimizer.step()")
    if t.scheduler == "onecycle":
        lines.append("        scheduler.step()  # onecycle: every batch")
    return lines


def loop_part(s: Settings) -> str:
    """The phases as functions (training, validation, diagnostic), then the epochs."""
    gap = ["", ""]
    return "\n".join(
        [*_train_function(s), *gap, *_evaluate_function(s), *gap, *_diagnostic_function(s), *gap, *_epochs_loop(s)]
    )


def _train_function(s: Settings) -> list[str]:
    return [
        "def train_one_epoch():",
        '    """6.1\'s training phase: one pass over the training split, in a new shuffled order."""',
        "    model.train()",
        "    loss_sum, correct = 0.0, 0",
        "    order = torch.randperm(len(y_train), generator=shuffle).to(device)",
        f"    for start, end in batches(len(y_train), {s.data.batch_size}):",
        "        xb, yb = x_train.index_select(0, order[start:end]), y_train.index_select(0, order[start:end])",
        *_step_lines(s),
        "        loss_sum += loss.item() * len(yb)",
        "        correct += (out.argmax(1) == yb).sum().item()",
        "    return loss_sum / len(y_train), correct / len(y_train)",
    ]


def _evaluate_function(s: Settings) -> list[str]:
    eval_forward = (
        ["        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):",
         "            out = model(xb)", "            loss = criterion(out, yb)"]
        if _amp(s) else ["        out = model(xb)", "        loss = criterion(out, yb)"]
    )  # fmt: skip
    return [
        "@torch.no_grad()",
        "def evaluate():",
        '    """6.1\'s validation phase: eval mode (no dropout, BatchNorm\'s running statistics), no gradients."""',
        "    model.eval()",
        "    loss_sum, correct = 0.0, 0",
        f"    for start, end in batches(len(y_val), {s.data.eval_batch_size}):",
        "        xb, yb = x_val[start:end], y_val[start:end]",
        *eval_forward,
        "        loss_sum += loss.item() * len(yb)",
        "        correct += (out.argmax(1) == yb).sum().item()",
        "    return loss_sum / len(y_val), correct / len(y_val)",
    ]


def _diagnostic_function(s: Settings) -> list[str]:
    dg = s.diagnostics
    return [
        "def diagnostic(epoch, train_loss, val_loss, train_acc, val_acc):",
        '    """8.3\'s diagnostic, NaN first, with the thresholds of [diagnostics]."""',
        "    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):",
        '        return "NaN DETECTED"',
        f"    if epoch >= {dg.overfit_after} and (val_loss - train_loss > {dg.overfit_loss_gap} "
        f"or train_acc - val_acc > {dg.overfit_acc_gap}):",
        '        return "OVERFITTING"',
        f"    if train_loss > {dg.underfit_loss} and epoch > {dg.underfit_after}:",
        '        return "UNDERFITTING"',
        '    return "OK"',
    ]


def _epochs_loop(s: Settings) -> list[str]:
    """7.3 and 8.3: each epoch trained, validated, printed and recorded; the best model kept; the stops."""
    t = s.training
    better = "<" if t.monitor.endswith("loss") else ">"
    start = "math.inf" if better == "<" else "-math.inf"
    width = len(str(t.epochs))
    return [
        f"# 7.3 and 8.3: train, log each epoch, keep the best model by {t.monitor}",
        f'MONITOR, best = "{t.monitor}", {start}',
        "bad_epochs = 0",
        'history = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": [], "lr": []}',
        f"for epoch in range(1, {t.epochs} + 1):",
        "    train_loss, train_acc = train_one_epoch()",
        "    val_loss, val_acc = evaluate()",
        "    lr = optimizer.param_groups[0][\"lr\"]",
        '    metrics = {"train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc, "val_acc": val_acc}',
        '    metrics["lr"] = lr',
        "    for key, value in metrics.items():",
        "        history[key].append(value)",
        f'    print(f"Epoch [{{epoch:{width}d}}/{t.epochs}] | LR: {{lr:.2e}} | "',
        '          f"Train: {train_loss:.4f} ({train_acc:.1%}) | "',
        '          f"Val: {val_loss:.4f} ({val_acc:.1%}) | Gap: {val_loss - train_loss:+.4f} | "',
        '          f"{diagnostic(epoch, train_loss, val_loss, train_acc, val_acc)}")',
        *_nan_stop(t),
        f"    if math.isfinite(metrics[MONITOR]) and metrics[MONITOR] {better} best:",
        "        best, bad_epochs = metrics[MONITOR], 0",
        '        torch.save(model.state_dict(), "best.pth")  # 7.1: the state_dict, not the whole model',
        '        print(f"  best model saved ({MONITOR}: {best:.4f})")',
        "    else:",
        "        bad_epochs += 1",
        *_scheduler_after_epoch(t),
        *_early_stop(t),
        'with open("history.json", "w") as f:',
        "    json.dump(history, f)",
    ]


def _nan_stop(t) -> list[str]:
    return [] if not t.stop_on_nan else ["    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):",
                                         '        print("Stopped: the loss is not finite")',
                                         "        break"]  # fmt: skip


def _scheduler_after_epoch(t) -> list[str]:
    """The scheduler's step at the end of an epoch (onecycle steps every batch, in _step_lines)."""
    return {
        "step": ["    scheduler.step()"],
        "cosine": ["    scheduler.step()"],
        "plateau": ["    if math.isfinite(metrics[MONITOR]):", "        scheduler.step(metrics[MONITOR])"],
    }.get(t.scheduler, [])


def _early_stop(t) -> list[str]:
    return [] if not t.patience else [
        f"    if bad_epochs >= {t.patience}:  # early stopping (training.patience)",
        f'        print(f"Stopped: {{MONITOR}} did not improve for {t.patience} epochs")', "        break"]  # fmt: skip
