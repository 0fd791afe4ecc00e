"""Numbers as spreadsheets write them are numbers (issue 24): grouped thousands, percent and currency signs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.data.csv_reader import read_csv
from engine.data.written_numbers import read_written, read_written_column
from engine.settings.config import load_settings


@pytest.mark.parametrize(
    ("cell", "decimal_comma", "value", "kinds"),
    [
        ("3 099", True, 3099.0, {"grouped"}),
        ("3\u00a0099", True, 3099.0, {"grouped"}),
        ("1\u202f234\u202f567,5", True, 1234567.5, {"grouped"}),
        ("1'234.5", False, 1234.5, {"grouped"}),
        ("1.234,50", True, 1234.5, {"grouped"}),
        ("1,234.50", False, 1234.5, {"grouped"}),
        ("12,5 %", True, 0.125, {"percent"}),
        ("45%", False, 0.45, {"percent"}),
        ("$1,200", False, 1200.0, {"grouped", "currency"}),
        ("1 200 €", True, 1200.0, {"grouped", "currency"}),
        ("-€5", False, -5.0, {"currency"}),
        ("\u22123 099", True, -3099.0, {"grouped"}),
    ],
)
def test_a_written_number_is_read(cell, decimal_comma, value, kinds):
    read = read_written(cell, decimal_comma)
    assert read is not None and math.isclose(read[0], value) and read[1] == kinds


@pytest.mark.parametrize("cell", ["abc", "12 34", "1 2345", "3,099,1", "€", "%", "1.2.3", "12-04-2024", "inf €"])
def test_text_is_not_read_as_a_number(cell):
    assert read_written(cell, True) is None and read_written(cell, False) is None


@given(st.text(max_size=30), st.booleans())
def test_any_cell_is_a_finite_number_or_none(cell, decimal_comma):
    read = read_written(cell, decimal_comma)
    assert read is None or math.isfinite(read[0])


def test_one_text_cell_keeps_the_column_text():
    assert read_written_column(["3 099", "1 200", "unknown"], lambda c: c == "", True) is None
    values, kinds = read_written_column(["3 099", "", "1 200"], lambda c: c == "", True)
    assert values[0] == 3099 and math.isnan(values[1]) and values[2] == 1200 and kinds == {"grouped"}


def _table(tmp_path, text: str, *settings: str):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    s = load_settings(None, ("data.dataset=csv", f"data.path={str(path)!r}", "data.label_column=y", *settings))
    return read_csv(s.data)


def test_a_french_price_column_is_numbers_not_categories(tmp_path):
    rows = ["prix;remise;y"] + [f"{1000 + 37 * i:,}".replace(",", "\u00a0") + f" €;{i % 7},5 %;{i % 2}"
                                 for i in range(40)]
    table = _table(tmp_path, "\n".join(rows), "data.csv_text=onehot")
    assert table.feature_names == ["prix", "remise"], "read as two numeric columns, not one-hot categories"
    assert table.x[1, 0].item() == 1037 and math.isclose(table.x[1, 1].item(), 0.015, rel_tol=1e-6)
    notes = " | ".join(table.notes)
    assert "column 'prix' read as numbers (grouped thousands, currency signs)" in notes
    assert "column 'remise' read as numbers (percent signs (÷ 100))" in notes


def test_a_real_text_column_is_still_refused_in_one_line(tmp_path):
    rows = ["prix,ville,y"] + [f"\"{1000 + i:,}\",Paris{i % 3},{i % 2}" for i in range(10)]
    with pytest.raises(Exception, match="column 'ville'.*is not a number"):
        _table(tmp_path, "\n".join(rows))
