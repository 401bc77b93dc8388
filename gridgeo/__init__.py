"""gridgeo: geospatial grid management for grassroots governance (网格化管理).

The core library. It holds the domain model, coordinate systems, I/O, validation and the
store; it imports neither FastAPI nor folium (``api`` and ``maps`` sit on top of it).
"""

from gridgeo.errors import (
    GridgeoError,
    IllegalTransition,
    ImportFailed,
    InvalidCoordinates,
    InvalidGeometry,
    NotFound,
    OutsideJurisdiction,
    StoreError,
    UnknownCRS,
)

__version__ = "0.1.0"

__all__ = [
    "GridgeoError",
    "IllegalTransition",
    "ImportFailed",
    "InvalidCoordinates",
    "InvalidGeometry",
    "LocateResult",
    "Locator",
    "NotFound",
    "OutsideJurisdiction",
    "StoreError",
    "UnknownCRS",
    "__version__",
    "locate_frame",
]

#: Exported from :mod:`gridgeo.locate` when first asked for, not on ``import gridgeo``: that
#: module brings geopandas, and ``gridgeo locate`` of a CSV (gridgeo.cli) must not pay for it.
_LOCATE = frozenset({"LocateResult", "Locator", "locate_frame"})


def __getattr__(name: str):
    if name in _LOCATE:
        from gridgeo import locate

        return getattr(locate, name)
    raise AttributeError(f"module 'gridgeo' has no attribute {name!r}")
