"""Datasets and batches (chapter section 5): every source, both batch paths, splits and augmentation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.settings.config import SettingsError
from engine.data.loaders import LoaderBatches, TensorBatches, build_data, random_shift
from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.api import Run

CPU = torch.device("cpu")


def train(settings):
    events = []
    final = Run(settings, events.append).run()
    assert isinstance(final, RunFinished), getattr(final, "traceback", final)
    epochs = [e for e in events if isinstance(e, EpochCompleted)]
    started = next(e for e in events if isinstance(e, RunStarted))
    return started, epochs


# -- digits -------------------------------------------------------------------


def test_digits_is_the_offline_default(tiny_settings):
    s = tiny_settings()
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (1, 8, 8) and data.num_classes == 10
    assert data.train.num_samples + data.val.num_samples == 1797
    assert data.val.num_samples == round(1797 * 0.2)
    assert isinstance(data.train, TensorBatches)
    xb, yb = next(iter(data.train))
    assert xb.shape == (64, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.long
    assert len(data.train) == -(-data.train.num_samples // 64)


def test_split_is_seeded_and_disjoint(tiny_settings):
    s = tiny_settings()
    a, b = build_data(s.data, 0, CPU), build_data(s.data, 0, CPU)
    assert torch.equal(a.val.x, b.val.x)
    c = build_data(s.data, 1, CPU)
    assert not torch.equal(a.val.x, c.val.x)
    train_rows = {tuple(r.tolist()) for r in a.train.x.flatten(1)}
    val_rows = {tuple(r.tolist()) for r in a.val.x.flatten(1)}
    # digits has a few duplicate images; a leak of the split would share hundreds
    assert len(train_rows & val_rows) < 10


def test_in_memory_false_uses_a_dataloader_with_the_same_samples(tiny_settings):
    s = tiny_settings("data.in_memory='false'")
    data = build_data(s.data, 0, CPU)
    assert isinstance(data.train, LoaderBatches) and isinstance(data.val, LoaderBatches)
    fast = build_data(tiny_settings().data, 0, CPU)
    assert data.val.num_samples == fast.val.num_samples
    slow_val = torch.cat([x for x, _ in data.val])
    assert torch.allclose(slow_val, fast.val.x, atol=1e-5), "both paths normalise the same way"


# -- mnist / fashion-mnist through torchvision ---------------------------------


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_mnist_from_raw_files_trains_with_the_chapter_mlp(tiny_settings, mnist_raw, in_memory):
    s = tiny_settings(
        "data.dataset=mnist",
        f"data.root={str(mnist_raw)!r}",
        f"data.in_memory={in_memory!r}",
        "data.batch_size=32",
        "training.epochs=3",
        "training.lr=0.003",
    )
    started, epochs = train(s)
    assert started.parameters == 235_146
    assert started.train_samples == 160 and started.val_samples == 40
    assert ("in-memory" in started.data_path) == (in_memory == "true")
    assert len(epochs) == 3
    assert epochs[-1].val_acc > 0.5, "the bar pattern is learnable"
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_mnist_val_fraction_zero_uses_the_test_split(tiny_settings, mnist_raw):
    s = tiny_settings("data.dataset=mnist", f"data.root={str(mnist_raw)!r}", "data.val_fraction=0.0")
    data = build_data(s.data, 0, CPU)
    assert data.train.num_samples == 200 and data.val.num_samples == 50
    assert data.in_shape == (1, 28, 28) and data.num_classes == 10
    assert "test split" in data.description
    ys = torch.cat([y for _, y in data.val])
    from torchvision.datasets import MNIST

    assert torch.equal(ys, MNIST(str(mnist_raw), train=False).targets)


def test_fashion_mnist_reads_its_own_folder(tiny_settings, tmp_path):
    from mnist_files import write_mnist

    root = tmp_path / "fdata"
    write_mnist(root, "FashionMNIST", train=40, test=20)
    s = tiny_settings("data.dataset=fashion-mnist", f"data.root={str(root)!r}", "data.val_fraction=0.0")
    data = build_data(s.data, 0, CPU)
    assert data.train.num_samples == 40 and data.val.num_samples == 20
    assert data.class_names[0] == "T-shirt/top"


def test_missing_mnist_says_which_files_to_put_where(tiny_settings, tmp_path):
    root = tmp_path / "empty"
    s = tiny_settings("data.dataset=mnist", f"data.root={str(root)!r}")
    with pytest.raises(SettingsError) as info:
        build_data(s.data, 0, CPU)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert str(root / "MNIST" / "raw") in message and "download" in message


# -- synthetic ------------------------------------------------------------------


def test_synthetic_is_learnable(tiny_settings):
    s = tiny_settings(
        "data.dataset=synthetic",
        "data.options={ samples = 600, features = 10, classes = 3 }",
        "training.epochs=3",
        "model.hidden=[32]",
        "training.lr=0.01",
    )
    started, epochs = train(s)
    assert started.train_samples == 480 and started.val_samples == 120
    assert epochs[-1].val_acc > 0.7, "well above chance (1/3)"


def test_synthetic_rejects_unknown_options(tiny_settings):
    s = tiny_settings("data.dataset=synthetic", "data.options={ sample = 100 }")
    with pytest.raises(SettingsError, match="sample"):
        build_data(s.data, 0, CPU)


# -- csv ------------------------------------------------------------------------


def _write_csv(path: Path, rows: int = 120, bad: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    lines = ["x1,x2,species,x3"]
    for i in range(rows):
        kind = ("setosa", "versicolor", "virginica")[i % 3]
        center = {"setosa": -2.0, "versicolor": 0.0, "virginica": 2.0}[kind]
        a, b, c = center + rng.normal(0, 0.3, 3)
        lines.append(f"{a:.3f},{b:.3f},{kind},{c:.3f}")
    if bad is not None:
        lines[5] = bad
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_with_string_labels_trains(tiny_settings, tmp_path):
    path = _write_csv(tmp_path / "flowers.csv")
    s = tiny_settings(
        "data.dataset=csv",
        f"data.path={str(path)!r}",
        "data.label_column=species",
        "training.epochs=3",
        "training.lr=0.01",
        "model.hidden=[16]",
    )
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (3,) and data.num_classes == 3
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    _, epochs = train(s)
    assert epochs[-1].val_acc > 0.8


def test_csv_labels_sort_as_numbers_only_in_ascii_digits(tiny_settings, tmp_path):
    """"²".isdigit() is true and int() refuses it: a label spelled so is a name, not a crash."""
    path = tmp_path / "labels.csv"
    path.write_text("a,label\n" + "".join(f"{i % 7},{lab}\n" for i, lab in enumerate(["10", "2", "²"] * 20)))
    s = tiny_settings("data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=label")
    assert build_data(s.data, 0, CPU).class_names == ["2", "10", "²"]


def test_csv_non_numeric_feature_names_line_and_column(tiny_settings, tmp_path):
    path = _write_csv(tmp_path / "bad.csv", bad="1.0,oops,setosa,2.0")
    s = tiny_settings("data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=species")
    with pytest.raises(SettingsError) as info:
        build_data(s.data, 0, CPU)
    message = str(info.value)
    assert "line 6" in message and "'x2'" in message and "'oops'" in message


def test_csv_line_numbers_count_blank_lines(tiny_settings, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,label\n1,0\n\n2,1\n3,1\nbad,0\n")
    s = tiny_settings("data.dataset=csv", f"data.path={str(path)!r}")
    with pytest.raises(SettingsError, match="line 6, column 'a'"):
        build_data(s.data, 0, CPU)


def test_csv_missing_label_column_lists_columns(tiny_settings, tmp_path):
    path = _write_csv(tmp_path / "flowers.csv")
    s = tiny_settings("data.dataset=csv", f"data.path={str(path)!r}")
    with pytest.raises(SettingsError, match="data.label_column = 'label'.*x1, x2, species, x3"):
        build_data(s.data, 0, CPU)


def test_csv_missing_file(tiny_settings, tmp_path):
    s = tiny_settings("data.dataset=csv", f"data.path={str(tmp_path / 'no.csv')!r}")
    with pytest.raises(SettingsError, match="no such CSV file"):
        build_data(s.data, 0, CPU)


# -- image-folder -----------------------------------------------------------------


def _write_images(root: Path, per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (12, 10, 3), dtype=np.uint8)
            pixels[:, :, k] = 250  # red cats, green dogs
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("in_memory", ["auto", "false"])
def test_image_folder(tiny_settings, tmp_path, in_memory):
    root = _write_images(tmp_path / "pets")
    s = tiny_settings(
        "data.dataset=image-folder",
        f"data.path={str(root)!r}",
        "data.image_size=8",
        "data.val_fraction=0.25",
        "data.batch_size=4",
        f"data.in_memory={in_memory!r}",
        "model.name=cnn",
        "model.channels=[4]",
    )
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (3, 8, 8) and data.class_names == ["cats", "dogs"]
    assert data.train.num_samples == 9 and data.val.num_samples == 3
    started, epochs = train(s)
    assert len(epochs) == 2 and started.train_samples == 9


def test_image_folder_missing(tiny_settings, tmp_path):
    s = tiny_settings("data.dataset=image-folder", f"data.path={str(tmp_path / 'nope')!r}")
    with pytest.raises(SettingsError, match="no such folder"):
        build_data(s.data, 0, CPU)


# -- user factories -----------------------------------------------------------------

FACTORY = """
import torch
from torch.utils.data import Dataset, TensorDataset

