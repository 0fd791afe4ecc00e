"""model.name = "auto" and run.name = "auto": the defaults that follow the dataset (engine.settings.defaults)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.api import Run
from engine.events import RunFinished, RunStarted
from engine.models.networks import CNN, MLP, build_model
from engine.runs.checkpoints import load_checkpoint
from engine.runs.evaluate import evaluate_checkpoint
from engine.runs.records import run_settings
from engine.settings.config import Settings, SettingsError, from_dict, load_settings
from engine.settings.defaults import (
    AUTO_MODELS,
    model_choice,
    resolve_defaults,
    resolve_model,
    run_name,
    run_name_choice,
    safe_folder_name,
)
from engine.settings.names import BUILTIN_DATASETS
from engine.settings.renames import RenamedSetting
from engine.settings.rules import NAME_BYTES_MAX

OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "run_before_issue_22"


def _settings(dataset: str, **sections) -> Settings:
    data = {"data": {"dataset": dataset, "path": "somewhere" if dataset in ("csv", "image-folder") else ""}}
    return from_dict({**data, **sections})


def test_the_defaults_are_auto_and_name_the_chapter_s_run():
    s = Settings()
    assert s.run.name == "auto" and s.model.name == "auto"
    assert resolve_model(s) == ("mlp", "the chapter's model, for 8x8 digits")
    assert run_name(s) == "digits-mlp"  # the README's runs/digits-mlp


@pytest.mark.parametrize(
    "dataset, model, name",
    [
        ("digits", "mlp", "digits-mlp"),
        ("mnist", "mlp", "mnist-mlp"),  # the chapter's model on the chapter's data
        ("fashion-mnist", "mlp", "fashion-mnist-mlp"),
        ("cifar10", "cnn", "cifar10-cnn"),  # colour photos: the MLP flattens away what a convolution sees
        ("image-folder", "cnn", "folder-cnn"),
        ("csv", "mlp", "csv-mlp"),
        ("synthetic", "mlp", "synthetic-mlp"),
        ("mydata:make_data", "mlp", "make_data-mlp"),  # a dataset function's shape is unknown before it runs
        ("my.pkg.loaders:load_scans", "mlp", "load_scans-mlp"),
    ],
)
def test_auto_picks_a_model_and_a_run_name_for_every_kind_of_dataset(dataset, model, name):
    s = _settings(dataset)
    chosen, why = resolve_model(s)
    assert chosen == model and why
    assert run_name(s) == name
    assert model_choice(s) == f"auto → {model} ({why})"
    assert run_name_choice(s) == f"auto → {name}"


def test_every_built_in_dataset_has_an_auto_model():
    assert set(AUTO_MODELS) == set(BUILTIN_DATASETS)


@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet18", "pkg.nets:Net"])
def test_a_model_the_settings_name_is_kept_without_a_reason(model):
    s = _settings("image-folder", model={"name": model})
    assert resolve_model(s) == (model, "")
    assert model_choice(s) == model


def test_the_run_name_follows_the_model_the_settings_name():
    assert run_name(_settings("image-folder", model={"name": "mlp"})) == "folder-mlp"
    assert run_name(_settings("digits", model={"name": "resnet18"})) == "digits-resnet18"
    assert run_name(_settings("mydata:make_data", model={"name": "pkg.nets:Net"})) == "make_data-Net"


@pytest.mark.parametrize("name", ["digits-mlp", "my-experiment", "auto-2"])
def test_a_run_name_the_settings_give_is_kept(name):
    s = _settings("image-folder", run={"name": name})
    assert run_name(s) == name and run_name_choice(s) == name
    assert resolve_defaults(s).run.name == name


def test_a_folder_name_is_made_safe():
    assert safe_folder_name("make_data-mlp") == "make_data-mlp"
    assert safe_folder_name("a b/c\\d:e") == "a-b-c-d-e"
    assert safe_folder_name("..hidden") == "hidden"
    assert safe_folder_name("données-mlp") == "données-mlp"  # letters beyond ASCII are fine in a folder name
    assert safe_folder_name("/.") == "run"
    assert len(safe_folder_name("é" * 400).encode("utf-8")) <= NAME_BYTES_MAX


def test_resolve_defaults_makes_both_names_concrete_and_changes_nothing_else():
    s = _settings("image-folder", training={"epochs": 7})
    resolved = resolve_defaults(s)
    assert (resolved.run.name, resolved.model.name) == ("folder-cnn", "cnn")
    assert resolved.training == s.training and resolved.data == s.data
    assert resolve_defaults(resolved) == resolved
    assert s.model.name == "auto"  # a copy: the settings the user edits keep auto


def test_build_model_refuses_an_unresolved_auto():
    with pytest.raises(SettingsError, match="model.name = 'auto'"):
        build_model(Settings().model, (1, 8, 8), 10)


def test_the_cross_checks_judge_the_model_auto_chose():
    auto_cnn = r"cnn \(model.name = auto: an image folder\)"
    with pytest.raises(SettingsError, match=rf"the built-in {auto_cnn} takes no options"):
        _settings("image-folder", model={"options": {"width": 3}})
    with pytest.raises(SettingsError, match=rf"model.channels = \[\]: {auto_cnn} needs"):
        _settings("image-folder", model={"channels": []})
    assert _settings("digits", model={"channels": []}).model.channels == []  # auto chose the mlp: no convolutions
    with pytest.raises(SettingsError, match="the built-in mlp takes no options"):
        _settings("image-folder", model={"name": "mlp", "options": {"width": 3}})


def test_an_old_settings_file_with_concrete_names_keeps_them(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[run]\nname = "digits-mlp"\n[data]\ndataset = "image-folder"\npath = "pets"\n'
                    '[model]\nname = "mlp"\n')
    s = load_settings(path)
    assert (run_name(s), resolve_model(s)) == ("digits-mlp", ("mlp", ""))


def test_an_old_run_folder_s_settings_still_load_with_their_names():
    with pytest.warns(RenamedSetting, match="fused_step"):  # the old run's other old key, read by its new name
        s = run_settings(OLD_RUN / "settings.toml")
    assert (s.run.name, s.model.name) == ("old-run", "mlp")
    assert resolve_defaults(s) == s


# -- a run records what auto chose ------------------------------------------------------------------------------


def _write_images(root: Path, per_class: int = 6) -> Path:
    """Two classes of tiny PNGs of two sizes (the reader resizes them to the most common one)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (12 if i else 9, 10, 3), dtype=np.uint8)
            pixels[:, :, k] = 250
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_run_on_an_image_folder_trains_a_cnn_and_records_it(tmp_path, one_torch_thread):
    root = _write_images(tmp_path / "pets")
    sets = ("data.dataset=image-folder", f"data.path={str(root)!r}", "data.val_fraction=0.25", "data.batch_size=4",
            "model.channels=[4]", f"run.runs_dir={str(tmp_path / 'runs')!r}", "training.epochs=1",
            "device.device='cpu'")
    settings = load_settings(None, sets)
    events: list = []
    trainer = Run(settings, events.append, set_threads=False)
    assert isinstance(trainer.run(), RunFinished)
    assert isinstance(trainer.model, CNN) and trainer.run_dir == tmp_path / "runs" / "folder-cnn"
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.model_reason == "an image folder" and started.settings["model"]["name"] == "cnn"
    checkpoint = load_checkpoint(trainer.run_dir / "checkpoints" / "last.pth")
    assert checkpoint["settings"]["model"]["name"] == "cnn" and checkpoint["settings"]["run"]["name"] == "folder-cnn"
    assert run_settings(trainer.run_dir / "settings.toml").model.name == "cnn"
    # eval rebuilds the CNN from the record; and from a -c file that still says auto, the same one
    assert evaluate_checkpoint(trainer.run_dir)["samples"] == 3
    config = tmp_path / "mine.toml"
    config.write_text(f'[data]\ndataset = "image-folder"\npath = {str(root)!r}\nval_fraction = 0.25\n'
                      '[model]\nchannels = [4]\n')
    assert evaluate_checkpoint(trainer.run_dir, config=str(config))["samples"] == 3


def test_a_run_on_a_table_trains_the_mlp_under_a_name_of_its_own(tmp_path, one_torch_thread):
    settings = load_settings(None, ("data.dataset=synthetic", "data.options={samples = 200}", "model.hidden=[8]",
                                    f"run.runs_dir={str(tmp_path / 'runs')!r}", "training.epochs=1",
                                    "device.device='cpu'"))
    trainer = Run(settings, set_threads=False)
    assert isinstance(trainer.run(), RunFinished)
    assert isinstance(trainer.model, MLP) and trainer.run_dir.name == "synthetic-mlp"
    again = Run(settings, set_threads=False)
    assert isinstance(again.run(), RunFinished) and again.run_dir.name == "synthetic-mlp-2"  # never overwritten
    assert load_checkpoint(again.run_dir / "checkpoints" / "last.pth")["settings"]["model"]["name"] == "mlp"
