"""Where samples come from: one `Source` per kind of dataset.

A source knows its shape and classes, and gives its splits raw, either as
whole tensors (the fast path) or as per-sample datasets (the DataLoader path).
`engine.data.loaders` fits the preprocessing on the training split
(engine.data.preprocessing) and makes the batches. CSV files are read by
`engine.data.csv_reader`, image folders by `engine.data.images`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from engine.data.augment import random_shift
from engine.data.preprocessing import Preprocessing
from engine.settings.config import DataSettings
from engine.settings.rules import SettingsError, synthetic_options
from engine.data.registry import BUILTIN_DATASETS, builtin_loader

TORCHVISION = {
    # name: (class name, folder under root, files that must be there)
    "mnist": (
        "MNIST",
        "MNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ),
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"),
    ),
}
FLOAT_BYTES_LIMIT = 512 * 2**20  # above this a uint8 image split stays uint8 in memory and is normalised per batch
FIT_SAMPLES_MAX = 20_000  # a per-sample dataset's statistics come from at most this many (random) training samples


class DataError(SettingsError):
    """The data cannot be found or read: a settings problem the user can fix."""


class Prepared(Dataset):
    """Per-sample view of a raw dataset (or tensors) with the run's preprocessing applied on access."""

    def __init__(self, dataset: Any, prep: Preprocessing):
        self.dataset, self.prep = dataset, prep

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        y = y if self.prep.target is None else self.prep.apply_target(torch.as_tensor(y))
        return self.prep.apply(torch.as_tensor(x)), y


class Shifted(Dataset):
    """Per-sample random shifts (and flips) of image tensors: the DataLoader path's training augmentation."""

    def __init__(self, dataset: Dataset, pad: int, flip: bool):
        self.dataset, self.pad, self.flip = dataset, pad, flip

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        return random_shift(torch.as_tensor(x).unsqueeze(0), self.pad, None, self.flip)[0], y


