"""`gridgeo locate` of large files, streamed (issue 20): 1,000,000 rows of CSV and of plain
Parquet, located against the sample township, with the time and the peak memory.

Writes a CSV of ``--rows`` points (household positions of the sample, jittered, with an
id and a Chinese address column, as an office's file has) in UTF-8 and in GB18030, and
the same as plain Parquet; runs ``gridgeo locate`` on each as a user would (a process of
its own, so that its peak resident memory is its own: ``ru_maxrss`` of the child) and
prints seconds, rows per second and peak memory, beside the in-process locate of the same
points (``Locator.locate``) and the CSV's size, to show memory does not grow with the file.

The peer: the same command before issue 20 read the whole CSV with pandas and wrote it with
pandas (11 s for 1,000,000 rows in the issue); ``--peer`` runs that path (``--no-stream``
is not an option of the command: the peer is pandas' read_csv + Lookup.many + to_csv in
this script, as the old command did).

Memory bounded for files larger than RAM: ``--big-rows`` (default 5,000,000) writes a CSV
and a Parquet file five times larger and runs the same command on them; the peak resident
memory stays that of the 1,000,000-row file (one block at a time), far below the size of
the big file read whole into memory (printed beside it, measured by reading it with
pyarrow in a process of its own). ``--big-rows 0`` skips it.

Each run also prints its CPU seconds (user + system, from ``wait4``): on a loaded machine
the wall time is mostly waiting for a core, and the CPU time is what the command costs.
The command's start-up (importing SQLAlchemy, pyarrow, the CLI; no pandas nor geopandas
since the streamed path needs neither) is measured alone (``gridgeo locate --help``) and
printed, so that what the rows cost is seen apart.

    python benchmarks/bench_locate_files.py [--rows 1000000] [--big-rows 5000000] [--peer]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
sys.path.insert(0, str(ROOT))

PEER = """
import sys, pandas as pd
from gridgeo.lookup import Lookup
from gridgeo.store import Store
src, dst, url = sys.argv[1:4]
frame = pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8-sig")
x = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(float)
y = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(float)
lookup = Lookup(Store(url))
parts = [lookup.many(x[i:i + 200_000], y[i:i + 200_000]) for i in range(0, len(x), 200_000)]
result = pd.concat(parts, ignore_index=True)
keep = ["grid_code", "grid_name", "village_code", "village_name", "snapped", "distance_m", "outside", "invalid", "swapped"]
frame.join(result[keep]).to_csv(dst, index=False)
"""


#: Runs a command and reports its peak memory: a small process in between, because a child
#: forked from this (large) process starts with this process's pages in its high-water mark.
LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
print(f"MAXRSS_KB {usage.ru_maxrss} CPU_S {usage.ru_utime + usage.ru_stime}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


#: The size of a file read whole into memory by pyarrow (what a reader without blocks holds).
WHOLE = """
import sys, pyarrow.csv as pacsv, pyarrow.parquet as pq
path = sys.argv[1]
table = pq.read_table(path) if path.endswith(".parquet") else pacsv.read_csv(path)
print(table.nbytes)
"""


def _run(args: list[str], env: dict) -> tuple[float, float, float]:
    """Seconds, peak resident memory (MB) and CPU seconds of a command (:data:`LAUNCHER`)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    tail = proc.stderr.rsplit("MAXRSS_KB ", 1)[1].split()
    return seconds, int(tail[0]) / 1024, float(tail[2])


