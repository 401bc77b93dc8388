"""Point-in-grid lookups: one point (GET) or up to 100,000 (POST)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gridgeo.api.deps import AtQuery, LookupDep
from gridgeo.api.middleware import run_heavy, run_in_process
from gridgeo.api.schemas.lookup import BatchAnswer, LookupAnswer
from gridgeo.errors import BatchTooLarge, InvalidCoordinates, MalformedBody
from gridgeo.lookup import MAX_BATCH, Lookup
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


_BATCH_EXAMPLES = {
    "points": {"summary": "Pairs", "value": {"crs": "gcj02", "points": [[119.45, 28.44], [119.46, 28.45]]}},
    "columns": {"summary": "Columns", "value": {"lon": [119.45, 119.46], "lat": [28.44, 28.45]}},
    "geojson": {
        "summary": "GeoJSON",
        "value": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"id": "a"}, "geometry": {"type": "Point", "coordinates": [119.45, 28.44]}}]},
    },
}


def _parse_batch(body: Any) -> tuple[np.ndarray, np.ndarray, str | None, list | None]:
    """(lon, lat, crs, feature ids) from one of the three accepted shapes."""
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object: {points: [[lon, lat], ...]}, "
                            "{lon: [...], lat: [...]} or a GeoJSON FeatureCollection")
    crs = body.get("crs")
    if isinstance(crs, dict):  # GeoJSON-style {"type": "name", "properties": {"name": ...}}
        props = crs.get("properties")
        crs = props.get("name") if isinstance(props, dict) else None
        if not isinstance(crs, str):
            raise MalformedBody('crs must be a name or '
                                '{"type": "name", "properties": {"name": ...}}')
    ids = None
    if body.get("type") == "FeatureCollection":
        feats = body.get("features")
        if not isinstance(feats, list):
            raise MalformedBody("a FeatureCollection needs a features array")
        _check_size(len(feats))
        coords = []
        ids = []
        for i, f in enumerate(feats):
            geom = f.get("geometry") if isinstance(f, dict) else None
            if not isinstance(geom, dict) or geom.get("type") != "Point" or not _pair(geom.get("coordinates")):
                raise MalformedBody(f"features[{i}]: each feature must have a Point geometry")
            coords.append(geom["coordinates"][:2])
            props = f.get("properties")
            ids.append(f.get("id", props.get("id") if isinstance(props, dict) else None))
        arr = _floats(coords).reshape(-1, 2)
        return arr[:, 0], arr[:, 1], crs, ids
    if "points" in body:
        pts = body["points"]
        if not isinstance(pts, list):
            raise MalformedBody("points must be an array of [lon, lat] pairs")
        _check_size(len(pts))
        if not all(_pair(p) for p in pts):
            bad = next(i for i, p in enumerate(pts) if not _pair(p))
            raise MalformedBody(f"points[{bad}] is not a [lon, lat] pair of numbers")
        arr = _floats([p[:2] for p in pts]).reshape(-1, 2)
        return arr[:, 0], arr[:, 1], crs, None
    if "lon" in body and "lat" in body:
        lon, lat = body["lon"], body["lat"]
        if not isinstance(lon, list) or not isinstance(lat, list) or len(lon) != len(lat):
            raise MalformedBody("lon and lat must be arrays of the same length")
        _check_size(len(lon))
        try:
            return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), crs, None
        except (TypeError, ValueError, OverflowError):
            raise MalformedBody("lon and lat must hold numbers") from None
    raise MalformedBody("give points: [[lon, lat], ...], lon and lat arrays, or a GeoJSON FeatureCollection")


def _floats(values: list) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except OverflowError:  # an integer with hundreds of digits
        raise InvalidCoordinates("a coordinate is too large to be a number of degrees") from None


def _pair(p) -> bool:
    return (isinstance(p, (list, tuple)) and len(p) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2]))


def _check_size(n: int) -> None:
    if n > MAX_BATCH:
        raise BatchTooLarge(f"{n:,} points in one request; the limit is {MAX_BATCH:,}")


@router.post("", summary="Which grids hold many points (up to 100,000)", response_model=BatchAnswer,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object"}, "examples": _BATCH_EXAMPLES}}}})
async def lookup_many(
    request: Request,
    lookup: LookupDep,
    crs: Annotated[str | None, Query(description="Coordinate system, if the body does not say it.")] = None,
    at: AtQuery = None,
):
    """Results in input order: grid code and name, village, township, snapped, distance_m
    and why a point found no grid (outside, invalid, swapped). The body is
    ``{"points": [[lon, lat], ...]}``, ``{"lon": [...], "lat": [...]}`` or a GeoJSON
    FeatureCollection of points; ``crs`` may be given in the body or the query."""
    # The body is read here and parsed, located and serialised in the process pool:
    # parsing and writing megabytes of JSON are long C calls that hold the GIL, so even in
    # a thread they would stall the event loop (and /health) for the whole batch.
    raw = await request.body()
    url = lookup.store.url
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        return Response(await run_heavy(_lookup_batch, lookup, raw, crs, at), media_type="application/json")
    # The worker process keeps one Lookup per Lookup of this process (a new one here, e.g.
    # after the cache is cleared, gets a new one there), so both see the same data.
    key = lookup.__dict__.setdefault("_process_key", uuid.uuid4().hex)
    return Response(await run_in_process(_lookup_batch_at, url, key, raw, crs, at), media_type="application/json")


@lru_cache(maxsize=8)
def _worker_lookup(url: str, key: str) -> Lookup:
    """The Lookup of a worker process of the pool for this process's Lookup ``key``."""
    return Lookup(Store(url))


def _lookup_batch_at(url: str, key: str, raw: bytes, crs: str | None, at: dt.date | None) -> bytes:
    return _lookup_batch(_worker_lookup(url, key), raw, crs, at)


def _lookup_batch(lookup: Lookup, raw: bytes, crs: str | None, at: dt.date | None) -> bytes:
    """The answer (JSON) to a batch lookup body."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None
    lon, lat, body_crs, ids = _parse_batch(body)
    frame = lookup.many(lon, lat, crs=body_crs or crs or "wgs84", at=at)
    frame["distance_m"] = frame["distance_m"].round(2)
    records = json.loads(frame.to_json(orient="records", force_ascii=False))
    if ids is not None:
        for rec, fid in zip(records, ids):
            rec["id"] = fid
    return json.dumps({"plan_version": frame.attrs["plan_version"], "count": len(records),
                       "located": int((~frame["outside"]).sum()), "results": records},
                      ensure_ascii=False, allow_nan=False).encode()

