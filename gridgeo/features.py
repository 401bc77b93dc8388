"""The store's layers as feature collections, for OGC API – Features (``/ogc``) and GIS
clients: which collections there are, who may read each, and a page of features
filtered by a bounding box and a time.

Collections:

- ``grids`` (网格): the grids of the plan in force (``datetime``: the plan in force on
  that day; ``plan``: a plan by id or version), with no staff names: public;
- ``villages`` (村社): villages and communities with their boundary: public;
- ``roads`` (道路), ``rivers`` (河流): the ``roads`` layer by kind: public;
- ``households`` (住户): with a token of the household register's roles, a grid
  worker's own grids only, contacts masked (:func:`households_in`, :func:`gridgeo.auth.mask_household`);
- ``events`` (事件): with a token of an event reader, in the caller's scope
  (:func:`gridgeo.auth.event_filters`), reporters masked (:func:`gridgeo.auth.mask_event`);
  ``datetime`` filters by the time reported.

The scope and the masking are those of ``GET /v1/households`` and ``GET /v1/events``:
this module calls the same functions.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo import auth
from gridgeo.errors import InvalidInput
from gridgeo.store import Store
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range
from gridgeo.timezone import CHINA

__all__ = ["COLLECTIONS", "Collection", "InvalidFeatureQuery", "MAX_LIMIT", "DEFAULT_LIMIT", "parse_bbox",
           "parse_datetime", "read_features"]

#: The most features one page holds, and the page size when none is asked for.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
#: The furthest a page may start.
MAX_OFFSET = 2**31 - 1


class InvalidFeatureQuery(InvalidInput):
    """A feature query that cannot be answered: a bad bbox, datetime, limit or offset."""

    status = 400
    code = "invalid-feature-query"


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    geometry: str  # polygon, line, point
    public: bool = True
    temporal: str | None = None  # what datetime filters, if anything


COLLECTIONS = {c.id: c for c in [
    Collection("grids", "网格", "Grids of the plan in force (datetime: the plan in force that day; plan=: a plan "
               "by id or version); households, population, buildings; no staff names.", "polygon",
               temporal="the plan in force on that day"),
    Collection("villages", "村社", "Villages and communities (村/社区) with their boundaries.", "polygon"),
    Collection("roads", "道路", "Roads, with their rank.", "line"),
    Collection("rivers", "河流", "Rivers and streams.", "line"),
    Collection("households", "住户", "Household address points (token needed: the household register's "
               "roles; a grid worker sees their own grids; contacts masked for those who need none).", "point",
               public=False),
    Collection("events", "事件", "Events reported (token needed: event readers, in their scope; reporters "
               "masked for those who need no contact). datetime filters by the time reported.", "point",
               public=False, temporal="the time reported"),
]}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (WGS84) -> a tuple; None for no bbox.

    A box crossing the antimeridian (minlon > maxlon) is refused: gridgeo's data is in China.
    """
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(text) > 200 or len(parts) not in (4, 6) or not all(re.fullmatch(_NUMBER, p.strip()) for p in parts):
        raise InvalidFeatureQuery(f"bbox must be four numbers minlon,minlat,maxlon,maxlat, not {text[:60]!r}")
    values = [float(p) for p in parts]
    if len(values) == 6:  # with heights: minlon,minlat,minh,maxlon,maxlat,maxh
        values = [values[0], values[1], values[3], values[4]]
    x0, y0, x1, y1 = values
    if not all(math.isfinite(v) for v in values) or not (-180 <= x0 <= 180 and -180 <= x1 <= 180
                                                         and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InvalidFeatureQuery(f"bbox {text[:60]!r}: longitudes within -180..180, latitudes within -90..90")
    if x0 > x1 or y0 > y1:
        raise InvalidFeatureQuery(f"bbox {text[:60]!r}: the lower corner comes first (minlon <= maxlon, "
                                  "minlat <= maxlat)")
    return x0, y0, x1, y1


def _instant(text: str, end: bool) -> dt.datetime | None:
    if text in ("..", ""):
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text)
            when = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), CHINA)
        else:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=CHINA)
    except (ValueError, OverflowError):
        raise InvalidFeatureQuery(f"datetime {text[:40]!r} is not a date or a time (RFC 3339, e.g. "
                                  "2026-03-01 or 2026-03-01T08:00:00+08:00)") from None
    if not in_time_range(when):
        raise InvalidFeatureQuery(f"datetime must fall between {FIRST_DAY} and {LAST_DAY}")
    return when


