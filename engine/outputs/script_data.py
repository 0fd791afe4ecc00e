"""The exported script's data section (chapter 5): the data loaded as the engine reads it, the seeded split, the
normalisation fitted on the training split, the batches."""

from __future__ import annotations

from engine.runs.records import read_bytes
from engine.settings.config import Settings, SettingsError

MNIST_LIKE = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


class ExportRefused(SettingsError):
    """A setting the script cannot reproduce."""


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
            path_line("ROOT", d.root, "data.root"),
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
    if src.column_roles or any(" read as numbers (" in note for note in src.notes):
        how = "drops or reads columns as dates" if src.column_roles else "reads numbers as spreadsheets write them"
        raise ExportRefused(f"cannot export data.path = '{d.path}': the run {how} (the script reads plain numbers)")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or text.encode("utf-8", "replace") != raw.removeprefix(b"\xef\xbb\xbf"):
        raise ExportRefused(f"cannot export data.path = '{d.path}': not UTF-8 text (the script reads UTF-8)")
    sep = SEPARATORS[d.csv_separator] if d.csv_separator != "auto" else _sniff_separator(text)
    comma = d.csv_decimal == "," or (d.csv_decimal == "auto" and sep != ",")
    number = 'float(cell.replace(",", "."))' if comma else "float(cell)"
    return [
        path_line("PATH", d.path, "data.path"),
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


def path_line(name: str, value: str, what: str) -> str:
    """`NAME = 'value'  # what`; a path may be longer than a line."""
    line = f"{name} = {value!r}  # {what}"
    return line if len(line) <= 120 else f"{name} = {value!r}  # noqa: E501"


def data_part(s: Settings) -> tuple[str, tuple[int, ...]]:
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
