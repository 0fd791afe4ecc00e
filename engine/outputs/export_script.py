"""`trainconsole export-script`: a run as one plain PyTorch script, chapter 6.1's template filled in with its settings.

The script draws the same random numbers in the same order as the engine's plain loop (`training.fused_step =
false`): the seeded split, the shuffling generator, the model's init, the dropout masks. So on the CPU its epoch-1
metrics are the run's. What it cannot write it refuses, in one line naming the setting (ExportRefused).
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Collection

from engine.io.atomic import atomic_write
from engine.runs.records import read_bytes, run_settings
from engine.settings.config import Settings, SettingsError, load_settings
from engine.settings.rules import is_import_path
from engine.settings.user_code import check_untrusted, code_folder, import_object

MNIST_LIKE = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


class ExportRefused(SettingsError):
    """A setting the script cannot reproduce."""


def export_settings(target: str | Path, config: str | None, allowed: Collection[str] = ()) -> tuple[Settings, str]:
    """The settings to export: `config` (the user's own), else the run folder's settings.toml (its one reader)."""
    if config:
        return load_settings(config), str(config)
    path = Path(target) / "settings.toml"
    if not path.is_file():
        raise SettingsError(f"{target}: not a run folder (no settings.toml); or pass -c SETTINGS")
    return check_untrusted(run_settings(path), str(path), allowed), str(Path(target))


def _refusals(s: Settings) -> list[str]:
    d, t = s.data, s.training
    checks = [
        (s.device.processes > 1, f"device.processes = {s.device.processes} (several processes)"),
        (t.compile, "training.compile = true (torch.compile)"),
        (d.augment, "data.augment = true"),
        (d.in_memory == "false", "data.in_memory = 'false' (the script batches tensors held in memory)"),
        (d.dataset == "image-folder", "data.dataset = 'image-folder'"),
        (is_import_path(d.dataset), f"data.dataset = '{d.dataset}' (a user dataset)"),
        (d.dataset == "csv" and d.csv_text != "error", f"data.csv_text = '{d.csv_text}'"),
        (d.dataset == "csv" and d.csv_missing != "error", f"data.csv_missing = '{d.csv_missing}'"),
        (t.precision not in ("auto", "fp32"), f"training.precision = '{t.precision}'"),
        (":" not in s.model.name and s.model.name not in ("mlp", "cnn"), f"model.name = '{s.model.name}'"),
    ]
    return [what for refused, what in checks if refused]


def script_text(s: Settings, source: str) -> str:
    """The script, or ExportRefused naming the first setting it cannot write."""
    refused = _refusals(s)
    if refused:
        raise ExportRefused(f"cannot export {refused[0]}: the script does not reproduce it")
    data, in_shape = _data_part(s)
    parts = [
        _header(s, source),
        _device_part(s),
        data,
        _model_part(s, in_shape),
        _training_part(s),
        _loop_part(s),
    ]
    return "\n\n\n".join(p.strip("\n") for p in parts if p) + "\n"


def write_script(text: str, out: str | Path) -> Path:
    """Written atomically as a regular file, never through a symlink at `out`."""
    atomic_write(out, lambda fh: fh.write(text.encode("utf-8")), follow_symlinks=False)
    return Path(out)


def _header(s: Settings, source: str) -> str:
    needs = "torch, torchvision" if s.data.dataset in MNIST_LIKE else "torch"
    needs += ", scikit-learn" if s.data.dataset == "digits" else ""
    threads = f"torch.set_num_threads({s.device.threads})\n" if s.device.threads else ""
    seeding = f"SEED = {s.run.seed}\ntorch.manual_seed(SEED)" if s.run.seed >= 0 else (
        "SEED = torch.seed() % 2**63  # run.seed = -1: a new seed each run"
    )
    first = "import csv\n" if s.data.dataset == "csv" else ""  # the data's own imports, sorted as ruff wants them
    last = "from torchvision import datasets\n" if s.data.dataset in MNIST_LIKE else ""
    last += "from sklearn.datasets import load_digits\n" if s.data.dataset == "digits" else ""
    return f'''"""The chapter's training template with this run's settings, exported by trainconsole from
{source!r}.

Needs {needs}. Run `python train.py`: it writes best.pth (the model's state_dict), preprocessing.pth (the
normalisation, which `trainconsole eval` reads beside it) and history.json (the metrics of each epoch).
"""

{first}import json
import math

import torch
from torch import nn
{last}
{threads}{seeding}'''


def _device_part(s: Settings) -> str:
    if s.device.device != "auto":
        return f"# 1.3 The device: device.device = {s.device.device!r}\ndevice = torch.device({s.device.device!r})"
    return """# 1.3 The device: the best one available
if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print(f"Device: {device}")"""


def _load_lines(s: Settings) -> tuple[list[str], bool, tuple[int, ...]]:
    """Lines that set x, y (and x_test, y_test), whether they are images, and the sample shape."""
    from engine.data.sources import load_source

    d = s.data
    src = load_source(d, s.run.seed)  # what the engine reads: the shape, and the CSV's separator and columns
    if d.dataset == "digits":
        return [
            "digits = load_digits()",
            "x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0",
            "y = torch.tensor(digits.target).long()",
        ], True, src.in_shape
    if d.dataset == "synthetic":
        from engine.settings.rules import synthetic_options

        o = synthetic_options(d.options)
        return [
            "# chapter 5.3's tabular data: labels from a random linear teacher plus noise",
            f"g = torch.Generator().manual_seed({max(s.run.seed, 0)})",
            f"x = torch.randn({o['samples']}, {o['features']}, generator=g)",
            f"teacher = torch.randn({o['features']}, {o['classes']}, generator=g)",
            f"noise = {float(o['noise'])} * torch.randn({o['samples']}, {o['classes']}, generator=g)",
            "y = (x @ teacher + noise).argmax(1)",
        ], False, src.in_shape
    if d.dataset in MNIST_LIKE:
        cls = MNIST_LIKE[d.dataset]
        lines = [
            _path_line("ROOT", d.root, "data.root"),
            f"train_set = datasets.{cls}(ROOT, train=True, download={d.download})",
            f"test_set = datasets.{cls}(ROOT, train=False)",
            "",
            "def images(data):  # N,H,W -> N,1,H,W; N,H,W,C -> N,C,H,W, uint8 pixels",
            "    t = torch.as_tensor(data)",
            "    return (t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)).contiguous()",
            "",
            "x, y = images(train_set.data), torch.as_tensor(train_set.targets).long()",
            "x_test, y_test = images(test_set.data), torch.as_tensor(test_set.targets).long()",
        ]
        return lines, True, src.in_shape
    return _csv_lines(s, src), False, src.in_shape


def _csv_lines(s: Settings, src) -> list[str]:
    from engine.data.csv_reader import SEPARATORS, _decode, _sniff_separator

    d = s.data
    raw = read_bytes(d.path, 2**32)  # the one reader: no FIFO, no device file
    if raw is None:
        raise SettingsError(f"data.path = '{d.path}': no such CSV file")
    text, _ = _decode(raw, d.csv_encoding, f"data.path = '{d.path}'")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or text.encode("utf-8", "replace") != raw.removeprefix(b"\xef\xbb\xbf"):
        raise ExportRefused(f"cannot export data.path = '{d.path}': not UTF-8 text (the script reads UTF-8)")
    sep = SEPARATORS[d.csv_separator] if d.csv_separator != "auto" else _sniff_separator(text)
    comma = d.csv_decimal == "," or (d.csv_decimal == "auto" and sep != ",")
    number = 'float(cell.replace(",", "."))' if comma else "float(cell)"
    return [
        _path_line("PATH", d.path, "data.path"),
        'with open(PATH, newline="", encoding="utf-8-sig") as f:',
        f"    header, *rows = [r for r in csv.reader(f, delimiter={sep!r}) if r]",
        "header = [h.strip() for h in header]",
        f"label = header.index({d.label_column!r})",
        "unnamed = {0} if label != 0 and header[0] in ('', 'Unnamed: 0') else set()  # pandas' row index",
        "features = [j for j in range(len(header)) if j != label and j not in unnamed]",
        "",
        "",
        "def label_key(v):  # class names sorted as numbers where they are integers, as trainconsole does",
        "    number = v.lstrip('-').isascii() and v.lstrip('-').isdigit()",
        "    return (not number, int(v) if number else 0, v)",
        "",
        "",
        "names = sorted({r[label].strip() for r in rows}, key=label_key)",
        f"x = torch.tensor([[{number} for cell in (r[j] for j in features)] for r in rows])  # float32",
        "y = torch.tensor([names.index(r[label].strip()) for r in rows])",
    ]


def _path_line(name: str, value: str, what: str) -> str:
    """`NAME = 'value'  # what`; a path may be longer than a line."""
    line = f"{name} = {value!r}  # {what}"
    return line if len(line) <= 120 else f"{name} = {value!r}  # noqa: E501"


def _data_part(s: Settings) -> tuple[str, tuple[int, ...]]:
    d = s.data
    lines, is_image, in_shape = _load_lines(s)
    lines = ["# 5. The data", *lines, ""]
    if d.val_fraction > 0:
        lines += [
            f"# a fixed split: the same seeded permutation as trainconsole's (data.val_fraction = {d.val_fraction})",
            f"n_val = max(1, round(len(y) * {d.val_fraction}))",
            "perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED))",
            "x_train, y_train, x_val, y_val = x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]",
        ]
    else:
        lines += ["x_train, y_train, x_val, y_val = x, y, x_test, y_test  # data.val_fraction = 0: the test split"]
    lines += ["", *_normalise_lines(s, is_image), ""]
    lines += [
        "x_train, y_train = normalise(x_train).to(device), y_train.to(device)",
        "x_val, y_val = normalise(x_val).to(device), y_val.to(device)",
        "shuffle = torch.Generator().manual_seed(SEED)  # the order of the training batches, a new one each epoch",
        "",
        "",
        "def batches(n, size):",
        '    """(start, end) of each batch; a last batch of one sample joins the one before (BatchNorm needs two)."""',
        "    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]",
        "    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:",
        "        bounds[-2:] = [(bounds[-2][0], n)]",
        "    return bounds",
    ]
    return "\n".join(lines), in_shape


def _normalise_lines(s: Settings, is_image: bool) -> list[str]:
    mode, uint8 = s.data.normalize, s.data.dataset in MNIST_LIKE
    dims = "(0, 2, 3)" if is_image else "(0,)"
    shape = ".reshape(-1, 1, 1)" if is_image else ""
    scale = " / 255.0" if uint8 else ""
    lines = ["# normalisation fitted on the training split only (population std, as trainconsole's)"]
    if mode == "imagenet":
        lines = [
            "# ImageNet's per-channel statistics (data.normalize = 'imagenet'; grayscale: their averages)",
            "mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])",
            "if x_train.shape[1] != 3:",
            "    mean, std = mean.mean().repeat(x_train.shape[1]), std.mean().repeat(x_train.shape[1])",
            "mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)",
        ]
        kind = "imagenet"
    elif mode == "none":
        lines = ["# data.normalize = 'none'", "mean, std = torch.zeros(x_train.shape[1:]), "
                 "torch.ones(x_train.shape[1:])"]
        if is_image:
            lines[-1] = "mean, std = torch.zeros(x_train.shape[1], 1, 1), torch.ones(x_train.shape[1], 1, 1)"
        kind = "none"
    else:
        kind = "per-channel" if is_image else "per-feature"
        lines += [
            f"xd = x_train.double(){scale}",
            f"mean = xd.mean({dims})",
            f"std = ((xd * xd).mean({dims}) - mean * mean).clamp(min=0.0).sqrt().float(){shape}",
            f"mean = mean.float(){shape}",
            "std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature is centred only",
        ]
    to_float = "x.float() / 255.0" if uint8 else "x.float()"
    lines += [
        f'preprocessing = {{"kind": "{kind}", "mean": mean, "std": std, "fitted_on": len(y_train),',
        '                 "fill": None, "categories": {}}  # as trainconsole records it',
        'torch.save(preprocessing, "preprocessing.pth")',
        "",
        "",
        "def normalise(x):",
        f"    return ({to_float} - mean) / std",
    ]
    return lines


DROPOUT_CLASS = '''class Dropout(nn.Dropout):
    """nn.Dropout with trainconsole's masks on the CPU (the same random draws, so the same numbers as its runs).

    nn.Dropout itself works as well: the same expectation, other random draws."""

    def forward(self, x):
        keep = round((1.0 - self.p) * 65536) / 65536
        if not self.training or x.device.type != "cpu" or keep in (0.0, 1.0):
            return super().forward(x)
        words = torch.randint(-(2**63), 2**63 - 1, ((x.numel() + 3) // 4,), dtype=torch.int64)
        lanes = words.view(torch.int16)[: x.numel()].view(x.shape).float()  # 16-bit random numbers
        return x * lanes.lt_(keep * 65536 - 32768.5).mul_(1.0 / keep).to(x.dtype)'''


def _model_part(s: Settings, in_shape: tuple[int, ...]) -> str:
    from engine.data.sources import load_source

    m = s.model
    num_classes = load_source(s.data, s.run.seed).num_classes
    if ":" in m.name:
        return _user_model(s, in_shape, num_classes)
    drop = m.dropout > 0
    body = _mlp(m, in_shape, num_classes) if m.name == "mlp" else _cnn(m, in_shape, num_classes)
    head = DROPOUT_CLASS + "\n\n\n" if drop else ""
    title = f"# 4. The model ({m.name}): the layers, in the order trainconsole builds them"
    return f"{title}\n{head}{body}\n\n\nmodel = Net().to(device)"


def _mlp(m, in_shape, num_classes) -> str:
    width, init, forward = math.prod(in_shape), [], ["        x = x.flatten(1)"]
    for i, size in enumerate(m.hidden, start=1):
        init.append(f"        self.fc{i} = nn.Linear({width}, {size})")
        if m.dropout > 0:
            init.append(f"        self.dropout{i} = Dropout({m.dropout})")
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
    dropout = f"Dropout({m.dropout}), " if m.dropout > 0 else "nn.Identity(), "
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
        f"import sys  # noqa: E402\n\n{_path_line('CODE', str(code_folder()), 'where the module was found')}\n"
        "sys.path.append(CODE)\n"
        f"from {module} import {name}  # noqa: E402\n\nmodel = {name}({args}).to(device)"
    )


def _training_part(s: Settings) -> str:
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


def _loop_part(s: Settings) -> str:
    t, dg = s.training, s.diagnostics
    amp = _amp(s)
    eval_forward = (
        ["        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):",
         "            out = model(xb)", "            loss = criterion(out, yb)"]
        if amp else ["        out = model(xb)", "        loss = criterion(out, yb)"]
    )  # fmt: skip
    better = "<" if t.monitor.endswith("loss") else ">"
    start = "math.inf" if better == "<" else "-math.inf"
    after = {
        "step": ["    scheduler.step()"],
        "cosine": ["    scheduler.step()"],
        "plateau": ["    if math.isfinite(metrics[MONITOR]):", "        scheduler.step(metrics[MONITOR])"],
    }.get(t.scheduler, [])
    stop = [] if not t.stop_on_nan else ["    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):",
                                         '        print("Stopped: the loss is not finite")',
                                         "        break"]  # fmt: skip
    patience = [] if not t.patience else [
        f"    if bad_epochs >= {t.patience}:  # early stopping (training.patience)",
        f'        print(f"Stopped: {{MONITOR}} did not improve for {t.patience} epochs")', "        break"]  # fmt: skip
    width = len(str(t.epochs))
    return "\n".join([
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
        "", "",
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
        "", "",
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
        "", "",
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
        *stop,
        f"    if math.isfinite(metrics[MONITOR]) and metrics[MONITOR] {better} best:",
        "        best, bad_epochs = metrics[MONITOR], 0",
        '        torch.save(model.state_dict(), "best.pth")  # 7.1: the state_dict, not the whole model',
        '        print(f"  best model saved ({MONITOR}: {best:.4f})")',
        "    else:",
        "        bad_epochs += 1",
        *after,
        *patience,
        'with open("history.json", "w") as f:',
        "    json.dump(history, f)",
    ])  # fmt: skip
