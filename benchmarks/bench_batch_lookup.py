"""Batch lookups over HTTP against the in-process locate of the same points (issue 20).

Loads the sample township (grids, staff) into a fresh SQLite file, starts ``gridgeo
serve`` (one worker) on 127.0.0.1, and posts 100,000 points (household positions of the
sample, GPS-jittered) to ``POST /v1/lookup`` in every answer form: records JSON (the
default), columns, GeoJSON, CSV, Parquet and an Arrow stream, as ``{"points": ...}``, as a
GeoJSON FeatureCollection (13 MB), and as CSV, Parquet and Arrow bodies. Each time is the median of ``--repeat`` requests over one
keep-alive connection (``http.client``), from sending the body to holding the whole answer
(the client does not parse it).

Beside each it prints the in-process locate of the same points (``Locator.locate``, the
median of as many runs) and the ratio. Target (issue 20): within about 60x.

    python benchmarks/bench_batch_lookup.py [--repeat 5] [--points 100000] [--port 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from serving import wait_for_health  # benchmarks/serving.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
sys.path.insert(0, str(ROOT))

FORMS = ["json", "columns", "geojson", "csv", "parquet", "arrow"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--port", type=int, default=0, help="0: one the OS picks")
    args = ap.parse_args()

    import geopandas as gpd

    from gridgeo.io import import_files
    from gridgeo.lookup import Lookup
    from gridgeo.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-batch-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url)
    store.migrate()
    import_files(store, [SAMPLE / "township.gpkg", SAMPLE / "staff.csv"],
                 plan_version="2024-01", effective_from=dt.date(2024, 1, 1), actor="bench")
    h = gpd.read_file(SAMPLE / "township.gpkg", layer="households", columns=[])
    rng = np.random.default_rng(20)
    xy = np.column_stack([h.geometry.x, h.geometry.y])
    pts = np.round(xy[rng.integers(len(xy), size=args.points)] + rng.normal(scale=2e-4, size=(args.points, 2)), 7)
    lon, lat = pts[:, 0].copy(), pts[:, 1].copy()

    locator = Lookup(store, cache_dir=tmp / "cache").locator(Lookup(store).plan_at())
    core = []
    for _ in range(max(args.repeat, 5)):
        t = time.perf_counter()
        locator.locate(lon, lat)
        core.append(time.perf_counter() - t)
    core_s = float(np.median(core))
    store.close()

    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table({"id": [f"h{i}" for i in range(len(lon))], "lon": lon, "lat": lat})
    sinks = {k: io.BytesIO() for k in ("csv", "parquet", "arrow")}
    pacsv.write_csv(table, sinks["csv"])
    pq.write_table(table, sinks["parquet"])
    with pa.ipc.new_stream(sinks["arrow"], table.schema) as w:
        w.write_table(table)
    # (shape, body, content type)
    bodies = {
        "points": (orjson.dumps({"points": pts}, option=orjson.OPT_SERIALIZE_NUMPY), "application/json"),
        "FeatureCollection": (orjson.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": f"h{i}", "properties": {"note": "住户"},
             "geometry": {"type": "Point", "coordinates": [x, y]}} for i, (x, y) in enumerate(pts.tolist())]}),
            "application/geo+json"),
        "CSV body": (sinks["csv"].getvalue(), "text/csv"),
        "Parquet body": (sinks["parquet"].getvalue(), "application/vnd.apache.parquet"),
        "Arrow body": (sinks["arrow"].getvalue(), "application/vnd.apache.arrow.stream"),
    }
    port = args.port or _free_port()
    env = dict(os.environ, GRIDGEO_DATABASE_URL=url, GRIDGEO_CACHE_DIR=str(tmp / "cache"),
               GRIDGEO_LOOKUP_RATE="0")
    proc = subprocess.Popen([sys.executable, "-m", "gridgeo", "serve", "--port", str(port), "--no-access-log"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        wait_for_health(base, proc, 90)
        # http.client, one keep-alive connection: a client that reads the answer in
        # one go (httpx's own parsing of a 27 MB answer costs more than the server).
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for shape, (body, ctype) in bodies.items():
            for form in FORMS:
                took, size = [], 0
                for i in range(args.repeat + 1):  # the first warms the worker process up
                    t = time.perf_counter()
                    conn.request("POST", f"/v1/lookup?format={form}", body=body,
                                 headers={"content-type": ctype})
                    r = conn.getresponse()
                    answer = r.read()
                    elapsed = time.perf_counter() - t
                    if r.status != 200:
                        raise SystemExit(f"{shape} {form}: {r.status} {answer[:300]!r}")
                    size = len(answer)
                    if i:
                        took.append(elapsed)
                rows.append((shape, form, len(body), size, float(np.median(took))))
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        try:  # the server's process pool too (its own session: nothing else)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    print(f"gridgeo batch lookup over HTTP: {args.points:,} points (sample households, jittered), "
          f"one uvicorn worker, SQLite, {os.cpu_count()} cores shared by server and client; "
          f"median of {args.repeat}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  in-process Locator.locate of the same points: {core_s * 1000:.1f} ms")
    print(f"  {'body':<18} {'answer':<8} {'body MB':>8} {'answer MB':>10} {'HTTP s':>8} {'ratio':>7}")
    worst = 0.0
    for shape, form, sent, size, seconds in rows:
        ratio = seconds / core_s
        worst = max(worst, ratio)
        print(f"  {shape:<18} {form:<8} {sent / 1e6:8.1f} {size / 1e6:10.1f} {seconds:8.3f} {ratio:6.0f}x")
    print(f"  target (issue 20): every form within about 60x of the in-process locate: "
          f"worst {worst:.0f}x ({'met' if worst <= 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