def make(seed, samples=100, features=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorDataset(x, y)

def with_test(samples=80):
    x = torch.randn(samples, 3)
    return TensorDataset(x, (x[:, 1] > 0).long()), TensorDataset(x[:20], (x[:20, 1] > 0).long())

class Squares(Dataset):
    targets = [i % 2 for i in range(40)]
    def __len__(self):
        return 40
    def __getitem__(self, i):
        return torch.full((1, 6, 6), float(i % 2)), i % 2

def per_sample():
    return Squares()

def sequences(samples=60):
    x = torch.randn(samples, 5, 4)
    return TensorDataset(x, (x[:, 0, 0] > 0).long())

def not_a_dataset():
    return [1, 2, 3]
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "userdata_pkg").mkdir()
    (tmp_path / "userdata_pkg" / "__init__.py").write_text("")
    (tmp_path / "userdata_pkg" / "factories.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "userdata_pkg.factories"
    for name in [m for m in sys.modules if m.startswith("userdata_pkg")]:
        del sys.modules[name]


def test_user_factory_with_options_and_seed(tiny_settings, user_module):
    s = tiny_settings(f"data.dataset='{user_module}:make'", "data.options={ samples = 50, features = 5 }")
    data = build_data(s.data, 3, CPU)
    assert data.in_shape == (5,) and data.num_classes == 2
    assert data.train.num_samples + data.val.num_samples == 50
    _, epochs = train(s)
    assert len(epochs) == 2


def test_user_factory_test_split_and_per_sample_dataset(tiny_settings, user_module):
    s = tiny_settings(f"data.dataset='{user_module}:with_test'", "data.val_fraction=0.0")
    data = build_data(s.data, 0, CPU)
    assert data.train.num_samples == 80 and data.val.num_samples == 20
    s = tiny_settings(f"data.dataset='{user_module}:per_sample'", "model.name=cnn", "model.channels=[4]")
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (1, 6, 6) and data.num_classes == 2 and isinstance(data.train, LoaderBatches)
    _, epochs = train(s)
    assert len(epochs) == 2


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_user_factory_of_non_image_tensors_with_more_than_one_dimension(tiny_settings, user_module, in_memory):
    s = tiny_settings(f"data.dataset='{user_module}:sequences'", f"data.in_memory={in_memory!r}")
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (5, 4)
    xb, _ = next(iter(data.train))
    assert xb.shape[1:] == (5, 4)
    _, epochs = train(s)
    assert len(epochs) == 2


def test_user_factory_errors(tiny_settings, user_module):
    s = tiny_settings(f"data.dataset='{user_module}:not_a_dataset'")
    with pytest.raises(SettingsError, match="expected a torch Dataset"):
        build_data(s.data, 0, CPU)
    s = tiny_settings(f"data.dataset='{user_module}:missing'")
    with pytest.raises(SettingsError, match="has no function 'missing'"):
        build_data(s.data, 0, CPU)
    s = tiny_settings("data.dataset='no_such_pkg_xyz.mod:make'")
    with pytest.raises(SettingsError, match="cannot import module 'no_such_pkg_xyz.mod'"):
        build_data(s.data, 0, CPU)
    s = tiny_settings(f"data.dataset='{user_module}:make'", "data.options={ colour = 1 }")
    with pytest.raises(SettingsError, match="colour"):
        build_data(s.data, 0, CPU)


# -- augmentation ----------------------------------------------------------------


def test_random_shift_keeps_shapes_and_moves_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 9, 7)
    out = random_shift(x, 2, g, flip=True)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    same = random_shift(x, 0, torch.Generator().manual_seed(0), flip=False)
    assert torch.equal(same, x), "pad 0 and no flip is the identity"


