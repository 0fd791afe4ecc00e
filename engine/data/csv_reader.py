"""Tables as spreadsheets and pandas write them: the columns engine.data.table_reader parses, judged and encoded.

pyarrow parses the file (CSV, Parquet or Feather); this module decides what each column is. The `data.csv_*`
settings say the rest, each `auto` by default: the encoding (a byte-order mark, else UTF-8, else Windows-1252),
the separator (the one that splits the header and the first rows into the same number of fields, most fields
first), the decimal mark (a comma when the separator is not one). A cell that is empty, NA, NaN or infinite is
refused with its line and column, or its row dropped, or left for the preprocessing to fill with the training
mean. A leading column without a name (pandas' index) is dropped with a notice; a column of numbers as
spreadsheets write them (`3 099`, `12 %`, `1 200 €`) is numbers (engine.data.written_numbers); other text
columns are judged (engine.data.column_roles), then refused or one-hot encoded with their categories recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np
import torch

from engine.data import table_cache
from engine.data.column_roles import DATE_PARTS, ColumnRoleError, auto_role, check_given, date_format, date_parts
from engine.data.column_roles import describe as describe_roles
from engine.data.table_reader import MISSING, SEPARATORS, CsvError, RawTable, Text, table_format
from engine.data.table_reader import decode as _decode
from engine.data.table_reader import sniff_separator as _sniff_separator
from engine.data.table_stream import read_raw
from engine.data.targets import label_key
from engine.data.written_numbers import describe as describe_written
from engine.data.written_numbers import read_written_column
from engine.settings.config import DataSettings

__all__ = ["SEPARATORS", "CsvError", "Table", "_decode", "_sniff_separator", "read_csv", "read_table", "label_targets"]


@dataclass
class Table:
    x: torch.Tensor  # float32 features; NaN where a missing cell waits for the preprocessing's fill
    y: torch.Tensor
    class_names: list[str]
    feature_names: list[str]
    fill_missing: bool = False
    categories: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)  # columns dropped or read as dates, by name


@dataclass
class _Columns:
    """The table being judged: names by position, numbers (float32 arrays) and text cells by position."""

    raw: RawTable
    names: list[str]
    text: dict[int, list[float | None]] = field(default_factory=dict)  # a text column's distinct cells as numbers

    def text_of(self, j: int) -> Text:
        """Column j as text: the file's own, else its numbers written back ("" where missing)."""
        return self.raw.cells[j] if j in self.raw.cells else Text.of_numbers(self.raw.numbers[j])

    def cell(self, j: int, i: int) -> str:
        found = self.raw.row_of(i) if self.raw.row_of else None
        if found and j < len(found[1]):
            return found[1][j]
        return self.text_of(j).cell(i)

    def where_row(self, i: int) -> str:
        found = self.raw.row_of(i) if self.raw.row_of else None
        return f"line {found[0]}" if found else f"row {i + 1}"


def _number(cell: str, decimal_comma: bool) -> float | None:
    """The cell's value, NaN when missing or not finite, None when it is text."""
    v = cell.strip()
    if v.lower() in MISSING:
        return math.nan
    try:
        value = float(v)
    except ValueError:
        if not decimal_comma or "," not in v:
            return None
        try:  # 1.234,5 as a French or German spreadsheet writes it
            value = float(v.replace(" ", "").replace("\u00a0", "").replace(".", "").replace(",", "."))
        except ValueError:
            return None
    return value if math.isfinite(value) else math.nan


def _is_present(cell: str) -> bool:
    return cell.strip().lower() not in MISSING


def read_table(settings: DataSettings, categories: dict[str, list[str]] | None = None,
               roles: dict[str, str] | None = None) -> Table:
    """read_csv's table, from the decode cache (engine.data.table_cache) when this file was read so before."""
    key = table_cache.cache_key(settings, categories, roles) if table_cache.enabled(settings) else None
    fields = table_cache.load(key) if key else None
    if fields is not None:
        x, y = torch.from_numpy(fields.pop("x")), torch.from_numpy(fields.pop("y"))
        table = Table(x, y, **fields)
        table.notes.append("decoded table read from the cache (data.table_cache)")
        return table
    table = read_csv(settings, categories, roles)
    if key:
        fields = {k: getattr(table, k) for k in ("class_names", "feature_names", "fill_missing", "categories",
                                                  "notes", "roles")}
        note = table_cache.store(key, {**fields, "x": table.x.numpy(), "y": table.y.numpy()})
        table.notes += [note] if note else []
    return table


