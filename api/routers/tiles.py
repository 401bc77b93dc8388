"""Vector tiles of the public layers: ``/tiles/{layer}/{z}/{x}/{y}.mvt`` (gridgeo.tiles).

grids (the plan in force, or ``?plan=``), roads (roads and rivers), villages; public, as
the coverage map. Encoded by PostGIS on PostgreSQL, by mapbox-vector-tile on SQLite;
cached in the process.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from gridgeo.api.deps import StoreDep
from gridgeo.tiles import LAYERS, MAX_ZOOM, render_tile

router = APIRouter(prefix="/tiles", tags=["tiles"])

MEDIA_TYPE = "application/vnd.mapbox-vector-tile"


@router.get("/{layer}/{z}/{x}/{y}.mvt", summary="A vector tile (MVT) of grids, roads or villages",
            responses={200: {"content": {MEDIA_TYPE: {}}}, 404: {"description": "No such tile or layer."}})
def tile(store: StoreDep,
         layer: Annotated[str, Path(description=", ".join(LAYERS), max_length=20)],
         z: Annotated[int, Path(ge=0, le=MAX_ZOOM)],
         x: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1)],
         y: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1)],
         plan: Annotated[str | None, Query(description="grids: this plan (id or version) instead of the plan in force.",
                                           max_length=40)] = None):
    """Tile z/x/y (XYZ numbering, Web Mercator, extent 4096) of ``layer``. An empty tile
    is an empty answer (200)."""
    data = render_tile(store, layer, z, x, y, plan=plan)
    return Response(data, media_type=MEDIA_TYPE, headers={"Cache-Control": "public, max-age=300"})
