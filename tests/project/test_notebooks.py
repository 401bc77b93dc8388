"""Every analyst notebook in notebooks/ runs on the sample data, and says what it should.

The notebooks are executed with nbclient in the python3 kernel of this interpreter
(ipykernel, from the ``notebooks`` / ``test`` extras). They are stored without outputs.

02 and 03 start alike: the sample loaded into a new SQLite file and its year replayed
(38 s of 02's 48). 02 runs those lines as written; 03 runs with them replaced by a store on
a copy of the session's replayed sample (the ``replayed`` fixture, built the same way and
shared with tests/assess, tests/distributed and tests/events), the lines checked to be
there word for word, so that a change to them fails here rather than going untested.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from helpers.paths import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))

pytestmark = pytest.mark.slow


#: The first lines of 03 that build the replayed sample, as 02 builds it too.
REPLAY_SETUP = ('store = Store(f"sqlite:///{tempfile.mkdtemp()}/gridgeo.db")\nstore.migrate()\n'
                "load_sample(store)\nreplay_sample(store)\n")


def execute(path: Path, replace: tuple[str, str] | None = None):
    nb = nbformat.read(path, as_version=4)
    if replace is not None:
        lines, instead = replace
        cells = [c for c in nb.cells if c.cell_type == "code" and lines in c.source]
        assert len(cells) == 1, f"{path.name}: no cell (or several) with {lines!r}"
        cells[0].source = cells[0].source.replace(lines, instead)
    env = {"MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    cache: dict[str, object] = {}

    def run(name: str):
        if name not in cache:
            replace = None
            if name == "03_assessment.ipynb":
                url = _copy_of_replayed(request, tmp_path_factory)
                replace = (REPLAY_SETUP, f"store = Store({url!r})\n")
            cache[name] = execute(NOTEBOOKS / name, replace)
        return cache[name]

    return run


def _copy_of_replayed(request, tmp_path_factory) -> str:
    """The URL of a private copy of the session's replayed sample (SQLite's online backup)."""
    replayed = request.getfixturevalue("replayed")
    copy = tmp_path_factory.mktemp("notebook") / "replayed.db"
    with closing(sqlite3.connect(replayed.engine.url.database)) as a, \
            closing(sqlite3.connect(copy)) as b:
        a.backup(b)
    return f"sqlite:///{copy}"


def text_of(nb) -> str:
    """Every output of every cell, as text (plain text and HTML)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            for kind in ("text/plain", "text/html"):
                if kind in out.get("data", {}):
                    parts.append(out["data"][kind])
    return "\n".join(parts)


def cell_output(nb, marker: str) -> str:
    """The text outputs of the code cell whose source contains ``marker``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and marker in cell.source:
            return "\n".join(
                out.get("text", "") + out.get("data", {}).get("text/plain", "")
                for out in cell.get("outputs", []))
    raise AssertionError(f"no cell with {marker!r}")


def test_there_are_three_notebooks():
    names = [p.name for p in ALL]
    for want in ("01_planning.ipynb", "02_events_workload.ipynb", "03_assessment.ipynb"):
        assert want in names


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: a cell has outputs"
            assert cell["execution_count"] is None, f"{path.name}: a cell has an execution count"
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs(path, executed):
    nb = executed(path.name)   # raises CellExecutionError on any failing cell
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_planning_compares_both_bands_and_diffs(executed):
    nb = executed("01_planning.ipynb")
    table = cell_output(nb, "comparison =")
    assert "300:500" in table and "200:400" in table
    assert "share_in_band" in table and "road_share" in table
    assert "published" in cell_output(nb, "lifecycle.publish(")
    assert "households change grid" in cell_output(nb, "lifecycle.diff(")
    maps_html = text_of(nb)
    assert maps_html.count("<iframe srcdoc=") >= 2 and "leaflet" in maps_html.lower()


def test_events_notebook_shows_workload_and_patterns(executed):
    nb = executed("02_events_workload.ipynb")
    crs = cell_output(nb, 'raw["crs"].value_counts()')
    assert "gcj02" in crs and "wgs84" in crs
    offset = cell_output(nb, "in another grid if read as WGS84")
    assert "median offset" in offset
    assert "per_worker" in cell_output(nb, "grid_load = workload.per_grid(")
    assert "events_share" in cell_output(nb, "workload.per_worker(")
    months = cell_output(nb, "by_month = ")
    assert "2025-10" in months and "2026-09" in months
    assert "grids are under-staffed" in cell_output(nb, 'grid_load["understaffed"]')
    assert text_of(nb).count("<iframe srcdoc=") >= 3


def test_assessment_has_the_four_platforms_and_a_ranking(executed):
    nb = executed("03_assessment.ipynb")
    platforms = cell_output(nb, "platforms = tables")
    for platform in ("stability", "market", "enforcement", "service"):
        assert platform in platforms
    ranked = cell_output(nb, 'assess.rank(departments, "on_time_rate", min_volume=50)')
    assert "rank" in ranked and "note" in ranked
    assert "closed_late" in cell_output(nb, "def overdue_view")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
