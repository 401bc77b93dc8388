"""The files township offices hand over (issue 20): CSV saved by Excel or WPS on a Chinese
Windows desktop (GB18030/GBK), UTF-8 with a BOM, ``.xlsx`` workbooks, plain Parquet with
lon/lat columns, and broken files of each kind; read by one reader
(:func:`gridgeo.io.reading.read_table`) for every import and for ``gridgeo locate``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from gridgeo.cli import app as cli
from gridgeo.errors import ImportFailed, UnreadableFile
from gridgeo.events.importing import import_events
from gridgeo.io import import_files
from gridgeo.io.reading import read_table
from helpers.events_world import CATEGORIES, G11, G21, INSIDE, load_world
from helpers.tiny import V1, V2, X0, Y0

#: Tables as an office keeps them, in Chinese; one per layer.
STAFF = pd.DataFrame({"code": ["P10", "P11"], "name": ["赵六", "钱七"], "phone": ["13800000010", "13800000011"],
                      "role": ["full_time_worker", "part_time_worker"], "grid_code": [G11, G21]})
HOUSEHOLDS = pd.DataFrame({"code": ["H101", "H102"], "address": ["测试乡东村紫荆路12号", "测试乡西村望松街8号"],
                           "village_code": [V1, V2], "households": ["1", "2"], "population": ["3", "4"],
                           "lon": [repr(INSIDE[G11][0]), repr(INSIDE[G21][0])],
                           "lat": [repr(INSIDE[G11][1]), repr(INSIDE[G21][1])]})
EVENTS = pd.DataFrame({"code": ["E2026010100901", "E2026010100902"], "source": ["hotline", "hotline"],
                       "category_code": ["ZZ001", "ZF001"],
                       "reported_at": ["2026-01-01T09:00:00+08:00", "2026-01-01T10:30:00+08:00"],
                       "description": ["邻居装修噪音扰民，多次协调未果", "村口违章搭建彩钢棚"],
                       "lon": [repr(INSIDE[G11][0]), repr(INSIDE[G21][0])],
                       "lat": [repr(INSIDE[G11][1]), repr(INSIDE[G21][1])], "crs": ["wgs84", "wgs84"],
                       "address": ["", ""], "reporter_name": ["黄敏", "李娜"],
                       "reporter_phone": ["19944667827", "13500000000"], "reporter_staff_code": ["", ""]})


def _xlsx(frame: pd.DataFrame, path, sheet: str = "Sheet1", first: str | None = None) -> None:
    """A workbook as openpyxl writes it; numbers as numbers, as a person types them."""
    book = Workbook()
    ws = book.active
    if first is not None:  # a cover sheet before the data
        ws.title = first
        ws.append(["说明：本表由乡镇办公室填报"])
        ws = book.create_sheet(sheet)
    else:
        ws.title = sheet
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append([_typed(v) for v in row])
    book.save(path)


def _typed(v: str):
    try:
        return float(v) if "." in v else int(v) if v.isdigit() and not v.startswith("0") and len(v) < 12 else v
    except ValueError:
        return v


def _write(frame: pd.DataFrame, path, fmt: str) -> None:
    if fmt == "gb18030.csv":
        frame.to_csv(path, index=False, encoding="gb18030")
    elif fmt == "xlsx":
        _xlsx(frame, path)
    else:
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["gb18030.csv", "xlsx", "parquet"])
def test_import_households_staff_and_events_from_office_files(store, tiny, tmp_path, fmt):
    load_world(store, tiny)
    suffix = ".csv" if fmt.endswith("csv") else f".{fmt}"
    paths = {}
    for name, frame in (("households", HOUSEHOLDS), ("staff", STAFF), ("events", EVENTS)):
        paths[name] = tmp_path / f"{name}{suffix}"
        _write(frame, paths[name], fmt)
    if fmt == "gb18030.csv":  # really GB18030: not UTF-8, as Excel on a Chinese desktop saves it
        with pytest.raises(UnicodeDecodeError):
            paths["staff"].read_bytes().decode("utf-8")
    import_files(store, [paths["households"], paths["staff"]], crs="wgs84")
    got = store.read("households").set_index("code")
    assert got.loc["H101", "address"] == "测试乡东村紫荆路12号" and got.loc["H102", "population"] == 4
    assert got.loc["H102", "geometry"].x == pytest.approx(INSIDE[G21][0])
    staff = store.read("staff").set_index("code")
    assert staff.loc["P10", "name"] == "赵六" and staff.loc["P11", "phone"] == "13800000011"
    result = import_events(store, [paths["events"]])
    assert result.events == 2
    events = store.read("events").set_index("code")
    assert events.loc["E2026010100901", "description"] == "邻居装修噪音扰民，多次协调未果"
    assert events.loc["E2026010100902", "grid_code"] == G21


def test_broken_office_files_are_refused_with_file_and_row(store, tiny, tmp_path):
    """Each broken file is one problem naming the file (and the row where decoding failed);
    nothing is written."""
    load_world(store, tiny)
    gb = tmp_path / "staff.csv"
    STAFF.to_csv(gb, index=False, encoding="gb18030")
    cases = {}
    # GB18030 read as UTF-8 on request: the row where decoding fails
    cases["wrong --encoding"] = ([gb], {"encoding": "utf-8"}, "not utf-8 text at row 1")
    mixed = tmp_path / "households.csv"  # UTF-8, then a row pasted in from a Latin-1 file
    HOUSEHOLDS.to_csv(mixed, index=False, encoding="utf-8")
    mixed.write_bytes(mixed.read_bytes() + b"H103,Caf\xe9 \xff\xfe,331124201201,1,1,119.4,28.4\n")
    cases["unknown encoding"] = ([mixed], {}, "at row 3")
    empty = tmp_path / "events.csv"
    empty.write_bytes(b"")
    cases["empty"] = ([empty], {}, "empty")
    not_xlsx = tmp_path / "staff.xlsx"
    not_xlsx.write_text("code,name\n", encoding="utf-8")
    cases["not a workbook"] = ([not_xlsx], {}, "not an Excel workbook")
    book = tmp_path / "households.xlsx"
    _xlsx(HOUSEHOLDS, book, sheet="户籍")
    cases["no such sheet"] = ([book], {"sheet": "Sheet9"}, "no sheet 'Sheet9' (it has 户籍)")
    not_parquet = tmp_path / "households.parquet"
    not_parquet.write_bytes(b"PAR1 but not really")
    cases["not parquet"] = ([not_parquet], {}, "not a Parquet file")
    cases["missing"] = ([tmp_path / "staff2.csv"], {"layer": "staff"}, "no such file")
    before = store.counts()
    for name, (paths, kwargs, words) in cases.items():
        with pytest.raises(ImportFailed) as caught:
            import_files(store, paths, **kwargs)
        problems = caught.value.report.errors
        assert len(problems) == 1 and words in problems[0].message, (name, [str(p) for p in problems])
        assert problems[0].file == str(paths[0]), name
    assert store.counts() == before
    # the same through the command line: the problem and the row, no traceback
    r = CliRunner().invoke(cli, ["import", str(gb), "--encoding", "utf-8", "--database", store.url],
                           env={"COLUMNS": "300"})
    assert r.exit_code == 1 and "row 1" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["events", "import", str(mixed), "--database", store.url], env={"COLUMNS": "300"})
    assert r.exit_code == 1 and "row 3" in r.output and "Traceback" not in r.output


def test_read_table_reads_what_offices_save(tmp_path):
    """Encodings told apart and kept; workbook cells as the text a CSV would hold."""
    frame = pd.DataFrame({"编号": ["007", "008"], "地址": ["松阳县西屏街道", "望松街道"], "电话": ["13800000001", ""]})
    for encoding, expect in (("gb18030", "gb18030"), ("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8")):
        path = tmp_path / f"{encoding}.csv"
        frame.to_csv(path, index=False, encoding=encoding)
        table = read_table(path)
        assert table.encoding == expect and table.frame.to_dict("list") == frame.to_dict("list"), encoding
    book = tmp_path / "book.xlsx"
    wb = Workbook()
    wb.active.title = "封面"
    ws = wb.create_sheet("名单")
    ws.append(["编号", "人口", "经度", "登记日期", "备注"])
    ws.append(["007", 3, 119.4512345, dt.datetime(2026, 1, 31), None])
    ws.append([None, None, None, None, None])  # an empty row Excel leaves
    ws.append([331124201202001, 2.0, 119.5, dt.datetime(2026, 2, 1), "="])
    wb.save(book)
    got = read_table(book, sheet="名单").frame
    assert got.to_dict("list") == {"编号": ["007", "331124201202001"], "人口": ["3", "2"],
                                   "经度": ["119.4512345", "119.5"],
                                   "登记日期": ["2026-01-31T00:00:00", "2026-02-01T00:00:00"], "备注": ["", "="]}
    with pytest.raises(UnreadableFile, match="empty"):
        read_table(book)  # the first sheet, which holds nothing
    plain = tmp_path / "plain.parquet"
    pq.write_table(__import__("pyarrow").table({"code": ["a", None], "n": [1, 2], "lon": [119.25, np.nan]}), plain)
    assert read_table(plain).frame.to_dict("list") == {"code": ["a", ""], "n": ["1", "2"], "lon": ["119.25", ""]}


def test_locate_office_files(store, tiny, tmp_path):
    """`gridgeo locate` of a GB18030 CSV with Chinese columns, a workbook and plain Parquet;
    CSV out in UTF-8 with BOM (or the input's encoding); broken input: one line, no traceback."""
    load_world(store, tiny)
    pts = pd.DataFrame({"名称": ["东村小卖部", "西村农家乐", "=cmd|' /C calc'!A0", "河对岸"],
                        "经度": [repr(INSIDE[G11][0]), repr(INSIDE[G21][0]), repr(INSIDE[G11][0]), repr(X0 - 0.5)],
                        "纬度": [repr(INSIDE[G11][1]), repr(INSIDE[G21][1]), repr(INSIDE[G11][1]), repr(Y0)]})
    src = tmp_path / "商铺.csv"
    pts.to_csv(src, index=False, encoding="gb18030")
    runner = CliRunner()

    def locate(*args):
        return runner.invoke(cli, ["locate", *map(str, args), "--crs", "wgs84", "--database", store.url],
                             env={"COLUMNS": "300"})

    out = tmp_path / "out.csv"
    r = locate(src, "--out", out)
    assert r.exit_code == 0, r.output
    assert "4 points, 3 in a grid" in r.output
    data = out.read_bytes()
    assert data.startswith("\ufeff".encode())  # UTF-8 with BOM: Excel opens it as it is
    got = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(got.columns[:3]) == ["名称", "经度", "纬度"]
    assert list(got["grid_code"]) == [G11, G21, G11, ""] and got["village_name"][1] == "西村"
    assert got["名称"][2] == "'=cmd|' /C calc'!A0"  # a spreadsheet would run it
    r = locate(src, "--out", tmp_path / "same.csv", "--out-encoding", "input")
    assert r.exit_code == 0 and (tmp_path / "same.csv").read_bytes().decode("gb18030").startswith('"名称"')
    book = tmp_path / "商铺.xlsx"
    _xlsx(pts, book, sheet="商铺", first="说明")
    r = locate(book, "--sheet", "商铺", "--out", tmp_path / "book.csv")
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(tmp_path / "book.csv", dtype=str, keep_default_na=False,
                            encoding="utf-8-sig")["grid_code"]) == [G11, G21, G11, ""]
    plain = tmp_path / "商铺.parquet"
    pts.assign(经度=pts["经度"].astype(float), 纬度=pts["纬度"].astype(float)).to_parquet(plain)
    r = locate(plain, "--out", tmp_path / "located.parquet")
    assert r.exit_code == 0, r.output
    located = pd.read_parquet(tmp_path / "located.parquet")
    assert list(located["grid_code"].fillna("")) == [G11, G21, G11, ""] and located["经度"].dtype == float
    # broken input of each kind
    bad_enc = tmp_path / "bad.csv"
    bad_enc.write_bytes("名称,经度,纬度\n".encode() + b"\xff\xfe\xfa\xfb\xfc,119.4,28.4\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    not_book = tmp_path / "not.xlsx"
    not_book.write_bytes(b"\x89PNG\r\n")
    not_parquet = tmp_path / "not.parquet"
    not_parquet.write_bytes(b"lon,lat\n1,2\n")
    for path, extra, words in [(src, ["--encoding", "utf-8"], "not utf-8 text at the header"), (bad_enc, [], "row 1"),
                               (empty, [], "empty"), (not_book, [], "not an Excel workbook"),
                               (not_parquet, [], "not a Parquet file"), (book, ["--sheet", "无"], "no sheet"),
                               (tmp_path / "missing.csv", [], "no such file")]:
        r = locate(path, *extra, "--out", tmp_path / "x.csv")
        assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output, (path, r.output)
        assert r.output.strip().count("\n") == 0, r.output  # one line
        assert not (tmp_path / "x.csv").exists()
