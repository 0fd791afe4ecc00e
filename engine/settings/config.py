"""Typed settings: load, validate, override and save `settings.toml`.

Every section is a dataclass whose fields carry their own documentation and
rules, so the headless CLI, the console's form and the saved file all speak
the same language and give the same error messages.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from engine.io.atomic import WriteProtected, atomic_write
from engine.settings.defaults import resolve_defaults, resolve_model
from engine.settings.renames import note_renamed, read_renamed, renamed_override
from engine.settings.toml_edit import rename_keys, update_toml
from engine.settings.rules import (
    COUNT_MAX,
    DATASETS,
    FILE_BYTES_MAX,
    MODELS,
    SEED_MAX,
    SIZE_MAX,
    SYNTHETIC_OPTIONS,
    SettingsError,
    THREADS_MAX,
    PROCESSES_MAX,
    _check_synthetic_values,
    _check_value,
    _shown,
    _suggest,
)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine", "onecycle", "plateau")
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ACCELS = ("auto", "off")
DIAGNOSTIC_RULES = ("baseline", "chapter")
TASKS = ("auto", "classification", "regression")
LOSSES = ("auto", "cross_entropy", "mse", "huber")
LR_SUGGESTIONS = ("steepest", "valley")
LR_MAX = 10.0  # training.lr's bound: a suggested rate must be one a run takes
LR_FIND_STEPS_MAX = 10_000


def _f(default: Any, doc: str, **rules: Any) -> Any:
    """A settings field: its default, a one-line doc and validation rules."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc, **rules})
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass
class RunSettings:
    """Where and under which name a run is recorded."""

    name: str = _f(
        "auto",
        "Run name; the run folder is runs_dir/name (a suffix is added if it exists). auto: dataset-model, e.g. "
        "digits-mlp, folder-cnn, or make_data-mlp for package.module:make_data.",
        nonempty=True,
        folder_name=True,
    )
    runs_dir: str = _f("runs", "Folder that holds one sub-folder per run.", nonempty=True, path=True)
    seed: int = _f(
        0,
        "Random seed for weights, shuffling and splits (-1: no fixed seed; at most 2**32 - 1, numpy's limit).",
        min=-1,
        max=SEED_MAX,
    )
    detach: bool = _f(
        False,
        "The console's s starts runs in a process of their own, which go on when the console or terminal closes "
        "(b always does).",
    )


@dataclass
class DeviceSettings:
    """Which device trains the model."""

    device: str = _f("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", device=True)
    threads: int = _f(
        0,
        "CPU threads for torch (0: choose from the free cores); fewer while other processes take cores.",
        min=0,
        max=THREADS_MAX,
    )
    processes: int = _f(
        1,
        "Processes training data-parallel on this machine (through torchrun); batch_size is per process.",
        min=1,
        max=PROCESSES_MAX,
    )


