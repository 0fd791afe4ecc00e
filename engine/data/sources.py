"""Where samples come from: one `Source` per kind of dataset.

A source knows its shape, classes and normalisation, and gives its splits
either as whole tensors (the fast path) or as per-sample datasets (the
DataLoader path). `engine.data.loaders` decides which and makes the batches.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from engine.data.augment import random_shift
from engine.settings.config import DataSettings, SettingsError, synthetic_options
from engine.data.registry import BUILTIN_DATASETS, builtin_loader

TORCHVISION = {
    # name: (class name, folder under root, files that must be there, mean, std, class names)
    "mnist": (
        "MNIST",
        "MNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        (0.1307,),
        (0.3081,),
    ),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        (0.2860,),
        (0.3530,),
    ),
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
}
FLOAT_BYTES_LIMIT = 512 * 2**20  # above this a uint8 image split stays uint8 in memory and is normalised per batch
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DataError(SettingsError):
    """The data cannot be found or read: a settings problem the user can fix."""


class Normalized(Dataset):
    """Per-sample view of float tensors, standardised on access (the DataLoader path of tensor sources)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.x, self.y, self.mean, self.std = x, y, mean, std

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.x[i] - self.mean) / self.std, self.y[i]


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
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def train_size(self) -> int:
        raise NotImplementedError

    def memory_bytes(self) -> int | None:
        raise NotImplementedError

    def tensors(self, train_idx, val_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def datasets(self, train_idx, val_idx, augment: bool) -> tuple[Dataset, Dataset]:
        raise NotImplementedError


class TensorSource(Source):
    """Samples already in memory as float features or images: digits, synthetic, csv, TensorDataset factories."""

    def __init__(
        self,
        name: str,
        x: torch.Tensor,
        y: torch.Tensor,
        class_names: Sequence[str],
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
        is_image: bool = False,
    ):
        self.name, self.x, self.y, self.test = name, x.float(), y.long(), test
        self.class_names = [str(c) for c in class_names]
        self.num_classes = len(self.class_names)
        self.in_shape = tuple(x.shape[1:])
        self.is_image = is_image and x.dim() == 4
        self.has_test = test is not None
        if is_image:  # one mean/std over all pixels of each channel
            dims = [0] + list(range(2, x.dim()))
            self.mean, self.std = self.x.mean(dim=dims), self.x.std(dim=dims)
        else:  # per feature
            self.mean, self.std = self.x.mean(dim=0), self.x.std(dim=0)
        self.std = torch.where(self.std > 1e-8, self.std, torch.ones_like(self.std))

    @property
    def train_size(self) -> int:
        return len(self.y)

    def memory_bytes(self) -> int:
        return self.x.numel() * 4 + (self.test[0].numel() * 4 if self.test else 0)

    def _splits(self, train_idx, val_idx):
        if train_idx is None:
            return self.x, self.y, self.test[0].float(), self.test[1].long()
        return self.x[train_idx], self.y[train_idx], self.x[val_idx], self.y[val_idx]

    def tensors(self, train_idx, val_idx):
        return self._splits(train_idx, val_idx)

    def datasets(self, train_idx, val_idx, augment: bool):
        m, s = self.mean, self.std
        if self.is_image:
            m, s = m.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
        tx, ty, vx, vy = self._splits(train_idx, val_idx)
        train = Normalized(tx, ty, m, s)
        if augment and self.is_image:
            train = Shifted(train, self.shift_pad, self.flips)
        return train, Normalized(vx, vy, m, s)


class TorchvisionSource(Source):
    """MNIST, Fashion-MNIST and CIFAR-10 through torchvision, read from `root` (downloaded when asked)."""

    is_image = True
    has_test = True

    def __init__(self, settings: DataSettings):
        from torchvision import datasets

        cls_name, folder, files, mean, std = TORCHVISION[settings.dataset]
        cls = getattr(datasets, cls_name)
        self.name, self.root = settings.dataset, settings.root
        self.cls = cls
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
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
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

    def datasets(self, train_idx, val_idx, augment: bool):
        from torchvision import transforms as T

        base = [T.ToTensor(), T.Normalize(self.mean.tolist(), self.std.tolist())]
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
    """Any per-sample `Dataset` (image folders, user factories): decoded to tensors only when asked or small enough."""

    def __init__(
        self,
        name: str,
        train: Dataset,
        test: Dataset | None,
        num_classes: int,
        class_names: Sequence[str],
        mean=None,
        std=None,
        decodable: bool = True,
    ):
        self.name, self.train, self.test = name, train, test
        self.has_test = test is not None
        self.num_classes, self.class_names = num_classes, [str(c) for c in class_names]
        x0, _ = train[0]
        x0 = torch.as_tensor(x0)
        self.in_shape = tuple(x0.shape)
        self.is_image = x0.dim() == 3
        self.can_be_tensors = decodable
        self._sample_bytes = x0.numel() * 4
        dims = self.in_shape[0] if self.is_image else 1
        self.mean = torch.tensor(mean) if mean is not None else torch.zeros(dims)
        self.std = torch.tensor(std) if std is not None else torch.ones(dims)

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

    def datasets(self, train_idx, val_idx, augment: bool):
        if train_idx is None:
            train, val = self.train, self.test
        else:
            train, val = Subset(self.train, train_idx.tolist()), Subset(self.train, val_idx.tolist())
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


def load_csv(settings: DataSettings, seed: int) -> Source:
    path = Path(settings.path)
    if not path.is_file():
        raise DataError(f"data.path = '{settings.path}': no such CSV file")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"data.path = '{settings.path}': cannot read: {e}") from None
    if len(rows) < 3:
        raise DataError(f"data.path = '{settings.path}': needs a header row and at least two data rows")
    header = [h.strip() for h in rows[0]]
    numbered = [(n, r) for n, r in enumerate(rows[1:], start=2) if r]  # line numbers as an editor shows them
    body = [r for _, r in numbered]
    if settings.label_column not in header:
        raise DataError(
            f"data.label_column = '{settings.label_column}': not a column of {settings.path}; "
            f"columns: {', '.join(header)}"
        )
    li = header.index(settings.label_column)
    labels = sorted(
        {r[li].strip() for r in body if len(r) > li},
        key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v),
    )
    index = {v: i for i, v in enumerate(labels)}
    feats, ys = [], []
    for n, r in numbered:
        if len(r) != len(header):
            raise DataError(
                f"data.path = '{settings.path}': line {n} has {len(r)} fields, the header has {len(header)}"
            )
        row = []
        for j, v in enumerate(r):
            if j == li:
                continue
            try:
                row.append(float(v))
            except ValueError:
                raise DataError(
                    f"data.path = '{settings.path}': line {n}, column '{header[j]}': {v!r} is not a number"
                ) from None
        feats.append(row)
        ys.append(index[r[li].strip()])
    if len(labels) < 2:
        raise DataError(f"data.path = '{settings.path}': the label column '{settings.label_column}' has a single class")
    return TensorSource(f"csv:{path.name}", torch.tensor(feats), torch.tensor(ys), labels)


def load_image_folder(settings: DataSettings, seed: int) -> Source:
    from torchvision import datasets, transforms as T

    if not Path(settings.path).is_dir():
        raise DataError(f"data.path = '{settings.path}': no such folder (expected one sub-folder of images per class)")
    size = settings.image_size
    tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    try:
        train = datasets.ImageFolder(settings.path, transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"data.path = '{settings.path}': {e}") from None
    return DatasetSource(f"image-folder:{Path(settings.path).name}", train, None, len(train.classes), train.classes)


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
    if names is None:
        targets = getattr(train, "targets", None)
        labels = (
            torch.as_tensor(targets)
            if targets is not None
            else torch.as_tensor([int(train[i][1]) for i in range(len(train))])
        )  # type: ignore[arg-type]
        names = [str(i) for i in range(int(labels.max()) + 1)]
    return DatasetSource(settings.dataset, train, test, len(names), names, decodable=False)


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


def load_source(settings: DataSettings, seed: int) -> Source:
    """The dataset `data.dataset` names: a built-in (engine.data.registry) or the user's `package.module:function`."""
    if settings.dataset in BUILTIN_DATASETS:
        return builtin_loader(settings.dataset)(settings, seed)
    return _factory(settings, seed)
