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
from gridgeo.locate import LocateResult, Locator, locate_frame

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
