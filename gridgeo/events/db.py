"""Write transactions and event numbers, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from contextlib import contextmanager

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gridgeo.store import Store, schema
from gridgeo.timezone import CHINA as CST

__all__ = ["CST", "allocate_code", "allocate_codes", "bump_counters", "write_txn"]

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _lock(store: Store) -> threading.Lock:
    lk = _LOCKS.get(store)
    if lk is None:
        with _LOCKS_LOCK:
            lk = _LOCKS.setdefault(store, threading.Lock())
    return lk


@contextmanager
def write_txn(store: Store):
    """A connection in a write transaction, committed on exit (rolled back on error).

    SQLite has one writer at a time: threads of this process queue on a lock (instead
    of spinning in SQLite's busy handler) and the transaction starts with ``BEGIN
    IMMEDIATE``, so that a transaction that reads before it writes cannot fail half way
    on another process's write.
    """
    if store.dialect == "sqlite":
        with _lock(store), store.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
    else:
        with store.engine.begin() as conn:
            yield conn


def _insert(conn):
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _max_number(conn, day: str) -> int:
    """The highest number of the day among existing codes (imports may bring some)."""
    ev = schema.events
    top = conn.execute(
        select(func.max(ev.c.code)).where(ev.c.code >= f"E{day}", ev.c.code < f"E{day}~")
    ).scalar()
    suffix = top[len(day) + 1:] if top else ""
    return int(suffix) if suffix.isdigit() else 0


_NEXT = (update(schema.event_counters).where(schema.event_counters.c.day == bindparam("d"))
         .values(last=schema.event_counters.c.last + bindparam("k")).returning(schema.event_counters.c.last))


def allocate_codes(conn, day: str, count: int = 1) -> list[str]:
    """The next ``count`` event codes of ``day`` (yyyymmdd, CST): ``E`` + day + number
    of the day (5 digits, more past 99,999).

    The counter row of the day stays locked until the transaction ends, so two intakes
    of one day never get the same number.
    """
    ec = schema.event_counters
    last = conn.execute(_NEXT, {"d": day, "k": count}).scalar()
    if last is None:
        start = _max_number(conn, day)
        ins = _insert(conn)(ec).values(day=day, last=start + count)
        ins = ins.on_conflict_do_update(index_elements=[ec.c.day], set_={"last": ec.c.last + count})
        last = conn.execute(ins.returning(ec.c.last)).scalar()
    return [f"E{day}{n:05d}" for n in range(last - count + 1, last + 1)]


def allocate_code(conn, reported_at: dt.datetime) -> str:
    """The next event code for an event reported at ``reported_at``."""
    return allocate_codes(conn, reported_at.astimezone(CST).strftime("%Y%m%d"), 1)[0]


def bump_counters(conn, codes) -> None:
    """Raise the day counters above imported codes of the ``E``yyyymmddNNNNN form."""
    top: dict[str, int] = {}
    for code in codes:
        if isinstance(code, str) and len(code) >= 14 and code[0] == "E" and code[1:].isdigit():
            day, num = code[1:9], int(code[9:])
            top[day] = max(top.get(day, 0), num)
    if not top:
        return
    ec = schema.event_counters
    ins = _insert(conn)(ec)
    stmt = ins.on_conflict_do_update(
        index_elements=[ec.c.day],
        set_={"last": func.max(ec.c.last, ins.excluded.last) if conn.dialect.name == "sqlite"
              else func.greatest(ec.c.last, ins.excluded.last)},
    )
    conn.execute(stmt, [{"day": d, "last": n} for d, n in top.items()])
