"""A table file parsed by Apache Arrow (pyarrow) into columns: numbers as arrays, everything else as text cells.

pyarrow parses CSV in C++ (quoting, separators, decimal commas, NA spellings, encodings) and reads Parquet and
Feather natively; what it cannot know is left to engine.data.csv_reader: the separator and encoding are sniffed
from the file's head here, and text cells (numbers as spreadsheets write them, dates, categories) are judged there.
A CSV file is read block by block (`data.memory_budget_mb` sets the block size) and each block's numbers are
turned into float32 at once, so the parsed text is never all in memory. A block's column types are those Arrow
inferred from the first block: a later cell that does not fit reopens the file with that column read wider.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.settings.config import DataSettings, SettingsError

SEPARATORS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
MISSING = {"", "na", "n/a", "nan", "null", "none", "#n/a", "?", "-nan"}
NULL_SPELLINGS = sorted({s for m in MISSING for s in (m, m.upper(), m.title())})
SNIFF_ROWS = 50
HEAD_BYTES = 1 << 20
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")
_COLUMN_IN_ERROR = re.compile(r"In CSV column #(\d+)")


class CsvError(SettingsError):
    """The table file cannot be read as a table of features and labels."""


@dataclass
class Text:
    """A text column as its distinct cells and each row's index among them: a rule is judged once per distinct
    cell, not once per row."""

    values: list[str]  # the file's own text, "" where missing
    codes: np.ndarray  # int32, one per row

    @classmethod
    def of(cells: type, column: pa.ChunkedArray | pa.Array) -> Text:
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        encoded = pc.dictionary_encode(column)  # a missing cell's index is null (no fill_null: see _present)
        values, indices = encoded.dictionary.to_pylist(), encoded.indices
        codes = _values(indices, np.int32)
        if indices.null_count:
            if "" not in values:
                values.append("")
            codes[~_present(indices)] = values.index("")
        return cells(values, codes)

    @classmethod
    def of_numbers(cells: type, numbers: np.ndarray) -> Text:
        """Numbers written back as text ("" where missing): a Parquet column read as categories or dates."""
        distinct, codes = np.unique(numbers, return_inverse=True)
        return cells(["" if np.isnan(v) else f"{v:g}" for v in distinct.tolist()], codes.astype(np.int32))

    def map(self, rule, dtype) -> np.ndarray:
        """rule(cell) for every row, computed once per distinct cell."""
        return np.array([rule(v) for v in self.values], dtype=dtype)[self.codes]

    def cell(self, i: int) -> str:
        return self.values[self.codes[i]]


@dataclass
class RawTable:
    """The file's columns by position: `numbers` (float32, NaN where missing) or `cells` (text, "" where missing)."""

    names: list[str]
    rows: int
    numbers: dict[int, np.ndarray] = field(default_factory=dict)
    cells: dict[int, Text] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    separator: str = ","
    decimal_comma: bool = False
    row_of: Callable[[int], tuple[int, list[str]] | None] | None = None  # CSV: row -> (line an editor shows, fields)


@dataclass
class Dialect:
    encoding: str  # a Python codec name
    separator: str
    header: list[str]
    notes: list[str]


def table_format(path: str) -> str:
    """csv, parquet or feather, by the file's extension (anything else is read as CSV)."""
    suffix = Path(path).suffix.lower()
    return "parquet" if suffix in PARQUET_SUFFIXES else "feather" if suffix in FEATHER_SUFFIXES else "csv"


def decode(raw: bytes, encoding: str, where: str) -> tuple[str, str | None]:
    """The text of `raw`, and a note when the encoding was a guess worth telling."""
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


def text_rows(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number as an editor shows it, fields) of each non-blank row."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], 1
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((line, row))
        line = reader.line_num + 1
    return rows


def sniff_separator(text: str) -> str:
    """The separator that splits the header and the first rows into the same number of fields, most fields first."""
    head = "\n".join(text.splitlines()[: SNIFF_ROWS + 1])
    best, best_fields = ",", 0
    for sep in SEPARATORS.values():
        try:
            rows = text_rows(head, sep)
        except csv.Error:
            continue
        if not rows:
            continue
        fields = len(rows[0][1])
        if fields >= 2 and all(len(r) == fields for _, r in rows) and fields > best_fields:
            best, best_fields = sep, fields
    return best


