"""What each column of a table is for: a feature, text to one-hot encode, a date, or nothing to learn from.

Left alone, a column of sample identifiers or free comments becomes hundreds of one-hot columns the model
overfits, and a date column thousands of categories. A text column is therefore judged before it is encoded:
- a date (every present cell parses in one format) becomes its year, month and day of the week;
- identifiers and free text (distinct values for at least IDENTIFIER_SHARE of the present cells) are dropped;
- past ONEHOT_MAX categories, one-hot encoding waits for the user's word.
`data.columns` gives a column its role by name (feature, onehot, date or drop) and overrides all of this. The
roles decided are kept with the checkpoint, so evaluating another file reads its columns the same way.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable

ROLES = ("feature", "onehot", "date", "drop")
IDENTIFIER_SHARE = 0.9
IDENTIFIER_MIN_ROWS = 20  # below it, few distinct values say nothing
ONEHOT_MAX = 50
DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d",
    "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S%z",
)
DATE_PARTS = ("year", "month", "weekday")


class ColumnRoleError(ValueError):
    """A column's role cannot be what the settings or the data ask."""


def date_format(cells: list[str]) -> str | None:
    """The one format every cell parses in (the first that does, day first before month first), or None."""
    if not cells:
        return None
    for fmt in DATE_FORMATS:
        try:
            for cell in cells:
                datetime.datetime.strptime(cell, fmt)
        except ValueError:
            continue
        return fmt
    return None


def date_parts(cells: list[str], fmt: str, is_missing: Callable[[str], bool]) -> list[list[float]]:
    """Year, month and day of the week (Monday 0) of each cell, NaN for a missing one."""
    rows = []
    for cell in cells:
        if is_missing(cell):
            rows.append([math.nan] * 3)
            continue
        try:
            d = datetime.datetime.strptime(cell.strip(), fmt)
        except ValueError:  # another file evaluated with the checkpoint's format: its cell is missing here
            rows.append([math.nan] * 3)
            continue
        rows.append([float(d.year), float(d.month), float(d.weekday())])
    return rows


def auto_role(name: str, present: list[str], onehot_allowed: bool) -> tuple[str, str]:
    """A text column's role and why, from its present cells: date, drop (identifiers, free text) or onehot.

    Raises ColumnRoleError when one-hot encoding would need the user's word, "error" when text is refused."""
    if date_format(present):
        return "date", "year, month, day of the week"
    distinct = len(set(present))
    if len(present) >= IDENTIFIER_MIN_ROWS and distinct >= IDENTIFIER_SHARE * len(present):
        return "drop", f"identifiers or free text: {distinct:,} distinct values in {len(present):,} rows"
    if not onehot_allowed:
        return "error", ""
    if distinct > ONEHOT_MAX:
        raise ColumnRoleError(
            f"column '{name}' holds {distinct:,} categories (more than {ONEHOT_MAX}): set data.columns = "
            f"{{{_key(name)} = \"onehot\"}} to encode them all, or \"drop\""
        )
    return "onehot", ""


def check_given(given: dict, names: list[str], label: str) -> dict[str, str]:
    """data.columns checked against the file: known columns, known roles, not the label."""
    for name, role in given.items():
        if name not in names:
            raise ColumnRoleError(f"data.columns: no column '{name}' in the file; columns: {', '.join(names)}")
        if role not in ROLES:
            raise ColumnRoleError(f"data.columns.{_key(name)} = {role!r}: expected one of {', '.join(ROLES)}")
        if name == label:
            raise ColumnRoleError(f"data.columns.{_key(name)}: '{name}' is the label column (data.label_column)")
    return dict(given)


def describe(decided: dict[str, tuple[str, str]]) -> str | None:
    """One line for the columns dropped or turned into date parts automatically, and how to choose otherwise."""
    if not decided:
        return None
    said = "; ".join(f"'{name}' {'dropped' if role == 'drop' else 'as a date'} ({why})" for name, (role, why)
                     in decided.items())
    return f"columns: {said}; set data.columns = {{name = \"feature\" | \"onehot\" | \"date\" | \"drop\"}} to choose"


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() and name.isascii() else f'"{name}"'


def apply_roles(names: list[str], body: list, columns: dict, features: list[int], roles: dict[str, str],
                is_missing: Callable[[str], bool]) -> tuple[list[int], set[str]]:
    """Drop and date columns applied in place: the feature columns left, and the names to one-hot encode.

    A date column's parts are appended as new columns (to `names`, each row of `body` and `columns`), in its place
    among the features; their cells are written back as text so a missing one is named like any other."""
    kept, onehot = [], {n for n, r in roles.items() if r == "onehot"}
    for j in features:
        role = roles.get(names[j], "feature")
        if role == "date":
            cells = [r[j] for _, r in body]
            fmt = date_format([c.strip() for c in cells if not is_missing(c)])
            if fmt is None:
                raise ColumnRoleError(f"column '{names[j]}': not dates in one format (data.columns says date)")
            parts = date_parts(cells, fmt, is_missing)
            for k, part in enumerate(DATE_PARTS):
                names.append(f"{names[j]}.{part}")
                new = len(names) - 1
                columns[new] = [p[k] for p in parts]
                for (_, r), p in zip(body, parts):
                    r.append("" if math.isnan(p[k]) else f"{p[k]:g}")
                kept.append(new)
        elif role != "drop":
            kept.append(j)
    return kept, onehot