@dataclass
class DataSettings:
    """The dataset, its split and how it is batched."""

    dataset: str = _f(
        "digits",
        "digits, mnist, fashion-mnist, cifar10, synthetic, table (a CSV, Parquet or Feather file; csv is the same), "
        "image-folder, or package.module:function.",
        choices=DATASETS,
        importable=True,
    )
    root: str = _f("data", "Folder of torchvision datasets (mnist, fashion-mnist, cifar10).", nonempty=True, path=True)
    download: bool = _f(False, "Download torchvision datasets into root when missing (needs a network).")
    path: str = _f(
        "",
        "table or csv: the file, read by its extension (.parquet/.pq Parquet, .feather/.arrow/.ipc Feather, else "
        "CSV); image-folder: the folder of class sub-folders.",
        path=True,
    )
    label_column: str = _f("label", "csv: name of the label column; the other columns are features.", nonempty=True)
    image_size: int = _f(
        0,
        "image-folder: images are resized to image_size x image_size (0: the images' own size, the most common one).",
        min=0,
        max=1024,
    )
    batch_size: int = _f(64, "Training batch size.", min=1, max=1_000_000)
    eval_batch_size: int = _f(256, "Validation batch size.", min=1, max=1_000_000)
    val_fraction: float = _f(
        0.2, "Share of the training split held out for validation (0: use the dataset's test split).", min=0.0, max=0.9
    )
    num_workers: int = _f(0, "DataLoader worker processes (only when data is not held in memory).", min=0, max=64)
    in_memory: str = _f(
        "auto",
        "auto, true or false: hold splits as tensors and batch by index (fast path).",
        choices=("auto", "true", "false"),
        boolean=True,
    )
    augment: bool = _f(False, "Random shifts (and flips for natural images) on the training split only.")
    options: dict = _f({}, "Extra keyword arguments for synthetic or a package.module:function dataset.")
    normalize: str = _f(
        "auto",
        "auto: tables standardised per feature, images by their own per-channel mean and std (both fitted on the "
        "training split only); imagenet: ImageNet's mean and std (images); none: raw values (pixels in [0, 1]).",
        choices=("auto", "none", "imagenet"),
    )
    csv_separator: str = _f(
        "auto",
        "csv: the field separator: auto (detected), ',', ';', 'tab' or '|'.",
        choices=("auto", ",", ";", "tab", "|"),
    )
    csv_decimal: str = _f(
        "auto",
        "csv: the decimal mark: auto (a comma when the separator is not one), '.' or ','.",
        choices=("auto", ".", ","),
    )
    csv_encoding: str = _f(
        "auto",
        "csv: the text encoding: auto (a byte-order mark, else UTF-8, else Windows-1252), utf-8, utf-16 or cp1252.",
        choices=("auto", "utf-8", "utf-16", "cp1252", "latin-1"),
    )
    csv_missing: str = _f(
        "error",
        "csv: an empty, NA, NaN or infinite feature cell: error (named by line and column), drop (the row) or "
        "mean (filled with the training split's mean).",
        choices=("error", "drop", "mean"),
    )
    csv_text: str = _f(
        "error",
        "csv: a feature column of text: error, or onehot (one 0/1 column per category, kept with the checkpoint).",
        choices=("error", "onehot"),
    )
    columns: dict = _f(
        {},
        "csv: a role per column name, overriding the automatic one: feature, onehot, date (year, month, day of the "
        "week) or drop; e.g. { sample_id = \"drop\", city = \"onehot\" }. Left out, identifier and free-text "
        "columns are dropped and dates read as dates, each said in the run's first lines.",
        values=("feature", "onehot", "date", "drop"),
    )
    memory_budget_mb: int = _f(
        2048,
        "csv, table: memory for parsing a CSV file, in MB: a file up to an eighth of it is parsed whole, a larger "
        "one in blocks of a sixteenth of it, each turned into numbers at once, so it still loads (docs/data.md).",
        min=1,
        max=1_048_576,
    )
    table_cache: bool = _f(
        True,
        "csv, table: keep each decoded table in $XDG_CACHE_HOME/trainconsole/tables (else ~/.cache/trainconsole/"
        "tables), so the next run of an unchanged file skips parsing; TRAINCONSOLE_TABLE_CACHE=off also turns it off.",
    )
    bad_images: str = _f(
        "error",
        "image-folder: a file that cannot be decoded: error (named in one line) or skip (counted in the run's first "
        "lines).",
        choices=("error", "skip"),
    )


