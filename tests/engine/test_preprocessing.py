"""The preprocessing kept with the checkpoint; CSV files as spreadsheets write them; image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.loaders import build_data
from engine.events import RunFinished
from engine.runs.checkpoints import load_checkpoint
from engine.runs.evaluate import evaluate_checkpoint
from engine.settings.config import SettingsError, load_settings
from engine.api import Run

CPU = torch.device("cpu")


def _settings(tmp_path: Path, *overrides: str):
    return load_settings(None, (f"run.runs_dir={str(tmp_path / 'runs')!r}", "training.epochs=2", *overrides))


def _csv(tmp_path: Path, text: str, *overrides: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return _settings(tmp_path, "data.dataset=csv", f"data.path={str(path)!r}", *overrides)


def _rows(n: int = 40, sep: str = ",", decimal: str = ".") -> list[str]:
    return [
        sep.join([f"{i * 0.5:.1f}".replace(".", decimal), f"{(i % 7) * 1.5:.1f}".replace(".", decimal), str(i % 2)])
        for i in range(n)
    ]


# -- the preprocessing kept with the checkpoint ------------------------------------------------------


def test_the_checkpoint_keeps_the_preprocessing_and_eval_applies_it(tmp_path):
    s = _csv(tmp_path, "a,b,label\n" + "\n".join(_rows()) + "\n", "model.hidden=[8]")
    final = Run(s, []).run()
    assert isinstance(final, RunFinished)
    last = load_checkpoint(Path(final.run_dir) / "checkpoints" / "last.pth")
    stored = last["preprocessing"]
    assert stored["kind"] == "per-feature" and stored["mean"].shape == (2,) and stored["fitted_on"] == 32
    before = evaluate_checkpoint(final.run_dir)
    # eval of best.pth (weights only) takes last.pth's preprocessing: other numbers there, another result
    last["preprocessing"] = dict(stored, mean=stored["mean"] + 5 * stored["std"])
    torch.save(last, Path(final.run_dir) / "checkpoints" / "last.pth")
    after = evaluate_checkpoint(final.run_dir)
    assert after["loss"] != pytest.approx(before["loss"])
    shifted = dict(stored, mean=stored["mean"] + 100.0)
    moved = build_data(s.data, 0, CPU, fitted=shifted)
    assert "from the checkpoint" in moved.description
    assert not torch.allclose(moved.val.x, build_data(s.data, 0, CPU).val.x), "the stored numbers are the ones used"


def test_a_checkpoints_preprocessing_that_does_not_fit_the_data_is_refused(tmp_path):
    s = _csv(tmp_path, "a,b,label\n" + "\n".join(_rows()) + "\n")
    wrong = {"kind": "per-feature", "mean": torch.zeros(5), "std": torch.ones(5), "fitted_on": 3}
    with pytest.raises(SettingsError, match="does not fit samples of shape"):
        build_data(s.data, 0, CPU, fitted=wrong)


@pytest.mark.parametrize("mode, kind", [("auto", "per-channel"), ("none", "none"), ("imagenet", "imagenet")])
def test_normalize_chooses_the_image_statistics(tmp_path, mode, kind):
    data = build_data(_settings(tmp_path, f"data.normalize={mode!r}").data, 0, CPU)
    assert data.preprocessing.kind == kind and data.preprocessing.mean.shape == (1, 1, 1)
    if mode == "auto":  # digits' own dark pixels: mean well below ImageNet's 0.45
        assert 0.2 < float(data.preprocessing.mean) < 0.4
        assert abs(float(data.train.x.mean())) < 0.05 and abs(float(data.train.x.std()) - 1) < 0.05


def test_imagenet_statistics_for_a_table_are_refused(tmp_path):
    s = _csv(tmp_path, "a,b,label\n" + "\n".join(_rows()) + "\n", "data.normalize=imagenet")
    with pytest.raises(SettingsError, match="for images"):
        build_data(s.data, 0, CPU)


# -- CSV files ---------------------------------------------------------------------------------------


def test_semicolons_decimal_commas_and_a_byte_order_mark(tmp_path):
    text = "\ufeffa;b;label\r\n" + "\r\n".join(_rows(sep=";", decimal=",")) + "\r\n"
    data = build_data(_csv(tmp_path, text).data, 0, CPU)
    assert data.in_shape == (2,) and data.class_names == ["0", "1"]
    assert "separator ';' detected" in data.description
    assert float(data.preprocessing.mean[0]) == pytest.approx(np.mean([i * 0.5 for i in range(40)]), abs=3)


def test_a_forced_separator_that_does_not_split_the_header_says_which_one_does(tmp_path):
    s = _csv(tmp_path, "a;b;label\n" + "\n".join(_rows(sep=";")) + "\n", "data.csv_separator=','")
    with pytest.raises(SettingsError, match=r"a single one, 'a;b;label'; the header looks separated by ';'"):
        build_data(s.data, 0, CPU)


def test_quoted_fields_are_read_as_the_csv_module_reads_them(tmp_path):
    rows = [f'"{i}","{i % 3}","class ""{i % 2}"""' for i in range(30)]
    data = build_data(_csv(tmp_path, '"a","b","label"\n' + "\n".join(rows) + "\n").data, 0, CPU)
    assert data.class_names == ['class "0"', 'class "1"']


