"""The process-wide resources the routes use: the store and the lookup over it.

Below :mod:`gridgeo.api.auth` (which reads tokens from the store) and
:mod:`gridgeo.api.deps` (the aliases the routers declare), so that neither imports the
other's dependents. Tests replace the store with ``app.dependency_overrides[get_store]``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Depends

from gridgeo.config import get_settings
from gridgeo.lookup import Lookup
from gridgeo.store import Store


@lru_cache(maxsize=1)
def _open_store() -> Store:
    return Store(get_settings().database_url)


async def get_store() -> Store:
    """The process-wide store, opened on first use from ``GRIDGEO_DATABASE_URL``.

    A coroutine on purpose: FastAPI runs plain-function dependencies in a thread pool,
    which costs more than the lookups it would serve.
    """
    return _open_store()


@lru_cache(maxsize=8)
def _lookup_for(store: Store) -> Lookup:
    return Lookup(store)


async def get_lookup(store: Annotated[Store, Depends(get_store)]) -> Lookup:
    """One Lookup (and so one set of locators) per store and process (a coroutine, like
    :func:`get_store`)."""
    return _lookup_for(store)
