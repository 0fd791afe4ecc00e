"""Every function of engine/ reads on one screen: at most 50 lines (ruff's C901 and PLR0915, configured in
pyproject.toml, hold complexity and statements). The speed-ups of engine/training/accel are the exception:
hand-written kernels, measured and tested against the plain PyTorch they replace."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 50
EXEMPT = ROOT / "engine" / "training" / "accel"


def long_functions(paths) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{path}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_of_the_engine_is_longer_than_a_screen():
    paths = [p for p in (ROOT / "engine").rglob("*.py") if EXEMPT not in p.parents]
    assert len(paths) > 50
    assert long_functions(paths) == []


def test_the_check_finds_a_long_function(tmp_path):
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * MAX_LINES)
    assert long_functions([long]) and not long_functions([ROOT / "engine" / "io" / "__init__.py"])


def test_the_trainer_reads_in_under_300_lines():
    """Issue 22's bound: the loop's owner stays small enough to read; policies, saving and the session live apart."""
    assert len((ROOT / "engine" / "training" / "trainer.py").read_text(encoding="utf-8").splitlines()) < 300
