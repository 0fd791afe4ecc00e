"""The settings reference (docs/settings.md) and the shipped settings.toml, both written from the schema.

`python -m engine.settings.reference --write` (or `make settings-docs`) rewrites them after a change to
engine/settings/config.py; tests/engine/test_settings_reference.py fails while either differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from engine.settings.config import SECTIONS, Settings, atomic_write_text, section_fields, to_toml, toml_inline
from engine.settings.rules import LAYERS_MAX, NAME_BYTES_MAX, OPTIONS_DEPTH_MAX, field_kind
from engine.settings.sweep import reference_lines as sweep_reference_lines

REPO = Path(__file__).resolve().parents[2]
REFERENCE, SHIPPED = Path("docs/settings.md"), Path("settings.toml")  # relative to the repository
REGENERATE = "python -m engine.settings.reference --write"

SHIPPED_HEADER = f"""\
# trainconsole settings: the default run trains offline in seconds on scikit-learn's 8x8 handwritten digits.
# Every key is optional; `trainconsole run --set section.key=value` overrides one (the value in TOML syntax).
# Each key holds its default; what each allows: docs/settings.md. This file is written from the schema
# (engine/settings/config.py) by `{REGENERATE}`."""

KINDS = {bool: "boolean", int: "integer", float: "number", str: "text", list: "list of integers", dict: "table"}


def _range(rules: dict[str, Any]) -> str:
    low = f"at least {rules['min']}" if "min" in rules else None
    low = f"above {rules['min_exclusive']}" if "min_exclusive" in rules else low
    high = f"at most {rules['max']}" if "max" in rules else None
    if "min" in rules and high:
        return f"{rules['min']} to {rules['max']}"
    return ", ".join(part for part in (low, high) if part) or "any"


def _text(rules: dict[str, Any]) -> str:
    if rules.get("device"):
        return "auto, cpu, cuda, cuda:N, mps"
    if rules.get("model"):
        return "auto, mlp, cnn, a torchvision classifier (resnet18, ...), package.module:Class"
    parts = ["a plain folder name without /"] if rules.get("folder_name") else []
    parts += [f"at most {NAME_BYTES_MAX} bytes"] if rules.get("folder_name") else []
    parts += ["a path"] if rules.get("path") else []
    parts += ["not empty"] if rules.get("nonempty") else []
    return ", ".join(parts) or "any text"


def allowed(f: dataclasses.Field) -> str:
    """What a setting allows, in a few words, from the rules its field carries."""
    rules, kind = dict(f.metadata), field_kind(f)
    if kind is bool:
        return "true, false"
    if "choices" in rules:
        return ", ".join(f"`{c}`" for c in rules["choices"]) + (
            ", package.module:function" if rules.get("importable") else ""
        )
    if kind is list:
        return f"up to {LAYERS_MAX} integers, each {_range(rules)}"
    if kind is dict:
        return f"plain TOML values (text, numbers, true/false, arrays, tables), at most {OPTIONS_DEPTH_MAX} deep"
    if kind in (int, float):
        return _range(rules)
    return _text(rules)


def reference_text() -> str:
    """docs/settings.md: one section per table, one entry per setting."""
    defaults = Settings().to_dict()
    lines = [
        "# Settings reference",
        "",
        "Every key of `settings.toml`, table by table: its type, default, allowed values and what it does.",
        "Every key is optional; `trainconsole run --set section.key=value` overrides one (the value in TOML syntax).",
        f"This page is written from the schema (engine/settings/config.py) by `{REGENERATE}`; do not edit it.",
    ]
    for section, cls in SECTIONS.items():
        lines += ["", f"## [{section}]", "", (cls.__doc__ or "").strip(), ""]
        for f in section_fields(section):
            facts = f"{KINDS[field_kind(f)]}, default `{toml_inline(defaults[section][f.name])}`; {allowed(f)}"
            lines.append(f"- **`{section}.{f.name}`** ({facts}): {f.metadata['doc']}")
    lines += sweep_reference_lines()
    return "\n".join(lines) + "\n"


def shipped_toml() -> str:
    """The repository's settings.toml: every key at its default, commented by its help."""
    return to_toml(Settings(), SHIPPED_HEADER)


GENERATED = {REFERENCE: reference_text, SHIPPED: shipped_toml}


def stale(root: Path = REPO) -> list[Path]:
    """The generated files under `root` that differ from what the schema gives."""
    found = []
    for path, text in GENERATED.items():
        try:
            current = (root / path).read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text():
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.settings.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/settings.md and settings.toml")
    args = parser.parse_args(argv)
    if not args.write:
        out_of_date = stale(REPO)
        for path in out_of_date:
            print(f"{path} differs from the schema; run `{REGENERATE}`", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in GENERATED.items():
        atomic_write_text(REPO / path, text())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
