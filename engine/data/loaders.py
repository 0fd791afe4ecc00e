"""Datasets and the batches the loop consumes (chapter section 5).

Two ways to make batches, with the same interface (`len()` = batches per
epoch, `num_samples`, iteration yields `(x, y)`):

- `TensorBatches`, the fast path: the whole split decoded and normalised
  once into a tensor on the training device, batched by indexing with a
  seeded permutation; augmentation is done batched on the device.
- `LoaderBatches`: a `DataLoader` over a per-sample `Dataset`, for data that
  does not fit in memory or when `in_memory = "false"`.

In a run of several processes (engine.training.distributed) each rank takes every world-th sample of the
epoch's order: `data.batch_size` is per process. Every rank draws the same seeded order, so each epoch
has a new one and the ranks' batches together are the batch a single process would take at
`world x batch_size`. The training split drops its last `n % world` samples of the epoch (a different few
each epoch) so that every rank steps the same number of times; validation counts every sample once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.settings.config import DataSettings
from engine.data.augment import random_shift
from engine.data.preprocessing import Preprocessing, fit
from engine.data.targets import regression_stats
from engine.data.sources import FLOAT_BYTES_LIMIT, DataError, Source, apply_task, load_source


def shard_positions(n: int, rank: int, world: int, *, train: bool) -> range:
    """Where this rank's samples lie in an epoch's order of n."""
    if world == 1:
        return range(n)
    return range(rank, n - n % world if train else n, world)


class ShardSampler(Sampler[int]):
    """A DataLoader's indices for one rank: the shared seeded order (train) or the split's order, every world-th."""

    def __init__(self, n: int, rank: int, world: int, *, shuffle: bool, generator: torch.Generator | None):
        self.n, self.shuffle, self.generator = n, shuffle, generator
        self.positions = shard_positions(n, rank, world, train=shuffle)

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[int]:
        # draws from `generator` as RandomSampler does (a generator function: after the DataLoader's own draw; and
        # a second, empty, permutation at the end), so that 1 and N processes see the same orders epoch after epoch
        if not self.shuffle:
            yield from self.positions
            return
        order = torch.randperm(self.n, generator=self.generator)
        yield from order[self.positions.start : self.positions.stop : self.positions.step].tolist()
        torch.randperm(self.n, generator=self.generator)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each batch; a last batch of one sample joins the one before (BatchNorm cannot train on it)."""
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


class TensorBatches:
    """A split held as tensors on the training device, batched by index."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
        augment: dict[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.mean, self.std = mean, std  # set only when x is uint8: normalised per batch
        self.augment = augment
        self.rank, self.world = shard
        self.positions = shard_positions(len(y), self.rank, self.world, train=shuffle)

    def __len__(self) -> int:
        return len(batch_bounds(len(self.positions), self.batch_size))

    @property
    def num_samples(self) -> int:
        """Samples an epoch takes, on all ranks together."""
        return len(self.positions) * self.world if self.shuffle else len(self.y)

    def _prepare(self, xb: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            xb = (xb.float().div_(255.0) - self.mean) / self.std
        if self.augment:
            xb = random_shift(xb, self.augment["pad"], self.generator, self.augment["flip"])
        return xb

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, p = len(self.y), self.positions
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            if self.world > 1:
                order = order[p.start : p.stop : p.step]
            order = order.to(self.x.device, non_blocking=True)
        elif self.world > 1:
            order = torch.arange(p.start, p.stop, p.step).to(self.x.device)
        for start, end in batch_bounds(len(p), self.batch_size):
            if order is None:
                xb, yb = self.x[start:end], self.y[start:end]
            else:
                idx = order[start:end]
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)  # ~3x faster than x[idx] on the CPU
            yield self._prepare(xb), yb


class LoaderBatches:
    """A DataLoader over a per-sample dataset, with the same interface as TensorBatches."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None,
        num_workers: int,
        pin_memory: bool,
        shard: tuple[int, int] = (0, 1),
    ):
        rank, self.world = shard
        sampler = None
        n = len(dataset)  # type: ignore[arg-type]
        if self.world > 1:
            sampler = ShardSampler(n, rank, self.world, shuffle=shuffle, generator=generator)
            n = len(sampler)
        self.shuffle = shuffle
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            # A last training batch of one sample would break BatchNorm: drop it (a different one each epoch).
            drop_last=shuffle and n > batch_size and n % batch_size == 1,
            generator=generator,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )
        self.generator = generator

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        """Samples an epoch takes, on all ranks together."""
        n = len(self.loader.dataset)  # type: ignore[arg-type]
        return n - n % self.world if self.shuffle else n

    def __iter__(self):
        return iter(self.loader)


