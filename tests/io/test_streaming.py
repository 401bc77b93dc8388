"""`gridgeo locate` of files larger than its memory (issue 20): CSV and plain Parquet go
through a block at a time (:mod:`gridgeo.io.streaming`), so the command holds about one
block beyond its start-up whatever the file's size, and starts without pandas, geopandas
or the planner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gridgeo.lookup import Lookup
from gridgeo.store import Store
from helpers.events_world import G11, G12, G21, G22, load_world
from helpers.tiny import D, X0, Y0

#: The command run in a process of its own: on a small file of each job's kind (start-up:
#: imports, the plan's locator and directory, Arrow's threads), then, with the data segment
#: limited to what it holds then plus BUDGET, on each big file (whose rows, read whole,
#: would not fit in BUDGET).
CHILD = r"""
import json, resource, sys
from gridgeo.cli import app

db, budget, jobs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
HEAVY = ("pandas", "geopandas", "pyogrio", "scipy", "gridgeo.plan")


def locate(src, out):
    return app(["locate", src, "--out", out, "--crs", "wgs84", "--database", db],
               prog_name="gridgeo", standalone_mode=False)


def data_segment():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))


first = [locate(small, out + ".small" + out[-8:]) for small, _, out in jobs]
resource.setrlimit(resource.RLIMIT_DATA, (data_segment() + budget, resource.RLIM_INFINITY))
codes = [locate(src, out) for _, src, out in jobs]
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"codes": [*first, *codes], "heavy": heavy}))
"""

#: What the command may hold beyond its start-up; each big file is larger than this.
BUDGET = 48 << 20
ROWS = 200_000


def _points(rows: int, seed: int) -> tuple[pa.Table, list]:
    """Points across the tiny township's four grids (every 50th far outside), with a long
    note per row, and the grid each is in, worked out from the grids' edges."""
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(1e-4, 2 * D - 1e-4, rows)
    y = Y0 + rng.uniform(1e-4, D - 1e-4, rows)
    x[::50] -= 0.5
    x, y = np.round(x, 7), np.round(y, 7)
    grid = np.full(rows, G22, dtype=object)  # a point on an edge is the east grid's
    for edge, code in [(X0 + 1.5 * D, G21), (X0 + D, G12), (X0 + D / 2, G11), (X0, None)]:
        grid[x < round(edge, 7)] = code
    ids = np.char.add("R", np.arange(rows).astype(str))
    note = np.char.add("住户登记备注：门前道路硬化，屋后有菜地，家中有老人需要定期走访。" * 3, ids)
    table = pa.table({"id": ids, "lon": x, "lat": y, "备注": note})
    return table, list(grid)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA and /proc are Linux's")
def test_locate_streams_files_larger_than_its_memory(tiny, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    load_world(store, tiny)
    lookup = Lookup(store, cache_dir=tmp_path / "cache")  # the plan's index built and saved, as
    lookup.locator(lookup.plan_at())  # the first locate of a plan does (with geopandas)
    store.close()
    table, expected = _points(ROWS, 7)
    big_csv, big_parquet = tmp_path / "big.csv", tmp_path / "big.parquet"
    pacsv.write_csv(table, big_csv)
    pq.write_table(table, big_parquet)
    small_csv, small_parquet = tmp_path / "small.csv", tmp_path / "small.parquet"
    pacsv.write_csv(table.slice(0, 10), small_csv)
    pq.write_table(table.slice(0, 10), small_parquet)
    assert big_csv.stat().st_size > BUDGET and table.nbytes > BUDGET  # neither fits whole
    jobs = [[str(small_csv), str(big_csv), str(tmp_path / "csv-located.parquet")],
            [str(small_parquet), str(big_parquet), str(tmp_path / "parquet-located.csv")]]
    # glibc's allocator for Arrow too: mimalloc (Arrow's default) reserves a 1 GiB arena up
    # front, which the limit would count whole whether used or not
    env = dict(os.environ, ARROW_DEFAULT_MEMORY_POOL="system", GRIDGEO_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", CHILD, store.url, str(BUDGET), json.dumps(jobs)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["codes"] == [None] * 4, proc.stdout + proc.stderr[-3000:]
    assert got["heavy"] == []  # started and ran on the saved index: no pandas, geopandas, planner
    for out in (tmp_path / "csv-located.parquet", tmp_path / "parquet-located.csv"):
        located = (pq.read_table(out) if out.suffix == ".parquet"
                   else pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(
                       column_types={"id": pa.string(), "grid_code": pa.string()})))
        assert located.column("id").to_pylist() == table.column("id").to_pylist()
        codes = [c or None for c in located.column("grid_code").to_pylist()]
        assert codes == expected, out
        assert located.column("outside").to_pylist() == [c is None for c in expected]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_quoted_line_breaks_survive_any_cut_between_blocks(tmp_path, encoding):
    """A cell with line breaks (Alt+Enter in Excel, saved as CSV) and escaped quotes, read a
    few bytes at a time: every cut between blocks lands between records, never inside a
    quoted value; a quote never closed is a clear error naming its line, not a file read
    into memory whole."""
    from gridgeo.errors import UnreadableFile
    from gridgeo.io import streaming

    rows = [("1", "松阳县\n西屏街道\r\n南直街 1 号", "119.48"), ("2", '"引号"与逗号,\n在内', "119.49"),
            ("3", "无换行", "119.50"), ("4", "\n", "119.51")]
    text = "编号,地址,lon\r\n" + "".join(
        f'{a},"{b.replace(chr(34), chr(34) * 2)}",{c}\r\n' for a, b, c in rows)
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.encode(encoding))
    for block in (7, 16, 33, 1 << 20):
        names, _, batches = streaming.read_batches(path, block_bytes=block)
        table = pa.Table.from_batches(list(batches))
        assert names == ["编号", "地址", "lon"]
        assert table.column("地址").to_pylist() == [b for _, b, _ in rows], block
        assert table.column("lon").to_pylist() == [c for _, _, c in rows]
    broken = tmp_path / "broken.csv"
    broken.write_bytes(("编号,地址,lon\n1,ok,119.4\n2,\"从这里开始没有收尾,119.5\n" + "3,x,119.6\n" * 40)
                       .encode("utf-8"))
    monkey = pytest.MonkeyPatch()
    monkey.setattr(streaming, "MAX_RECORD_BYTES", 200)
    try:
        with pytest.raises(UnreadableFile, match=r"broken\.csv: line 3: .*quote"):
            list(streaming.read_batches(broken, block_bytes=64)[2])
    finally:
        monkey.undo()
