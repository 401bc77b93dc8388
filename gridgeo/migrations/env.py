"""Alembic environment: migrations run on the connection gridgeo hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gridgeo.store.schema import metadata

config = context.config
target_metadata = metadata


def _include(obj, name, type_, reflected, compare_to):
    # The GiST indexes are PostGIS-only (see schema.SPATIAL_INDEXES).
    if type_ == "index" and name and name.endswith("_geometry_gist"):
        return context.get_context().dialect.name == "postgresql"
    return True


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        user_module_prefix="gridgeo.store.types.",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
