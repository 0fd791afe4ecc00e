"""CSV files as spreadsheets and pandas write them: separator, decimal comma, quoting and byte-order mark detected.

Python's csv module does the quoting; what it leaves to us is told by the
`data.csv_*` settings, each `auto` by default: the encoding (a byte-order
mark, else UTF-8, else Windows-1252), the separator (the one that splits the
header and the first rows into the same number of fields, most fields
first), the decimal mark (a comma when the separator is not one). A cell that
is empty, NA, NaN or infinite is refused with its line and column, or its row
dropped, or left for the preprocessing to fill with the training mean. A
leading column without a name (pandas' index) is dropped with a notice; a
column of numbers as spreadsheets write them (`3 099`, `12 %`, `1 200 €`) is
numbers (engine.data.written_numbers); other text columns are refused, or
one-hot encoded with their categories recorded.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import torch

from engine.data.column_roles import ColumnRoleError, apply_roles, auto_role, check_given
from engine.data.column_roles import describe as describe_roles
from engine.data.written_numbers import describe as describe_written
from engine.data.written_numbers import read_written_column
from engine.settings.config import DataSettings, SettingsError

SEPARATORS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
MISSING = {"", "na", "n/a", "nan", "null", "none", "#n/a", "?", "-nan"}
SNIFF_ROWS = 50


class CsvError(SettingsError):
    """The CSV file cannot be read as a table of features and labels."""


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


def _decode(raw: bytes, encoding: str, where: str) -> tuple[str, str | None]:
    """The file's text, and a note when the encoding was a guess worth telling."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), None
    if encoding != "auto":
        try:
            return raw.decode(encoding), None
        except UnicodeDecodeError as e:
            raise CsvError(f"{where}: not {encoding} text ({e}); set data.csv_encoding") from None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "read as Windows-1252 (not UTF-8)"


def _rows(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number as an editor shows it, fields) of each non-blank row."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], 1
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((line, row))
        line = reader.line_num + 1
    return rows


def _sniff_separator(text: str) -> str:
    """The separator that splits the header and the first rows into the same number of fields, most fields first."""
    head = "\n".join(text.splitlines()[: SNIFF_ROWS + 1])
    best, best_fields = ",", 0
    for sep in SEPARATORS.values():
        try:
            rows = _rows(head, sep)
        except csv.Error:
            continue
        if not rows:
            continue
        fields = len(rows[0][1])
        if fields >= 2 and all(len(r) == fields for _, r in rows) and fields > best_fields:
            best, best_fields = sep, fields
    return best


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


def _label_key(v: str):
    number = v.lstrip("-").isascii() and v.lstrip("-").isdigit()  # "²".isdigit(), and int() refuses it
    return (not number, int(v) if number else 0, v)


def read_csv(settings: DataSettings, categories: dict[str, list[str]] | None = None,
             roles: dict[str, str] | None = None) -> Table:
    """The table `data.path` holds; `categories` and `roles`: a checkpoint's one-hot columns and column roles,
    for the file to be read the same way again."""
    where = f"data.path = '{settings.path}'"
    text, encoding_note = _decode(_read_file(settings.path, where), settings.csv_encoding, where)
    sep = SEPARATORS[settings.csv_separator] if settings.csv_separator != "auto" else _sniff_separator(text)
    rows = _data_rows(text, sep, where)
    notes = [encoding_note] if encoding_note else []
    if settings.csv_separator == "auto" and sep != ",":
        notes.append(f"separator {'tab' if sep == chr(9) else repr(sep)} detected")
    header = [h.strip() for h in rows[0][1]]
    body = rows[1:]
    li = _label_index(header, settings.label_column, settings.path, sep)
    drop = {0} if li != 0 and header[0] in ("", "Unnamed: 0") else set()
    if drop:
        notes.append("dropped the first column: it has no name (a row index, as pandas writes one)")
    names = [h or f"column {j + 1}" for j, h in enumerate(header)]
    _check_widths(body, len(header), where)
    decimal_comma = settings.csv_decimal == "," or (settings.csv_decimal == "auto" and sep != ",")
    features = [j for j in range(len(header)) if j != li and j not in drop]
    columns = {j: [_number(r[j], decimal_comma) for _, r in body] for j in features}
    notes += _read_written_numbers(names, body, columns, decimal_comma, categories or {})
    roles, note = _column_roles(settings, names, body, columns, features, li, roles, categories or {})
    notes += [note] if note else []
    try:
        features, onehot = apply_roles(names, body, columns, features, roles, lambda c: not _is_present(c))
    except ColumnRoleError as e:
        raise CsvError(f"{where}: {e}") from None
    text_columns = _text_columns(settings, where, names, body, columns, categories or {}, onehot, features)
    table = _table(settings, where, names, body, li, features, columns, text_columns, notes)
    table.roles = {n: r for n, r in roles.items() if r in ("drop", "date")}
    return table


