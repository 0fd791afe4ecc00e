"""Load time and memory of the table reader against pandas.read_csv (issue 24, "Data").

    python benchmarks/table_reader.py [--rows 200000] [--rounds 3] [--write]

A generated CSV of 200,000 rows x 50 columns (numbers with empty cells, text columns of few categories, a label)
is read by pandas.read_csv, by our reader with an empty decode cache (it parses, then writes the cache), and by
our reader again (from the cache). Each read runs in a fresh Python process, which reports its own wall time for
the read and its memory: the peak resident size (VmHWM) minus the resident size just before the read, so the
libraries' own import (torch and pyarrow for ours, pandas for pandas) is not counted. Times and memory are the
median of the rounds. Targets: our cold read within 3x pandas's time, its extra memory within 2x pandas's; a small
budget (64 MB) shows the streamed read's memory. --write puts the table into BENCHMARKS.md (section "Table
reader"); BENCH_QUICK=1 makes it one round of 50,000 rows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]
from report_section import write_section  # noqa: E402 (benchmarks/ is the script's folder)

SECTION = "## Table reader"
NUMBERS, TEXTS = 44, 5
CHILD = r"""
import json, sys, time
def rss(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field)) * 1024
kind, path = sys.argv[1], sys.argv[2]
if kind == "pandas":
    import pandas as pd
    read = lambda: pd.read_csv(path)
else:
    from engine.data.csv_reader import read_table
    from engine.data import table_cache, table_stream  # noqa: F401 (imported before the clock, as pandas is)
    from engine.settings.config import load_settings
    budget = ("data.memory_budget_mb=64", "data.table_cache=false") if kind == "streamed" else ()
    s = load_settings(None, ("data.dataset=csv", f"data.path={path!r}", "data.csv_text=onehot",
                             "data.csv_missing=mean", *budget)).data
    read = lambda: read_table(s)
before = rss("VmRSS:")
start = time.perf_counter()
table = read()
elapsed = time.perf_counter() - start
print(json.dumps({"s": elapsed, "extra": rss("VmHWM:") - before, "notes": getattr(table, "notes", [])}))
"""


def write_table(path: Path, rows: int) -> None:
    """Numbers with 7 decimals (one cell in 50 empty), text columns of 3-7 categories, a 3-class label."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    columns = {f"x{k}": pa.array(np.round(rng.normal(0, 1000, rows), 7), mask=rng.random(rows) < 0.02)
               for k in range(NUMBERS)}
    columns |= {f"t{k}": pa.array(rng.choice([f"cat{c}" for c in range(3 + k)], rows)) for k in range(TEXTS)}
    columns["label"] = pa.array(rng.choice(["low", "mid", "high"], rows))
    pacsv.write_csv(pa.table(columns), str(path), write_options=pacsv.WriteOptions(quoting_style="none"))


def measure(kind: str, path: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds(path: Path, count: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"pandas": [], "cold": [], "cached": [], "streamed": []}
    for _ in range(count):
        with tempfile.TemporaryDirectory(prefix="tc-bench-cache-") as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache, "PYTHONPATH": str(REPO)}
            env.pop("TRAINCONSOLE_TABLE_CACHE", None)
            results["pandas"].append(measure("pandas", path, env))
            results["cold"].append(measure("ours", path, env))
            results["cached"].append(measure("ours", path, env))
            results["streamed"].append(measure("streamed", path, env))
            if not any("from the cache" in n for n in results["cached"][-1]["notes"]):
                raise SystemExit("the second read did not come from the cache")
    return results


def report(results: dict[str, list[dict]], path: Path, rows: int) -> str:
    med = {k: (statistics.median(r["s"] for r in v), statistics.median(r["extra"] for r in v) / 2**20)
           for k, v in results.items()}
    p_s, p_mb = med["pandas"]
    names = {"pandas": "pandas.read_csv", "cold": "ours, cold (parses, writes the cache)", "cached": "ours, cached",
             "streamed": "ours, memory_budget_mb = 64 (4 MB blocks, no cache)"}
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this'}"
        f" ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end), {len(results['pandas'])} "
        f"rounds, median; `python benchmarks/table_reader.py --write`. The table: {rows:,} rows x 50 columns "
        f"({NUMBERS} numbers with 2 % empty cells, {TEXTS} text columns of 3-7 categories, a 3-class label), "
        f"{path.stat().st_size / 2**20:.0f} MB. Each read in a fresh process; memory is the peak resident size "
        "minus the size just before the read.", "",
        "| read | time (s) | x pandas | extra memory (MB) | x pandas |", "|---|---:|---:|---:|---:|",
    ]
    for k, (s, mb) in med.items():
        lines.append(f"| {names[k]} | {s:.2f} | {s / p_s:.2f} | {mb:.0f} | {mb / p_mb:.2f} |")
    cold_s, cold_mb = med["cold"]
    lines += ["", f"Targets (issue 24): cold time within 3x pandas: {'met' if cold_s <= 3 * p_s else 'NOT met'} "
              f"({cold_s / p_s:.2f}x); extra memory within 2x pandas: {'met' if cold_mb <= 2 * p_mb else 'NOT met'} "
              f"({cold_mb / p_mb:.2f}x). Ours also judges the columns, one-hot encodes the text and builds the "
              "float32 features; pandas only parses."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser.add_argument("--rows", type=int, default=50_000 if quick else 200_000)
    parser.add_argument("--rounds", type=int, default=1 if quick else 3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tc-bench-table-") as folder:
        path = Path(folder) / "table.csv"
        write_table(path, args.rows)
        text = report(rounds(path, args.rounds), path, args.rows)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