def _points(h, rows: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    pick = rng.integers(len(h), size=rows)
    lon = np.round(h.geometry.x.to_numpy()[pick] + rng.normal(scale=2e-4, size=rows), 7)
    lat = np.round(h.geometry.y.to_numpy()[pick] + rng.normal(scale=2e-4, size=rows), 7)
    frame = pd.DataFrame({"id": np.char.add("R", np.arange(rows).astype(str)),
                          "address": h["address"].to_numpy()[pick], "lon": lon, "lat": lat})
    return frame, lon, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=5_000_000,
                    help="rows of the big files (memory does not grow with them); 0: skip")
    ap.add_argument("--peer", action="store_true", help="also time the pandas path the command used before")
    args = ap.parse_args()

    import geopandas as gpd
    import pandas as pd

    from gridgeo.io import import_files
    from gridgeo.lookup import Lookup
    from gridgeo.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-files-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url)
    store.migrate()
    import_files(store, [SAMPLE / "township.gpkg", SAMPLE / "staff.csv"],
                 plan_version="2024-01", effective_from=dt.date(2024, 1, 1), actor="bench")
    h = gpd.read_file(SAMPLE / "township.gpkg", layer="households", columns=["address"])
    frame, lon, lat = _points(h, args.rows, 20)
    files = {"CSV UTF-8": tmp / "points.csv", "CSV GB18030": tmp / "points_gb.csv",
             "Parquet": tmp / "points.parquet"}
    frame.to_csv(files["CSV UTF-8"], index=False)
    frame.to_csv(files["CSV GB18030"], index=False, encoding="gb18030")
    frame.to_parquet(files["Parquet"], index=False)

    locator = Lookup(store, cache_dir=tmp / "cache").locator(Lookup(store).plan_at())
    core = min(_timed(lambda: locator.locate(lon, lat)) for _ in range(3))
    store.close()

    env = dict(os.environ, GRIDGEO_DATABASE_URL=url, GRIDGEO_CACHE_DIR=str(tmp / "cache"))
    gridgeo = [sys.executable, "-m", "gridgeo", "locate"]
    # warm the locator cache so that every run loads it the same way
    subprocess.run([*gridgeo, str(files["Parquet"]), "--out", str(tmp / "warm.parquet"), "--crs", "wgs84"],
                   env=env, capture_output=True, check=True)
    start = _run([*gridgeo, "--help"], env)
    rows = []
    for name, src in files.items():
        for out in (".csv", ".parquet"):
            dst = tmp / f"out-{src.stem}{out}"
            seconds, peak, cpu = _run([*gridgeo, str(src), "--out", str(dst), "--crs", "wgs84"], env)
            rows.append((name, args.rows, out[1:], src.stat().st_size / 1e6, seconds, cpu, peak))
            dst.unlink()
    big = []
    if args.big_rows:
        frame = _points(h, args.big_rows, 21)[0]
        for name, src in (("CSV UTF-8", tmp / "big.csv"), ("Parquet", tmp / "big.parquet")):
            frame.to_csv(src, index=False) if src.suffix == ".csv" else frame.to_parquet(src, index=False)
            whole = subprocess.run([sys.executable, "-c", WHOLE, str(src)], capture_output=True, text=True,
                                   check=True)
            for out in (".csv", ".parquet"):
                dst = tmp / f"out-big{out}"
                seconds, peak, cpu = _run([*gridgeo, str(src), "--out", str(dst), "--crs", "wgs84"], env)
                big.append((name, args.big_rows, out[1:], src.stat().st_size / 1e6, seconds, cpu, peak,
                            int(whole.stdout) / 1e6))
                dst.unlink()
            src.unlink()
        del frame
    peer = None
    if args.peer:
        seconds, peak, _ = _run([sys.executable, "-c", PEER, str(files["CSV UTF-8"]), str(tmp / "peer.csv"), url], env)
        peer = (seconds, peak)

    print(f"gridgeo locate, streamed: {args.rows:,} points (sample households, jittered) against the "
          f"sample township, {os.cpu_count()} cores; each run a process of its own (start-up included); "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  in-process Locator.locate of the same points: {core:.3f} s")
    print(f"  start-up alone (gridgeo locate --help): {start[0]:.2f} s, CPU {start[2]:.2f} s, peak {start[1]:.0f} MB")
    print(f"  {'input':<12} {'rows':>10} {'output':<8} {'input MB':>9} {'seconds':>8} {'CPU s':>6} "
          f"{'rows/s':>11} {'peak MB':>8} {'whole MB':>9}")
    for name, n, out, size, seconds, cpu, peak, *whole in rows + big:
        print(f"  {name:<12} {n:>10,} {out:<8} {size:9.1f} {seconds:8.2f} {cpu:6.2f} {n / seconds:11,.0f} "
              f"{peak:8.0f} {f'{whole[0]:9.0f}' if whole else ''}")
    if peer:
        best = min(r[4] for r in rows if r[0] == "CSV UTF-8" and r[2] == "csv")
        print(f"  peer (pandas read_csv + Lookup.many + to_csv, the command before): {peer[0]:.2f} s, "
              f"peak {peer[1]:.0f} MB: streamed is {peer[0] / best:.1f}x faster")
    print("  peak MB: the command's own peak resident set (wait4 in a small launcher); whole MB: the big "
          "file read whole by pyarrow (what a reader without blocks holds at least). The command holds "
          "one 1 MB block of CSV (or about 1 MB of Parquet rows) at a time, so its peak does not grow "
          "with the file")
    if big:
        small = max(r[6] for r in rows if r[0] in ("CSV UTF-8", "Parquet"))
        largest = max(b[6] for b in big)
        print(f"  memory bound: {args.big_rows:,} rows peak {largest:.0f} MB against {small:.0f} MB for "
              f"{args.rows:,} rows ({largest / small:.2f}x for {args.big_rows / args.rows:.0f}x the rows)")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
