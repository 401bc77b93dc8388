"""Reading, importing and exporting layers: GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV.

- :mod:`gridgeo.io.reading`: files into WGS84 frames (formats, coordinate systems);
- :mod:`gridgeo.io.importing`: validate a batch and write it in one transaction;
- :mod:`gridgeo.io.exporting`: layers of the store to files, and
  :func:`~gridgeo.io.exporting.neutralise_formulas` for every export a spreadsheet opens;
- :mod:`gridgeo.io.streaming`: ``gridgeo locate`` of CSV and Parquet in blocks, and
  :mod:`gridgeo.io.text`: text encodings and formula cells; these two need neither pandas
  nor geopandas.

The names below are imported from their modules when first asked for, so that importing
:mod:`gridgeo.io.streaming` (which imports this package first) loads no geo stack.
"""

from __future__ import annotations

import importlib

#: Name -> the module of this package that holds it.
_EXPORTS = {
    "FORMATS": "reading",
    "Source": "reading",
    "read_sources": "reading",
    "ImportResult": "importing",
    "Progress": "importing",
    "import_files": "importing",
    "validate_files": "importing",
    "validate_store": "importing",
    "export_layer": "exporting",
    "neutralise_formulas": "exporting",
    "write_frame": "exporting",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gridgeo.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gridgeo.io.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
