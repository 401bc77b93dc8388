"""``gridgeo report``: CSV, xlsx (one sheet per grouping) and JSON of the hand-built township."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest
from typer.testing import CliRunner

from gridgeo.cli import app
from gridgeo.store import Store
from helpers.hand_built import G1, build

AS_OF = "2026-10-15T00:00:00+08:00"


@pytest.fixture
def db(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'report.db'}")
    store.migrate()
    build(store)
    yield store.url
    store.close()


def run(*args):
    return CliRunner().invoke(app, ["report", *args])


def test_csv_by_department_to_stdout(db):
    r = run("--period", "2026-Q3", "--by", "department", "--as-of", AS_OF, "-d", db)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["code"] for x in rows] == ["市场监管所", "综合行政执法中队", "综治办", "all"]
    assert rows[-1]["name"] == "合计" and rows[-1]["received"] == "11" and rows[-1]["closed_on_time"] == "4"


def test_xlsx_has_one_sheet_per_grouping(db, tmp_path):
    out = tmp_path / "q3.xlsx"
    r = run("--period", "2026-Q3", "--by", "grid,department,platform", "--format", "xlsx", "--out", str(out),
            "--as-of", AS_OF, "--rank", "on_time_rate", "--min-volume", "2", "-d", db)
    assert r.exit_code == 0, r.output
    book = openpyxl.load_workbook(out)
    # patrols (巡查) by grid come with a grid grouping, zeros where nobody patrolled
    assert book.sheetnames == ["网格", "责任部门", "平台", "巡查·网格", "说明"]
    sheet = book["网格"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["编码", "排名", "名称"] and "按期结案率" in header and "返工率" in header
    first = dict(zip(header, [c.value for c in sheet[2]]))
    assert first["排名"] == 1 and first["按期结案率"] == 1.0   # G3: 2 of 2 on time
    notes = {row[0].value: row[1].value for row in book["说明"].iter_rows(min_row=2)}
    assert "按按期结案率排名" in notes["ranking grid"] and notes["period"] == "2026-07-01/2026-09-30"


def test_all_groupings_as_json(db, tmp_path):
    out = tmp_path / "q3.json"
    r = run("--period", "2026-Q3", "--by", "all", "--format", "json", "--out", str(out), "--as-of", AS_OF, "-d", db)
    assert r.exit_code == 0, r.output
    body = json.loads(out.read_text(encoding="utf-8"))
    assert list(body["tables"]) == ["grid", "village", "township", "worker", "department", "platform", "category",
                                    "patrols_grid", "patrols_worker"]
    grid = {row["code"]: row for row in body["tables"]["grid"]}
    assert grid[G1]["due"] == 3 and grid["all"]["received"] == 11   # the total row
    assert "all" not in {row["code"] for row in body["tables"]["worker"]}   # worker rows overlap: no total
    assert "closed_on_time" in body["definitions"]


@pytest.mark.parametrize("args, words", [
    (["--period", "2026-Q9"], "period"),
    (["--period", "2026-Q3", "--by", "county"], "grouping"),
    (["--period", "2026-Q3", "--format", "xlsx"], "--out"),
])
def test_bad_input_fails_with_a_message(db, args, words):
    r = run(*args, "-d", db)
    assert r.exit_code != 0 and words in r.output
