"""A table file into a RawTable (engine.data.table_reader): CSV through pyarrow.csv, whole or block by block."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from functools import reduce
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from engine.data.table_reader import NULL_SPELLINGS, CsvError, Dialect, RawTable, add_column, decode, read_columnar
from engine.data.table_reader import sniff, stream_error, table_format, text_rows, to_float32
from engine.settings.config import DataSettings

MIN_BLOCK = 1 << 16
MAX_BLOCK = 16 << 20
WHOLE_FACTOR = 8  # a file read whole: its text, Arrow's columns and the float32 result, with room to spare


def block_size(memory_budget_mb: int) -> int:
    """Bytes of text parsed at once: a sixteenth of the budget leaves room for its parsed columns and the result."""
    return max(MIN_BLOCK, min(MAX_BLOCK, (memory_budget_mb << 20) // 16))


def read_raw(settings: DataSettings, where: str, as_text: set[str]) -> RawTable:
    """The table file's columns (those named in `as_text` kept as the file's text); CsvError with one line when
    it cannot be read."""
    kind = table_format(settings.path)
    if kind != "csv":
        return read_columnar(settings.path, kind, where, as_text)
    dialect = sniff(settings, where)
    decimal_comma = settings.csv_decimal == "," or (settings.csv_decimal == "auto" and dialect.separator != ",")
    raw = read_csv_columns(settings, dialect, where, as_text, decimal_comma)
    raw.notes[:0] = dialect.notes
    raw.separator, raw.decimal_comma = dialect.separator, decimal_comma
    return raw


def read_csv_columns(settings: DataSettings, dialect: Dialect, where: str, as_text: set[str],
                     decimal_comma: bool) -> RawTable:
    """The CSV file's columns, those named in `as_text` as text; a column whose later cells do not fit the type
    inferred from the first block is read again wider (int64 to float64, then to text)."""
    names = dialect.header
    forced: dict[str, pa.DataType] = {f"c{j}": pa.string() for j, name in enumerate(names) if name in as_text}
    encoding, notes = dialect.encoding, []
    for _ in range(2 * len(names) + 2):
        try:
            raw = _stream(settings, dialect, encoding, forced, decimal_comma)
            raw.notes += notes
            raw.row_of = _row_finder(settings.path, encoding, dialect.separator)
            if raw.rows < 2:
                raise CsvError(f"{where}: needs a header row and at least two data rows")
            return raw
        except pa.ArrowInvalid as e:
            column, message = stream_error(e)
            if "UTF8" in message and encoding == "utf-8" and settings.csv_encoding == "auto":
                encoding, notes = "cp1252", ["read as Windows-1252 (not UTF-8)"]
                continue
            if "UTF8" in message:
                raise CsvError(f"{where}: not {encoding} text; set data.csv_encoding") from None
            if column is None or column >= len(names):
                _refuse_unparsed(settings.path, encoding, dialect, where, message)
            key = f"c{column}"
            if forced.get(key) == pa.string():
                raise CsvError(f"{where}: cannot read column '{names[column]}': {message}") from None
            forced[key] = pa.float64() if key not in forced and "to int64" in message else pa.string()
    raise CsvError(f"{where}: cannot settle the columns' types")


def _stream(settings: DataSettings, dialect: Dialect, encoding: str, forced: dict, decimal_comma: bool) -> RawTable:
    width = len(dialect.header)
    read = pacsv.ReadOptions(
        column_names=[f"c{j}" for j in range(width)], skip_rows=1, encoding="utf8" if encoding == "utf-8" else encoding,
    )
    parse = pacsv.ParseOptions(delimiter=dialect.separator, newlines_in_values=_has_quotes(settings.path))
    convert = pacsv.ConvertOptions(
        column_types=forced, null_values=NULL_SPELLINGS, strings_can_be_null=True, quoted_strings_can_be_null=True,
        decimal_point="," if decimal_comma else ".", timestamp_parsers=[], true_values=[], false_values=[],
    )
    numbers: dict[int, list[np.ndarray]] = {}
    texts: dict[int, list[pa.Array]] = {}
    rows = 0
    for batch in _batches(settings, read, parse, convert):
        batch = _without_blank_rows(batch)
        rows += batch.num_rows
        for j, column in enumerate(batch.columns):
            if _is_number(column.type):
                numbers.setdefault(j, []).append(to_float32(column))
            else:
                texts.setdefault(j, []).append(column)
    raw = RawTable(list(dialect.header), rows)
    for j in range(width):
        if j in texts:
            parts = texts[j]
            add_column(raw, j, parts[0] if len(parts) == 1 else pa.chunked_array(parts, type=parts[0].type))
        else:
            parts = numbers.pop(j, [])  # each column's blocks freed once joined: one column's worth twice at most
            raw.numbers[j] = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            del parts
    return raw


def _batches(settings: DataSettings, read, parse, convert) -> Iterator[pa.RecordBatch | pa.Table]:
    """The file as one table, parsed whole on every core, when it fits the budget several times over; else its
    record batches, streamed block by block."""
    if Path(settings.path).stat().st_size * WHOLE_FACTOR <= settings.memory_budget_mb << 20:
        yield pacsv.read_csv(settings.path, read_options=read, parse_options=parse, convert_options=convert)
        return
    read.block_size = block_size(settings.memory_budget_mb)  # whole, Arrow's own smaller blocks keep every core busy
    with pacsv.open_csv(settings.path, read_options=read, parse_options=parse, convert_options=convert) as reader:
        yield from reader


def _has_quotes(path: str) -> bool:
    """Whether the file's rows after the header hold a quote character, so a value may hold a newline. Arrow splits
    rows without one into blocks at any newline and parses them on every core; with quotes it scans them in order.
    (A quoted header, as many exports write, is read apart: skip_rows.)"""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return view.find(b'"', view.find(b"\n") + 1) >= 0
    except (OSError, ValueError):  # an empty file cannot be mapped; a pipe neither: the careful reading
        return True


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _without_blank_rows(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """The batch without rows whose every cell is missing (the old reader skipped blank rows as csv does)."""
    if batch.num_rows == 0 or batch.num_columns == 0:
        return batch
    blank = reduce(pc.and_, (pc.is_null(c) for c in batch.columns))
    return batch.filter(pc.invert(blank)) if pc.any(blank).as_py() else batch


def _text(path: str, encoding: str, where: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CsvError(f"{where}: cannot read: {e.strerror or e}") from None
    return decode(raw, "auto" if encoding in ("utf-8", "cp1252") else encoding, where)[0]


def _row_finder(path: str, encoding: str, separator: str):
    """row index -> (the line an editor shows it on, its fields): the file is read again by Python's csv module,
    only when an error must name a line and show a cell as written."""
    rows: list[tuple[int, list[str]]] = []

    def row_of(i: int) -> tuple[int, list[str]] | None:
        if not rows:
            try:
                rows.extend(text_rows(_text(path, encoding, "data.path"), separator)[1:])
            except (CsvError, ValueError):
                return None
        return rows[i] if 0 <= i < len(rows) else None

    return row_of


def _refuse_unparsed(path: str, encoding: str, dialect: Dialect, where: str, message: str):
    """CsvError naming the first row whose width is not the header's, else pyarrow's own first line."""
    try:
        rows = text_rows(_text(path, encoding, where), dialect.separator)
    except ValueError:
        rows = []
    width = len(dialect.header)
    for line, r in rows[1:]:
        if len(r) != width:
            raise CsvError(f"{where}: line {line} has {len(r)} fields, the header has {width}")
    raise CsvError(f"{where}: cannot read: {message}")