def parse_datetime(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """An OGC ``datetime``: an instant, or an interval ``start/end`` (either may be ``..``).

    Returns ``(start, end)`` with ``end`` exclusive (a date runs to the end of its China
    day); an instant gives ``(t, t)``; None for no datetime.
    """
    if text is None or text == "":
        return None
    if len(text) > 100:
        raise InvalidFeatureQuery("datetime is too long")
    if "/" in text:
        a, _, b = text.partition("/")
        if "/" in b:
            raise InvalidFeatureQuery(f"datetime {text[:60]!r}: one interval start/end")
        start, end = _instant(a, False), _instant(b, True)
        if start is None and end is None:
            raise InvalidFeatureQuery("datetime ../.. is no interval: give a start or an end")
        if start is not None and end is not None and start >= end:
            raise InvalidFeatureQuery(f"datetime {text[:60]!r}: the start comes before the end")
        return start, end
    if text == "..":
        raise InvalidFeatureQuery("datetime .. alone is no instant")
    when = _instant(text, False)
    return when, when


def _page_args(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidFeatureQuery(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidFeatureQuery(f"offset must be between 0 and {MAX_OFFSET}")


def _in_bbox(frame: gpd.GeoDataFrame, bbox) -> gpd.GeoDataFrame:
    if bbox is None or len(frame) == 0:
        return frame
    return frame[shapely.intersects(frame.geometry.to_numpy(), shapely.box(*bbox))]


def _frame(records: list[dict], columns: list[str], lon, lat) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(records, columns=columns)
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    geoms = shapely.points(lon, lat)
    geoms[~(np.isfinite(lon) & np.isfinite(lat))] = None
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)


EVENT_PROPERTIES = ["code", "source", "category_code", "category_name", "platform", "department", "state",
                    "state_label", "reported_at", "deadline_at", "closed_at", "overdue", "grid_code",
                    "village_code", "address", "description", "reporter_name", "reporter_phone"]
HOUSEHOLD_PROPERTIES = ["code", "address", "village_code", "grid_code", "households", "population",
                        "contact_name", "contact_phone"]


def read_features(store: Store, collection: str, principal: auth.Principal = auth.ANONYMOUS, *,
                  bbox=None, interval=None, limit: int = DEFAULT_LIMIT, offset: int = 0,
                  plan: str | None = None, lookup=None, code: str | None = None,
                  ) -> tuple[gpd.GeoDataFrame, int, dict]:
    """A page of ``collection`` as this principal may read it.

    Returns ``(features, number_matched, info)``: a GeoDataFrame (EPSG:4326) whose
    columns are the properties, how many features match in all, and what answered
    (``plan_version`` for grids, households and events' plan). ``code`` keeps the
    feature with that code (public collections).

    Raises
    ------
    NotFound
        An unknown collection.
    Unauthenticated, RoleNotAllowed
        A protected collection without a token, or for a role that does not read it.
    InvalidFeatureQuery
        A bad limit, offset, or a datetime on a collection without time.
    """
    from gridgeo.errors import NotFound

    if collection not in COLLECTIONS:
        raise NotFound(f"no collection {collection!r}: the collections are {', '.join(COLLECTIONS)}")
    _page_args(limit, offset)
    spec = COLLECTIONS[collection]
    if interval is not None and spec.temporal is None:
        raise InvalidFeatureQuery(f"the collection {collection!r} has no time: leave datetime out")
    info: dict = {}
    if collection == "events":
        return _events(store, principal, bbox, interval, limit, offset)
    if collection == "households":
        return _households(store, principal, bbox, limit, offset, lookup)
    if collection == "grids":
        at = None
        if interval is not None:
            start, end = interval
            if start is None or end is None or (end - start) > dt.timedelta(days=1):
                raise InvalidFeatureQuery("grids: datetime is one day or instant (the plan in force then)")
            at = start.astimezone(CHINA).date()
        frame = store.read("grids", at=at, plan=plan)
        info["plan_version"] = frame.attrs.get("plan_version")
        villages = store.read("divisions")[["code", "name"]]
        names = pd.Series(villages["name"].to_numpy(), index=villages["code"].to_numpy())
        frame.insert(3, "village", frame["village_code"].map(names).to_numpy())
        frame = frame.drop(columns=["plan_id"], errors="ignore")
        frame["plan_version"] = info["plan_version"]
    elif collection == "villages":
        frame = store.read("divisions")
        frame = frame[frame["level"].isin(["village", "community"]).to_numpy() & frame.geometry.notna().to_numpy()]
    else:
        frame = store.read("roads")
        frame = frame[(frame["kind"] == ("road" if collection == "roads" else "river")).to_numpy()]
    frame = _in_bbox(frame, bbox)
    if code is not None:
        frame = frame[frame["code"].astype(str).to_numpy() == code]
    page = frame.iloc[offset:offset + limit].reset_index(drop=True)
    return page, int(len(frame)), info


def _events(store, principal, bbox, interval, limit, offset):
    from gridgeo.events import queries

    forced = auth.event_filters(principal, "the events collection")
    since, until = interval if interval is not None else (None, None)
    if interval is not None and since is not None and since == until:  # an instant: that second
        until = since + dt.timedelta(seconds=1)
    page = queries.list_events(store, limit=limit, offset=offset, order="reported_at", bbox=bbox,
                               since=since, until=until, **forced)
    items = [auth.mask_event(e, principal) for e in page["items"]]
    pos = [e.get("position") or {} for e in items]
    frame = _frame(items, EVENT_PROPERTIES, [p.get("lon", np.nan) for p in pos], [p.get("lat", np.nan) for p in pos])
    return frame, int(page["total"]), {}


def _households(store, principal, bbox, limit, offset, lookup):
    from gridgeo.households import households_in

    auth.require(principal, auth.HOUSEHOLD_READERS, "the households collection")
    grids = sorted(principal.grids) or ["-"] if principal.role == "grid_worker" else None
    page = households_in(store, grids=grids, limit=limit, offset=offset, bbox=bbox, lookup=lookup)
    items = [auth.mask_household(h, principal) for h in page["items"]]
    frame = _frame(items, HOUSEHOLD_PROPERTIES, [h["lon"] for h in items], [h["lat"] for h in items])
    return frame, int(page["total"]), {"plan_version": page["plan_version"]}
