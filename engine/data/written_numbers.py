"""Numbers as spreadsheets write them: `3 099`, `1.234,50 €`, `$1,200`, `12,5 %`.

A column is read as numbers when every present cell reads as one once the writing is undone: thousands grouped by
a space (plain, no-break or narrow no-break), an apostrophe, or the mark the decimal is not (`.` beside a decimal
comma, `,` beside a decimal point); a percent sign (the value is divided by 100); a currency sign before or after.
The whole column decides, so `1.234` is one thousand two hundred and thirty-four only where the column's other
cells show `.` grouping thousands. What was undone is said in one note per column.
"""

from __future__ import annotations

import math
import re

CURRENCIES = "$€£¥₹₽₩¢₺₪₫"
SPACES = " \u00a0\u202f"
MINUS = "-\u2212"  # the hyphen-minus and the minus sign


def _pattern(group: str, decimal: str) -> re.Pattern:
    g, d = re.escape(group), re.escape(decimal)
    return re.compile(rf"^[{MINUS}+]?(\d{{1,3}}(?:{g}\d{{3}})+|\d+)(?:{d}\d+)?$")


def _strip_signs(cell: str) -> tuple[str, set[str]]:
    """The cell without a currency sign at either end and a trailing percent sign, and which were there."""
    v, kinds = cell.strip().strip(SPACES), set()
    if not v:  # "" is in every string: the checks below need a character
        return v, kinds
    if v[0] in CURRENCIES or v[-1] in CURRENCIES:
        v, kinds = v.strip(CURRENCIES).strip(SPACES), kinds | {"currency"}
    if v.endswith("%"):
        v, kinds = v[:-1].strip(SPACES), kinds | {"percent"}
    if len(v) > 1 and v[0] in MINUS and v[1] in CURRENCIES:  # -€5
        v = v[0] + v[2:].lstrip(SPACES)
        kinds.add("currency")
    return v, kinds


def read_written(cell: str, decimal_comma: bool) -> tuple[float, set[str]] | None:
    """The cell's value and what writing was undone ("grouped", "currency", "percent"), or None if not a number."""
    v, kinds = _strip_signs(cell)
    decimal = "," if decimal_comma else "."
    for group in (*SPACES, "'", "." if decimal_comma else ","):
        if group in v and _pattern(group, decimal).match(v):
            v, kinds = v.replace(group, ""), kinds | {"grouped"}
            break
    else:
        if not _pattern("\x00", decimal).match(v):
            return None
    value = float(v.replace(decimal, ".").replace("\u2212", "-"))
    if "percent" in kinds:
        value /= 100
    return (value, kinds) if math.isfinite(value) else None


def read_written_column(cells: list[str], is_missing, decimal_comma: bool) -> tuple[list[float], set[str]] | None:
    """Every present cell read as written (missing ones NaN), and what was undone; None when one is text.

    The file's decimal mark is tried first, then the other: `1.234,50` in a comma-separated file is still read."""
    for decimal_comma in (decimal_comma, not decimal_comma):
        values, kinds = [], set()
        for cell in cells:
            if is_missing(cell):
                values.append(math.nan)
                continue
            read = read_written(cell, decimal_comma)
            if read is None:
                break
            values.append(read[0])
            kinds |= read[1]
        else:
            if kinds:
                return values, kinds
    return None


def describe(column: str, kinds: set[str]) -> str:
    words = {"grouped": "grouped thousands", "currency": "currency signs", "percent": "percent signs (÷ 100)"}
    done = ", ".join(words[k] for k in ("grouped", "currency", "percent") if k in kinds)
    return f"column '{column}' read as numbers ({done})"
