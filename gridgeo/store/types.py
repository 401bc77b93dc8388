"""Column types that work the same on SQLite and on PostgreSQL + PostGIS.

Geometry is held as WKB in a BLOB on SQLite and as a PostGIS ``geometry(..., 4326)``
on PostgreSQL. Both dialects hand back WKB bytes, so reading a layer is one vectorised
``shapely.from_wkb`` call whatever the database.
"""

from __future__ import annotations

import datetime as dt

import shapely
from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, UserDefinedType

SRID = 4326

#: The days gridgeo takes times from, at their local date (1900 to 2199): the year 1
#: cannot be moved to UTC, nor the year 9999 past its end, and pandas' timestamps stop
#: in 2262. Times from outside (reports, filters, periods) are checked where they come in.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2199, 12, 31)


def in_time_range(when: dt.date | dt.datetime) -> bool:
    """Whether ``when`` (a date, or a datetime at its own offset) falls in FIRST_DAY..LAST_DAY."""
    day = when.date() if isinstance(when, dt.datetime) else when
    return FIRST_DAY <= day <= LAST_DAY


class _PostGISGeometry(UserDefinedType):
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY", srid: int = SRID):
        self.geometry_type = geometry_type
        self.srid = srid

    def get_col_spec(self, **kw) -> str:
        return f"geometry({self.geometry_type},{self.srid})"


class _Wrap(FunctionElement):
    """A pass-through on SQLite, a PostGIS conversion on PostgreSQL (see the compilers)."""

    inherit_cache = True

    def __init__(self, arg, type_):
        super().__init__(arg)
        self.type = type_


class _GeomFromWKB(_Wrap):
    inherit_cache = True
    name = "geom_from_wkb"


class _GeomAsWKB(_Wrap):
    inherit_cache = True
    name = "geom_as_wkb"


@compiles(_GeomFromWKB)
def _from_wkb_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(_GeomFromWKB, "postgresql")
def _from_wkb_pg(element, compiler, **kw):
    return f"ST_SetSRID(ST_GeomFromWKB({compiler.process(element.clauses, **kw)}), {SRID})"


@compiles(_GeomAsWKB)
def _as_wkb_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(_GeomAsWKB, "postgresql")
def _as_wkb_pg(element, compiler, **kw):
    return f"ST_AsBinary({compiler.process(element.clauses, **kw)})"


class Geometry(TypeDecorator):
    """A lon/lat (EPSG:4326) geometry column; Python values are shapely geometries.

    :mod:`gridgeo.store.bulk` writes whole columns of it the same way.

    Parameters
    ----------
    geometry_type : str
        PostGIS type modifier (``POINT``, ``LINESTRING``, ``GEOMETRY`` ...). SQLite does
        not enforce it; the importer does.
    """

    impl = LargeBinary
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY"):
        super().__init__()
        self.geometry_type = geometry_type

    def __repr__(self) -> str:
        return f"Geometry({self.geometry_type!r})"

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry(self.geometry_type))
        return dialect.type_descriptor(LargeBinary())

    def bind_expression(self, bindvalue):
        return _GeomFromWKB(bindvalue, self)

    def column_expression(self, col):
        return _GeomAsWKB(col, self)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        return shapely.to_wkb(value)

    def process_result_value(self, value, dialect):
        # Left as WKB bytes: readers decode whole columns at once with shapely.from_wkb.
        if value is None:
            return None
        return bytes(value)


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp, stored in UTC on every database.

    Naive values are refused: a timestamp without an offset is ambiguous between
    Beijing time and UTC. :mod:`gridgeo.store.bulk` applies the same rule to whole columns
    (tests/store/test_bulk.py holds the two to the same stored bytes).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone offset")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)
