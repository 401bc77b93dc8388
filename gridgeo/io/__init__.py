"""Reading, importing and exporting layers: GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV.

- :mod:`gridgeo.io.reading`: files into WGS84 frames (formats, coordinate systems);
- :mod:`gridgeo.io.importing`: validate a batch and write it in one transaction;
- :mod:`gridgeo.io.exporting`: layers of the store to files, and
  :func:`~gridgeo.io.exporting.neutralise_formulas` for every export a spreadsheet opens.
"""

from gridgeo.io.exporting import export_layer, neutralise_formulas, write_frame
from gridgeo.io.importing import (
    ImportResult,
    Progress,
    import_files,
    validate_files,
    validate_store,
)
from gridgeo.io.reading import FORMATS, Source, read_sources

__all__ = [
    "FORMATS",
    "ImportResult",
    "Progress",
    "Source",
    "export_layer",
    "import_files",
    "neutralise_formulas",
    "read_sources",
    "validate_files",
    "validate_store",
    "write_frame",
]
