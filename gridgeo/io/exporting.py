"""Exporting layers to files; the format comes from the file name.

Every export a spreadsheet may open (CSV here, the assessment's CSV and XLSX in
:mod:`gridgeo.assess.export`, the reports the CLI writes) goes through
:func:`neutralise_formulas`: text from reporters and editors must not become a live
formula ("CSV injection"). Secrets never leave: :func:`export_layer` drops them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely

from gridgeo.errors import InvalidInput
from gridgeo.io.reading import _format
from gridgeo.io.text import _PLAIN_NUMBER, FORMULA_STARTS, neutralise_array
from gridgeo.store import Store
from gridgeo.timezone import CHINA

__all__ = ["FORMULA_STARTS", "export_layer", "neutralise_array", "neutralise_formulas", "write_frame"]

#: Columns never exported, whatever the layer: hashes and other secrets.
_SECRET = re.compile(r"(_hash|token|secret|password)$")

#: Per layer, columns the store keeps for itself: the events' WKB ``geometry`` is the
#: position ``pos_lon``/``pos_lat`` already give as numbers (WGS84).
_INTERNAL = {"events": ("geometry",)}


def _neutralise_text(values: pd.Series | pd.Index) -> pd.Series | pd.Index:
    """Text values starting with a formula character, prefixed with ``'``; others as they are."""
    try:
        # Non-text values (numbers, None) in the column are never a hit.
        hit = np.asarray(values.str.startswith(FORMULA_STARTS, na=False), dtype=bool)
    except AttributeError:  # no text at all in it
        return values
    if hit.any():
        hit = hit & ~np.asarray(values.str.fullmatch(_PLAIN_NUMBER, na=False), dtype=bool)
    if not hit.any():
        return values
    arr = np.asarray(values, dtype=object).copy()
    arr[hit] = "'" + arr[hit]
    if isinstance(values, pd.Index):
        return pd.Index(arr, name=values.name)
    return pd.Series(arr, index=values.index, name=values.name)


def _textual(values: pd.Series | pd.Index) -> bool:
    return pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` a spreadsheet opens without running anything.

    Every text cell (and text index label) that starts with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return gets a leading single quote, as OWASP recommends: the
    spreadsheet shows it as text. Numbers are never changed: numbers stored as numbers, and
    text that is a plain number and nothing else (``"-12.5"``, a phone ``"+8613800000000"``,
    which a spreadsheet reads as that number, not as a formula), so a user's figures come
    back as they were (``gridgeo locate`` reads a CSV's columns as text). ``"-1+2"`` or
    ``"+86 138..."`` is not a plain number and is quoted.

    Parameters
    ----------
    frame : DataFrame
        Any table; a GeoDataFrame keeps its geometry column untouched.

    Returns
    -------
    DataFrame
        The neutralised copy (``frame`` itself is not changed).
    """
    out = frame.copy()
    geometry = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    for col in out.columns:
        if col != geometry and _textual(out[col]):
            out[col] = _neutralise_text(out[col])
    index = out.index
    if isinstance(index, pd.MultiIndex):
        out.index = pd.MultiIndex.from_arrays(
            [_neutralise_text(index.get_level_values(i)) if _textual(index.get_level_values(i))
             else index.get_level_values(i) for i in range(index.nlevels)], names=index.names)
    elif _textual(index):
        out.index = _neutralise_text(index)
    return out


def write_frame(frame: pd.DataFrame, path: str | Path, *, layer: str | None = None,
                encoding: str = "utf-8") -> Path:
    """Write a (Geo)DataFrame to ``path``; the format comes from the suffix.

    CSV gets ``lon``/``lat`` columns for points and a ``wkt`` column for other
    geometries, in ``encoding`` (``utf-8-sig``: with a BOM); a GeoPackage may take several
    layers (``layer`` names this one).
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
        try:
            neutralise_formulas(out).to_csv(path, index=False, lineterminator="\n", encoding=encoding)
        except (UnicodeEncodeError, LookupError) as exc:
            path.unlink(missing_ok=True)
            raise InvalidInput(f"{path}: cannot write the CSV in {encoding!r} ({exc}); write UTF-8 instead") from None
    elif fmt == "GeoParquet":
        if not is_geo:
            raise InvalidInput(f"{path}: GeoParquet needs a layer with geometry; use CSV for tables")
        frame.to_parquet(path, index=False)
    else:
        if not is_geo and fmt != "GPKG":
            raise InvalidInput(f"{path}: {fmt} needs a layer with geometry; use CSV or GeoPackage for tables")
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
    """Export a layer of ``store`` to ``path``; returns the number of rows written.

    What a user can use: no hashes or other secrets, no internal encodings (the events'
    WKB geometry: their ``pos_lon``/``pos_lat`` give the position), lists and mappings as
    JSON text, times in China time with their offset; text cells neutralised for
    spreadsheets (:func:`neutralise_formulas`) when the file is a CSV.
    """
    frame = store.read(layer, at=at, plan=plan)
    drop = [c for c in frame.columns if _SECRET.search(str(c))] + list(_INTERNAL.get(layer, ()))
    if layer == "grids":
        drop.append("plan_id")
    frame = frame.drop(columns=drop, errors="ignore")
    for col in frame.columns:
        # JSON columns (photos, duplicate candidates) as JSON text, not a Python repr.
        if frame[col].dtype == object and frame[col].map(lambda v: isinstance(v, (list, dict))).any():
            frame[col] = frame[col].map(lambda v: json.dumps(v, ensure_ascii=False)
                                        if isinstance(v, (list, dict)) else v)
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.tz_convert(CHINA).dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(
                r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    write_frame(frame, path, layer=layer)
    return len(frame)