@dataclass
class ModelSettings:
    """The network to train (mlp with hidden = [256, 128] and dropout = 0.3 is the chapter's ReseauMNIST)."""

    name: str = _f(
        "auto",
        "auto (cnn for an image folder and cifar10, else the chapter's mlp; the configuration screen says which), "
        "mlp, cnn, a torchvision classifier (resnet18, ...) or package.module:Class.",
        model=True,
    )
    hidden: list = _f(
        [256, 128],
        "mlp: sizes of the hidden layers ([]: none, a linear model, i.e. logistic regression).",
        ints=True,
        min=1,
        max=SIZE_MAX,
    )
    dropout: float = _f(0.3, "Dropout probability after each hidden layer (mlp, cnn).", min=0.0, max=0.99)
    channels: list = _f(
        [32, 64], "cnn: channels of the convolution blocks (at least one block).", ints=True, min=1, max=SIZE_MAX
    )
    options: dict = _f(
        {}, "Extra keyword arguments for a torchvision or package.module:Class model (mlp and cnn take none)."
    )
    task: str = _f(
        "auto",
        "auto (regression for a numeric label with a non-whole value, or more than 20 distinct values making "
        "more than 5 % of the rows; classification otherwise), classification or regression (one output unit).",
        choices=TASKS,
    )


@dataclass
class TrainingSettings:
    """The optimisation loop."""

    epochs: int = _f(20, "Number of epochs (raise it and resume to train longer).", min=1, max=COUNT_MAX)
    optimizer: str = _f("adam", "adam, adamw or sgd.", choices=OPTIMIZERS)
    lr: float = _f(1e-3, "Learning rate (trainconsole lr-find suggests one).", min_exclusive=0.0, max=LR_MAX)
    weight_decay: float = _f(0.0, "Weight decay (L2 penalty).", min=0.0, max=1.0)
    momentum: float = _f(0.9, "sgd: momentum.", min=0.0, max=0.999)
    scheduler: str = _f("none", "none, step, cosine, onecycle or plateau.", choices=SCHEDULERS)
    step_size: int = _f(10, "step: epochs between learning-rate decays.", min=1, max=COUNT_MAX)
    gamma: float = _f(0.1, "step and plateau: factor applied to the learning rate.", min_exclusive=0.0, max=1.0)
    patience: int = _f(
        0, "Early stopping: epochs without improvement of monitor before stopping (0: off).", min=0, max=COUNT_MAX
    )
    monitor: str = _f("val_loss", "Metric that picks best.pth and drives early stopping and plateau.", choices=MONITORS)
    min_delta: float = _f(
        0.0, "An improvement of monitor is a change past its best by more than this (best.pth, early stopping).",
        min=0.0,
    )
    grad_clip: float = _f(0.0, "Clip the gradient norm to this value (0: off).", min=0.0)
    label_smoothing: float = _f(0.0, "Label smoothing of the cross-entropy loss.", min=0.0, max=0.9)
    loss: str = _f(
        "auto",
        "auto (cross_entropy for classification, mse for regression), cross_entropy, mse or huber (regression: "
        "on the standardised target, huber is less swayed by outliers).",
        choices=LOSSES,
    )
    precision: str = _f(
        "auto", "auto (bf16/fp16 autocast on CUDA, fp32 elsewhere), fp32, bf16 or fp16.", choices=PRECISIONS
    )
    stop_on_nan: bool = _f(True, "Stop the run when a loss becomes NaN or infinite.")
    compile: bool = _f(False, "Compile the model with torch.compile (slower to start; often slower on CPU).")
    accel: str = _f(
        "auto",
        "Speed-ups of engine/training/accel: auto uses them where they apply (fused mlp step, fast dropout, thread "
        "trial); off trains with plain PyTorch.",
        choices=ACCELS,
    )