def _head(path: str, where: str) -> bytes:
    if not Path(path).is_file():
        raise CsvError(f"{where}: no such CSV file" if table_format(path) == "csv" else f"{where}: no such file")
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError as e:
        raise CsvError(f"{where}: cannot read: {e.strerror or e}") from None


def sniff(settings: DataSettings, where: str) -> Dialect:
    """The encoding, separator and header of the CSV file, from its first MB."""
    head = _head(settings.path, where)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8"  # Arrow skips the mark itself; the header row is skipped anyway
    else:
        encoding = "utf-8" if settings.csv_encoding == "auto" else settings.csv_encoding
    cut = head if len(head) < HEAD_BYTES else head[: head.rfind(b"\n") + 1] or head
    text, note = decode(cut, settings.csv_encoding, where)
    if note:
        encoding = "cp1252"
    sep = SEPARATORS[settings.csv_separator] if settings.csv_separator != "auto" else sniff_separator(text)
    notes = [note] if note else []
    if settings.csv_separator == "auto" and sep != ",":
        notes.append(f"separator {'tab' if sep == chr(9) else repr(sep)} detected")
    try:
        rows = text_rows("\n".join(text.splitlines()[:SNIFF_ROWS + 1]), sep)
    except csv.Error as e:
        raise CsvError(f"{where}: cannot read: {e}") from None
    if not rows:
        raise CsvError(f"{where}: needs a header row and at least two data rows")
    return Dialect(encoding, sep, [h.strip() for h in rows[0][1]], notes)


def read_columnar(path: str, kind: str, where: str, as_text: set[str]) -> RawTable:
    """A Parquet or Feather file: its columns are typed already; those named in `as_text` are read as text."""
    _head(path, where)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.feather as feather

            table = feather.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise CsvError(f"{where}: not a readable {kind} file ({str(e).splitlines()[0] if str(e) else e})") from None
    raw = RawTable([str(n) for n in table.column_names], table.num_rows)
    for j, column in enumerate(table.columns):
        as_string = raw.names[j] in as_text and not pa.types.is_dictionary(column.type)
        add_column(raw, j, column.cast(pa.string()) if as_string else column)
    if raw.rows < 2:
        raise CsvError(f"{where}: needs at least two rows")
    return raw


def add_column(raw: RawTable, j: int, column: pa.ChunkedArray | pa.Array) -> None:
    """Column j into `raw`: numbers as float32 with NaN for missing and infinite cells, anything else as text."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        raw.numbers[j] = to_float32(column)
        return
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())  # dates, times, booleans: their text, judged like any other
    raw.cells[j] = Text.of(column)


def to_float32(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float32, NaN where a cell is missing or not finite."""
    # cast before taking it out of Arrow: a many-chunked column with nulls converts slowly as it is
    values = column.cast(pa.float32(), safe=False)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    array = np.concatenate([_float32_chunk(c) for c in chunks]) if chunks else np.zeros(0, np.float32)
    array[~np.isfinite(array)] = np.nan
    return array


def _float32_chunk(chunk: pa.Array) -> np.ndarray:
    values = _values(chunk, np.float32)
    if chunk.null_count:
        values[~_present(chunk)] = np.nan
    return values


# An array's values and validity are read from its buffers: Arrow's own conversion of an array with nulls, and
# every scalar fill_null makes, import pandas where it is installed: 0.6 s and ~60 MB of a read.
def _values(array: pa.Array, dtype) -> np.ndarray:
    """A fixed-width array's values as a writable NumPy copy (whatever a missing one's slot holds)."""
    n, offset = len(array), array.offset
    data = array.buffers()[1]
    return np.frombuffer(data, dtype, count=offset + n)[offset:].copy() if n else np.zeros(0, dtype)


def _present(array: pa.Array) -> np.ndarray:
    """True where the array holds a value (its validity bitmap, least significant bit first)."""
    n, offset = len(array), array.offset
    validity = array.buffers()[0]
    if validity is None:
        return np.ones(n, bool)
    return np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[offset : offset + n].astype(bool)


def stream_error(e: pa.ArrowException) -> tuple[int | None, str]:
    """The column a conversion error names (None for another error) and the message's first line."""
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    found = _COLUMN_IN_ERROR.search(message)
    return (int(found.group(1)) if found else None), message
