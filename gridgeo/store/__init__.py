"""The store: SQLite (embedded default, one file, WAL) or PostgreSQL + PostGIS.

>>> store = Store("sqlite:///gridgeo.db")   # doctest: +SKIP
>>> store.migrate()                         # doctest: +SKIP
>>> grids = store.read("grids")             # plan in force today, a GeoDataFrame
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, create_engine, event, func, inspect, or_, select

from gridgeo.config import get_settings
from gridgeo.errors import NotFound, StoreError
from gridgeo.layers import get_layer
from gridgeo.store import schema
from gridgeo.store.schema import LAYER_TABLES, audit_log, metadata, plans
from gridgeo.timezone import today

if TYPE_CHECKING:  # frames are built where asked for: opening a store, reading a plan or a
    # count needs neither pandas nor geopandas (``gridgeo locate`` of a CSV starts without them)
    import geopandas as gpd
    import pandas as pd

__all__ = ["Store", "schema", "metadata", "today"]

#: Bumped with every new migration; ``Store.check`` compares it with the database.
HEAD_REVISION = "0009"


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before it returns (WAL fsynced), so an acknowledged event
    # survives power loss too, not only a crash of the process (NORMAL would).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings gridgeo relies on.

    SQLite gets WAL, foreign keys and a busy timeout on every connection; its file's
    folder is created if missing. PostgreSQL gets pre-ping so that a restarted server
    does not fail the first request.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, echo=echo, pool_pre_ping=True)
    raise StoreError(
        f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql+psycopg://..."
    )


def _alembic_config(connection: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("gridgeo") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def frame_from_rows(rows, columns: list[str], *, geometry: str | None = "geometry"):
    """Build a (Geo)DataFrame from result rows, decoding WKB in one vectorised call."""
    import pandas as pd

    if len(rows) and not isinstance(rows[0], tuple):
        # SQLAlchemy rows as plain tuples: pandas probes each Row for a dtype, and a Row's
        # missing attribute costs an exception (11 s of 17 for 100,000 grids)
        rows = [tuple(r) for r in rows]
    df = pd.DataFrame(rows, columns=columns)
    if geometry is None or geometry not in df.columns:
        return df
    import geopandas as gpd
    import numpy as np
    import shapely

    wkb = df.pop(geometry).to_numpy(dtype=object)
    geoms = shapely.from_wkb(wkb) if len(wkb) else np.array([], dtype=object)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index, crs=4326), crs=4326)


def _first_line(exc: Exception) -> str:
    """The driver's message, without SQLAlchemy's statement and background link."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


