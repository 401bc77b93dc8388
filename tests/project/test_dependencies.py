"""What the service imports is what ``make run`` installs: every third-party module that
gridgeo, its API, maps and console import comes from a distribution in requirements/run.txt
(a test-only package imported by the service passes every test yet breaks ``make run``)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys

from helpers.paths import ROOT

SERVICE = ("gridgeo", "api", "maps", "console")


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _run_distributions() -> set[str]:
    lines = (ROOT / "requirements" / "run.txt").read_text(encoding="utf-8").splitlines()
    return {_normal(line.split("==")[0].split("[")[0]) for line in lines
            if "==" in line and not line.lstrip().startswith("#")}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_the_service_imports_only_what_make_run_installs():
    run, dists = _run_distributions(), md.packages_distributions()
    own = {*SERVICE, "__future__"}
    missing: dict[str, set[str]] = {}
    for folder in SERVICE:
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                top = module.split(".")[0]
                if top in own or top in sys.stdlib_module_names:
                    continue
                if not {_normal(d) for d in dists.get(top, [])} & run:
                    missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported by the service but not in requirements/run.txt: {missing}"
