"""The settings floor imports nothing above it (data, models, training, ...) and no torch: its names are its own."""

import ast
import subprocess
import sys
from pathlib import Path

from engine.data import registry as data_registry
from engine.models import registry as models_registry
from engine.settings import names
from engine.settings.config import DATASETS, MODELS

SETTINGS = Path(__file__).resolve().parents[2] / "engine" / "settings"


def _engine_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "engine"}


def test_settings_import_only_settings_and_io():
    above = {
        f"{path.name}: {name}"
        for path in SETTINGS.glob("*.py")
        for name in _engine_imports(path)
        if not name.startswith(("engine.settings", "engine.io"))
    }
    assert not above, "engine/settings imports a floor above it"


def test_loading_settings_imports_no_torch_and_no_floor_above():
    code = (
        "import sys; from engine.settings.config import load_settings; load_settings(None, ['model.name=cnn']); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('engine.data', 'engine.models'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_registries_load_the_names_the_settings_accept():
    assert data_registry.BUILTIN_DATASETS is names.BUILTIN_DATASETS and tuple(names.BUILTIN_DATASETS) == DATASETS
    assert models_registry.BUILTIN_MODELS is names.BUILTIN_MODELS and tuple(names.BUILTIN_MODELS) == MODELS
    assert callable(data_registry.builtin_loader("digits")) and callable(models_registry.builtin_builder("cnn"))