def read_csv(settings: DataSettings, categories: dict[str, list[str]] | None = None,
             roles: dict[str, str] | None = None) -> Table:
    """The table `data.path` holds; `categories` and `roles`: a checkpoint's one-hot columns and column roles,
    for the file to be read the same way again."""
    where = f"data.path = '{settings.path}'"
    known = categories or {}
    as_text = {settings.label_column, *known, *(roles or {}), *settings.columns}
    raw = read_raw(settings, where, as_text)
    header = raw.names
    li = _label_index(header, settings.label_column, settings.path, raw.separator)
    notes = list(raw.notes)
    drop = {0} if li != 0 and header[0] in ("", "Unnamed: 0") else set()
    if drop:
        notes.append("dropped the first column: it has no name (a row index, as pandas writes one)")
    t = _Columns(raw, [h or f"column {j + 1}" for j, h in enumerate(header)])
    features = [j for j in range(len(header)) if j != li and j not in drop]
    for j in features:
        if j in raw.cells:
            values = [_number(c, raw.decimal_comma) for c in raw.cells[j].values]
            if t.names[j] in known or any(v is None for v in values):
                t.text[j] = values
            else:
                raw.numbers[j] = np.array(values, dtype=np.float32)[raw.cells[j].codes]
                del raw.cells[j]
    notes += _read_written_numbers(t, known)
    roles, note = _column_roles(settings, t, features, li, roles, known)
    notes += [note] if note else []
    try:
        features, onehot = _apply_roles(t, features, roles)
    except ColumnRoleError as e:
        raise CsvError(f"{where}: {e}") from None
    text_columns = _text_columns(settings, where, t, known, onehot, features)
    table = _table(settings, where, t, li, features, text_columns, notes)
    table.roles = {n: r for n, r in roles.items() if r in ("drop", "date")}
    return table


def _column_roles(settings, t: _Columns, features, li, kept: dict | None, known) -> tuple[dict, str | None]:
    """Each feature column's role: data.columns's word, else a checkpoint's, else judged from a text column's
    cells (engine.data.column_roles); the automatic choices are said in one note."""
    where = f"data.path = '{settings.path}'"
    try:
        roles = {**(kept or {}), **check_given(settings.columns, t.names, t.names[li])}
        decided = {}
        for j in features:
            if t.names[j] in roles or t.names[j] in known or j not in t.text:
                continue
            column = t.raw.cells[j]
            present = np.asarray([c.strip() for c in column.values], dtype=object)[column.codes]
            present = present[column.map(_is_present, bool)].tolist()
            numbers = int(np.array([v is not None and not math.isnan(v) for v in t.text[j]])[column.codes].sum())
            if numbers >= len(present) / 2:  # numbers with a stray word: named by line and column, never dropped
                continue
            role, why = auto_role(t.names[j], present, settings.csv_text == "onehot")
            if role in ("date", "drop"):
                roles[t.names[j]], decided[t.names[j]] = role, (role, why)
    except ColumnRoleError as e:
        raise CsvError(f"{where}: {e}") from None
    return roles, describe_roles(decided)


def _read_written_numbers(t: _Columns, known: dict[str, list[str]]) -> list[str]:
    """Text columns whose cells read as numbers once the spreadsheet's writing is undone (`3 099`, `12 %`,
    `1.234,50 €`) become numbers; a note for each. A checkpoint's one-hot columns stay text."""
    notes = []
    for j in list(t.text):
        if t.names[j] in known:
            continue
        column = t.raw.cells[j]
        read = read_written_column(column.values, lambda c: not _is_present(c), t.raw.decimal_comma)
        if read is not None:
            t.raw.numbers[j] = np.array(read[0], dtype=np.float32)[column.codes]
            del t.text[j], t.raw.cells[j]
            notes.append(describe_written(t.names[j], read[1]))
    return notes


def _apply_roles(t: _Columns, features: list[int], roles: dict[str, str]) -> tuple[list[int], set[str]]:
    """Drop and date columns applied: the feature columns left (a date's parts appended as new number columns
    in its place), and the names to one-hot encode."""
    kept, onehot = [], {n for n, r in roles.items() if r == "onehot"}
    for j in features:
        role = roles.get(t.names[j], "feature")
        if role == "date":
            column = t.text_of(j)
            fmt = date_format([c.strip() for c in column.values if _is_present(c)])
            if fmt is None:
                raise ColumnRoleError(f"column '{t.names[j]}': not dates in one format (data.columns says date)")
            parts = date_parts(column.values, fmt, lambda c: not _is_present(c))
            parts = np.array(parts, dtype=np.float32).reshape(-1, 3)[column.codes]
            for k, part in enumerate(DATE_PARTS):
                t.names.append(f"{t.names[j]}.{part}")
                t.raw.numbers[len(t.names) - 1] = np.ascontiguousarray(parts[:, k])
                kept.append(len(t.names) - 1)
        elif role != "drop":
            kept.append(j)
    return kept, onehot


def _text_columns(settings, where, t: _Columns, known: dict[str, list[str]], onehot: set[str],
                  features: list[int]) -> dict[int, list[str]]:
    """The categories of each feature column read as text (`known`: a checkpoint's, `onehot`: named by
    data.columns); CsvError when text is refused."""
    text_columns = {}
    for j in features:
        is_text = np.array([v is None for v in t.text[j]])[t.raw.cells[j].codes] if j in t.text else np.zeros(1, bool)
        first_text = int(np.argmax(is_text)) if is_text.any() else None
        name = t.names[j]
        if name in known or name in onehot or (first_text is not None and settings.csv_text == "onehot"):
            text_columns[j] = known.get(name) or sorted({c.strip() for c in t.text_of(j).values if _is_present(c)})
        elif first_text is not None:
            raise CsvError(
                f"{where}: {t.where_row(first_text)}, column '{name}': {t.cell(j, first_text)!r} is not a number "
                "(set data.csv_text = 'onehot' to encode text columns)"
            )
    return text_columns


