"""GeoJSON (RFC 7946) answers: grids, plans and blocks. Geometries are loosely typed:
any GeoJSON geometry object (the grids are Polygons or MultiPolygons)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import Field

from gridgeo.api.schemas.base import Schema

MEDIA_TYPE = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    """A JSON response of media type ``application/geo+json`` (the routes build the bytes;
    as a route's ``response_class`` it files the model under that media type)."""

    media_type = MEDIA_TYPE


class Geometry(Schema):
    type: str = Field(description="Point, Polygon, MultiPolygon, ...")
    coordinates: Any = Field(description="Nested arrays of [lon, lat] (WGS84).")


class Feature(Schema):
    type: Literal["Feature"]
    properties: dict[str, Any]
    geometry: Geometry | None


class FeatureCollection(Schema):
    type: Literal["FeatureCollection"]
    features: list[Feature]


class GridProperties(Schema):
    code: str = Field(description="15-digit grid code.")
    name: str | None = None
    village_code: str
    kind: str | None = None
    households: int | None = None
    population: int | None = None
    buildings: int | None = None


class Grid(Feature):
    """One grid; ``properties.plan_version`` says which plan answered."""

    properties: GridProperties


class Grids(FeatureCollection):
    """Grids of a plan, with the plan version that answered."""

    features: list[Grid]
    plan_version: str | None = None