def test_augmentation_applies_to_the_training_split_only(tiny_settings):
    s = tiny_settings("data.augment=true")
    data = build_data(s.data, 0, CPU)
    plain = build_data(tiny_settings().data, 0, CPU)
    assert data.train.augment and not data.val.augment
    first = torch.cat([x for x, _ in data.val])
    second = torch.cat([x for x, _ in data.val])
    assert torch.equal(first, second) and torch.equal(first, plain.val.x), "validation is never augmented"
    aug_x, _ = next(iter(data.train))
    assert aug_x.shape == (64, 1, 8, 8)
    assert not any(torch.equal(aug_x, x) for x, _ in plain.train), "training batches are shifted"


def test_augmentation_on_the_dataloader_path(tiny_settings, mnist_raw):
    s = tiny_settings(
        "data.dataset=mnist",
        f"data.root={str(mnist_raw)!r}",
        "data.in_memory='false'",
        "data.augment=true",
        "data.val_fraction=0.0",
        "data.batch_size=50",
    )
    data = build_data(s.data, 0, CPU)
    first = torch.cat([x for x, _ in data.val])
    assert torch.equal(first, torch.cat([x for x, _ in data.val])), "validation is never augmented"
    plain = build_data(
        tiny_settings(
            "data.dataset=mnist", f"data.root={str(mnist_raw)!r}", "data.in_memory='false'", "data.val_fraction=0.0"
        ).data,
        0,
        CPU,
    )
    assert not torch.equal(next(iter(data.train))[0], next(iter(plain.train))[0])