class Source:
    name: str
    num_classes: int
    class_names: list[str]
    in_shape: tuple[int, ...]
    is_image: bool = False
    flips: bool = False
    shift_pad: int = 2
    has_test: bool = False
    can_be_tensors: bool = True
    fill_missing: bool = False  # NaN cells are filled by the preprocessing (csv_missing = "mean")
    categories: dict[str, list[str]] = {}  # csv text columns one-hot encoded
    column_roles: dict[str, str] = {}  # csv columns dropped or read as dates (engine.data.column_roles)
    notes: list[str] = []  # what the user should know about how the data was read (a dropped column, skipped files)
    task: str = "classification"  # or "regression": float targets, one output unit, no classes

    @property
    def train_size(self) -> int:
        raise NotImplementedError

    def memory_bytes(self) -> int | None:
        raise NotImplementedError

    def tensors(self, train_idx, val_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw splits: float features, or images as floats or uint8 pixels."""
        raise NotImplementedError

    def datasets(self, train_idx, val_idx, augment: bool, prep: Preprocessing) -> tuple[Dataset, Dataset]:
        """Per-sample splits with `prep` applied (and augmentation on the training split)."""
        raise NotImplementedError

    def fit_rows(self, train_idx, seed: int) -> torch.Tensor:
        """Raw training samples the preprocessing is fitted on: the training split only, never validation rows."""
        raise NotImplementedError

    def labels(self, idx) -> torch.Tensor | None:
        """Labels of the training split's rows `idx` (None: the test split's), or None where only decoding tells."""
        return None


class TensorSource(Source):
    """Samples already in memory: digits, synthetic, csv, TensorDataset factories, decoded image folders."""

    def __init__(
        self,
        name: str,
        x: torch.Tensor,
        y: torch.Tensor,
        class_names: Sequence[str],
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
        is_image: bool = False,
        task: str = "classification",
    ):
        self.is_image = is_image and x.dim() == 4
        keep_uint8 = self.is_image and x.dtype == torch.uint8  # decoded pixels: a quarter of the memory of floats
        self.task = task
        label = (lambda t: t.float()) if task == "regression" else (lambda t: t.long())
        # a factory's float targets are kept as given until the task is decided (apply_task)
        self.raw_y = y if y.is_floating_point() else None
        self.name, self.x, self.y = name, (x if keep_uint8 else x.float()), label(y)
        self.test = None if test is None else (test[0] if keep_uint8 else test[0].float(), label(test[1]))
        self.class_names = [] if task == "regression" else [str(c) for c in class_names or ()]
        self.num_classes = 1 if task == "regression" else len(self.class_names)
        self.in_shape = tuple(x.shape[1:])
        self.has_test = test is not None
        self.notes = []

    @property
    def train_size(self) -> int:
        return len(self.y)

    def memory_bytes(self) -> int:
        return self.x.numel() * 4 + (self.test[0].numel() * 4 if self.test else 0)

    def tensors(self, train_idx, val_idx):
        if train_idx is None:
            return self.x, self.y, self.test[0], self.test[1]
        return self.x[train_idx], self.y[train_idx], self.x[val_idx], self.y[val_idx]

    def datasets(self, train_idx, val_idx, augment: bool, prep: Preprocessing):
        tx, ty, vx, vy = self.tensors(train_idx, val_idx)
        train: Dataset = Prepared(TensorDataset(tx, ty), prep)
        if augment and self.is_image:
            train = Shifted(train, self.shift_pad, self.flips)
        return train, Prepared(TensorDataset(vx, vy), prep)

    def fit_rows(self, train_idx, seed: int) -> torch.Tensor:
        return self.x if train_idx is None else self.x[train_idx]

    def labels(self, idx) -> torch.Tensor:
        return self.test[1] if idx is None else self.y[idx]


def apply_task(src: Source, task: str, label: str = "label", decimal_comma: bool = False) -> Source:
    """`src` with the target `model.task` asks for (engine.data.targets): its labels' text read again as numbers
    where the task is regression, or auto finds them continuous; classes as they were, unless most of many are
    singletons (refused). Sources other than tensors stay classification."""
    from engine.data.targets import make_target

    if not isinstance(src, TensorSource) or src.task == "regression":
        return src
    n = len(src.y)
    if src.raw_y is not None:
        values = src.raw_y if src.test is None else torch.cat([src.raw_y, src.test[1].float()])
        cells = [repr(v) for v in values.double().tolist()]
    else:
        labels = src.y if src.test is None else torch.cat([src.y, src.test[1]])
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(src.class_names)):
            return src  # a factory's labels beyond its class names: the loss says so, as before
        cells = [src.class_names[i] for i in labels.tolist()]
    target = make_target(cells, task, label, decimal_comma)
    if target.task == "classification":
        return src
    test = None if src.test is None else (src.test[0], target.y[n:])
    out = TensorSource(src.name, src.x, target.y[:n], [], test, src.is_image, task="regression")
    out.fill_missing, out.categories, out.column_roles = src.fill_missing, src.categories, src.column_roles
    out.notes = [*src.notes, *([target.note] if target.note else [])]
    return out


class TorchvisionSource(Source):
    """MNIST, Fashion-MNIST and CIFAR-10 through torchvision, read from `root` (downloaded when asked)."""

    is_image = True
    has_test = True

    def __init__(self, settings: DataSettings):
        from torchvision import datasets

        cls_name, folder, files = TORCHVISION[settings.dataset]
        cls = getattr(datasets, cls_name)
        self.name, self.root = settings.dataset, settings.root
        self.cls = cls
        self.notes = []
        try:
            self.train = cls(settings.root, train=True, download=settings.download)
            self.test = cls(settings.root, train=False, download=settings.download)
        except RuntimeError as e:
            where = Path(settings.root) / folder
            if settings.download:
                raise DataError(
                    f"data.dataset = '{settings.dataset}': download into {settings.root} failed ({e}); "
                    f"put {', '.join(files)} in {where}"
                ) from None
            raise DataError(
                f"data.dataset = '{settings.dataset}': not found under data.root = '{settings.root}': "
                f"put {', '.join(files)} in {where}, or set data.download = true where there is a network"
            ) from None
        except Exception as e:
            raise DataError(
                f"data.dataset = '{settings.dataset}': cannot read {Path(settings.root) / folder}: "
                f"{type(e).__name__}: {e}"
            ) from None
        self.class_names = list(self.train.classes)
        self.num_classes = len(self.class_names)
        self.flips = settings.dataset == "cifar10"
        self.shift_pad = 4 if self.flips else 2
        self.in_shape = tuple(self._images(self.train.data[:1]).shape[1:])

    @staticmethod
    def _images(data) -> torch.Tensor:
        t = torch.as_tensor(data)
        return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)  # N,H,W → N,1,H,W; N,H,W,C → N,C,H,W

    @property
    def train_size(self) -> int:
        return len(self.train)

    def memory_bytes(self) -> int:
        n = len(self.train) + len(self.test)
        per = 1
        for d in self.in_shape:
            per *= d
        return n * per * (4 if n * per * 4 <= FLOAT_BYTES_LIMIT else 1)

    def tensors(self, train_idx, val_idx):
        x, y = self._images(self.train.data).contiguous(), torch.as_tensor(self.train.targets).long()
        if train_idx is None:
            return x, y, self._images(self.test.data).contiguous(), torch.as_tensor(self.test.targets).long()
        return x[train_idx], y[train_idx], x[val_idx], y[val_idx]

    def fit_rows(self, train_idx, seed: int) -> torch.Tensor:
        x = self._images(self.train.data)
        return x if train_idx is None else x[train_idx]

    def labels(self, idx) -> torch.Tensor:
        if idx is None:
            return torch.as_tensor(self.test.targets).long()
        return torch.as_tensor(self.train.targets).long()[idx]

    def datasets(self, train_idx, val_idx, augment: bool, prep: Preprocessing):
        from torchvision import transforms as T

        base = [T.ToTensor(), T.Normalize(prep.mean.flatten().tolist(), prep.std.flatten().tolist())]
        aug = [T.RandomCrop(self.in_shape[-1], padding=self.shift_pad)] + (
            [T.RandomHorizontalFlip()] if self.flips else []
        )
        train_tf = T.Compose((aug if augment else []) + base)
        train = self.cls(self.root, train=True, transform=train_tf)
        if train_idx is None:
            return train, self.cls(self.root, train=False, transform=T.Compose(base))
        plain = self.cls(self.root, train=True, transform=T.Compose(base))
        return Subset(train, train_idx.tolist()), Subset(plain, val_idx.tolist())


class DatasetSource(Source):
    """Any per-sample `Dataset` (user factories, image folders too large to decode): read sample by sample."""

    def __init__(
        self,
        name: str,
        train: Dataset,
        test: Dataset | None,
        num_classes: int,
        class_names: Sequence[str],
        decodable: bool = True,
        targets: torch.Tensor | None = None,
    ):
        self.name, self.train, self.test = name, train, test
        self.has_test = test is not None
        self.num_classes, self.class_names = num_classes, [str(c) for c in class_names]
        self.targets = targets
        self.notes = []
        x0, _ = train[0]
        x0 = torch.as_tensor(x0)
        self.in_shape = tuple(x0.shape)
        self.is_image = x0.dim() == 3
        self.can_be_tensors = decodable
        self._sample_bytes = x0.numel() * 4

    @property
    def train_size(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    def memory_bytes(self) -> int:
        return self._sample_bytes * (len(self.train) + (len(self.test) if self.test else 0))  # type: ignore[arg-type]

    @staticmethod
    def _decode(ds: Dataset, indices=None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = range(len(ds)) if indices is None else indices.tolist()  # type: ignore[arg-type]
        xs, ys = zip(*(ds[i] for i in idx))
        return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys).long()

    def tensors(self, train_idx, val_idx):
        if train_idx is None:
            return (*self._decode(self.train), *self._decode(self.test))
        return (*self._decode(self.train, train_idx), *self._decode(self.train, val_idx))

    def fit_rows(self, train_idx, seed: int) -> torch.Tensor:
        idx = torch.arange(self.train_size) if train_idx is None else train_idx
        if len(idx) > FIT_SAMPLES_MAX:
            g = torch.Generator().manual_seed(seed if seed >= 0 else 0)
            idx = idx[torch.randperm(len(idx), generator=g)[:FIT_SAMPLES_MAX]]
        return self._decode(self.train, idx)[0]

    def labels(self, idx) -> torch.Tensor | None:
        if idx is None:
            return None
        targets = self.targets if self.targets is not None else getattr(self.train, "targets", None)
        return None if targets is None else torch.as_tensor(targets).long()[idx]

    def datasets(self, train_idx, val_idx, augment: bool, prep: Preprocessing):
        if train_idx is None:
            train, val = self.train, self.test
        else:
            train, val = Subset(self.train, train_idx.tolist()), Subset(self.train, val_idx.tolist())
        train, val = Prepared(train, prep), Prepared(val, prep)
        if augment and self.is_image:
            train = Shifted(train, self.shift_pad, self.flips)
        return train, val


def load_digits(settings: DataSettings, seed: int) -> Source:
    from sklearn import datasets

    d = datasets.load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return TensorSource("digits", x, torch.tensor(d.target), [str(i) for i in range(10)], is_image=True)


def load_synthetic(settings: DataSettings, seed: int) -> Source:
    """Chapter 5.3's tabular data, made learnable: labels from a random linear teacher plus noise."""
    o = synthetic_options(settings.options)
    g = torch.Generator().manual_seed(seed if seed >= 0 else 0)
    x = torch.randn(o["samples"], o["features"], generator=g)
    teacher = torch.randn(o["features"], o["classes"], generator=g)
    y = (x @ teacher + float(o["noise"]) * torch.randn(o["samples"], o["classes"], generator=g)).argmax(1)
    return TensorSource("synthetic", x, y, [str(i) for i in range(o["classes"])])