def _column_roles(settings, names, body, columns, features, li, kept: dict | None, known) -> tuple[dict, str | None]:
    """Each feature column's role: data.columns's word, else a checkpoint's, else judged from a text column's
    cells (engine.data.column_roles); the automatic choices are said in one note."""
    where = f"data.path = '{settings.path}'"
    try:
        roles = {**(kept or {}), **check_given(settings.columns, names, names[li])}
        decided = {}
        for j in features:
            if names[j] in roles or names[j] in known or all(v is not None for v in columns[j]):
                continue
            present = [r[j].strip() for _, r in body if _is_present(r[j])]
            numbers = sum(v is not None and not math.isnan(v) for v in columns[j])
            if numbers >= len(present) / 2:  # numbers with a stray word: named by line and column, never dropped
                continue
            role, why = auto_role(names[j], present, settings.csv_text == "onehot")
            if role in ("date", "drop"):
                roles[names[j]], decided[names[j]] = role, (role, why)
    except ColumnRoleError as e:
        raise CsvError(f"{where}: {e}") from None
    return roles, describe_roles(decided)


def _read_written_numbers(names, body, columns, decimal_comma: bool, known: dict[str, list[str]]) -> list[str]:
    """Columns with text cells that read as numbers once the spreadsheet's writing is undone (`3 099`, `12 %`,
    `1.234,50 €`) become numbers in place; a note for each. A checkpoint's one-hot columns stay text."""
    notes = []
    for j, values in columns.items():
        if names[j] in known or all(v is not None for v in values):
            continue
        read = read_written_column([r[j] for _, r in body], lambda c: not _is_present(c), decimal_comma)
        if read is not None:
            columns[j] = read[0]
            notes.append(describe_written(names[j], read[1]))
    return notes


def _read_file(path: str, where: str) -> bytes:
    """The CSV file's bytes; CsvError when it is no file or cannot be read."""
    if not Path(path).is_file():
        raise CsvError(f"{where}: no such CSV file")
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CsvError(f"{where}: cannot read: {e.strerror or e}") from None


