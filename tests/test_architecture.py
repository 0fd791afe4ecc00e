"""The arrows point one way: no import cycle in engine or tui (lazy imports inside functions count), no engine module
imports a floor above its own, and engine never imports tui, textual or plotext."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "tui")
UI_ONLY = ("tui", "textual", "textual_plotext", "plotext")
# engine's floors, lowest first (docs/architecture.md): a module imports its own floor and those below, never one
# above. Each names packages (every module in them) and root modules; tui stands above them all.
FLOORS = (
    ("io", ("engine.io",)),  # atomic files, text safety
    ("settings", ("engine.settings",)),
    # the shared vocabulary stands here: device reads the settings; events and listeners are what training emits
    ("data, models", ("engine.data", "engine.models", "engine.device", "engine.events", "engine.listeners")),
    ("training", ("engine.training",)),
    ("runs", ("engine.runs",)),
    ("outputs", ("engine.outputs",)),
    # the ways in: the command line, and the Python API's Run (a Trainer with its run folder and writers)
    # and sweeps, whose trials are runs as the command line trains them
    ("cli", ("engine.cli", "engine.__main__", "engine.api", "engine.sweep")),
)


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of both packages."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_in(path: Path, name: str, modules: dict[str, Path]) -> set[tuple[int, str]]:
    """(line, module) of every import in `path`, anywhere in it (top level or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add((node.lineno, submodule if submodule in modules else base))
    return found


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports."""
    return {target for _, target in imports_in(path, name, modules)}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def floor_of(module: str) -> int | None:
    """The index in FLOORS of the floor `module` stands on; None: on none."""
    if module == "engine":  # the package itself: a docstring and the version
        return 0
    for i, (_, names) in enumerate(FLOORS):
        if any(module == held or module.startswith(held + ".") for held in names):
            return i
    return None


def upward_imports(imports: dict[str, set[tuple[int, str]]]) -> list[str]:
    """One line for each import of a module on a higher floor than the importer's: module, line, both floors."""
    found = []
    for name, lines in sorted(imports.items()):
        own = floor_of(name)
        for line, target in sorted(lines):
            theirs = floor_of(target) if target.split(".")[0] == "engine" else None
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{name}:{line} imports {target}: floor {FLOORS[own][0]!r} below {FLOORS[theirs][0]!r}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules that import themselves."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 30  # the walk found the packages' modules
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"engine.a": {"engine.b"}, "engine.b": {"engine.c"}, "engine.c": {"engine.a"}, "engine.d": {"engine.a"}}
    assert cycles(graph) == [["engine.a", "engine.b", "engine.c"]]


def test_engine_never_imports_the_interface():
    offenders = {
        (name, target)
        for name, targets in import_graph().items()
        if name.startswith("engine")
        for target in targets
        if target.split(".")[0] in UI_ONLY
    }
    assert offenders == set()


def test_every_engine_module_stands_on_a_floor():
    unplaced = sorted(name for name in module_files() if name.startswith("engine") and floor_of(name) is None)
    assert unplaced == [], "give each a floor in FLOORS (and docs/architecture.md)"


def test_no_module_imports_a_floor_above_its_own():
    modules = module_files()
    imports = {name: imports_in(path, name, modules) for name, path in modules.items() if name.startswith("engine")}
    assert len(imports) > 30  # the walk found engine's modules
    upward = upward_imports(imports)
    assert not upward, "imports of a floor above the importer's:\n" + "\n".join(upward)


def test_the_floor_check_finds_an_upward_import():
    imports = {
        "engine.settings.config": {(3, "engine.io.atomic"), (40, "engine.training.trainer")},
        "engine.cli.run": {(7, "engine.training.trainer"), (9, "tui.app")},
        "engine.training.trainer": {(5, "engine.training.loop"), (12, "engine.device")},
    }
    assert upward_imports(imports) == [
        "engine.settings.config:40 imports engine.training.trainer: floor 'settings' below 'training'"
    ]


def test_the_lowest_floor_imports_nothing_of_the_project():
    """Atomic files and text safety: every other floor may use them, they use none."""
    graph = import_graph()
    lowest = [name for name in graph if name.startswith("engine.") and floor_of(name) == 0]
    assert "engine.io.atomic" in lowest and "engine.io.text" in lowest
    offenders = {(name, target) for name in lowest for target in graph[name] if target.split(".")[0] in PACKAGES}
    assert offenders == set()


def test_the_whole_headless_cli_loads_no_interface_module():
    code = (
        "import sys, engine.cli, engine.cli.printers, engine.training.trainer, engine.runs.evaluate, "
        "engine.runs.resume\n"
        "loaded = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('tui', 'textual', 'textual_plotext', 'plotext'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
