"""User code named in settings (`package.module:name` in `data.dataset`, `model.name`): where it comes from, and when.

Two rules keep a file from elsewhere from running code:

- Settings read from a checkpoint or a run folder are not the user's: an
  import path they name is refused (`check_untrusted`) unless the user named
  that same path themselves, in their own settings, with `--set`, or with
  `--allow-import`, or signed those settings with their own key
  (engine.io.signing): a run they created, or one they passed to
  `trainconsole trust`. A signature allows exactly the paths of the settings
  it covers; editing any setting breaks it.
- User modules are imported from the folder of the user's settings file,
  searched after the installed packages (`import_object`): a `tomlkit.py`
  lying there can never stand in for a dependency, and the current folder is
  not put on `sys.path` at all.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Collection

from engine.io.signing import KeyRefused, sign, verify
from engine.settings.config import Settings
from engine.settings.rules import SettingsError, is_import_path

IMPORT_KEYS = ("data.dataset", "model.name")
SIGNED_SETTINGS = "trainconsole run settings v1"  # what a run's signature is for (engine.io.signing's purpose)

_code_folder: Path | None = None  # None: the current folder, as it is when the import happens


class UntrustedCode(SettingsError):
    """Settings from a checkpoint or a run folder name code the user did not name."""


def set_code_folder(folder: str | Path | None) -> None:
    """Where user modules are looked for: the folder of the settings file (None: the current folder)."""
    global _code_folder
    _code_folder = Path(folder).resolve() if folder is not None else None


def code_folder() -> Path:
    return _code_folder if _code_folder is not None else Path.cwd()


def named_imports(settings: Settings) -> set[str]:
    """The import paths the settings name."""
    values = (settings.data.dataset, settings.model.name)
    return {v for v in values if is_import_path(v)}


def sign_settings(stored: dict[str, Any]) -> tuple[str | None, str]:
    """This user's signature of a run's settings as a run folder or checkpoint stores them (the plain tables,
    before validation: a signature keeps checking when a later version adds a setting); (None, why) when the key
    is not safe to use."""
    try:
        return sign(SIGNED_SETTINGS, stored), ""
    except KeyRefused as e:
        return None, str(e)


def signed_imports(settings: Settings, signature: object, stored: dict[str, Any]) -> tuple[set[str], str]:
    """The import paths `settings` name when `stored` is what this user signed; none when unsigned, edited or
    another key's, with the reason when it is the key that cannot be used."""
    if signature is None:
        return set(), ""
    try:
        return (named_imports(settings), "") if verify(SIGNED_SETTINGS, stored, signature) else (set(), "")
    except KeyRefused as e:
        return set(), f" (your own runs are not recognised: {e})"


def check_untrusted(
    settings: Settings,
    source: str,
    allowed: Collection[str] = (),
    signature: object = None,
    signed: Settings | None = None,
    stored: dict[str, Any] | None = None,
) -> Settings:
    """Refuse settings from a checkpoint or run folder that name code the user has not allowed; else returns them.

    `signature`: the one stored with them, of `stored` (the tables as stored, before validation); `signed`: the
    settings those read as, when they are not `settings` (a resume's `--set` overrides are the user's own, and
    allowed through `allowed`).
    """
    named = zip(IMPORT_KEYS, (settings.data.dataset, settings.model.name))
    refused = [(key, value) for key, value in named if is_import_path(value) and value not in allowed]
    if not refused:
        return settings  # the key is not even read
    signed = signed if signed is not None else settings
    trusted, why = signed_imports(signed, signature, stored if stored is not None else signed.to_dict())
    target = str(Path(source).parent) if Path(source).name == "settings.toml" else source
    for key, value in refused:
        if value not in trusted:
            raise UntrustedCode(
                f"{source}: refused {key} = '{value}': settings from a checkpoint or run folder "
                "never import code on their own unless you signed them; "
                f"if you trust it, pass --allow-import {value} or sign it with `trainconsole trust {target}`{why}"
            )
    return settings


def _search_code_folder() -> Path:
    """The code folder at the end of sys.path: installed packages are always found first.

    It stays there, so that user code that imports its own helpers when it is called (not only when it is
    imported) finds them.
    """
    folder = code_folder()
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return folder


def import_object(path: str, what: str, key: str) -> Any:
    """`package.module:name` → the object, or a SettingsError naming the setting and where the module was looked for."""
    module_name, _, attr = path.partition(":")
    folder = _search_code_folder()
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise SettingsError(
            f"{key} = '{path}': cannot import module '{module_name}' "
            f"(looked in the installed packages, then in {folder}, "
            f"the settings file's folder): {type(e).__name__}: {e}"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SettingsError(f"{key} = '{path}': module '{module_name}' has no {what} '{attr}'") from None


def call_with_options(factory: Any, options: dict[str, Any], given: dict[str, Any], key: str) -> Any:
    """Call a user factory with the options, adding `given` values it accepts (in_shape, num_classes, ...)."""
    try:
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, False
    kwargs = {k: v for k, v in given.items() if takes_any or k in params}
    kwargs.update(options)
    name = getattr(factory, "__name__", factory)
    try:
        return factory(**kwargs)
    except SettingsError:
        raise
    except TypeError as e:
        raise SettingsError(f"{key}: calling {name} failed: {e}") from None
    except Exception as e:  # the user's code cannot be built from these settings: one line, no traceback
        raise SettingsError(f"{key}: {name}({', '.join(kwargs)}) raised {type(e).__name__}: {e}") from None
