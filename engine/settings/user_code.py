"""User code named in settings (`package.module:name` in `data.dataset`, `model.name`): where it comes from, and when.

Two rules keep a file from elsewhere from running code:

- Settings read from a checkpoint or a run folder are not the user's: an
  import path they name is refused (`check_untrusted`) unless the user named
  that same path themselves, in their own settings, with `--set`, or with
  `--allow-import`.
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

from engine.settings.config import Settings
from engine.settings.rules import SettingsError, is_import_path

IMPORT_KEYS = ("data.dataset", "model.name")

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


def check_untrusted(settings: Settings, source: str, allowed: Collection[str] = ()) -> Settings:
    """Refuse settings from a checkpoint or run folder that name code the user has not allowed; else returns them."""
    for key, value in zip(IMPORT_KEYS, (settings.data.dataset, settings.model.name)):
        if is_import_path(value) and value not in allowed:
            raise UntrustedCode(
                f"{source}: refused {key} = '{value}': settings from a checkpoint or run folder "
                "never import code on their own; "
                f"if you trust it, pass --allow-import {value}"
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