@dataclass
class DiagnosticsSettings:
    """The per-epoch diagnostic: chapter 8.3's badges, judged against the run's own constant predictor."""

    rules: str = _f(
        "baseline",
        "baseline: the badges judged against the constant predictor (class priors) of the run's own data, with "
        "DIVERGING and NOT LEARNING; chapter: exactly the chapter's 8.3 rules and line.",
        choices=DIAGNOSTIC_RULES,
    )
    overfit_loss_gap: float = _f(
        0.5, "OVERFITTING when val_loss - train_loss exceeds this (x ln(classes) / ln(10)).", min=0.0
    )
    overfit_acc_gap: float = _f(0.1, "OVERFITTING when train_acc - val_acc exceeds this.", min=0.0, max=1.0)
    underfit_loss: float = _f(
        1.0, "UNDERFITTING when train_loss stays above this (scaled like overfit_loss_gap) ...", min=0.0
    )
    underfit_after: int = _f(10, "... after this many epochs (the chapter says 20).", min=0, max=COUNT_MAX)
    onset_margin: float = _f(
        0.1, "Overfitting onset: last val_loss above its minimum by this share (chapter 8.1).", min=0.0
    )
    onset_min_epochs: int = _f(10, "Overfitting onset is looked for only after this many epochs.", min=1, max=COUNT_MAX)
    overfit_after: int = _f(
        3, "OVERFITTING is judged from this epoch on (a fresh model's first epochs swing).", min=1, max=COUNT_MAX
    )
    min_val_samples: int = _f(
        100,
        "OVERFITTING needs at least this many validation samples.",
        min=1,
        max=COUNT_MAX,
    )
    chance_after: int = _f(5, "NOT LEARNING is judged from this epoch on (0: never).", min=0, max=COUNT_MAX)
    chance_margin: float = _f(
        0.1,
        "NOT LEARNING while the best val_loss is above (1 - this) x the constant predictor's (the class priors').",
        min=0.0,
        max=1.0,
    )
    diverge_factor: float = _f(
        1.5,
        "DIVERGING when train_loss, or a val_loss that jumped by this factor in one epoch, exceeds this x the loss "
        "of a model that learned nothing (the constant predictor's, or ln(classes) where higher; without them, "
        "epoch 1's train_loss).",
        min=1.0,
    )
    diverge_epochs: int = _f(
        3, "DIVERGING when train_loss rose this many epochs in a row (0: never).", min=0, max=COUNT_MAX
    )
    probes: bool = _f(
        True,
        "Gradient probes: per-layer gradient norms on two batches an epoch and dead or saturated units on one "
        "forward pass (VANISHING/EXPLODING GRADIENTS, DYING RELU, SATURATED UNITS).",
    )


@dataclass
class CheckpointSettings:
    """What is written to runs_dir/name/checkpoints."""

    every: int = _f(0, "Also keep epoch_N.pth every N epochs (0: off).", min=0, max=COUNT_MAX)
    keep: int = _f(3, "How many epoch_N.pth files to keep (newest first).", min=1, max=COUNT_MAX)


@dataclass
class LoggingSettings:
    """What the run folder gets beside its own record (metrics.jsonl, metrics.csv, events.jsonl)."""

    tensorboard: str = _f(
        "auto",
        "auto, true or false: TensorBoard scalars in the run folder (auto: when the tensorboard extra is installed).",
        choices=("auto", "true", "false"),
        boolean=True,
    )


@dataclass
class LrFindSettings:
    """trainconsole lr-find: the learning-rate range test (an exponential sweep, as fastai's and Lightning's)."""

    start_lr: float = _f(1e-7, "The sweep's first learning rate.", min_exclusive=0.0, max=LR_MAX)
    end_lr: float = _f(10.0, "The sweep's last learning rate (above start_lr).", min_exclusive=0.0, max=LR_MAX)
    steps: int = _f(
        100, "Training steps of the sweep, one learning rate each (the data cycled).", min=10, max=LR_FIND_STEPS_MAX
    )
    smoothing: float = _f(
        0.98, "Smoothing of the loss curve (beta of its moving average; 0: none).", min=0.0, max=0.999
    )
    diverge: float = _f(
        4.0, "Stop when the smoothed loss exceeds this many times its lowest value (0: run every step).", min=0.0
    )
    suggestion: str = _f(
        "steepest",
        "steepest: where the smoothed loss falls fastest; valley: the middle of its longest descent (fastai's).",
        choices=LR_SUGGESTIONS,
    )


