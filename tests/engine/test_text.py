"""engine.io.text: whatever a file holds, what reaches the terminal holds no control character."""

from __future__ import annotations

import io
import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from engine.io.text import TerminalStream, json_text, printable

UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")
# every code point, surrogates included (an undecodable file name), weighted towards the dangerous ones
hostile_text = st.text(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x1b", "\x07", "\x9b", "\x9d", "\x7f", "\u202e", "\u2066", "\u2028", "\udcff", "\n", "\t"]),
    )
)


def unsafe(text: str, allowed: str = "") -> set[str]:
    return {c for c in text if c not in allowed and unicodedata.category(c) in UNSAFE_CATEGORIES}


@given(hostile_text)
def test_printable_leaves_no_control_character(text):
    shown = printable(text)
    assert unsafe(shown) == set() and shown.isprintable()
    shown.encode("utf-8")  # no lone surrogate left (it would raise here): print() cannot fail on it
    assert printable(shown) == shown


@given(hostile_text)
def test_printable_keeps_only_the_lines_and_tabs_it_is_told_to(text):
    shown = printable(text, keep="\n\t")
    assert unsafe(shown, allowed="\n\t") == set()
    assert shown.count("\n") == text.count("\n") and shown.count("\t") == text.count("\t")


@given(st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))))
def test_printable_text_is_shown_as_it_is(text):
    if text.isprintable():
        assert printable(text) == text


def test_escapes_read_as_python_writes_them():
    assert printable("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert printable("\x9b2J \u202eevil \U000e0041 x\ny\tz") == "\\x9b2J \\u202eevil \\U000e0041 x\\ny\\tz"
    assert printable("[/bold] $x^2$ é 漢") == "[/bold] $x^2$ é 漢"


@given(st.recursive(st.none() | st.booleans() | st.integers() | hostile_text, lambda inner: st.lists(inner)
                    | st.dictionaries(hostile_text, inner), max_leaves=8))  # fmt: skip
def test_json_text_is_the_same_json_with_nothing_printable_would_change(value):
    for ensure_ascii in (True, False):
        encoded = json_text(json.dumps(value, ensure_ascii=ensure_ascii))
        assert json.loads(encoded) == value
        assert printable(encoded, keep="\n\t") == encoded


@given(hostile_text)
def test_a_terminal_stream_writes_only_printable_text_and_the_programs_own_controls(text):
    out = io.StringIO()
    stream = TerminalStream.around(out)
    assert TerminalStream.around(stream) is stream
    print(text, file=stream)
    stream.write_control("\r\x1b[K")
    written = out.getvalue()
    assert written.endswith("\n\r\x1b[K")
    assert unsafe(written[: -len("\r\x1b[K")], allowed="\n\t") == set()
