"""The language people read: one translation function for every string shown, GNU gettext catalogues behind it.

Every string a person reads goes through `_` (or `ngettext`); a string defined before the language is known
(a table at import time) is marked with `N_` and translated where it is shown. The catalogues are standard
gettext: `engine/locale/<lang>/LC_MESSAGES/trainconsole.po`, compiled to `.mo` beside it and shipped in the
package (`make catalog` extracts, merges and compiles them with Babel; tests/test_catalog.py fails on a
string missing from the French one).

What machines read never goes through here: event names, JSON keys, file names, diagnostic codes and the
prose inside `--json` and the run folder's files stay English, so they are the same in every language.

The language: `[ui] language` or `--lang`, "auto" following the locale as terminal programs do (LANGUAGE,
then LC_ALL, LC_MESSAGES, LANG; a "C" or "POSIX" locale is English). "qps" is a pseudo-locale for tests:
every translated string comes back between ⟦ ⟧, so text that never went through `_` stands out.

The lowest floor: this module imports nothing of the project.
"""

from __future__ import annotations

import gettext
import os
import re
from pathlib import Path
from typing import Mapping

DOMAIN = "trainconsole"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "fr")  # what `[ui] language` accepts besides "auto"
PSEUDO = "qps"
_ENV_ORDER = ("LC_ALL", "LC_MESSAGES", "LANG")

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


class _Pseudo(gettext.NullTranslations):
    """Every string decorated, placeholders kept, so a screen's unmarked text is the undecorated part."""

    def gettext(self, message: str) -> str:
        return f"⟦{message}⟧"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"⟦{msgid1 if n == 1 else msgid2}⟧"


def _(message: str) -> str:
    """`message` in the current language."""
    return _translation.gettext(message)


def N_(message: str) -> str:
    """Mark `message` for the catalogue without translating it yet (a constant read at import time)."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the current language (French says "1,5 epoch" singular too)."""
    return _translation.ngettext(singular, plural, n)


def language() -> str:
    """The language strings are shown in now: "en", "fr" (or the pseudo-locale in tests)."""
    return _language


def _from_locale(value: str) -> str | None:
    """"fr_FR.UTF-8" → "fr"; None for a locale we have no catalogue for."""
    code = re.split(r"[_.@-]", value.strip(), maxsplit=1)[0].lower()
    return code if code in LANGUAGES else None


def choose_language(setting: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """The language `setting` ("auto", "en", "fr") means here; "auto" reads the locale as gettext does."""
    if setting != "auto":
        return setting if setting in (*LANGUAGES, PSEUDO) else "en"
    env = os.environ if environ is None else environ
    locale = next((env[name] for name in _ENV_ORDER if env.get(name)), "")
    if not locale or locale in ("C", "POSIX") or locale.startswith("C."):
        return "en"
    for wanted in env.get("LANGUAGE", "").split(":"):
        if wanted and (code := _from_locale(wanted)):
            return code
    return _from_locale(locale) or "en"


def set_language(setting: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """Show every later string in the language `setting` chooses; returns that language."""
    global _translation, _language
    chosen = choose_language(setting, environ)
    if chosen == PSEUDO:
        _translation = _Pseudo()
    elif chosen == "en":
        _translation = gettext.NullTranslations()
    else:
        _translation = gettext.translation(DOMAIN, LOCALE_DIR, languages=[chosen], fallback=True)
    _language = chosen
    return chosen


def number(value: float, spec: str = "g") -> str:
    """A number for a human-readable line: a decimal comma in French. Never for --json, CSV or the run folder."""
    text = format(value, spec)
    return text.replace(".", ",") if _language == "fr" else text
