"""HTTP lookup throughput: one uvicorn worker on 127.0.0.1, GET /v1/lookup.

Loads the sample township into a fresh SQLite file, starts ``gridgeo serve`` (one
worker), and drives it with wrk (Debian's ``wrk``) at concurrency 1 and 32, each request
a different household of the sample. Prints requests/s and p50/p99 latency, and the
target (>= 5,000 requests/s per worker at concurrency 32 with p99 < 20 ms).

Without wrk it falls back to a bounded asyncio client (httpx), which is itself slower
than the server and so understates it; the output says which generator ran.

    python benchmarks/bench_lookup_http.py [--seconds 10] [--port 8765]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from serving import wait_for_health  # benchmarks/serving.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LUA = """
local points = {%s}
local n = #points
local i = 0
request = function()
  i = i %% n + 1
  return wrk.format("GET", "/v1/lookup?lon=" .. points[i][1] .. "&lat=" .. points[i][2])
end
"""



def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(base: str, script: Path, conns: int, seconds: int) -> dict:
    threads = 1 if conns == 1 else 2
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": int(errors.group(1)) if errors else 0}


async def _client_load(base: str, pts: np.ndarray, conns: int, seconds: int) -> dict:
    lat_ms: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int, client: httpx.AsyncClient):
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            lon, lat = pts[i % len(pts)]
            t = time.perf_counter()
            r = await client.get(f"{base}/v1/lookup", params={"lon": lon, "lat": lat})
            lat_ms.append((time.perf_counter() - t) * 1000)
            errors += r.status_code != 200
            i += conns

    limits = httpx.Limits(max_connections=conns)
    async with httpx.AsyncClient(limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(k, client) for k in range(conns)))
        took = time.perf_counter() - start
    a = np.array(lat_ms)
    return {"rps": len(a) / took, "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()

    from gridgeo.sample import load_sample
    from gridgeo.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url)
    store.migrate()
    load_sample(store)
    h = store.read("households")
    rng = np.random.default_rng(0)
    pts = np.column_stack([h.geometry.x, h.geometry.y])[rng.permutation(len(h))[:2000]]
    store.close()

    # Measured as deployed for throughput: no per-request log lines, and no per-client
    # rate limit (one load generator is one client, which the limit would throttle).
    env = dict(os.environ, GRIDGEO_DATABASE_URL=url, GRIDGEO_CACHE_DIR=str(tmp / "cache"),
               GRIDGEO_REQUEST_LOG="false", GRIDGEO_LOOKUP_RATE="0")
    proc = subprocess.Popen([sys.executable, "-m", "gridgeo", "serve", "--port", str(args.port), "--no-access-log"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_for_health(base, proc, 30)
        for lon, lat in pts[:200]:  # warm up: build the locator and the directory
            httpx.get(f"{base}/v1/lookup", params={"lon": lon, "lat": lat})
        wrk = shutil.which("wrk")
        generator = "wrk" if wrk else "httpx asyncio client (install wrk for a fair figure)"
        script = tmp / "points.lua"
        script.write_text(LUA % ",".join(f"{{{x:.7f},{y:.7f}}}" for x, y in pts))
        print(f"gridgeo lookup over HTTP: one uvicorn worker (access and request logs off, no rate limit), "
              f"SQLite, sample township "
              f"({len(h):,} households, 2,000 distinct points), load generator: {generator}, "
              f"{args.seconds} s per run, {os.cpu_count()} cores shared by server and generator")
        results = {}
        for conns in (1, 32):
            if wrk:
                res = run_wrk(base, script, conns, args.seconds)
            else:
                res = asyncio.run(_client_load(base, pts, conns, args.seconds))
            results[conns] = res
            print(f"  concurrency {conns:>2}: {res['rps']:>8,.0f} requests/s   p50 {res['p50']:6.2f} ms   "
                  f"p99 {res['p99']:6.2f} ms   non-200: {res['errors']}")
        r32 = results[32]
        ok = r32["rps"] >= 5000 and r32["p99"] < 20
        print(f"  target at concurrency 32: >= 5,000 requests/s and p99 < 20 ms: "
              f"{'met' if ok else 'NOT met'} ({r32['rps'] / 5000:.2f}x the request rate target)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
