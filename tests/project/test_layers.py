"""The layer rules as import-linter contracts (pyproject.toml), checked on the wheel's layout.

The wheel is what users install: it must hold exactly one top-level package, ``gridgeo``, with
the ``api/`` and ``maps/`` folders inside it as ``gridgeo.api`` and ``gridgeo.maps``. The
contracts are run on the unpacked wheel, since that is the tree the import graph is made of.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.paths import ROOT

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def wheel_tree(tmp_path_factory) -> Path:
    # sdist first, then the wheel from it (uv's default): nothing is built inside the work tree.
    out = tmp_path_factory.mktemp("wheel")
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed (make setup installs it)")
    subprocess.run([uv, "build", "--out-dir", str(out), str(ROOT)], check=True,
                   capture_output=True)
    (wheel,) = out.glob("gridgeo-*.whl")
    tree = out / "tree"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tree)
    return tree


def test_wheel_installs_one_top_level_package(wheel_tree):
    tops = {p.name for p in wheel_tree.iterdir() if not p.name.endswith(".dist-info")}
    assert tops == {"gridgeo"}
    assert (wheel_tree / "gridgeo" / "api" / "main.py").is_file()
    assert (wheel_tree / "gridgeo" / "maps" / "assets").is_dir()
    assert any((wheel_tree / "gridgeo" / "migrations" / "versions").glob("0001_*.py"))


def test_import_linter_contracts_hold(wheel_tree):
    result = subprocess.run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml")],
                            cwd=wheel_tree, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_core_module_is_under_the_core_contract():
    """A new module of the core cannot escape the rule by not being listed."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = next(c for c in config["contracts"] if c["name"].startswith("the core"))
    listed = set(core["source_modules"])
    composition_roots = {"gridgeo.cli", "gridgeo.__main__", "gridgeo.__init__"}
    present = {f"gridgeo.{p.stem}" for p in (ROOT / "gridgeo").iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name != "data"}
    missing = present - listed - composition_roots - {"gridgeo.data"}
    assert not missing, f"add to the core contract in pyproject.toml: {sorted(missing)}"


def test_core_sources_import_no_web_or_map_library():
    """The same rule, read straight off the sources (also covers lazy imports in functions)."""
    banned = {"fastapi", "starlette", "uvicorn", "folium", "branca"}
    offenders = []
    for path in (ROOT / "gridgeo").rglob("*.py"):
        if path.relative_to(ROOT / "gridgeo").parts[0] in {"cli", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in banned or n.startswith(("gridgeo.api", "gridgeo.maps"))]
    assert not offenders, offenders
