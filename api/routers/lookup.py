"""Point-in-grid lookups: one point (GET) or up to 100,000 (POST)."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gridgeo.api.batch import FORMS, encode, negotiate, read_body
from gridgeo.api.deps import AtQuery, LookupDep
from gridgeo.api.middleware import (SharedFile, SharingFailed, read_shared, run_heavy,
                                    run_in_process, sharing, stop_sharing, write_shared)
from gridgeo.api.schemas.lookup import BatchAnswer, LookupAnswer
from gridgeo.config import get_settings
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


_TABLE_BODY = ("A table with a longitude column (lon, lng, longitude, 经度 or x) and a latitude "
               "column (lat, latitude, 纬度 or y), optionally an id column (echoed in the answer); "
               "the coordinate system is the crs query parameter (default wgs84).")
_BATCH_BODIES = {
    "application/json": {"schema": {"type": "object"}, "examples": _BATCH_EXAMPLES},
    "text/csv": {"schema": {"type": "string", "description": _TABLE_BODY + " A header, then a row per point, "
                            "in UTF-8 (with or without BOM) or GB18030/GBK (detected, or "
                            "text/csv; charset=gb18030)."},
                 "example": "id,lon,lat\nA1,119.45,28.44\nA2,119.46,28.45\n"},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary",
                                                  "description": "A Parquet file. " + _TABLE_BODY}},
    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary",
                                                       "description": "An Arrow IPC stream. " + _TABLE_BODY}},
    "application/vnd.apache.arrow.file": {"schema": {"type": "string", "format": "binary",
                                                     "description": "An Arrow IPC file. " + _TABLE_BODY}},
}


@router.post("", summary="Which grids hold many points (up to 100,000)", response_model=BatchAnswer,
             responses={200: {"content": {
                 "application/geo+json": {"schema": _FEATURE_COLLECTION},
                 "text/csv": {"schema": {"type": "string"}},
                 "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                 "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
             }}},
             openapi_extra={"requestBody": {"required": True, "content": _BATCH_BODIES}})
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
    GeoJSON FeatureCollection of points; ``crs`` may be given in the body or the query.
    Bulk bodies, by their Content-Type: ``text/csv`` (UTF-8 or GB18030),
    ``application/vnd.apache.parquet``, ``application/vnd.apache.arrow.stream`` or
    ``.file``, with lon and lat columns (and an optional id). 413 past 100,000 points or
    the body limit; 422 for a body that is not what its type says, or lacks the columns,
    naming what is wrong. NaN, blank and out-of-range coordinates are flagged invalid."""
    form = negotiate(format, request.headers.get("accept"))
    # The body is read here (the body guard bounds its size and time) and scanned, parsed,
    # located and serialised in the process pool, in one trip: parsing and writing
    # megabytes hold the GIL, so even in a thread they would stall the event loop (and
    # /health) for the whole batch. Body and answer cross in shared files (no pickling of
    # megabytes through the pool's pipe), the answer sent from its mapping.
    kind = request.headers.get("content-type")
    depth = get_settings().max_json_depth
    url = lookup.store.url
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        raw = await request.body()
        body = await run_heavy(_lookup_batch, lookup, raw, crs, at, form, kind, depth)
        return Response(body, media_type=FORMS[form])
    # The worker process keeps one Lookup per Lookup of this process (a new one here,
    # e.g. after the cache is cleared, gets a new one there), so both see the same data.
    key = lookup.__dict__.setdefault("_process_key", uuid.uuid4().hex)
    if sharing():
        with SharedFile() as body_file, SharedFile() as answer_file:
            async for chunk in request.stream():
                body_file.write(chunk)
            try:
                size = await run_in_process(_lookup_batch_at, url, key, body_file.name, crs, at,
                                            form, kind, depth, answer_file.name)
                return Response(answer_file.view(size), media_type=FORMS[form])
            except SharingFailed as exc:  # no /proc to reach it by: pickled, from now on
                stop_sharing(exc)
                raw = body_file.view(body_file.size).tobytes()
    else:
        raw = await request.body()
    body = await run_in_process(_lookup_batch_at, url, key, raw, crs, at, form, kind, depth)
    return Response(body, media_type=FORMS[form])


@lru_cache(maxsize=8)
def _worker_lookup(url: str, key: str) -> Lookup:
    """The Lookup of a worker process of the pool for this process's Lookup ``key``."""
    return Lookup(Store(url))


def _lookup_batch_at(url: str, key: str, raw: bytes | str, crs: str | None, at: dt.date | None,
                     form: str = "json", content_type: str | None = None, max_depth: int = 0,
                     answer: str | None = None) -> bytes | int:
    """:func:`_lookup_batch` in a process of the pool; ``raw`` and ``answer`` may name
    shared files (:class:`~gridgeo.api.middleware.SharedFile`): the body is read from the
    one, the answer written into the other, and its size returned."""
    lookup = _worker_lookup(url, key)
    if answer is None:
        return _lookup_batch(lookup, raw, crs, at, form, content_type, max_depth)
    raw = read_shared(raw)
    sink = write_shared(answer)
    with sink:
        return _lookup_batch(lookup, raw, crs, at, form, content_type, max_depth, sink)


def _lookup_batch(lookup: Lookup, raw: bytes, crs: str | None, at: dt.date | None,
                  form: str = "json", content_type: str | None = None, max_depth: int = 0,
                  sink=None) -> bytes | int:
    """The answer to a batch lookup body of ``content_type`` (JSON, CSV, Parquet, Arrow;
    a JSON body scanned for depth and NUL escapes first), in ``form``
    (:mod:`gridgeo.api.batch`); written into ``sink`` when given, then its size."""
    points = read_body(raw, content_type, max_depth)
    batch = lookup.batch(points.lon, points.lat, crs=points.crs or crs or "wgs84", at=at)
    return encode(batch, points, form, sink)
