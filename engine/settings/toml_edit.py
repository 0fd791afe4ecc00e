"""Edit an existing settings.toml in place, keeping the user's comments, key order and layout.

`engine.settings.config` decides which values changed; this module only writes them
into the TOML text with tomlkit: a changed value replaces the old one where it
stands (its inline comment stays), a new key goes after the last key of its
table, a new section at the end of the file, a renamed key where its old name
stood. Nothing else the user wrote is removed but a key dropped from an options table.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, InlineTable, Item, Table


def update_toml(text: str, changes: dict[str, dict[str, Any]]) -> str:
    """`text` with each `changes[section][key]` written in, everything else as it was.

    Raises ValueError when tomlkit cannot read or edit the text.
    """
    try:
        doc = tomlkit.parse(text)
        for section, values in changes.items():
            table = doc.get(section)
            if not isinstance(table, (Table, InlineTable)):  # missing, or not a table (invalid anyway)
                table = tomlkit.table()
                doc[section] = table
            elif isinstance(table, Table) and table.is_super_table():
                # [data] implied by [data.options]: tomlkit gave it that header's comment;
                # a written [data] must not repeat it
                table.trivia.comment_ws = table.trivia.comment = ""
            for name, value in values.items():
                _set(table, name, value)
        return tomlkit.dumps(doc)
    except TOMLKitError as e:
        raise ValueError(f"tomlkit: {e}") from e


def rename_keys(text: str, renamed: dict[str, dict[str, tuple[str, Any]]]) -> str:
    """`text` with each `renamed[section][old]` = (new key, value) written where the old key stood.

    Raises ValueError when tomlkit cannot read or edit the text.
    """
    if not renamed:
        return text
    try:
        doc = tomlkit.parse(text)
        for section, keys in renamed.items():
            table = doc.get(section)
            for old, (new, value) in keys.items():
                if isinstance(table, (Table, InlineTable)) and old in table:
                    _rename(table, old, new, _item(value))
        return tomlkit.dumps(doc)
    except TOMLKitError as e:
        raise ValueError(f"tomlkit: {e}") from e


def _set(table: Table | InlineTable, name: str, value: Any) -> None:
    current = table.get(name)
    if isinstance(value, dict) and isinstance(current, (Table, InlineTable)):
        _merge(current, value)  # keeps a [model.options] sub-table and the comments inside it
    elif name in table:
        table[name] = _item(value)  # tomlkit keeps the replaced item's indent and inline comment
    else:
        _add(table, name, _item(value))


def _rename(table: Table | InlineTable, old: str, new: str, item: Item) -> None:
    """The new key where the old one stood (tomlkit's private `_replace`, guarded as in _add); else at the end."""
    container = table.value
    if isinstance(table, Table) and hasattr(container, "_replace"):
        item.trivia.indent = container.item(old).trivia.indent
        container._replace(old, new, item)
        return
    del table[old]
    table[new] = item


def _merge(table: Table | InlineTable, values: dict[str, Any]) -> None:
    for name in [n for n in table if n not in values]:
        del table[name]
    for name, value in values.items():
        current = table.get(name)
        plain = current.unwrap() if isinstance(current, Item) else current
        if name not in table or type(plain) is not type(value) or plain != value:
            _set(table, name, value)


def _add(table: Table | InlineTable, name: str, item: Item) -> None:
    """A new key after the table's last key, not after the comments and blank lines that close it.

    Plain `table[name] = item` appends after those, so the new line would sit under
    a comment about the next section. tomlkit has no public insert, hence the
    guarded private call (`_insert_at`; tomlkit 0.15 has no `_insert_after`, used
    before); without it the key is appended, still valid TOML (a test says so).
    """
    container, last = table.value, None
    if isinstance(table, Table) and not table.is_super_table():
        body = container.body
        keys = [i for i, (k, it) in enumerate(body) if k is not None and not isinstance(it, (Table, AoT))]
        last = keys[-1] if keys and keys[-1] + 1 < len(body) else None  # a key already last: a plain append
    if last is None or not hasattr(container, "_insert_at"):
        table[name] = item
        return
    item.trivia.indent = container.body[last][1].trivia.indent
    container._insert_at(last + 1, name, item)


def _item(value: Any) -> Item:
    """Tables as inline tables (as the template writes them), never as [section.key] headers."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for name, v in value.items():
            table[name] = _item(v)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_item(v) for v in value)
        return array
    return tomlkit.item(value)
