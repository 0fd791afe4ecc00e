"""engine.settings.toml_edit leans on private tomlkit calls (`_insert_at`, `_replace`): these fail if they change."""

from engine.settings.toml_edit import rename_keys, update_toml

FILE = '[training]\n  epochs = 3  # mine\n\n# about the model\n[model]\nname = "mlp"\n'


def test_a_new_key_goes_after_its_tables_last_key_not_under_the_next_tables_comment():
    assert update_toml(FILE, {"training": {"lr": 0.1}, "model": {"dropout": 0.1}}) == (
        '[training]\n  epochs = 3  # mine\n  lr = 0.1\n\n# about the model\n[model]\nname = "mlp"\ndropout = 0.1\n'
    )


def test_a_renamed_key_stands_where_the_old_one_stood():
    text = FILE.replace("epochs = 3", "fused_step = false")
    assert rename_keys(text, {"training": {"fused_step": ("accel", "off")}}) == FILE.replace(
        "epochs = 3", 'accel = "off"'
    )
    assert rename_keys(text, {}) is text
