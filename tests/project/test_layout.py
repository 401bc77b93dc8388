"""The suite's own rules (tests/README.md): tests share code through ``tests/helpers``
and fixtures through ``conftest.py``; nothing imports a conftest or a test module, and a
module named ``test_*.py`` holds tests."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import ROOT

TESTS = ROOT / "tests"


def _modules(tree: ast.Module) -> list[str]:
    """Absolute module names imported anywhere in ``tree`` (functions included)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(TESTS.rglob("*.py"))}


def test_nothing_imports_a_conftest_or_a_test_module():
    bad = [f"{p.relative_to(ROOT)} imports {name}"
           for p, tree in _sources().items() for name in _modules(tree)
           if name.split(".")[0] == "conftest" or name.split(".")[-1].startswith("test_")]
    assert not bad, "import from tests/helpers instead (tests/README.md):\n" + "\n".join(bad)


def test_modules_named_test_hold_tests():
    def has_tests(tree: ast.Module) -> bool:
        return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
                   or isinstance(n, ast.ClassDef) and n.name.startswith("Test") for n in ast.walk(tree))

    empty = [str(p.relative_to(ROOT)) for p, tree in _sources().items()
             if p.name.startswith("test_") and not has_tests(tree)]
    assert not empty, f"helpers named test_*.py (move them to tests/helpers/): {empty}"
