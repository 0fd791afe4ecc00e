"""Data nobody here made, as users have it: scikit-learn's tables and digits, however they arrive.

The peer is scikit-learn's StandardScaler + LogisticRegression fitted on the
same training rows and scored on the same validation rows as trainconsole.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.loaders import _split_indices, build_data
from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.settings.config import load_settings
from engine.api import Run

CPU = torch.device("cpu")
TABLE_EPOCHS = 30

FACTORIES = """
import torch
from sklearn import datasets
from torch.utils.data import Dataset, TensorDataset


def _table(name):
    d = getattr(datasets, "load_" + name)()
    return torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)


def as_tensors(name):
    return TensorDataset(*_table(name))


class Rows(Dataset):
    def __init__(self, name):
        self.x, self.y = _table(name)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def as_subclass(name):
    return Rows(name)
"""


def _run(settings) -> tuple[RunStarted, list[EpochCompleted]]:
    events: list = []
    final = Run(settings, events.append).run()
    assert isinstance(final, RunFinished), getattr(final, "traceback", final)
    return next(e for e in events if isinstance(e, RunStarted)), [e for e in events if isinstance(e, EpochCompleted)]


def _settings(tmp_path: Path, *overrides: str):
    return load_settings(None, (f"run.runs_dir={str(tmp_path / 'runs')!r}", *overrides))


def peer_accuracy(name: str, seed: int = 0, fraction: float = 0.2) -> float:
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    d = getattr(datasets, f"load_{name}")()
    train, val = (i.numpy() for i in _split_indices(len(d.target), fraction, seed))
    scaler = StandardScaler().fit(d.data[train])
    model = LogisticRegression(max_iter=5000).fit(scaler.transform(d.data[train]), d.target[train])
    return float(model.score(scaler.transform(d.data[val]), d.target[val]))


def write_table_csv(name: str, path: Path) -> Path:
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*d.feature_names, "label"])
        writer.writerows([*row, int(t)] for row, t in zip(d.data.tolist(), d.target))
    return path


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "sk_tables.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "sk_tables"
    sys.modules.pop("sk_tables", None)


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
@pytest.mark.parametrize("arrives_as", ["csv", "TensorDataset", "Dataset subclass"])
def test_tables_match_scikit_learns_peer_however_they_arrive(tmp_path, factories, name, arrives_as):
    if arrives_as == "csv":
        data = ("data.dataset=csv", f"data.path={str(write_table_csv(name, tmp_path / f'{name}.csv'))!r}")
    else:
        function = "as_tensors" if arrives_as == "TensorDataset" else "as_subclass"
        data = (f"data.dataset='{factories}:{function}'", f"data.options={{ name = '{name}' }}")
    started, epochs = _run(_settings(tmp_path, *data, f"training.epochs={TABLE_EPOCHS}"))
    assert "per-feature standardisation" in started.data_path and "fitted on the" in started.data_path
    peer = peer_accuracy(name)
    assert epochs[-1].val_acc >= peer - 0.02, (name, arrives_as, epochs[-1].val_acc, peer)


def test_standardisation_is_fitted_on_the_training_rows_only(tmp_path):
    from sklearn import datasets

    path = write_table_csv("wine", tmp_path / "wine.csv")
    data = build_data(_settings(tmp_path, "data.dataset=csv", f"data.path={str(path)!r}").data, 0, CPU)
    x = torch.tensor(datasets.load_wine().data, dtype=torch.float32)
    train, val = _split_indices(len(x), 0.2, 0)
    assert torch.allclose(data.preprocessing.mean, x[train].mean(0), rtol=1e-4)
    assert not torch.allclose(data.preprocessing.mean, x.mean(0), rtol=1e-4), "validation rows left out"
    assert data.preprocessing.fitted_on == len(train)


# -- digits as PNG files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    from PIL import Image
    from sklearn import datasets

    d = datasets.load_digits()
    root = tmp_path_factory.mktemp("digits_png")
    for k in range(10):
        (root / str(k)).mkdir()
    pixels = np.round(d.images * 255 / 16).astype(np.uint8)  # grayscale PNGs of the same 0..16 values
    for i, (image, label) in enumerate(zip(pixels, d.target)):
        Image.fromarray(image, mode="L").save(root / str(label) / f"{i:04d}.png")
    return root


def _folder_order_labels(root: Path) -> list[int]:
    return [int(p.parent.name) for k in range(10) for p in sorted((root / str(k)).glob("*.png"))]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_digits_from_png_files_train_like_the_built_in_digits(tmp_path, digits_folder, model):
    folder = _settings(
        tmp_path / "folder",
        "data.dataset=image-folder",
        f"data.path={str(digits_folder)!r}",
        f"model.name={model}",
        "training.epochs=10",
    )
    data = build_data(folder.data, 0, CPU)
    assert data.in_shape == (1, 8, 8), "grayscale stays one channel, the images keep their own size"
    assert "decoded once into memory" in data.description and "per-channel mean" in data.description
    _, from_files = _run(folder)
    _, built_in = _run(_settings(tmp_path / "builtin", f"model.name={model}", "training.epochs=10"))
    assert abs(from_files[-1].val_acc - built_in[-1].val_acc) <= 0.02, (from_files[-1].val_acc, built_in[-1].val_acc)
    assert from_files[-1].val_acc > 0.9


# -- CSV as spreadsheets write it ----------------------------------------------------------------


def test_a_french_locale_csv_trains(tmp_path):
    from sklearn import datasets

    d = datasets.load_wine()
    lines = [";".join(["\ufeffalcool", *d.feature_names[1:], "cépage"])]
    for row, t in zip(d.data.tolist(), d.target):
        lines.append(";".join([*(f"{v:.3f}".replace(".", ",") for v in row), f"cépage {t}"]))
    path = tmp_path / "vins.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    started, epochs = _run(
        _settings(
            tmp_path, "data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=cépage", "training.epochs=20"
        )
    )
    assert "separator ';' detected" in started.data_path
    assert epochs[-1].val_acc >= peer_accuracy("wine") - 0.05


# -- a model that learns nothing is never OK ---------------------------------------------------


def test_labels_without_signal_are_not_badged_ok_after_five_epochs(tmp_path, factories):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1500, 20, generator=g), torch.randint(0, 10, (1500,), generator=g)
    path = tmp_path / "noise.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*(f"f{i}" for i in range(20)), "label"])
        writer.writerows([*row, int(t)] for row, t in zip(x.tolist(), y))
    _, epochs = _run(_settings(tmp_path, "data.dataset=csv", f"data.path={str(path)!r}", "training.epochs=8"))
    late = [e.diagnostic for e in epochs if e.epoch >= 5]
    assert late and all(d.status != "ok" for d in late), [(d.status, d.message) for d in late]
    assert any(d.status == "not_learning" for d in late)
