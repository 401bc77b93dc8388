"""Exporting layers to files; the format comes from the file name."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from gridgeo.errors import GridgeoError
from gridgeo.io.reading import _format
from gridgeo.store import Store
from gridgeo.timezone import CHINA

__all__ = ["export_layer", "write_frame"]


def write_frame(frame: pd.DataFrame, path: str | Path, *, layer: str | None = None) -> Path:
    """Write a (Geo)DataFrame to ``path``; the format comes from the suffix.

    CSV gets ``lon``/``lat`` columns for points and a ``wkt`` column for other
    geometries; a GeoPackage may take several layers (``layer`` names this one).
    """
    path = Path(path)
    fmt = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_geo = isinstance(frame, gpd.GeoDataFrame)
    if fmt == "CSV":
        out = pd.DataFrame(frame.drop(columns="geometry")) if is_geo else frame.copy()
        if is_geo:
            geoms = frame.geometry.to_numpy()
            if len(frame) and (shapely.get_type_id(geoms[~shapely.is_missing(geoms)]) == 0).all():
                out["lon"] = shapely.get_x(geoms)
                out["lat"] = shapely.get_y(geoms)
            else:
                out["wkt"] = shapely.to_wkt(geoms, rounding_precision=7)
        out.to_csv(path, index=False, lineterminator="\n")
    elif fmt == "GeoParquet":
        if not is_geo:
            raise GridgeoError(f"{path}: GeoParquet needs a layer with geometry; use CSV for tables")
        frame.to_parquet(path, index=False)
    else:
        if not is_geo and fmt != "GPKG":
            raise GridgeoError(f"{path}: {fmt} needs a layer with geometry; use CSV or GeoPackage for tables")
        kwargs = {"layer": layer} if fmt == "GPKG" and layer else {}
        if fmt == "GPKG" and path.exists():
            kwargs["append"] = False
        with warnings.catch_warnings():
            if fmt == "ESRI Shapefile":
                kwargs["encoding"] = "UTF-8"
                # Field names are cut to 10 characters; the importer maps them back.
                warnings.filterwarnings("ignore", message="Normalized/laundered field name")
            pyogrio.write_dataframe(frame, path, driver=fmt, **kwargs)
    return path


def export_layer(store: Store, layer: str, path: str | Path, *, at: dt.date | None = None,
                 plan: int | str | None = None) -> int:
    """Export a layer of ``store`` to ``path``; returns the number of rows written."""
    frame = store.read(layer, at=at, plan=plan)
    if layer == "grids":
        frame = frame.drop(columns=["plan_id"], errors="ignore")
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.tz_convert(CHINA).dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(
                r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    write_frame(frame, path, layer=layer)
    return len(frame)
