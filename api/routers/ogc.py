"""OGC API – Features under ``/ogc``: what QGIS ("Add WFS / OGC API – Features layer"),
ArcGIS, GDAL/OGR (``ogrinfo OAPIF:http://host/ogc``) and OWSLib read.

Part 1 (core, GeoJSON, OpenAPI 3.0): the landing page, conformance, the collections
(:data:`gridgeo.features.COLLECTIONS`), items with ``bbox`` (WGS84 lon/lat, CRS84),
``limit`` (1..1000, default 100), ``offset`` and next/prev links, ``datetime`` where a
collection has a time, and one feature by its code. Households and events need a token
(Authorization: Bearer) and are read in the caller's scope, masked as ``/v1`` masks them:
:func:`gridgeo.features.read_features` calls the same functions.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import numpy as np
import pandas as pd
import shapely
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from gridgeo import __version__, auth
from gridgeo.api.deps import LookupDep, PrincipalDep, StoreDep
from gridgeo.api.middleware import run_heavy
from gridgeo.errors import NotFound
from gridgeo.features import (COLLECTIONS, DEFAULT_LIMIT, InvalidFeatureQuery, parse_bbox, parse_datetime,
                              read_features)

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])

GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _json(body: dict, media_type: str = "application/json") -> Response:
    return Response(json.dumps(body, ensure_ascii=False, allow_nan=False, default=str), media_type=media_type)


def _f(f: str | None) -> None:
    if f not in (None, "", "json", "geojson"):
        raise InvalidFeatureQuery(f"f={f[:20]!r}: only json is served")


@router.get("", summary="Landing page")
def landing(request: Request, f: Annotated[str | None, Query(description="json")] = None):
    _f(f)
    base = _base(request)
    return _json({
        "title": "gridgeo 网格 (OGC API – Features)",
        "description": "Grids, villages, roads and rivers (public); households and events with a token.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI, "title": "the API definition"},
            {"href": str(request.base_url).rstrip("/") + "/docs", "rel": "service-doc", "type": "text/html",
             "title": "the API documentation"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
             "title": "conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "the collections"},
        ],
    })


@router.get("/conformance", summary="Conformance classes")
def conformance(f: Annotated[str | None, Query(description="json")] = None):
    _f(f)
    return _json({"conformsTo": CONFORMANCE})


@router.get("/api", summary="The OpenAPI definition of /ogc")
def api(request: Request):
    doc = request.app.openapi()
    paths = {k: v for k, v in doc.get("paths", {}).items() if k.startswith("/ogc")}
    return _json({"openapi": "3.0.3", "info": {"title": "gridgeo OGC API – Features", "version": __version__},
                  "servers": [{"url": str(request.base_url).rstrip("/")}], "paths": paths,
                  "components": doc.get("components", {})}, OPENAPI)


def _extent(store) -> list[float] | None:
    divisions = store.read("divisions")
    geoms = divisions.geometry.dropna().to_numpy()
    if len(geoms) == 0:
        return None
    return [round(float(v), 6) for v in shapely.total_bounds(geoms)]


def _collection(base: str, cid: str, extent) -> dict:
    c = COLLECTIONS[cid]
    out = {
        "id": cid, "title": c.title, "description": c.description, "itemType": "feature",
        "crs": [CRS84],
        "links": [
            {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json", "title": c.title},
            {"href": f"{base}/collections/{cid}/items", "rel": "items", "type": GEOJSON, "title": c.title},
        ],
    }
    if extent is not None:
        out["extent"] = {"spatial": {"bbox": [extent], "crs": CRS84}}
    return out


@router.get("/collections", summary="The collections")
def collections(request: Request, store: StoreDep, f: Annotated[str | None, Query(description="json")] = None):
    _f(f)
    base = _base(request)
    extent = _extent(store)
    return _json({
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [_collection(base, cid, extent) for cid in COLLECTIONS],
    })


CollectionId = Annotated[str, Path(description=", ".join(COLLECTIONS), max_length=40)]


@router.get("/collections/{collection_id}", summary="One collection")
def collection(request: Request, store: StoreDep, collection_id: CollectionId,
               f: Annotated[str | None, Query(description="json")] = None):
    _f(f)
    if collection_id not in COLLECTIONS:
        raise NotFound(f"no collection {collection_id!r}: the collections are {', '.join(COLLECTIONS)}")
    return _json(_collection(_base(request), collection_id, _extent(store)))


def _features(frame) -> list[dict]:
    """Features of a GeoDataFrame page (id: the code), geometry as GeoJSON (vectorised)."""
    if len(frame) == 0:
        return []
    geoms = frame.geometry.to_numpy()
    texts = shapely.to_geojson(geoms)
    props = json.loads(pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_json(
        orient="records", date_format="iso", force_ascii=False))
    return [{"type": "Feature", "id": p.get("code"), "geometry": json.loads(g) if g is not None else None,
             "properties": p} for p, g in zip(props, texts)]


@router.get("/collections/{collection_id}/items", summary="Features of a collection, a page at a time",
            responses={200: {"content": {GEOJSON: {}}}})
async def items(
    request: Request, store: StoreDep, lookup: LookupDep, principal: PrincipalDep,
    collection_id: CollectionId,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)", max_length=200)] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=200)] = None,
    datetime: Annotated[str | None, Query(description="An instant or an interval start/end ('..' open); "
                                                     "grids: the plan in force then; events: reported", max_length=100)] = None,
    limit: Annotated[int, Query(description="1 to 1000 (more is answered with 1000)", ge=1)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    plan: Annotated[str | None, Query(description="grids: this plan (id or version)", max_length=40)] = None,
    f: Annotated[str | None, Query(description="json")] = None,
):
    """GeoJSON FeatureCollection with ``numberMatched``, ``numberReturned`` and a next
    link while there are more."""
    _f(f)
    if bbox_crs not in (None, "", CRS84):
        raise InvalidFeatureQuery(f"bbox-crs: only {CRS84} (lon/lat WGS84)")
    limit = min(limit, 1000)  # OGC: a larger limit is answered with the server's largest
    box = parse_bbox(bbox)
    interval = parse_datetime(datetime)
    if plan is not None and collection_id != "grids":
        raise InvalidFeatureQuery("plan= applies to the grids collection only")

    def answer():
        frame, matched, info = read_features(store, collection_id, principal, bbox=box, interval=interval,
                                             limit=limit, offset=offset, plan=plan, lookup=lookup)
        return _features(frame), matched, info

    features, matched, info = await run_heavy(answer)
    url = request.url
    links = [{"href": str(url), "rel": "self", "type": GEOJSON}]
    if offset + len(features) < matched:
        links.append({"href": str(url.include_query_params(offset=offset + len(features), limit=limit)),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset > 0:
        links.append({"href": str(url.include_query_params(offset=max(0, offset - limit), limit=limit)),
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    body = {"type": "FeatureCollection", "features": features, "numberMatched": matched,
            "numberReturned": len(features), "links": links,
            "timeStamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if info.get("plan_version"):
        body["plan_version"] = info["plan_version"]
    return _json(body, GEOJSON)


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature by its code",
            responses={200: {"content": {GEOJSON: {}}}})
async def item(request: Request, store: StoreDep, principal: PrincipalDep, collection_id: CollectionId,
               feature_id: Annotated[str, Path(max_length=64)],
               plan: Annotated[str | None, Query(max_length=40)] = None,
               f: Annotated[str | None, Query(description="json")] = None):
    _f(f)
    if collection_id not in COLLECTIONS:
        raise NotFound(f"no collection {collection_id!r}: the collections are {', '.join(COLLECTIONS)}")
    if collection_id == "events":
        from gridgeo.events.queries import get_event
        from gridgeo.features import EVENT_PROPERTIES

        auth.event_filters(principal, "the events collection")
        event = get_event(store, feature_id, history=False)
        if not auth.sees_event(principal, event):
            raise NotFound(f"no event {feature_id!r}")
        event = auth.mask_event(event, principal)
        pos = event.get("position")
        return _json({"type": "Feature", "id": feature_id,
                      "geometry": {"type": "Point", "coordinates": [pos["lon"], pos["lat"]]} if pos else None,
                      "properties": {k: event.get(k) for k in EVENT_PROPERTIES}}, GEOJSON)
    if collection_id == "households":
        raise NotFound("households are read by page (bbox, limit, offset), not one by one")

    def one():
        frame, _, _ = read_features(store, collection_id, principal, limit=1, plan=plan, code=feature_id)
        return _features(frame)[0] if len(frame) else None

    feature = await run_heavy(one)
    if feature is None:
        raise NotFound(f"no feature {feature_id!r} in {collection_id}")
    return _json(feature, GEOJSON)
