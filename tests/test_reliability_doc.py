"""docs/RELIABILITY.md maps each promise to its test: every test it names exists, so the map cannot rot."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "RELIABILITY.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_reliability_map_names_exists() -> None:
    references = REFERENCE.findall(DOC.read_text(encoding="utf-8"))
    assert len(references) >= 20
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name:
            functions = {
                node.name
                for node in ast.walk(ast.parse(file.read_text(encoding="utf-8")))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if name not in functions:
                missing.append(f"{path}::{name}")
    assert missing == []


def test_every_fault_test_module_is_on_the_map() -> None:
    mapped = {path for path, _ in REFERENCE.findall(DOC.read_text(encoding="utf-8"))}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "faults").glob("test_*.py")}
    modules |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "security").glob("test_*.py")}
    assert modules - mapped == set()