class Store:
    """A gridgeo database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; defaults to ``GRIDGEO_DATABASE_URL`` (``sqlite:///gridgeo.db``).
    """

    def __init__(self, url: str | None = None, *, echo: bool | None = None):
        settings = get_settings()
        self.url = url or settings.database_url
        self.engine = make_engine(self.url, echo=settings.echo_sql if echo is None else echo)

    def __repr__(self) -> str:
        return f"Store({self.shown!r})"

    @property
    def shown(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (idempotent)."""
        from alembic import command
        from sqlalchemy.exc import DatabaseError, OperationalError

        try:
            with self.engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "head")
        except (DatabaseError, OperationalError) as exc:  # not a database, cannot be opened
            raise StoreError(f"cannot create or upgrade the schema of {self.shown}: {_first_line(exc)}") from None

    def revision(self) -> str | None:
        """The migration the database is at, or None if it has no gridgeo schema."""
        if not inspect(self.engine).has_table("alembic_version"):
            return None
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def check(self) -> None:
        """Raise :class:`StoreError` unless the schema is at the newest migration."""
        try:
            rev = self.revision()
        except Exception as exc:  # the driver's own error says why (refused, no such db)
            raise StoreError(f"cannot reach the database {self.shown}: {_first_line(exc)}") from exc
        if rev is None:
            raise StoreError(f"the database has no gridgeo schema ({self.shown}): run `gridgeo init`")
        if rev != HEAD_REVISION:
            raise StoreError(
                f"the database schema is at {rev}, this gridgeo needs {HEAD_REVISION} ({self.shown}): "
                "run `gridgeo init` to migrate"
            )

    def is_empty(self) -> bool:
        """True when no division has been loaded."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(schema.divisions)).scalar() == 0

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        out = {}
        with self.engine.connect() as conn:
            for name, table in metadata.tables.items():
                out[name] = conn.execute(select(func.count()).select_from(table)).scalar()
        return out

    # -- plans --------------------------------------------------------------------

    def plans(self) -> pd.DataFrame:
        """Every plan version with its dates, status and number of grids."""
        g = schema.grids
        q = (
            select(
                plans.c.id,
                plans.c.version,
                plans.c.name,
                plans.c.status,
                plans.c.effective_from,
                plans.c.effective_to,
                func.count(g.c.id).label("grids"),
            )
            .select_from(plans.outerjoin(g, g.c.plan_id == plans.c.id))
            .group_by(plans.c.id)
            .order_by(plans.c.effective_from.asc().nulls_last(), plans.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        import pandas as pd

        return pd.DataFrame(
            rows, columns=["id", "version", "name", "status", "effective_from", "effective_to", "grids"]
        )

    def plan(self, ref: int | str, *, conn: Connection | None = None) -> dict[str, Any]:
        """The plan with id or version ``ref``; :class:`NotFound` if there is none."""
        cond = plans.c.id == ref if isinstance(ref, int) else plans.c.version == str(ref)
        row = self._one(select(plans).where(cond), conn)
        if row is None:
            raise NotFound(f"no plan {ref!r}")
        return row

    def plan_in_force(self, at: dt.date | None = None, *, conn: Connection | None = None):
        """The published plan in force on ``at`` (default today, CST), or None."""
        at = at or today()
        q = (
            select(plans)
            .where(
                plans.c.status != "draft",
                plans.c.effective_from <= at,
                or_(plans.c.effective_to.is_(None), plans.c.effective_to > at),
            )
            .order_by(plans.c.effective_from.desc(), plans.c.id.desc())
            .limit(1)
        )
        return self._one(q, conn)

    def _one(self, q, conn: Connection | None):
        if conn is not None:
            row = conn.execute(q).mappings().first()
        else:
            with self.engine.connect() as c:
                row = c.execute(q).mappings().first()
        return dict(row) if row is not None else None

    # -- layers -------------------------------------------------------------------

    def tuples(self, sql: str, params: dict | None = None) -> list[tuple]:
        """The rows of ``sql`` (a trusted statement naming ``:params``) as plain tuples, through
        the driver's own cursor: for reads of a province's 100,000 rows, where SQLAlchemy's
        rows and result processing cost seconds. Geometry comes as stored (WKB on SQLite;
        select ``ST_AsBinary(geometry)`` on PostgreSQL)."""
        return [row for batch in self.batches(sql, params) for row in batch]

    def batches(self, sql: str, params: dict | None = None, size: int = 1_000_000):
        """The rows of ``sql``, as :meth:`tuples` gives them, in lists of at most ``size``
        (a reader of large geometries then holds one batch of them at a time)."""
        params = dict(params or {})
        if self.dialect == "postgresql":
            for k in sorted(params, key=len, reverse=True):
                sql = sql.replace(f":{k}", f"%({k})s")
        with self.engine.connect() as conn:
            cur = conn.connection.cursor()
            try:
                cur.execute(sql, params)
                while rows := cur.fetchmany(size):
                    yield rows
            finally:
                cur.close()

    def read(
        self,
        layer: str,
        *,
        at: dt.date | None = None,
        plan: int | str | None = None,
        where=None,
        conn: Connection | None = None,
        geometry: bool = True,
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """Read a layer as a GeoDataFrame (EPSG:4326) or, for tables, a DataFrame.

        Parameters
        ----------
        layer : str
            One of :data:`gridgeo.layers.LAYERS`.
        at, plan : optional
            For ``grids`` only: the plan in force on ``at`` (default today), or the plan
            with this id or version. The frame gets ``plan_version`` as an attribute in
            ``frame.attrs``. With no plan in force the frame is empty.
        where : optional
            An extra SQLAlchemy condition on the layer's table.
        geometry : bool
            False: the attributes only, as a DataFrame (no geometry read or decoded).
        """
        spec = get_layer(layer)
        table = LAYER_TABLES[layer]
        cols = [table.c[c] for c in table.c.keys() if c not in ("id",) and (geometry or c != "geometry")]
        q = select(*cols)
        if where is not None:
            q = q.where(where)
        attrs: dict[str, Any] = {}
        if layer == "grids":
            p = self.plan(plan, conn=conn) if plan is not None else self.plan_in_force(at, conn=conn)
            q = q.where(table.c.plan_id == (p["id"] if p else -1)).order_by(table.c.code)
            attrs = {"plan_version": p["version"] if p else None, "plan_id": p["id"] if p else None}
        elif spec.key and spec.key in table.c:
            q = q.order_by(table.c[spec.key])
        if conn is not None:
            rows = conn.execute(q).all()
        else:
            with self.engine.connect() as c:
                rows = c.execute(q).all()
        names = [c.name for c in cols]
        frame = frame_from_rows(rows, names, geometry="geometry" if spec.geometry and geometry else None)
        frame.attrs.update(attrs)
        return frame

    # -- audit --------------------------------------------------------------------

    @staticmethod
    def audit(
        conn: Connection,
        *,
        actor: str,
        action: str,
        entity: str,
        entity_id: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """Append one line to the audit log, inside the caller's transaction."""
        conn.execute(
            audit_log.insert().values(
                at=dt.datetime.now(dt.timezone.utc),
                actor=actor,
                action=action,
                entity=entity,
                entity_id=entity_id,
                detail=detail,
            )
        )

    def audit_log(self, entity: str | None = None, entity_id: str | None = None) -> pd.DataFrame:
        """The audit log, oldest first, optionally for one entity."""
        conds = []
        if entity is not None:
            conds.append(audit_log.c.entity == entity)
        if entity_id is not None:
            conds.append(audit_log.c.entity_id == entity_id)
        q = select(audit_log).order_by(audit_log.c.id)
        if conds:
            q = q.where(and_(*conds))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        import pandas as pd

        return pd.DataFrame(rows, columns=list(audit_log.c.keys()))