@dataclass(frozen=True)
class LabelCounts:
    """How many samples of each class each split holds: the chance levels the diagnostic compares against."""

    train: list[int]
    val: list[int]

    @classmethod
    def of(cls, train: torch.Tensor | None, val: torch.Tensor | None, num_classes: int) -> LabelCounts | None:
        if train is None or val is None:
            return None
        return cls(
            torch.bincount(train.cpu(), minlength=num_classes).tolist(),
            torch.bincount(val.cpu(), minlength=num_classes).tolist(),
        )


@dataclass
class DataBundle:
    train: TensorBatches | LoaderBatches
    val: TensorBatches | LoaderBatches
    in_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    description: str
    generator: torch.Generator = field(repr=False, default_factory=torch.Generator)
    preprocessing: Preprocessing | None = None  # what a checkpoint records (state()), so eval and resume apply it
    label_counts: LabelCounts | None = None
    task: str = "classification"  # or "regression": float targets standardised by preprocessing.target


def _split_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (seeded) random split: (train indices, val indices)."""
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise DataError(f"data.val_fraction = {fraction}: leaves no training samples out of {n}")
    g = torch.Generator().manual_seed(seed if seed >= 0 else torch.seed() % 2**63)
    perm = torch.randperm(n, generator=g)
    return perm[n_val:], perm[:n_val]


def _fits(nbytes: int, device: torch.device) -> bool:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes < free * 0.5
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        total = 8 * 2**30
    return nbytes < min(4 * 2**30, total // 4)


def _to_device_split(
    x: torch.Tensor, prep: Preprocessing, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Preprocess once into float32, or keep uint8 (preprocessed per batch) when the float copy would be large."""
    if x.dtype == torch.uint8 and x.numel() * 4 > FLOAT_BYTES_LIMIT:
        return x.to(device), prep.mean.to(device), prep.std.to(device)
    return prep.apply(x).to(device), None, None


def _preprocessing(src: Source, train_idx, settings: DataSettings, seed: int, fitted: Preprocessing | None):
    if fitted is None:
        prep = fit(src.fit_rows(train_idx, seed), src.is_image, settings.normalize, src.fill_missing)
        rows = torch.arange(src.train_size) if train_idx is None else train_idx  # labels(None): the test split's
        target = regression_stats(src.labels(rows)) if src.task == "regression" else None
        return dataclasses.replace(prep, categories=dict(src.categories), columns=dict(src.column_roles), target=target)
    if not fitted.fits(tuple(src.in_shape)):
        raise DataError(
            f"the checkpoint's preprocessing ({fitted.describe()}) does not fit samples of shape "
            f"{tuple(src.in_shape)} from data.dataset = '{settings.dataset}': is this the data it was trained on?"
        )
    return fitted


def build_data(
    settings: DataSettings,
    seed: int,
    device: torch.device,
    *,
    augment: bool | None = None,
    fitted: Preprocessing | dict | None = None,
    shard: tuple[int, int] = (0, 1),
    task: str = "auto",
) -> DataBundle:
    """Load the dataset named in `settings` and make train and validation batches on `device`.

    The preprocessing is fitted on the training split, or is `fitted` (a checkpoint's: eval and resume).
    `shard` = (rank, world): this process's share of each epoch in a run of several processes. `task`:
    model.task; a checkpoint's preprocessing says which task it was trained for.
    """
    if isinstance(fitted, dict):
        fitted = Preprocessing.from_state(fitted)
    if fitted is not None:
        task = "classification" if fitted.target is None else "regression"
    src: Source = apply_task(load_source(settings, seed, fitted), task, settings.label_column,
                             settings.csv_decimal != ".")
    augment = settings.augment if augment is None else augment
    generator = torch.Generator().manual_seed(seed if seed >= 0 else torch.seed() % 2**63)
    train_idx, val_idx, split_note = _validation_split(src, settings, seed)
    prep = _preprocessing(src, train_idx, settings, seed, fitted)
    split = (train_idx, val_idx)
    if _in_memory(src, settings, device):
        aug = {"pad": src.shift_pad, "flip": src.flips} if augment and src.is_image else None
        train, val, counts, how = _tensor_batches(src, settings, split, prep, device, generator, aug, shard)
    else:
        train, val, counts, how = _loader_batches(src, settings, split, prep, device, generator, augment, shard)
    if shard[1] > 1:
        how += f"; sharded across {shard[1]} processes (batch_size {settings.batch_size} per process)"
    notes = "".join(f"; {note}" for note in src.notes)
    description = (
        f"{src.name}: {train.num_samples} train / {val.num_samples} val samples, "
        f"{'a regression target' if src.task == 'regression' else f'{src.num_classes} classes'}, "
        f"input {tuple(src.in_shape)}; validation: {split_note}; "
        f"preprocessing: {prep.describe()}{notes}; batches: {how}"
    )
    return DataBundle(
        train, val, tuple(src.in_shape), src.num_classes, src.class_names, description, generator, prep, counts,
        src.task,
    )


