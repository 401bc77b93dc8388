"""Vector tiles of the public layers: ``/tiles/{layer}/{z}/{x}/{y}.mvt`` (gridgeo.tiles).

grids (the plan in force, or ``?plan=``), roads (roads and rivers), villages; public, as
the coverage map. Encoded by PostGIS on PostgreSQL, by mapbox-vector-tile on SQLite;
cached in the process. Each answer carries the layer's revision as its ETag and is to be
revalidated (``no-cache``): a browser asking again with ``If-None-Match`` gets 304 until
an import or a plan edit changes the layer, then the new tile.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from gridgeo.api.deps import StoreDep
from gridgeo.tiles import LAYERS, MAX_ZOOM, render_tile, revision, tile_bounds

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
                                           max_length=40)] = None,
         if_none_match: Annotated[str | None, Header(max_length=200)] = None):
    """Tile z/x/y (XYZ numbering, Web Mercator, extent 4096) of ``layer``. An empty tile
    is an empty answer (200). The ETag is the layer's revision (304 to ``If-None-Match``
    while it holds)."""
    tile_bounds(z, x, y)  # an address outside the tile grid is a 404 before anything is read
    at = revision(store, layer, plan)
    etag = f'"{at[0] or 0}.{at[1]}"'
    headers = {"Cache-Control": "public, no-cache", "ETag": etag}
    if if_none_match and etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    data = render_tile(store, layer, z, x, y, plan=plan, at=at)
    return Response(data, media_type=MEDIA_TYPE, headers=headers)