def _data_rows(text: str, sep: str, where: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows: a header and at least two data rows, else CsvError."""
    try:
        rows = _rows(text, sep)
    except csv.Error as e:
        raise CsvError(f"{where}: cannot read: {e}") from None
    if len(rows) < 3:
        raise CsvError(f"{where}: needs a header row and at least two data rows")
    return rows


def _check_widths(body: list[tuple[int, list[str]]], width: int, where: str) -> None:
    for line, r in body:
        if len(r) != width:
            raise CsvError(f"{where}: line {line} has {len(r)} fields, the header has {width}")


def _text_columns(settings, where, names, body, columns, known: dict[str, list[str]], onehot: set[str],
                  features: list[int]) -> dict[int, list[str]]:
    """The categories of each feature column read as text (`known`: a checkpoint's, `onehot`: named by
    data.columns); CsvError when text is refused."""
    text_columns = {}
    for j in features:
        values = columns[j]
        first_text = next((i for i, v in enumerate(values) if v is None), None)
        if names[j] in known or names[j] in onehot or (first_text is not None and settings.csv_text == "onehot"):
            text_columns[j] = known.get(names[j]) or sorted({r[j].strip() for _, r in body if _is_present(r[j])})
        elif first_text is not None:
            line, r = body[first_text]
            raise CsvError(
                f"{where}: line {line}, column '{names[j]}': {r[j]!r} is not a number "
                "(set data.csv_text = 'onehot' to encode text columns)"
            )
    return text_columns


def _is_present(cell: str) -> bool:
    return cell.strip().lower() not in MISSING


def _label_index(header: list[str], label: str, path: str, sep: str) -> int:
    if label in header:
        return header.index(label)
    hint = ""
    others = [s for s in SEPARATORS.values() if s != sep and any(s in h for h in header)]
    if others:
        shown = "tab" if others[0] == "\t" else others[0]
        hint = f"; the header looks separated by {shown!r}: set data.csv_separator = {shown!r}"
    close = [h for h in header if h.strip().lower() == label.strip().lower()]
    if close:
        hint += f" (did you mean '{close[0]}'?)"
    listed = ", ".join(header) if len(header) > 1 else f"a single one, {header[0]!r}"
    raise CsvError(f"data.label_column = '{label}': not a column of {path}; columns: {listed}{hint}")


def _table(settings, where, names, body, li, features, columns, text_columns, notes) -> Table:
    missing_rows = _missing_rows(body, li, features, columns, text_columns)
    if missing_rows and settings.csv_missing == "error":
        _refuse_missing(where, names, body, min(missing_rows), [li, *features], columns)
    label_missing = {i for i, (_, r) in enumerate(body) if not _is_present(r[li])}
    dropped = missing_rows if settings.csv_missing == "drop" else label_missing
    keep = [i for i in range(len(body)) if i not in dropped]
    if dropped:
        notes.append(f"dropped {len(dropped)} row{'s' * (len(dropped) != 1)} with missing cells")
    elif missing_rows:
        notes.append(f"{len(missing_rows)} rows with missing cells filled with the training mean")
    labels = sorted({body[i][1][li].strip() for i in keep}, key=_label_key)
    if len(labels) < 2:
        raise CsvError(f"{where}: the label column '{settings.label_column}' has a single class")
    index = {v: k for k, v in enumerate(labels)}
    blocks, feature_names = [], []
    for j in features:
        if j in text_columns:
            blocks.append(_one_hot(body, keep, j, text_columns[j]))
            feature_names += [f"{names[j]}={c}" for c in text_columns[j]]
        else:
            blocks.append(torch.tensor([columns[j][i] for i in keep], dtype=torch.float32).unsqueeze(1))
            feature_names.append(names[j])
    x = torch.cat(blocks, dim=1) if blocks else torch.zeros(len(keep), 0)
    y = torch.tensor([index[body[i][1][li].strip()] for i in keep])
    cats = {names[j]: list(text_columns[j]) for j in features if j in text_columns}
    if cats:
        notes.append(f"text columns one-hot encoded: {', '.join(f'{k} ({len(v)})' for k, v in cats.items())}")
    return Table(x, y, labels, feature_names, bool(torch.isnan(x).any()), cats, notes)


def _missing_rows(body, li, features, columns, text_columns) -> set[int]:
    """The rows with a missing cell: an empty label, an empty text cell, a number cell missing or not finite."""
    missing_rows = set()
    for j in features:
        if j in text_columns:
            missing_rows.update(i for i, (_, r) in enumerate(body) if not _is_present(r[j]))
        else:
            missing_rows.update(i for i, v in enumerate(columns[j]) if v is not None and math.isnan(v))
    missing_rows.update(i for i, (_, r) in enumerate(body) if not _is_present(r[li]))
    return missing_rows


def _refuse_missing(where, names, body, i: int, columns_in_order: list[int], columns) -> NoReturn:
    """CsvError naming row i's first missing cell, and the settings that accept it."""
    line, r = body[i]
    j = next(j for j in columns_in_order if not _is_present(r[j]) or j in columns and _nan(columns[j][i]))
    raise CsvError(
        f"{where}: line {line}, column '{names[j]}': {r[j]!r} is missing or not a finite number; "
        "set data.csv_missing = 'drop' (skip such rows) or 'mean' (fill with the training mean)"
    )


def _one_hot(body, keep: list[int], j: int, cats: list[str]) -> torch.Tensor:
    """Column j of the kept rows as one 0/1 column per category; a missing cell is a row of NaN, an unknown one 0s."""
    position = {c: k for k, c in enumerate(cats)}
    block = torch.zeros(len(keep), len(cats))
    for row, i in enumerate(keep):
        cell = body[i][1][j].strip()
        if not _is_present(cell):
            block[row] = math.nan
        elif cell in position:
            block[row, position[cell]] = 1.0
    return block


def _nan(v: float | None) -> bool:
    return v is not None and math.isnan(v)
