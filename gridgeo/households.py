"""The household register (户籍/实有人口地址) by grid: which households each grid holds.

Households carry no grid code in the store: a grid plan can change, an address stays.
They are placed in the grids of the plan in force with the same
:class:`~gridgeo.locate.Locator` rules as the point lookup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import or_

from gridgeo.errors import InvalidEvent
from gridgeo.lookup import Lookup
from gridgeo.store import Store, schema
from gridgeo.store.sql import starts_with

__all__ = ["households_in"]

MAX_LIMIT = 1000


def households_in(store: Store, *, grids: Iterable[str] | None = None, village: str | None = None,
                  at: dt.date | None = None, limit: int = 100, offset: int = 0,
                  lookup: Lookup | None = None, bbox=None) -> dict:
    """Households of some grids (or of a village / township code prefix) under the plan
    in force on ``at``, ordered by code, a page at a time.

    Returns ``{"plan_version", "total", "limit", "offset", "items"}``; each item has
    code, address, village_code, grid_code, households, population, contact_name,
    contact_phone, lon, lat. ``bbox`` (lon/lat ``x0, y0, x1, y1``) keeps the households in it.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidEvent(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidEvent("offset must not be negative")
    grids = sorted({g for g in (grids or []) if g})
    lookup = lookup or Lookup(store, cache_dir=None)
    plan = lookup.plan_at(at)
    h = schema.households
    conds = []
    if grids:  # a grid code starts with its village's code
        conds.append(or_(*[h.c.village_code == g[:12] for g in {g[:12] for g in grids}]))
    if village:
        conds.append(starts_with(h.c.village_code, village))
    frame = store.read("households", where=None if not conds else conds[0] if len(conds) == 1
                       else conds[0] & conds[1])
    geoms = frame.geometry.to_numpy()
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    if bbox is not None:
        inside = (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])
        frame, x, y = frame[inside], x[inside], y[inside]
    codes = lookup.locator(plan).locate(x, y) if len(frame) else np.array([], dtype=object)
    keep = np.isin(codes.astype(str), grids) if grids else np.ones(len(frame), dtype=bool)
    out = pd.DataFrame({
        "code": frame["code"].to_numpy(), "address": frame["address"].to_numpy(),
        "village_code": frame["village_code"].to_numpy(), "grid_code": codes,
        "households": frame["households"].to_numpy(), "population": frame["population"].to_numpy(),
        "contact_name": frame["contact_name"].to_numpy(), "contact_phone": frame["contact_phone"].to_numpy(),
        "lon": x, "lat": y,
    })[keep].sort_values("code")
    page = out.iloc[offset:offset + limit].astype(object).where(lambda d: d.notna(), None)
    return {"plan_version": plan["version"], "total": int(len(out)), "limit": limit, "offset": offset,
            "items": page.to_dict(orient="records")}