def _validation_split(src: Source, settings: DataSettings, seed: int):
    """(train indices, val indices, what validates): a seeded share of the training split, else the test split."""
    if settings.val_fraction > 0:
        train_idx, val_idx = _split_indices(src.train_size, settings.val_fraction, seed)
        return (
            train_idx,
            val_idx,
            f"{len(val_idx)} held out of the training split (val_fraction {settings.val_fraction})",
        )
    if not src.has_test:
        raise DataError(
            f"data.val_fraction = 0.0: dataset '{settings.dataset}' has no test split; set a fraction such as 0.2"
        )
    return None, None, "the dataset's test split"


def _in_memory(src: Source, settings: DataSettings, device: torch.device) -> bool:
    """Whether the splits are held as tensors on `device` (`data.in_memory`)."""
    want = settings.in_memory
    nbytes = src.memory_bytes()
    # "true" also decodes a per-sample dataset once; "auto" only takes sources that are tensors already and fit
    return want == "true" or (want == "auto" and src.can_be_tensors and nbytes is not None and _fits(nbytes, device))


def _tensor_batches(src: Source, settings: DataSettings, split, prep, device, generator, aug, shard):
    """(train, val, label counts, how they are batched) held as tensors on the device."""
    tx, ty, vx, vy = src.tensors(*split)
    counts = LabelCounts.of(ty, vy, src.num_classes) if src.task != "regression" else None
    ty, vy = prep.apply_target(ty), prep.apply_target(vy)
    tx, tm, ts = _to_device_split(tx, prep, device)
    vx, vm, vs = _to_device_split(vx, prep, device)
    train = TensorBatches(
        tx,
        ty.to(device),
        settings.batch_size,
        shuffle=True,
        generator=generator,
        mean=tm,
        std=ts,
        augment=aug,
        shard=shard,
    )
    val = TensorBatches(vx, vy.to(device), settings.eval_batch_size, shuffle=False, mean=vm, std=vs, shard=shard)
    how = f"in-memory tensors on {device.type} ({'uint8, normalised per batch' if tm is not None else 'float32'})"
    if aug:
        how += ", batched augmentation on the device"
    return train, val, counts, how


def _loader_batches(src: Source, settings: DataSettings, split, prep, device, generator, augment, shard):
    """(train, val, label counts, how they are batched) through DataLoaders over per-sample datasets."""
    train_idx, val_idx = split
    counts = None if src.task == "regression" else LabelCounts.of(src.labels(train_idx), src.labels(val_idx),
                                                                   src.num_classes)
    train_ds, val_ds = src.datasets(train_idx, val_idx, augment=augment, prep=prep)
    pin = device.type == "cuda"
    train = LoaderBatches(
        train_ds,
        settings.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=settings.num_workers,
        pin_memory=pin,
        shard=shard,
    )
    val = LoaderBatches(
        val_ds,
        settings.eval_batch_size,
        shuffle=False,
        generator=None,
        num_workers=settings.num_workers,
        pin_memory=pin,
        shard=shard,
    )
    how = f"DataLoader ({settings.num_workers} workers{', pinned memory' if pin else ''})"
    if augment and src.is_image:
        how += ", per-sample augmentation"
    return train, val, counts, how


__all__ = ["DataBundle", "DataError", "LabelCounts", "LoaderBatches", "TensorBatches", "build_data", "random_shift"]
