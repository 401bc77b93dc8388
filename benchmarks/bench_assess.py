"""Assessment of a year of 1,000,000 events: gridgeo.assess against a naive peer.

Builds N synthetic events (default 1,000,000) with their action trails (about 8.6 per
event: report, accept or reject, dispatch or escalate, start, extensions, resolve,
rework, verify, close, rating) in a temporary, migrated SQLite database (and, with
``--postgres URL``, in PostgreSQL), then times, on the same data:

gridgeo
    :func:`gridgeo.assess.read_facts` (one SQL statement: events joined with their
    action flags, ``SUM(DISTINCT bit)`` per event in the database) and
    :func:`gridgeo.assess.assess_many` by grid, village, township, department and
    platform (vectorised pandas).
naive
    What an analyst writes first: both tables read whole with ``pandas.read_sql``, the
    set of actions of each event by ``groupby(...).apply(set)`` (a Python call per
    event), then ``groupby(unit).apply`` of a function computing the indicators of each
    unit (boolean sums over the unit's rows), per grouping.

The two must agree on every count (checked), and the script prints the seconds of
each and the ratio. The target is assessment of 1,000,000 events in at most 10 s.

    .venv/bin/python benchmarks/bench_assess.py                     # SQLite, 1,000,000 events
    .venv/bin/python benchmarks/bench_assess.py --events 200000 --postgres \\
        postgresql+psycopg://postgres@127.0.0.1:5432/gridgeo_bench   # and PostgreSQL
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridgeo.assess import COUNTS, assess_many, read_facts  # noqa: E402
from gridgeo.store import Store, metadata  # noqa: E402

PERIOD = "2026"
AS_OF = dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc)
GROUPINGS = ["grid", "village", "township", "department", "platform"]
PLATFORMS = ["stability", "market", "enforcement", "service"]
HOURS = np.array([24, 48, 72, 120, 168])


# -- synthetic data -------------------------------------------------------------------

def synthesize(n: int, seed: int = 6) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Events, their actions and the categories, vectorised.

    2,000 grids in 400 villages in 20 townships; 40 categories over the four platforms
    and 20 departments; events over 2026 (CST) plus December 2025 (some fall due in
    January). 5% are rejected; of the accepted, 2% are escalated instead of dispatched,
    5% extended, 3% reworked, 3% still open; 60% of the closed are rated.
    """
    rng = np.random.default_rng(seed)
    cats = pd.DataFrame({
        "code": [f"C{i:03d}" for i in range(40)],
        "name": [f"事项{i}" for i in range(40)],
        "platform": [PLATFORMS[i % 4] for i in range(40)],
        "department": [f"部门{i % 20:02d}" for i in range(40)],
        "deadline_hours": HOURS[np.arange(40) % len(HOURS)],
    })
    grids = np.array([f"331124{t:03d}{v:03d}{g:03d}" for t in range(1, 21) for v in range(1, 21)
                      for g in range(1, 6)], dtype=object)
    start = pd.Timestamp("2025-12-01T00:00:00+08:00").value // 10**9
    stop = pd.Timestamp("2027-01-01T00:00:00+08:00").value // 10**9
    reported = np.sort(rng.integers(start, stop, n)).astype(np.int64)
    cat = rng.integers(0, len(cats), n)
    hours = cats["deadline_hours"].to_numpy()[cat]
    u = rng.random((8, n))
    accepted = u[0] >= 0.05
    escalated = accepted & (u[1] < 0.02)
    dispatched = accepted & ~escalated
    extended = accepted & (u[2] < 0.05)
    ext_hours = np.where(extended, 48, 0)
    open_ = accepted & (u[3] < 0.03)
    done = accepted & ~open_
    reworked = done & (u[4] < 0.03)
    rated = done & (u[5] < 0.6)
    deadline = reported + 3600 * (hours + ext_hours)
    # Resolved 8 h plus 10% to 105% of the time allowed after the report: some late.
    resolve = reported + 8 * 3600 + (3600 * (hours + ext_hours) * (0.1 + 0.95 * u[6])).astype(np.int64)
    h = 3600
    steps = [
        ("report", np.ones(n, bool), reported, "reported"),
        ("reject", ~accepted, reported + h // 2, "rejected"),
        ("accept", accepted, reported + h // 2, "accepted"),
        ("dispatch", dispatched, reported + h, "dispatched"),
        ("escalate", escalated, reported + h, "escalated"),
        ("start", accepted, reported + 2 * h, "in_progress"),
        ("extend", extended, reported + 3 * h, "in_progress"),
        ("resolve", done, resolve - 4 * h * reworked, "resolved"),
        ("rework", reworked, resolve - 3 * h * reworked, "in_progress"),
        ("resolve", reworked, resolve, "resolved"),
        ("verify", done, resolve + h, "verified"),
        ("close", done, resolve + 2 * h, "closed"),
        ("rate", rated, resolve + 30 * h, "closed"),
    ]
    parts = []
    for order, (action, mask, at, to_state) in enumerate(steps):
        idx = np.flatnonzero(mask)
        parts.append(pd.DataFrame({"event_id": idx + 1, "order": order, "at": at[idx],
                                   "action": action, "to_state": to_state}))
    actions = pd.concat(parts, ignore_index=True).sort_values(["event_id", "order"], kind="stable")
    actions["seq"] = actions.groupby("event_id").cumcount().to_numpy() + 1
    actions["from_state"] = actions.groupby("event_id")["to_state"].shift(1)
    actions = actions.drop(columns="order").reset_index(drop=True)
    last = actions.drop_duplicates("event_id", keep="last").set_index("event_id")
    state = last["to_state"].reindex(np.arange(1, n + 1)).to_numpy()
    closed_at = np.where(done, resolve + 2 * h, -1)
    events = pd.DataFrame({
        "id": np.arange(1, n + 1),
        "code": [f"B{i:08d}" for i in range(1, n + 1)],
        "source": "app",
        "category_code": cats["code"].to_numpy()[cat],
        "reported_at": reported,
        "grid_code": grids[rng.integers(0, len(grids), n)],
        "state": state,
        "version": actions.groupby("event_id").size().to_numpy(),
        "created_at": reported,
        "located_by": "coordinates",
        "platform": cats["platform"].to_numpy()[cat],
        "department": cats["department"].to_numpy()[cat],
        "deadline_at": deadline,
        "extended_hours": ext_hours,
        "satisfaction": np.where(rated, rng.choice([2, 3, 4, 5, 5], n), -1),
        "updated_at": last["at"].reindex(np.arange(1, n + 1)).to_numpy(),
        "resolved_at": np.where(done, resolve, -1),
        "closed_at": closed_at,
        "duplicate_flag": False,
    })
    events.loc[escalated, "escalated_to"] = "县社会治理综合指挥中心"
    return events, actions, cats


_TIMES = ("reported_at", "created_at", "deadline_at", "updated_at", "resolved_at", "closed_at", "at")


def _as_text(frame: pd.DataFrame, dialect: str) -> pd.DataFrame:
    """Seconds -> the text each database stores (SQLite: naive UTC; PostgreSQL: +00)."""
    out = frame.copy()
    for c in _TIMES:
        if c not in out:
            continue
        v = out[c].to_numpy(dtype=np.int64)
        s = np.datetime_as_string(v.astype("datetime64[s]"), unit="us").astype(object)
        s = np.char.replace(s.astype(str), "T", " ").astype(object)
        if dialect == "postgresql":
            s = s + "+00"
        s[v < 0] = None
        out[c] = s
    for c in ("satisfaction",):
        if c in out:
            out[c] = out[c].astype(object).where(out[c].to_numpy() > 0, None)
    return out


def load(store: Store, events: pd.DataFrame, actions: pd.DataFrame, cats: pd.DataFrame) -> None:
    """Bulk-load into a migrated store (executemany on SQLite, COPY on PostgreSQL)."""
    d = store.dialect
    ev = _as_text(events, d)
    ea = _as_text(actions.assign(id=np.arange(1, len(actions) + 1), actor="bench", role="command_room"), d)
    ev_cols = list(ev.columns)
    ea_cols = ["id", "event_id", "seq", "at", "action", "actor", "role", "from_state", "to_state"]
    cat_cols = ["code", "name", "platform", "department", "deadline_hours"]
    if d == "sqlite":
        raw = store.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA synchronous=OFF")
            for table, frame, cols in (("categories", cats, cat_cols), ("events", ev, ev_cols),
                                       ("event_actions", ea, ea_cols)):
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                data = []
                for c in cols:
                    v = frame[c].to_numpy(dtype=object)
                    if c == "duplicate_flag":
                        v = np.zeros(len(v), dtype=np.int64).astype(object)
                    v = np.where(pd.isna(v), None, v)
                    # numpy scalars -> Python ones, in C
                    data.append(v.tolist() if v.dtype != object else
                                [x.item() if isinstance(x, np.generic) else x for x in v])
                rows = list(zip(*data))
                for i in range(0, len(rows), 500_000):
                    cur.executemany(sql, rows[i:i + 500_000])
            raw.commit()
        finally:
            raw.close()
        return
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, frame, cols in (("categories", cats, cat_cols), ("events", ev, ev_cols),
                                   ("event_actions", ea, ea_cols)):
            buf = io.StringIO()
            frame[cols].to_csv(buf, index=False, header=False)
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
        for table in ("events", "event_actions"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cur.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()


# -- the naive peer -------------------------------------------------------------------

def naive(store: Store) -> dict[str, pd.DataFrame]:
    """Both tables whole into pandas, a Python call per event, groupby-apply per unit."""
    with store.engine.connect() as conn:
        events = pd.read_sql(text("SELECT * FROM events"), conn)
        actions = pd.read_sql(text("SELECT event_id, action, at FROM event_actions"), conn)
    start, end = (pd.Timestamp(f"{y}-01-01T00:00:00+08:00") for y in (2026, 2027))
    as_of = pd.Timestamp(AS_OF)
    for c in ("reported_at", "deadline_at", "closed_at"):
        events[c] = pd.to_datetime(events[c], utc=True)
    actions["at"] = pd.to_datetime(actions["at"], utc=True)
    actions = actions[actions["at"] <= as_of]
    # The actions of each event as a set: a Python call per event.
    done = actions.groupby("event_id")["action"].apply(set)
    sets = events["id"].map(done)
    for action in ("accept", "dispatch", "escalate", "rework", "extend"):
        events[action] = [isinstance(s, set) and action in s for s in sets]
    events["village"] = events["grid_code"].str[:12]
    events["township"] = events["grid_code"].str[:9]
    open_states = ["reported", "reviewing", "accepted", "dispatched", "returned", "in_progress", "escalated"]

    def unit(g: pd.DataFrame) -> pd.Series:
        rec = (g["reported_at"] >= start) & (g["reported_at"] < end)
        due = ((g["deadline_at"] >= start) & (g["deadline_at"] < end) & (g["deadline_at"] <= as_of)
               & (g["state"] != "rejected"))
        closed = due & g["closed_at"].notna() & (g["closed_at"] <= as_of)
        return pd.Series({
            "received": int(rec.sum()),
            "accepted": int((rec & g["accept"]).sum()),
            "dispatched": int((rec & g["dispatch"]).sum()),
            "escalated": int((rec & g["escalate"]).sum()),
            "due": int(due.sum()),
            "closed": int(closed.sum()),
            "closed_on_time": int((closed & (g["closed_at"] <= g["deadline_at"])).sum()),
            "reworked": int((due & g["rework"]).sum()),
            "extended": int((due & g["extend"]).sum()),
            "overdue": int((g["state"].isin(open_states) & (g["deadline_at"] < min(end, as_of))).sum()),
        })

    keys = {"grid": "grid_code", "village": "village", "township": "township",
            "department": "department", "platform": "platform"}
    cols = ["reported_at", "deadline_at", "closed_at", "state", "accept", "dispatch", "escalate", "rework", "extend"]
    return {g: events.groupby(keys[g])[cols].apply(unit) for g in GROUPINGS}


# -- run --------------------------------------------------------------------------------

def run(url: str, events, actions, cats, *, with_naive: bool) -> dict:
    store = Store(url)
    store.migrate()
    t = time.perf_counter()
    load(store, events, actions, cats)
    loaded = time.perf_counter() - t
    times = []
    for _ in range(2):  # the second run is the one reported (warm cache, as a server runs)
        t = time.perf_counter()
        facts = read_facts(store, PERIOD, as_of=AS_OF)
        read = time.perf_counter() - t
        tables = assess_many(store, PERIOD, GROUPINGS, facts=facts)
        times.append((time.perf_counter() - t, read))
    total, read = times[-1]
    out = {"dialect": store.dialect, "load_s": loaded, "assess_s": total, "read_s": read,
           "facts": len(facts), "tables": tables}
    if with_naive:
        t = time.perf_counter()
        peer = naive(store)
        out["naive_s"] = time.perf_counter() - t
        for g in GROUPINGS:
            ours = tables[g][[c for c in COUNTS if c in peer[g].columns]]
            theirs = peer[g].reindex(ours.index).fillna(0).astype(np.int64)
            pd.testing.assert_frame_equal(ours, theirs, check_names=False, check_dtype=False)
    store.close()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="also run on this PostgreSQL database (its tables are dropped)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive peer")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    events, actions, cats = synthesize(args.events)
    print(f"synthesized {len(events):,} events and {len(actions):,} actions in {time.perf_counter() - t:.1f} s")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run(f"sqlite:///{tmp}/bench.db", events, actions, cats, with_naive=not args.no_naive))
    if args.postgres:
        eng = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        eng.dispose()
        results.append(run(args.postgres, events, actions, cats, with_naive=not args.no_naive))
    print(f"\nassessment of {PERIOD} by {', '.join(GROUPINGS)} "
          f"({len(events):,} events, {len(actions):,} actions; as of {AS_OF:%Y-%m-%d})")
    for r in results:
        line = (f"{r['dialect']:>10}: gridgeo {r['assess_s']:6.2f} s (SQL read {r['read_s']:.2f} s, "
                f"{r['facts']:,} events in scope; loading took {r['load_s']:.0f} s)")
        if "naive_s" in r:
            line += f"; naive {r['naive_s']:7.1f} s; ratio {r['naive_s'] / r['assess_s']:.0f}x; counts agree"
        print(line)
        verdict = "within" if r["assess_s"] <= 10 else "OVER"
        print(f"{'':>12}{verdict} the 10 s target")
    tot = results[0]["tables"]["township"][["received", "due", "closed", "closed_on_time", "overdue"]].sum()
    print(f"\ntotals: { {k: int(v) for k, v in tot.items()} }")


if __name__ == "__main__":
    main()
