"""Grids of a plan, as GeoJSON."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gridgeo.api.deps import AtQuery, PlanQuery, StoreDep
from gridgeo.api.schemas.geojson import MEDIA_TYPE as GEOJSON
from gridgeo.api.schemas.geojson import GeoJSONResponse, Grid, Grids
from gridgeo.crs import lonlat_ok
from gridgeo.errors import InvalidCoordinates, NotFound
from gridgeo.store import schema
from gridgeo.store.sql import starts_with

router = APIRouter(prefix="/v1/grids", tags=["grids"])

def _bbox(value: str | None):
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if (len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3])
            or not (lonlat_ok(parts[0], parts[1]) and lonlat_ok(parts[2], parts[3]))):
        raise InvalidCoordinates(f"bbox {value!r} must be min_lon,min_lat,max_lon,max_lat "
                                 "(degrees: lon in [-180, 180], lat in [-90, 90])")
    return parts


def _feature_collection(frame, **meta) -> Response:
    frame = frame.drop(columns=["plan_id"], errors="ignore")
    body = json.loads(frame.to_json(drop_id=True)) if len(frame) else {"type": "FeatureCollection", "features": []}
    body.update(meta)
    return Response(json.dumps(body, ensure_ascii=False), media_type=GEOJSON)


@router.get("", summary="Grids of the plan in force, as GeoJSON", response_model=Grids,
            response_class=GeoJSONResponse)
def list_grids(
    store: StoreDep,
    village: Annotated[str | None, Query(description="Village or community code (12 digits), or a township code prefix.")] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (WGS84).")] = None,
    at: AtQuery = None,
    plan: PlanQuery = None,
):
    """A FeatureCollection of grids, with the plan version that answered."""
    box = _bbox(bbox)
    where = starts_with(schema.grids.c.village_code, village) if village else None
    frame = store.read("grids", at=at, plan=plan, where=where)
    if box is not None and len(frame):
        frame = frame.cx[box[0]:box[2], box[1]:box[3]]
    return _feature_collection(frame, plan_version=frame.attrs.get("plan_version"))


@router.get("/{code}", summary="One grid, as a GeoJSON Feature", response_model=Grid,
            response_class=GeoJSONResponse)
def get_grid(
    code: str,
    store: StoreDep,
    at: AtQuery = None,
    plan: PlanQuery = None,
):
    """The grid with this 15-digit code in the plan in force (or the one asked for)."""
    frame = store.read("grids", at=at, plan=plan, where=schema.grids.c.code == code)
    if len(frame) == 0:
        raise NotFound(f"no grid {code!r} in plan {frame.attrs.get('plan_version')}")
    feature = json.loads(frame.drop(columns=["plan_id"]).to_json(drop_id=True))["features"][0]
    feature["properties"]["plan_version"] = frame.attrs.get("plan_version")
    return Response(json.dumps(feature, ensure_ascii=False), media_type=GEOJSON)
