"""`make bench`: run every bench_*.py, print one table, and write RESULTS.md.

`python -m tests.benchmarks chat storage` runs only those modules.
"""

from __future__ import annotations

import datetime
import importlib
import platform
import sys
import traceback
from pathlib import Path

from tests.benchmarks.common import Row, markdown_table

HERE = Path(__file__).parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {system}"


def main(names: list[str]) -> int:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if names:
        modules = [m for m in modules if m.removeprefix("bench_") in names or m in names]
    rows: list[Row] = []
    failed = []
    for name in modules:
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"tests.benchmarks.{name}").run())
        except Exception:
            traceback.print_exc()
            failed.append(name)
    table = markdown_table(rows)
    print(table)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"# Benchmark results\n\nMachine: {machine()}\nDate: {stamp}\nModules: {', '.join(modules)}\n"
    if failed:
        header += f"Failed to run: {', '.join(failed)}\n"
    if not names:
        (HERE / "RESULTS.md").write_text(f"{header}\n{table}\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
