"""docs/settings.md and the shipped settings.toml are what the settings schema gives: one place per fact."""

import tomllib
import warnings

import pytest

from engine.settings import reference
from engine.settings.config import SECTIONS, Settings, load_settings, save_settings, section_fields
from engine.settings.reference import REFERENCE, REGENERATE, REPO, SHIPPED, reference_text, shipped_toml, stale


@pytest.mark.parametrize("path, text", [(REFERENCE, reference_text), (SHIPPED, shipped_toml)])
def test_the_generated_files_match_the_schema(path, text):
    current = (REPO / path).read_text(encoding="utf-8") if (REPO / path).exists() else None
    assert current == text(), f"{path} differs from the settings schema: run `{REGENERATE}` (or `make settings-docs`)"


def test_the_reference_has_one_entry_per_setting_with_its_facts():
    text = reference_text()
    for section in SECTIONS:
        assert text.count(f"\n## [{section}]\n") == 1
        for f in section_fields(section):
            entries = [line for line in text.splitlines() if line.startswith(f"- **`{section}.{f.name}`** (")]
            assert len(entries) == 1, f"{section}.{f.name}"
            assert "default `" in entries[0] and entries[0].endswith(f"): {f.metadata['doc']}")
    assert '- **`training.accel`** (text, default `"auto"`; `auto`, `off`): ' in text
    assert "- **`run.seed`** (integer, default `0`; -1 to 4294967295): " in text
    assert "- **`training.lr`** (number, default `0.001`; above 0.0, at most 10.0): " in text


def test_the_shipped_file_loads_as_the_defaults_with_every_key_commented():
    text = shipped_toml()
    assert tomllib.loads(text).keys() == SECTIONS.keys()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings(REPO / SHIPPED) == Settings()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"no comment above {line!r}"


def test_the_console_saves_a_change_into_the_shipped_file_line_by_line(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(shipped_toml())
    changed = Settings().replace("training.accel", "off").replace("model.hidden", [64])
    save_settings(changed, path)
    assert load_settings(path) == changed
    old, new = shipped_toml().splitlines(), path.read_text().splitlines()
    assert [(a, b) for a, b in zip(old, new) if a != b] == [
        ("hidden = [256, 128]", "hidden = [64]"),
        ('accel = "auto"', 'accel = "off"'),
    ]
    assert len(old) == len(new)


def test_stale_names_a_drifted_file_and_write_repairs_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / REFERENCE).write_text(reference_text())
    (tmp_path / SHIPPED).write_text(shipped_toml().replace("epochs = 20", "epochs = 30"))
    assert stale(tmp_path) == [SHIPPED]
    monkeypatch.setattr(reference, "REPO", tmp_path)
    assert reference.main([]) == 1
    assert capsys.readouterr().err == f"settings.toml differs from the schema; run `{REGENERATE}`\n"
    assert reference.main(["--write"]) == 0
    assert stale(tmp_path) == []
