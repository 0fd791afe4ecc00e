"""One section of BENCHMARKS.md, written by the benchmark that measures it: replaced where it stands, else appended."""

from __future__ import annotations

from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(section: str, text: str, report: Path = REPORT) -> None:
    """Replace `section` (its heading up to the next "## " heading) with `text`, or append it."""
    body = report.read_text(encoding="utf-8")
    head, found, rest = body.partition(section + "\n")
    tail = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    report.write_text(f"{head.rstrip()}\n\n{text}" + (f"\n{tail}" if tail else ""), encoding="utf-8")
