"""Bulk inserts of a frame's rows, a column at a time.

SQLAlchemy's ``conn.execute(table.insert(), rows)`` runs every value of every row through
its type's bind processor (JSON, :class:`~gridgeo.store.types.UTCDateTime`, geometry) in
Python: most of the time of writing a replayed year. :func:`insert_frame` converts each
column at once to what those types would send, then hands the rows to the driver in the
caller's transaction: ``executemany`` on SQLite, ``COPY`` on PostgreSQL. What is stored is
the same, byte for byte (tests/store/test_bulk.py compares it with the per-row path).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import JSON, Connection, Integer, Table
from sqlalchemy.exc import DBAPIError

from gridgeo.store.types import SRID, Geometry, UTCDateTime

__all__ = ["insert_frame", "python_values"]


def python_values(s: pd.Series) -> np.ndarray:
    """A column as plain Python values (None for missing; lists and dicts kept as they are)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        vals = np.array(s.dt.to_pydatetime(), dtype=object)
        vals[s.isna().to_numpy()] = None
    elif s.dtype == object:
        vals = s.to_numpy(dtype=object).copy()
        vals[pd.isna(s).to_numpy()] = None  # element-wise: a list or a dict is a value
    else:
        vals = s.astype(object).where(s.notna(), None).to_numpy(dtype=object)
    return vals


def _utc_text(s: pd.Series, dialect: str) -> np.ndarray:
    """:class:`UTCDateTime`'s bind rule for a whole column: aware times only, stored in UTC;
    on SQLite as SQLAlchemy's DATETIME text (``2025-10-01 01:33:52.000000``, naive UTC)."""
    if s.dtype == object and s.notna().any():
        naive = [v for v in s.dropna() if getattr(v, "tzinfo", None) is None]
        if naive:
            raise ValueError(f"timestamp {naive[0]!r} has no time zone offset")
        s = pd.to_datetime(s, utc=True)
    elif s.dtype == object:
        return np.full(len(s), None, dtype=object)
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"timestamps of {s.name!r} have no time zone offset")
    utc = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    if dialect == "sqlite":
        text = np.strings.replace(np.datetime_as_string(utc, unit="us"), "T", " ")
    else:
        text = np.strings.add(np.datetime_as_string(utc, unit="us"), "+00:00")
    out = text.astype(object)
    out[np.isnat(utc)] = None
    return out


def _geometry(s: pd.Series, dialect: str) -> np.ndarray:
    """:class:`Geometry`'s bind rule for a whole column (shapely geometries or WKB): WKB on
    SQLite; on PostgreSQL the hex EWKB of the geometry in SRID 4326, what
    ``ST_SetSRID(ST_GeomFromWKB(wkb), 4326)`` makes of it, as COPY takes it."""
    vals = s.to_numpy(dtype=object)
    wkb = np.array([isinstance(v, (bytes, bytearray, memoryview)) for v in vals], dtype=bool)
    geoms = vals.copy()
    if wkb.any():
        geoms[wkb] = shapely.from_wkb([bytes(v) for v in vals[wkb]])
    geoms[pd.isna(s).to_numpy() & ~wkb] = None
    has = ~shapely.is_missing(geoms)
    out = np.full(len(vals), None, dtype=object)
    if not has.any():
        return out
    if dialect == "postgresql":
        out[has] = shapely.to_wkb(shapely.set_srid(geoms[has], SRID), hex=True, include_srid=True)
    else:
        out[has] = shapely.to_wkb(geoms[has])
        out[wkb] = [bytes(v) for v in vals[wkb]]  # WKB given is stored as given
    return out


def _column(s: pd.Series, column, conn: Connection) -> np.ndarray:
    dialect = conn.dialect.name
    if isinstance(column.type, UTCDateTime):
        return _utc_text(s, dialect)
    if isinstance(column.type, Geometry):
        return _geometry(s, dialect)
    if isinstance(column.type, Integer) and s.dtype.kind == "f":
        s = s.astype("Int64")  # whole numbers with gaps (NaN): refused if one is not whole
    vals = python_values(s)
    if isinstance(column.type, JSON):
        # SQLAlchemy's JSON rule, None included (it stores the JSON text null), with the
        # engine's serialiser (json.dumps unless the engine was given another).
        dumps = conn.dialect._json_serializer or json.dumps
        out = np.full(len(vals), dumps(None), dtype=object)
        has = np.not_equal(vals, None)
        out[has] = [dumps(v) for v in vals[has]]
        return out
    return vals


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Insert ``frame``'s rows (columns named as ``table``'s) in the caller's transaction.

    Raises the error SQLAlchemy would (e.g. :class:`sqlalchemy.exc.IntegrityError`); the
    caller's transaction then rolls back all of it.
    """
    if len(frame) == 0:
        return
    cols = list(frame.columns)
    quote = conn.dialect.identifier_preparer
    names = ", ".join(quote.format_column(table.c[c]) for c in cols)
    into = f"{quote.format_table(table)} ({names})"
    rows = zip(*(_column(frame[c], table.c[c], conn) for c in cols))
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(cols))
        conn.exec_driver_sql(f"INSERT INTO {into} VALUES ({marks})", list(rows))
        return
    sql = f"COPY {into} FROM STDIN"
    dbapi = conn.dialect.loaded_dbapi
    try:
        with conn.connection.dbapi_connection.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
