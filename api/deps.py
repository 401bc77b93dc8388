"""Dependencies: the store (one per process) and its connection."""

from __future__ import annotations

from functools import lru_cache

from gridgeo.config import get_settings
from gridgeo.store import Store


@lru_cache(maxsize=1)
def get_store() -> Store:
    """The process-wide store, opened on first use from ``GRIDGEO_DATABASE_URL``."""
    return Store(get_settings().database_url)