@dataclass
class Settings:
    run: RunSettings = field(default_factory=RunSettings)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)
    checkpoints: CheckpointSettings = field(default_factory=CheckpointSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    lr_find: LrFindSettings = field(default_factory=LrFindSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def replace(self, key: str, value: Any, source: str = "settings") -> Settings:
        """A copy with one `section.key` changed and validated."""
        data = self.to_dict()
        key, value = renamed_override(key, value, source)
        section, name = _split_key(key, source)
        data[section][name] = value
        return from_dict(data, source)

    def with_resolved_paths(self) -> Settings:
        """data.root and data.path made absolute: a run record then reads its data from any folder (eval, resume)."""
        data = self.to_dict()
        for key in ("root", "path"):
            if data["data"][key]:
                data["data"][key] = str(Path(data["data"][key]).expanduser().absolute())
        return from_dict(data, "settings")

    def for_run(self) -> Settings:
        """What a run records: its paths absolute, and run.name and model.name chosen where they are auto
        (engine.settings.defaults), so that eval and resume rebuild the model it trained."""
        return resolve_defaults(self.with_resolved_paths())


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]


def section_fields(section: str) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(SECTIONS[section])


def _split_key(key: str, source: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    if not name:
        raise SettingsError(f"{source}: '{key}' is not of the form section.key (e.g. training.lr)")
    if section not in SECTIONS:
        raise SettingsError(
            f"{source}: unknown section [{section}]{_suggest(section, tuple(SECTIONS))}; "
            f"sections: {', '.join(SECTIONS)}"
        )
    names = [f.name for f in section_fields(section)]
    if name not in names:
        raise SettingsError(
            f"{source}: unknown key {section}.{name}{_suggest(name, names)}; keys of [{section}]: {', '.join(names)}"
        )
    return section, name


def from_dict(data: dict[str, Any], source: str = "settings") -> Settings:
    """Validate a nested dict (as read from TOML) into Settings; missing keys take defaults."""
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected tables of settings")
    data, renamed = read_renamed(data, source)  # an old run folder's or checkpoint's fused_step, ...
    note_renamed(renamed, source)
    sections = {}
    for section, values in data.items():
        if section == "sweep":  # the sweep command's table (engine.settings.sweep): a run trains from the rest
            continue
        if section not in SECTIONS:
            raise SettingsError(
                f"{source}: unknown section [{section}]{_suggest(section, tuple(SECTIONS))}; "
                f"sections: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise SettingsError(f"{source}: '{section}' must be a table [{section}], not {type(values).__name__}")
        fields = {f.name: f for f in section_fields(section)}
        checked = {}
        for name, value in values.items():
            if name not in fields:
                raise SettingsError(
                    f"{source}: unknown key {section}.{name}{_suggest(name, tuple(fields))}; "
                    f"keys of [{section}]: {', '.join(fields)}"
                )
            checked[name] = _check_value(section, fields[name], value, source)
        sections[section] = SECTIONS[section](**checked)
    settings = Settings(**sections)
    _check_across(settings, source)
    return settings


def _check_across(s: Settings, source: str) -> None:
    if s.data.dataset in ("csv", "table", "image-folder") and not s.data.path:
        what = {"csv": "CSV file", "table": "table file (CSV, Parquet or Feather)"}.get(s.data.dataset, "image folder")
        raise SettingsError(f"{source}: data.path is empty: dataset '{s.data.dataset}' needs the path of its {what}")
    if s.data.dataset == "digits" and s.data.val_fraction == 0:
        raise SettingsError(
            f"{source}: data.val_fraction = 0.0: digits has no test split, choose a fraction such as 0.2"
        )
    m, (model, why) = s.model, resolve_model(s)
    chosen = f"{model} (model.name = auto: {why})" if why else model
    if model in MODELS and m.options:  # the built-ins' settings are their own keys; an ignored option would mislead
        own = "model.hidden and model.dropout" if model == "mlp" else "model.channels and model.dropout"
        raise SettingsError(
            f"{source}: model.options = {_shown(m.options)}: the built-in {chosen} takes no options "
            f"(its settings are {own}); options are for torchvision and package.module:Class models"
        )
    if model == "cnn" and not m.channels:
        raise SettingsError(
            f"{source}: model.channels = []: {chosen} needs at least one convolution block, e.g. [32, 64]"
        )
    if s.lr_find.start_lr >= s.lr_find.end_lr:
        raise SettingsError(
            f"{source}: lr_find.start_lr = {s.lr_find.start_lr:g} is not below lr_find.end_lr = {s.lr_find.end_lr:g}: "
            "the sweep goes up from start_lr to end_lr"
        )
    if s.data.dataset == "synthetic":  # an unknown option is refused when the data is built (engine.data.sources)
        _check_synthetic_values({**SYNTHETIC_OPTIONS, **s.data.options}, f"{source}: ")
    _check_task(s.model.task, s.training, source)


def _check_task(task: str, t: TrainingSettings, source: str) -> None:
    """The loss and the monitor a task can use; with task = auto the run checks them once the data decided."""
    if task == "classification" and t.loss in ("mse", "huber"):
        raise SettingsError(f"{source}: training.loss = '{t.loss}' is for regression; model.task = 'classification' "
                            "trains with cross_entropy (or set training.loss = 'auto')")
    if task == "regression" and t.loss == "cross_entropy":
        raise SettingsError(f"{source}: training.loss = 'cross_entropy' is for classes; model.task = 'regression' "
                            "trains with mse or huber (or set training.loss = 'auto')")
    if task == "regression" and t.monitor.endswith("_acc"):
        raise SettingsError(f"{source}: training.monitor = '{t.monitor}': model.task = 'regression' has no accuracy; "
                            f"monitor {t.monitor[:-4]}_loss")


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value`, the value in TOML syntax; a bare word is a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SettingsError(f"--set {_clipped(text)!r}: expected section.key=value, e.g. --set training.lr=0.01")
    raw = raw.strip()
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except RecursionError:
        raise SettingsError(f"--set {_clipped(text)}: the value is nested too deeply") from None
    except ValueError:  # not TOML (TOMLDecodeError), or an integer of more digits than Python converts
        return key, raw
    if list(parsed) != ["value"]:  # more than one value, e.g. `1\nother = 2`: not one TOML value, so text
        return key, raw
    return key, parsed["value"]


def _clipped(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def load_settings(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Read `path` (defaults when it is None or missing), apply `--set` overrides, validate."""
    source = str(path) if path is not None else "defaults"
    data, renamed = read_renamed(_read_settings_file(path, source) if path is not None else {}, source)
    note_renamed(renamed, source)  # before the overrides: `--set training.accel=...` replaces an old file's key
    for text in overrides:
        key, value = renamed_override(*parse_override(text), f"--set {_clipped(text)}")
        section, name = _split_key(key, f"--set {_clipped(text)}")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise SettingsError(f"{source}: '{section}' must be a table [{section}]")
        field_ = next(f for f in section_fields(section) if f.name == name)
        # blame --set, not the file
        data[section][name] = _check_value(section, field_, value, f"--set {_clipped(text)}")
    if overrides:  # a rule across keys (model.options with mlp, ...) may be broken by the --set values
        source = f"{source} with " + " ".join(f"--set {_clipped(text)}" for text in overrides)
    return from_dict(data, source)


def _read_settings_file(path: str | os.PathLike, source: str) -> dict[str, Any]:
    """The file's tables; none when it does not exist. A BOM (some Windows editors write one) is skipped."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(FILE_BYTES_MAX + 1)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except IsADirectoryError:
        raise SettingsError(f"{source}: is a folder, not a settings file") from None
    except OSError as e:
        raise SettingsError(f"{source}: cannot read: {e.strerror or e}") from None
    except ValueError as e:  # a NUL in the path
        raise SettingsError(f"{source}: not a usable file name ({e})") from None
    if len(raw) > FILE_BYTES_MAX:
        raise SettingsError(f"{source}: larger than {FILE_BYTES_MAX} bytes, too large for a settings file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        byte = raw[e.start : e.start + 1]
        raise SettingsError(f"{source}: cannot read: not UTF-8 text (byte {e.start}: {byte!r})") from None
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise SettingsError(f"{source}: arrays or tables nested too deeply") from None
    except ValueError as e:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise SettingsError(f"{source}: TOML syntax error: {e}") from None


TOML_HEADER = (
    "# trainconsole settings. Every key is optional; `trainconsole run --set section.key=value` overrides one."
)


def to_toml(settings: Settings, header: str = TOML_HEADER) -> str:
    """The settings as commented TOML: every key with its doc line above it."""
    lines = [header, ""]
    values = settings.to_dict()
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        lines.append(f"# {cls.__doc__.strip()}" if cls.__doc__ else "")
        for f in section_fields(section):
            lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {toml_inline(values[section][f.name])}")
        lines.append("")
    return "\n".join(line for line in lines if line is not None) + "\n"


def toml_inline(value: Any) -> str:
    """A TOML value on one line (tables inline), written by tomli-w."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return (
            "{ "
            + ", ".join(f"{tomli_w.dumps({k: 0}).split(' = ')[0]} = {toml_inline(v)}" for k, v in value.items())
            + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Never a half-written file: see engine.io.atomic. A file its owner made read-only is a SettingsError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    except WriteProtected:
        raise SettingsError(f"{path} is read-only; not saved (make it writable, or save to another file)") from None


def save_settings(settings: Settings, path: str | os.PathLike) -> None:
    """A new file gets the commented template; an existing one gets only the values that differ.

    An existing file keeps its comments, layout and line endings.

    Raises SettingsError, writing nothing, when the existing file does not load
    (the values on hand did not come from it, and writing them in would clobber
    what the user meant) or cannot be edited in place to hold exactly `settings`.
    """
    atomic_write_text(path, _settings_text(settings, Path(path)))


def _settings_text(settings: Settings, path: Path) -> str:
    if not path.is_file():
        return to_toml(settings)
    try:
        load_settings(path)
    except SettingsError as e:
        raise SettingsError(f"not saved, the file does not load: {e}") from None
    with open(path, encoding="utf-8", newline="") as fh:  # newline="": see the line endings as they are
        old = fh.read()
    bom = "\ufeff" if old.startswith("\ufeff") else ""  # kept, for the editor that wrote it
    old = old[len(bom) :]
    crlf = "\r\n" in old and old.count("\r\n") == old.count("\n")  # tomlkit writes new lines as \n
    if crlf:
        old = old.replace("\r\n", "\n")
    try:
        stored, renamed = read_renamed(tomllib.loads(old), str(path))  # an old key is renamed where it stands
        new = update_toml(rename_keys(old, renamed), _changes(stored, settings))
        if from_dict(tomllib.loads(new), str(path)) != settings:
            raise ValueError("the edited text reads back different values")
    except ValueError as e:  # a layout tomlkit cannot edit (SettingsError and TOMLDecodeError are ValueErrors)
        raise SettingsError(
            f"not saved, {path} cannot be edited in place ({e}); rename or delete it to write a new one"
        ) from None
    return bom + (new.replace("\n", "\r\n") if crlf else new)


def _changes(stored: dict[str, Any], settings: Settings) -> dict[str, dict[str, Any]]:
    """The values of `settings` that `stored` (a parsed file) does not already hold.

    A key the file lacks counts as its default, so an unchanged default is not added,
    and a key the file has stays, even when its new value is the default.
    """
    changes: dict[str, dict[str, Any]] = {}
    defaults = Settings().to_dict()
    for section, values in settings.to_dict().items():
        table = stored[section] if isinstance(stored.get(section), dict) else {}
        for f in section_fields(section):
            held = defaults[section][f.name]
            if f.name in table:
                try:
                    held = _check_value(section, f, table[f.name], "file")
                except SettingsError:
                    held = None  # an invalid stored value is always replaced
            value = values[f.name]
            if held is None or type(held) is not type(value) or held != value:
                changes.setdefault(section, {})[f.name] = value
    return changes
