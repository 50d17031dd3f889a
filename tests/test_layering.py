"""Imports point one way: ui -> app -> {backends, storage}. Checked by running it and by reading the code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWER = ("app", "backends", "storage")
# What each lower package may not import, whether at the top of a module or inside a function.
FORBIDDEN = {
    "app": ("ui", "gradio"),
    "backends": ("ui", "gradio", "app", "storage"),
    "storage": ("ui", "gradio", "app", "backends"),
}

IMPORT_ALL = """
import importlib, json, pkgutil, sys
names = []
for package in ("app", "backends", "storage"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.startswith("storage.migrations"):
            continue  # scripts that Alembic runs (env.py configures a live migration), not modules
        importlib.import_module(info.name)
        names.append(info.name)
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"gradio", "ui"})
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def test_importing_every_lower_module_loads_neither_gradio_nor_ui() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "app.chat" in report["imported"] and "backends.llamacpp" in report["imported"]
    assert report["loaded"] == []


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module that ``path`` imports, anywhere in it, with the line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def upward_imports(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_no_module_imports_upward() -> None:
    problems = [line for package in LOWER for line in upward_imports(package)]
    assert problems == []


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from ui import cli\n    import gradio as gr\n")
    assert [m for _, m in imported_modules(sample)] == ["ui", "gradio"]