def _label_index(header: list[str], label: str, path: str, sep: str) -> int:
    if label in header:
        return header.index(label)
    hint = ""
    others = [s for s in SEPARATORS.values() if s != sep and any(s in h for h in header)]
    if others and table_format(path) == "csv":
        shown = "tab" if others[0] == "\t" else others[0]
        hint = f"; the header looks separated by {shown!r}: set data.csv_separator = {shown!r}"
    close = [h for h in header if h.strip().lower() == label.strip().lower()]
    if close:
        hint += f" (did you mean '{close[0]}'?)"
    listed = ", ".join(header) if len(header) > 1 else f"a single one, {header[0]!r}"
    raise CsvError(f"data.label_column = '{label}': not a column of {path}; columns: {listed}{hint}")


def _table(settings, where, t: _Columns, li, features, text_columns, notes) -> Table:
    label_cells = t.raw.cells[li]
    label_missing = ~label_cells.map(_is_present, bool)
    missing = label_missing.copy()
    for j in features:
        missing |= ~t.text_of(j).map(_is_present, bool) if j in text_columns else np.isnan(t.raw.numbers[j])
    if missing.any() and settings.csv_missing == "error":
        _refuse_missing(where, t, int(np.argmax(missing)), [li, *features], text_columns)
    dropped = missing if settings.csv_missing == "drop" else label_missing
    keep = np.flatnonzero(~dropped)
    if dropped.any():
        count = int(dropped.sum())
        notes.append(f"dropped {count} row{'s' * (count != 1)} with missing cells")
    elif missing.any():
        notes.append(f"{int(missing.sum())} rows with missing cells filled with the training mean")
    y, labels = label_targets(settings, where, Text(label_cells.values, label_cells.codes[keep]))
    widths = [len(text_columns[j]) if j in text_columns else 1 for j in features]
    x = np.empty((len(keep), sum(widths)), dtype=np.float32)
    feature_names, at = [], 0
    for j, width in zip(features, widths):
        if j in text_columns:
            x[:, at : at + width] = _one_hot(t.text_of(j), keep, text_columns[j])
            feature_names += [f"{t.names[j]}={c}" for c in text_columns[j]]
        else:
            x[:, at] = t.raw.numbers[j][keep]
            feature_names.append(t.names[j])
        at += width
    cats = {t.names[j]: list(text_columns[j]) for j in features if j in text_columns}
    if cats:
        notes.append(f"text columns one-hot encoded: {', '.join(f'{k} ({len(v)})' for k, v in cats.items())}")
    tensor = torch.from_numpy(x)
    return Table(tensor, y, labels, feature_names, bool(np.isnan(x).any()), cats, notes)


def label_targets(settings: DataSettings, where: str, cells: Text) -> tuple[torch.Tensor, list[str]]:
    """The label column's kept cells (the file's own text, `cells.values[cells.codes[i]]` for row i) as targets:
    one class per distinct value, sorted as numbers where they are whole numbers, else as text."""
    used = np.zeros(len(cells.values), dtype=bool)
    used[cells.codes] = True
    stripped = [v.strip() for v in cells.values]
    labels = sorted({v for v, u in zip(stripped, used) if u}, key=label_key)
    if len(labels) < 2:
        raise CsvError(f"{where}: the label column '{settings.label_column}' has a single class")
    index = {v: k for k, v in enumerate(labels)}
    return torch.from_numpy(cells.map(lambda v: index.get(v.strip(), -1), np.int64)), labels


def _refuse_missing(where, t: _Columns, i: int, columns_in_order: list[int], text_columns) -> NoReturn:
    """CsvError naming row i's first missing cell, and the settings that accept it."""
    def missing(j: int) -> bool:
        if j in text_columns or j not in t.raw.numbers:
            return not _is_present(t.text_of(j).cell(i))
        return bool(np.isnan(t.raw.numbers[j][i]))

    j = next(j for j in columns_in_order if missing(j))
    raise CsvError(
        f"{where}: {t.where_row(i)}, column '{t.names[j]}': {t.cell(j, i)!r} is missing or not a finite number; "
        "set data.csv_missing = 'drop' (skip such rows) or 'mean' (fill with the training mean)"
    )


def _one_hot(cells: Text, keep: np.ndarray, cats: list[str]) -> np.ndarray:
    """The kept cells as one 0/1 column per category; a missing cell is a row of NaN, an unknown one 0s."""
    position = {c: k for k, c in enumerate(cats)}
    codes = cells.codes[keep]
    column = np.array([position.get(v.strip(), -1) for v in cells.values], dtype=np.int64)[codes]
    block = np.zeros((len(keep), len(cats)), dtype=np.float32)
    known = np.flatnonzero(column >= 0)
    block[known, column[known]] = 1.0
    block[~np.array([_is_present(v) for v in cells.values], dtype=bool)[codes]] = np.nan
    return block
