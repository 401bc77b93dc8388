"""The single settings object, read from the environment (``GRIDGEO_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Settings of gridgeo; each field can be set as ``GRIDGEO_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRIDGEO_", env_file=None, extra="ignore")

    #: SQLAlchemy URL. SQLite (one file, WAL) by default; for production use
    #: ``postgresql+psycopg://user@host:5432/db`` with PostGIS installed.
    database_url: str = "sqlite:///gridgeo.db"
    #: Where the sample data set lives (``data/sample`` of the source tree).
    sample_dir: Path = _REPO / "data" / "sample"
    #: Tolerance, in square metres, under which an overlap or gap is numerical noise.
    area_tolerance_m2: float = 1.0
    #: Distance, in metres, within which a point outside every grid is snapped to one.
    snap_tolerance_m: float = 50.0
    #: Staffing rule of the planner: one grid worker per this many households (rounded up).
    households_per_worker: int = 200
    #: Where built indexes (locators) are saved so that new workers load them.
    cache_dir: Path = Path(".gridgeo-cache")
    #: Echo SQL statements (debugging).
    echo_sql: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