@pytest.mark.parametrize("cell", ["", "NaN", "inf", "NA"])
def test_a_missing_or_infinite_cell_is_named_by_line_and_column(tmp_path, cell):
    rows = _rows()
    rows[4] = f"1.0,{cell},0"
    s = _csv(tmp_path, "a,b,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(SettingsError, match=r"line 6, column 'b': .* is missing or not a finite number; set data.csv"):
        build_data(s.data, 0, CPU)


def test_missing_cells_dropped_or_filled_with_the_training_mean(tmp_path):
    rows = _rows()
    rows[4] = "1.0,,0"
    text = "a,b,label\n" + "\n".join(rows) + "\n"
    dropped = build_data(_csv(tmp_path, text, "data.csv_missing=drop").data, 0, CPU)
    assert dropped.train.num_samples + dropped.val.num_samples == 39 and "dropped 1 row" in dropped.description
    filled = build_data(_csv(tmp_path, text, "data.csv_missing=mean", "data.val_fraction=0.5").data, 0, CPU)
    assert filled.train.num_samples + filled.val.num_samples == 40
    assert "filled with the training mean" in filled.description
    assert torch.isfinite(filled.train.x).all() and torch.isfinite(filled.val.x).all()


def test_a_leading_unnamed_index_column_is_dropped_with_a_notice(tmp_path):
    rows = [f"{i},{r}" for i, r in enumerate(_rows())]
    data = build_data(_csv(tmp_path, ",a,b,label\n" + "\n".join(rows) + "\n").data, 0, CPU)
    assert data.in_shape == (2,) and "dropped the first column: it has no name" in data.description


def test_text_columns_refused_or_one_hot_encoded_with_their_categories_kept(tmp_path):
    rows = [f"{r},{('red', 'green', 'blue')[i % 3]}" for i, r in enumerate(_rows())]
    text = "a,b,label,colour\n" + "\n".join(rows) + "\n"
    with pytest.raises(SettingsError, match=r"column 'colour': 'red' is not a number \(set data.csv_text = 'onehot'"):
        build_data(_csv(tmp_path, text).data, 0, CPU)
    s = _csv(tmp_path, text, "data.csv_text=onehot", "model.hidden=[8]")
    data = build_data(s.data, 0, CPU)
    assert data.in_shape == (5,) and data.preprocessing.categories == {"colour": ["blue", "green", "red"]}
    final = Run(s, []).run()
    stored = load_checkpoint(Path(final.run_dir) / "checkpoints" / "last.pth")["preprocessing"]
    assert stored["categories"] == {"colour": ["blue", "green", "red"]}
    # a file with fewer colours is encoded with the recorded categories: the same five inputs
    fewer = "a,b,label,colour\n" + "\n".join(f"{r},red" for r in _rows()) + "\n"
    Path(s.data.path).write_text(fewer)
    assert build_data(s.data, 0, CPU, fitted=stored).in_shape == (5,)


# -- image folders -----------------------------------------------------------------------------------


def _images(root: Path, classes=("a", "b"), per_class: int = 6, mode: str = "L", size=(10, 12)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(root / name / f"{i}.png")
    return root


def _folder(tmp_path: Path, root: Path, *overrides: str):
    return _settings(tmp_path, "data.dataset=image-folder", f"data.path={str(root)!r}", *overrides).data


def test_grayscale_stays_one_channel_and_keeps_its_own_size(tmp_path):
    data = build_data(_folder(tmp_path, _images(tmp_path / "g")), 0, CPU)
    assert data.in_shape == (1, 12, 10) and "decoded once into memory" in data.description
    data = build_data(_folder(tmp_path, _images(tmp_path / "c", mode="RGB"), "data.image_size=8"), 0, CPU)
    assert data.in_shape == (3, 8, 8)


def test_a_corrupt_file_is_named_or_skipped_and_counted(tmp_path):
    root = _images(tmp_path / "pets")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SettingsError, match=r"cannot decode .*broken\.png: .*set data.bad_images = 'skip'"):
        build_data(_folder(tmp_path, root), 0, CPU)
    data = build_data(_folder(tmp_path, root, "data.bad_images=skip"), 0, CPU)
    assert data.train.num_samples + data.val.num_samples == 12 and "1 files skipped" in data.description


def test_a_single_class_folder_is_refused(tmp_path):
    root = _images(tmp_path / "one", classes=("only",))
    with pytest.raises(SettingsError, match="a single class folder 'only'"):
        build_data(_folder(tmp_path, root), 0, CPU)