def test_augmentation_on_the_dataloader_path_of_tensor_sources(tiny_settings):
    s = tiny_settings("data.in_memory='false'", "data.augment=true")
    plain = build_data(tiny_settings("data.in_memory='false'").data, 0, CPU)
    data = build_data(s.data, 0, CPU)
    x_aug, y_aug = next(iter(data.train))
    x_plain, y_plain = next(iter(plain.train))
    assert torch.equal(y_aug, y_plain), "same seed, same order"
    assert x_aug.shape == x_plain.shape and not torch.equal(x_aug, x_plain), "augment = true must shift training images"
    assert torch.equal(torch.cat([x for x, _ in data.val]), torch.cat([x for x, _ in plain.val]))


def test_val_fraction_leaving_nothing_is_refused(tmp_path):
    from engine.data.loaders import _split_indices
    from engine.data.sources import DataError

    with pytest.raises(DataError, match="no training samples"):
        _split_indices(2, 0.9, 0)


def test_a_last_batch_of_one_sample_joins_the_previous_one():
    from engine.data.loaders import batch_bounds

    assert batch_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert batch_bounds(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert batch_bounds(1, 64) == [(0, 1)]
    x, y = torch.zeros(10, 2), torch.arange(10)
    batches = TensorBatches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(0))
    sizes = [len(yb) for _, yb in batches]
    assert sizes == [3, 3, 4] and len(batches) == 3


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_batchnorm_models_train_when_the_split_leaves_one_sample_over(tiny_settings, in_memory):
    # digits keeps 1438 training samples: batch 479 leaves one over, which BatchNorm cannot train on.
    started, epochs = train(
        tiny_settings("model.name='cnn'", "data.batch_size=479", f"data.in_memory={in_memory}", "training.epochs=1")
    )
    assert started.train_samples == 1438 and len(epochs) == 1


def test_in_memory_takes_booleans_as_well_as_words(tiny_settings):
    assert tiny_settings("data.in_memory=false").data.in_memory == "false"
    assert tiny_settings("data.in_memory=true").data.in_memory == "true"
    with pytest.raises(SettingsError, match="allowed: auto, true, false"):
        tiny_settings("data.in_memory='sometimes'")


def test_import_loader_imports_what_a_built_in_dataset_loads_with():
    import subprocess

    code = (
        "import sys; from engine.data.sources import import_loader; import_loader('csv'); "
        "a = 'sklearn.datasets' in sys.modules; "
        "import_loader('digits'); print(a, 'sklearn.datasets' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.split() == ["False", "True"]


def test_a_run_with_a_relative_data_path_is_evaluated_and_resumed_from_another_folder(
    tiny_settings, tmp_path, monkeypatch
):
    from engine.runs.evaluate import evaluate_checkpoint
    from engine.runs.resume import resume_settings

    project = tmp_path / "project"
    project.mkdir()
    _write_csv(project / "flowers.csv")
    monkeypatch.chdir(project)
    trainer = Run(tiny_settings("data.dataset=csv", "data.path='flowers.csv'", "data.label_column=species"))
    trainer.run()
    monkeypatch.chdir(tmp_path)  # elsewhere: flowers.csv is not here
    recorded = (trainer.run_dir / "settings.toml").read_text()
    assert f'path = "{project / "flowers.csv"}"' in recorded
    report = evaluate_checkpoint(trainer.run_dir)
    assert report["samples"] > 0
    last = trainer.run_dir / "checkpoints" / "last.pth"
    settings, _ = resume_settings(last, overrides=["training.epochs=3"])  # as `trainconsole run --resume` reads them
    assert Run(settings, resume_from=last).run().status == "completed"
