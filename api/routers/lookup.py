"""Point-in-grid lookups: one point (GET) or up to 100,000 (POST)."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gridgeo.api.batch import FORMS, encode, negotiate, parse_body
from gridgeo.api.deps import AtQuery, LookupDep
from gridgeo.api.middleware import run_heavy, run_in_process
from gridgeo.api.schemas.lookup import BatchAnswer, LookupAnswer
from gridgeo.lookup import Lookup
from gridgeo.store import Store

router = APIRouter(prefix="/v1/lookup", tags=["lookup"])


@router.get("", summary="Which grid holds a point", response_model=LookupAnswer)
async def lookup_one(
    lookup: LookupDep,
    lon: Annotated[float, Query(description="Longitude in degrees.")],
    lat: Annotated[float, Query(description="Latitude in degrees.")],
    crs: Annotated[str, Query(description="wgs84, cgcs2000, gcj02 or bd09.")] = "wgs84",
    at: AtQuery = None,
):
    """The grid, village, township and staff for a point, with the plan version that
    answered. A point within the snapping tolerance (50 m) of a grid is snapped to it and
    says so. 404 outside the jurisdiction; 422 for NaN, out-of-range or swapped
    coordinates and unknown coordinate systems."""
    return Response(lookup.one_json(lon, lat, crs=crs, at=at), media_type="application/json")


_FEATURE_COLLECTION = {
    "type": "object", "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "geometry": {"type": ["object", "null"]},
            "properties": {"type": "object", "description": "The columns of the json form."}}}},
    },
}

_BATCH_EXAMPLES = {
    "points": {"summary": "Pairs", "value": {"crs": "gcj02", "points": [[119.45, 28.44], [119.46, 28.45]]}},
    "columns": {"summary": "Columns", "value": {"lon": [119.45, 119.46], "lat": [28.44, 28.45]}},
    "geojson": {
        "summary": "GeoJSON",
        "value": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"id": "a"}, "geometry": {"type": "Point", "coordinates": [119.45, 28.44]}}]},
    },
}


@router.post("", summary="Which grids hold many points (up to 100,000)", response_model=BatchAnswer,
             responses={200: {"content": {
                 "application/geo+json": {"schema": _FEATURE_COLLECTION},
                 "text/csv": {"schema": {"type": "string"}},
                 "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                 "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
             }}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object"}, "examples": _BATCH_EXAMPLES}}}})
async def lookup_many(
    request: Request,
    lookup: LookupDep,
    crs: Annotated[str | None, Query(description="Coordinate system, if the body does not say it.")] = None,
    at: AtQuery = None,
    format: Annotated[Literal["json", "columns", "geojson", "csv", "parquet", "arrow"] | None, Query(
        description="The answer's form: json (a record per point, the default), columns (one "
                    "array per column), geojson (a FeatureCollection), csv (UTF-8 with BOM), "
                    "parquet or arrow (an Arrow IPC stream). Without it the Accept header "
                    "chooses (text/csv, application/geo+json, application/vnd.apache.parquet, "
                    "application/vnd.apache.arrow.stream).")] = None,
):
    """Results in input order: grid code and name, village, township, snapped, distance_m
    and why a point found no grid (outside, invalid, swapped); the columnar and bulk forms
    add the grid head's name and phone, and the bulk forms each point's lon, lat (and id).
    The body is ``{"points": [[lon, lat], ...]}``, ``{"lon": [...], "lat": [...]}`` or a
    GeoJSON FeatureCollection of points; ``crs`` may be given in the body or the query."""
    form = negotiate(format, request.headers.get("accept"))
    # The body is read here and parsed, located and serialised in the process pool:
    # parsing and writing megabytes hold the GIL, so even in a thread they would stall
    # the event loop (and /health) for the whole batch.
    raw = await request.body()
    url = lookup.store.url
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        body = await run_heavy(_lookup_batch, lookup, raw, crs, at, form)
    else:
        # The worker process keeps one Lookup per Lookup of this process (a new one here,
        # e.g. after the cache is cleared, gets a new one there), so both see the same data.
        key = lookup.__dict__.setdefault("_process_key", uuid.uuid4().hex)
        body = await run_in_process(_lookup_batch_at, url, key, raw, crs, at, form)
    return Response(body, media_type=FORMS[form])


@lru_cache(maxsize=8)
def _worker_lookup(url: str, key: str) -> Lookup:
    """The Lookup of a worker process of the pool for this process's Lookup ``key``."""
    return Lookup(Store(url))


def _lookup_batch_at(url: str, key: str, raw: bytes, crs: str | None, at: dt.date | None,
                     form: str = "json") -> bytes:
    return _lookup_batch(_worker_lookup(url, key), raw, crs, at, form)


def _lookup_batch(lookup: Lookup, raw: bytes, crs: str | None, at: dt.date | None,
                  form: str = "json") -> bytes:
    """The answer to a batch lookup body, in ``form`` (:mod:`gridgeo.api.batch`)."""
    points = parse_body(raw)
    batch = lookup.batch(points.lon, points.lat, crs=points.crs or crs or "wgs84", at=at)
    return encode(batch, points, form)
