"""Columns that are not features (issue 24): identifiers and free text dropped, dates as dates, in one line;
data.columns overrides; the checkpoint reads another file the same way."""

from __future__ import annotations

import math

import pytest

from engine.data.column_roles import auto_role, date_format
from engine.data.csv_reader import CsvError, read_csv
from engine.settings.config import SettingsError, load_settings


def _csv(tmp_path, rows: list[str], *settings: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text("\n".join(rows), encoding="utf-8")
    s = load_settings(None, ("data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=y", *settings))
    return s.data


def _survey(n: int = 60) -> list[str]:
    """A survey export: an identifier, a date, a comment, a small category, a number, the label."""
    rows = ["sample_id,visited,comment,city,age,y"]
    for i in range(n):
        rows.append(f"S-{1000 + i},2024-{1 + i % 12:02d}-{1 + i % 28:02d},\"note number {i} about it\","
                    f"{['Lyon', 'Paris', 'Nice'][i % 3]},{20 + i % 40},{i % 2}")
    return rows


def test_identifiers_and_free_text_are_dropped_and_dates_become_parts_in_one_line(tmp_path):
    table = read_csv(_csv(tmp_path, _survey(), "data.csv_text=onehot"))
    assert table.feature_names == [
        "visited.year", "visited.month", "visited.weekday", "city=Lyon", "city=Nice", "city=Paris", "age",
    ]
    assert table.x[0, :3].tolist() == [2024.0, 1.0, 0.0]  # 2024-01-01 was a Monday
    line = next(n for n in table.notes if n.startswith("columns:"))
    assert "'sample_id' dropped (identifiers or free text: 60 distinct values in 60 rows)" in line
    assert "'comment' dropped" in line and "'visited' as a date (year, month, day of the week)" in line
    assert "data.columns" in line
    assert table.roles == {"sample_id": "drop", "visited": "date", "comment": "drop"}


def test_without_onehot_the_identifiers_and_dates_are_still_handled_and_real_text_refused(tmp_path):
    with pytest.raises(CsvError, match="column 'city'.*is not a number.*csv_text = 'onehot'"):
        read_csv(_csv(tmp_path, _survey()))
    rows = [",".join(c for k, c in enumerate(r.split(",")) if k != 3) for r in _survey()]  # no city
    rows = [r.replace('"note number', '"note') for r in rows]
    table = read_csv(_csv(tmp_path, rows))
    assert table.feature_names == ["visited.year", "visited.month", "visited.weekday", "age"]


def test_data_columns_overrides_the_automatic_roles(tmp_path):
    table = read_csv(_csv(tmp_path, _survey(), "data.csv_text=onehot",
                          'data.columns={sample_id = "onehot", visited = "drop", age = "drop"}'))
    assert "visited.year" not in table.feature_names and "age" not in table.feature_names
    assert sum(n.startswith("sample_id=") for n in table.feature_names) == 60, "the user's word one-hot encodes"
    assert "'sample_id'" not in " ".join(table.notes), "what the user chose is not announced as automatic"


def test_many_categories_wait_for_the_user_s_word(tmp_path):
    rows = ["code,y"] + [f"C{i % 70},{i % 2}" for i in range(200)]
    with pytest.raises(CsvError, match=r"column 'code' holds 70 categories \(more than 50\): set data.columns"):
        read_csv(_csv(tmp_path, rows, "data.csv_text=onehot"))
    table = read_csv(_csv(tmp_path, rows, "data.csv_text=onehot", 'data.columns={code = "onehot"}'))
    assert len(table.feature_names) == 70


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('data.columns={nope = "drop"}', "data.columns: no column 'nope' in the file; columns: sample_id"),
        ('data.columns={y = "drop"}', "'y' is the label column"),
    ],
)
def test_a_bad_data_columns_is_one_line(tmp_path, setting, message):
    with pytest.raises(CsvError, match=message):
        read_csv(_csv(tmp_path, _survey(), "data.csv_text=onehot", setting))


def test_an_unknown_role_is_refused_by_the_settings():
    with pytest.raises(SettingsError, match="data.columns = .*city = 'everything': expected one of feature, onehot"):
        load_settings(None, ('data.columns={city = "everything"}',))


def test_the_checkpoint_s_roles_read_another_file_the_same_way(tmp_path):
    """A smaller evaluation file, whose identifiers would not look like identifiers, is read as the run's was."""
    first = read_csv(_csv(tmp_path, _survey(), "data.csv_text=onehot"))
    small = _survey(8)  # 8 rows: below the identifier rule's minimum
    again = read_csv(_csv(tmp_path, small, "data.csv_text=onehot", name="small.csv"), first.categories, first.roles)
    assert again.feature_names == first.feature_names


def test_date_formats_day_first_then_month_first():
    assert date_format(["13/01/2024", "02/03/2024"]) == "%d/%m/%Y"
    assert date_format(["01/13/2024", "03/02/2024"]) == "%m/%d/%Y"
    assert date_format(["2024-01-13", "soon"]) is None
    assert auto_role("x", ["a", "b"] * 20, True) == ("onehot", "")


def test_a_missing_date_is_a_missing_cell(tmp_path):
    rows = _survey()
    rows[5] = rows[5].replace("2024-05-05", "")
    table = read_csv(_csv(tmp_path, rows, "data.csv_text=onehot", "data.csv_missing=mean"))
    assert table.fill_missing and math.isnan(table.x[4, 0].item())
    with pytest.raises(CsvError, match="line 6, column 'visited.year'"):
        read_csv(_csv(tmp_path, rows, "data.csv_text=onehot"))


def test_a_run_keeps_its_roles_in_the_checkpoint_and_evaluates_another_file(tmp_path):
    import torch

    from engine.api import Run
    from engine.data.preprocessing import Preprocessing
    from engine.events import RunFinished, RunStarted
    from engine.runs.evaluate import evaluate_checkpoint, stored_preprocessing

    path = tmp_path / "survey.csv"
    path.write_text("\n".join(_survey(120)), encoding="utf-8")
    common = ("data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=y", "data.csv_text=onehot")
    settings = load_settings(None, (*common, f"run.runs_dir={str(tmp_path / 'runs')!r}", "training.epochs=2"))
    events: list = []
    assert isinstance(Run(settings, events.append).run(), RunFinished)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert "'sample_id' dropped" in started.data_path
    best = next((tmp_path / "runs").glob("*/checkpoints/best.pth"))
    last = torch.load(best.with_name("last.pth"), weights_only=True)  # best.pth holds the weights alone
    prep = Preprocessing.from_state(stored_preprocessing(last))
    assert prep.columns == {"sample_id": "drop", "visited": "date", "comment": "drop"}
    assert "columns dropped: sample_id, comment" in prep.describe()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(_survey(8)), encoding="utf-8")
    config = tmp_path / "eval.toml"
    config.write_text(f'[data]\ndataset = "csv"\npath = "{small}"\nlabel_column = "y"\ncsv_text = "onehot"\n'
                      'val_fraction = 0.5\n')
    result = evaluate_checkpoint(best, config=str(config))
    assert 0.0 <= result["accuracy"] <= 1.0, result


def test_a_column_of_numbers_with_a_stray_word_is_named_not_dropped(tmp_path):
    rows = ["x,y"] + [f"{i * 1.5},{i % 2}" for i in range(40)]
    rows[7] = "oops,1"
    with pytest.raises(CsvError, match="line 8, column 'x': 'oops' is not a number"):
        read_csv(_csv(tmp_path, rows, "data.csv_text=error"))
