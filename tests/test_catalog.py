"""The translation machinery (engine/io/i18n.py) and the French catalogue's completeness.

A string marked for translation (_, N_, ngettext) anywhere in engine/ or tui/ must have a French translation in
engine/locale/fr/LC_MESSAGES/trainconsole.po, and the shipped .mo must be that .po compiled (`make catalog`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.io import i18n

babel = pytest.importorskip("babel", reason="Babel (a test dependency, `pip install -e .[test]`) reads the catalogues")
from babel.messages.extract import extract_from_dir  # noqa: E402
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "engine/locale/fr/LC_MESSAGES/trainconsole.po"
MO = PO.with_suffix(".mo")


@pytest.fixture(autouse=True)
def english_again():
    yield
    i18n.set_language("en")


def _french():
    with PO.open("rb") as f:
        return read_po(f, locale="fr")


def _marked() -> dict[str, str]:
    """Every string marked in the sources: its msgid (singular) and where it is."""
    found = {}
    for package in ("engine", "tui"):
        for filename, line, message, _comments, _context in extract_from_dir(ROOT / package):
            msgid = message[0] if isinstance(message, tuple) else message
            found.setdefault(msgid, f"{package}/{filename}:{line}")
    return found


def test_every_marked_string_has_a_french_translation():
    catalog = _french()
    missing = [f"{where}: {msgid!r}" for msgid, where in _marked().items()
               if not (catalog.get(msgid) and catalog.get(msgid).string and not catalog.get(msgid).fuzzy)]
    assert not missing, "not translated in fr.po (run `make catalog`, then translate):\n" + "\n".join(missing)


def _messages(catalog) -> dict:
    return {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}


def test_the_shipped_mo_is_the_po_compiled():
    with MO.open("rb") as f:
        shipped = read_mo(f)
    assert _messages(shipped) == _messages(_french()), "engine/locale/fr/.../trainconsole.mo is stale: `make catalog`"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "fr_CA.UTF-8"}, "fr"),  # LC_ALL wins over LANG
        ({"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),
        ({"LANG": "C"}, "en"),
        ({"LANG": "C.UTF-8", "LANGUAGE": "fr"}, "en"),  # gettext ignores LANGUAGE in the C locale
        ({"LANG": "de_DE.UTF-8", "LANGUAGE": "de:fr"}, "fr"),  # the first language with a catalogue
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_auto_follows_the_locale_as_terminal_programs_do(environ, expected):
    assert i18n.choose_language("auto", environ) == expected


def test_a_chosen_language_ignores_the_locale():
    assert i18n.choose_language("en", {"LANG": "fr_FR.UTF-8"}) == "en"
    assert i18n.choose_language("fr", {"LANG": "C"}) == "fr"


def test_the_pseudo_locale_decorates_every_translated_string():
    i18n.set_language(i18n.PSEUDO)
    assert i18n._("Epoch {epoch}") == "⟦Epoch {epoch}⟧"
    assert i18n.ngettext("{n} epoch", "{n} epochs", 2) == "⟦{n} epochs⟧"


def test_numbers_take_a_decimal_comma_in_french_lines_only():
    i18n.set_language("fr")
    assert i18n.number(0.25, ".2f") == "0,25"
    i18n.set_language("en")
    assert i18n.number(0.25, ".2f") == "0.25"
