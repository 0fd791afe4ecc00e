"""A renamed settings key (training.fused_step -> training.accel): old files, run folders and checkpoints still load."""

import warnings

import pytest

from engine.settings.config import Settings, SettingsError, from_dict, load_settings, save_settings, to_toml
from engine.settings.renames import RenamedSetting


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, RenamedSetting)]


@pytest.mark.parametrize("old, new", [("false", "off"), ("true", "auto")])
def test_an_old_settings_file_loads_with_one_note(tmp_path, old, new):
    path = tmp_path / "settings.toml"
    path.write_text(f"[training]\nepochs = 3\nfused_step = {old}\n")
    with pytest.warns(RenamedSetting) as record:
        settings = load_settings(path)
    assert settings.training.accel == new and settings.training.epochs == 3
    assert _notes(record) == [f'{path}: training.fused_step is now training.accel (read as accel = "{new}")']


def test_an_old_checkpoints_or_run_folders_settings_load():
    saved = Settings().to_dict()
    del saved["training"]["accel"]
    saved["training"]["fused_step"] = False
    with pytest.warns(RenamedSetting, match=r"^last.pth settings: training.fused_step is now training.accel"):
        assert from_dict(saved, "last.pth settings").training.accel == "off"


def test_the_schema_has_accel_not_fused_step():
    assert 'accel = "auto"' in to_toml(Settings()) and "fused_step" not in to_toml(Settings())
    with pytest.raises(SettingsError, match=r"training.accel = 'fast': unknown; allowed: auto, off$"):
        from_dict({"training": {"accel": "fast"}})


def test_a_file_with_both_names_is_refused_in_one_line(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[training]\nfused_step = false\naccel = "off"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: training.fused_step and training.accel are both set; keep training.accel "
        "(training.fused_step is its old name)"
    )


def test_an_old_value_of_the_wrong_type_is_named_by_its_old_key(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nfused_step = 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: training.fused_step = 1: expected false or true (training.fused_step is now training.accel)"
    )


def test_set_by_the_old_name_is_read_under_the_new_one(tmp_path):
    with pytest.warns(RenamedSetting, match=r"^--set training.fused_step=false: training.fused_step is now"):
        assert load_settings(None, ["training.fused_step=false"]).training.accel == "off"
    with pytest.warns(RenamedSetting):
        assert Settings().replace("training.fused_step", False).training.accel == "off"


def test_set_of_the_new_name_replaces_an_old_files_key(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nfused_step = false\n")
    with pytest.warns(RenamedSetting):
        assert load_settings(path, ["training.accel=auto"]).training.accel == "auto"


def test_saving_over_an_old_file_renames_the_key_where_it_stands(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\n# mine\nfused_step = false  # autograd\nepochs = 3\n")
    with pytest.warns(RenamedSetting):
        settings = load_settings(path).replace("training.epochs", 4)
        save_settings(settings, path)
    assert path.read_text() == '[training]\n# mine\naccel = "off"  # autograd\nepochs = 4\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings(path) == settings


def test_a_current_file_gives_no_note(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[training]\naccel = "off"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings(path).training.accel == "off"