def load_csv(settings: DataSettings, seed: int, categories: dict[str, list[str]] | None = None,
             roles: dict[str, str] | None = None) -> Source:
    """A CSV file as spreadsheets write it, or a Parquet or Feather file (engine.data.csv_reader), decoded once
    (engine.data.table_cache); `categories` and `roles`: a checkpoint's one-hot columns and column roles."""
    from engine.data.csv_reader import read_table

    table = read_table(settings, categories, roles)
    src = TensorSource(f"{settings.dataset}:{Path(settings.path).name}", table.x, table.y, table.class_names)
    src.fill_missing, src.categories, src.notes = table.fill_missing, table.categories, table.notes
    src.column_roles = table.roles
    return src


def load_image_folder(settings: DataSettings, seed: int) -> Source:
    from engine.data.images import read_image_folder

    folder = read_image_folder(settings)
    name = f"image-folder:{Path(settings.path).name}"
    if folder.files is not None:
        src: Source = DatasetSource(name, folder.files, None, len(folder.classes), folder.classes)
    else:
        src = TensorSource(name, folder.x, folder.y, folder.classes, is_image=True)
    src.notes = folder.notes
    return src


def _factory(settings: DataSettings, seed: int) -> Source:
    from engine.settings.user_code import call_with_options, import_object

    factory = import_object(settings.dataset, "function", "data.dataset")
    result = call_with_options(factory, settings.options, {"seed": seed, "root": settings.root}, "data.dataset")
    train, test = result if isinstance(result, tuple) else (result, None)
    if not isinstance(train, Dataset):
        raise SettingsError(
            f"data.dataset = '{settings.dataset}': returned {type(train).__name__}, "
            "expected a torch Dataset or a (train, test) pair"
        )
    if isinstance(train, TensorDataset) and (test is None or isinstance(test, TensorDataset)):
        x, y = train.tensors[:2]
        names = getattr(train, "classes", None) or [str(i) for i in range(int(y.max()) + 1)]
        return TensorSource(
            settings.dataset, x, y, names, tuple(test.tensors[:2]) if test is not None else None, is_image=x.dim() == 4
        )
    names = getattr(train, "classes", None)
    targets = getattr(train, "targets", None)
    labels = None
    if names is None or targets is None:
        labels = (
            torch.as_tensor(targets)
            if targets is not None
            else torch.as_tensor([int(train[i][1]) for i in range(len(train))])  # type: ignore[arg-type]
        )
        names = names or [str(i) for i in range(int(labels.max()) + 1)]
    return DatasetSource(settings.dataset, train, test, len(names), names, decodable=False, targets=labels)


def import_loader(dataset: str) -> None:
    """Import the modules a built-in dataset is loaded with, for a caller that pays for them ahead of a run.

    The console does it while it warms up: scikit-learn, which `digits` (the
    default) needs, is ~40,000 objects that Python's full garbage collections
    would otherwise walk for the rest of the session.
    """
    if dataset == "digits":
        import sklearn.datasets  # noqa: F401
    elif dataset in TORCHVISION or dataset == "image-folder":
        import torchvision.datasets  # noqa: F401


def load_torchvision(settings: DataSettings, seed: int) -> Source:
    return TorchvisionSource(settings)


def load_source(settings: DataSettings, seed: int, fitted: Preprocessing | None = None) -> Source:
    """The dataset `data.dataset` names: a built-in (engine.data.registry) or the user's `package.module:function`.

    `fitted`: the preprocessing a checkpoint holds; a CSV file's columns are then read with its roles and its text
    columns encoded with its categories.
    """
    if settings.dataset in ("csv", "table") and fitted is not None:
        return builtin_loader(settings.dataset)(settings, seed, fitted.categories, fitted.columns)
    if settings.dataset in BUILTIN_DATASETS:
        return builtin_loader(settings.dataset)(settings, seed)
    return _factory(settings, seed)
