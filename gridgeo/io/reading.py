"""Reading layer files: GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV, Excel, plain
Parquet, into WGS84.

The coordinate system comes from the file, or from ``--crs`` when the file declares none
(CSV) or a wrong one; ``gcj02`` and ``bd09`` are converted to WGS84. Problems go to a
:class:`~gridgeo.validate.Report` with file, row and field.

Tables (CSV, ``.xlsx``, Parquet without geometry) are read by :func:`read_table`, the
one reader of tabular files every command uses (import, validate, events import,
``gridgeo locate``): CSV in UTF-8 with or without BOM, or GB18030/GBK as Excel and WPS
save it on a Chinese Windows desktop (told apart by :func:`detect_encoding`, with
charset-normalizer), or the ``--encoding`` given; the first sheet of a workbook or
``--sheet``; every value as text, as a CSV gives it.
"""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pyproj
import shapely

from gridgeo import crs as _crs
from gridgeo.errors import InvalidInput, UnknownCRS, UnreadableFile
from gridgeo.io.streaming import is_geoparquet
from gridgeo.io.text import SAMPLE_BYTES, decode_failure, detect_encoding
from gridgeo.layers import LAYERS
from gridgeo.validate import Report

__all__ = ["FORMATS", "TABLE_SUFFIXES", "Source", "TextTable", "decode_failure", "detect_encoding",
           "is_geoparquet", "read_sources", "read_table"]

#: File suffix -> format name.
FORMATS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
    ".csv": "CSV",
    ".xlsx": "XLSX",
}

#: Suffixes of the tables :func:`read_table` reads (Parquet: when it holds no geometry).
TABLE_SUFFIXES = (".csv", ".xlsx", ".parquet", ".geoparquet")

@dataclass
class TextTable:
    """A table read by :func:`read_table`: every value as text (``""`` where empty), and
    the text encoding of a CSV (None for other formats)."""

    frame: pd.DataFrame
    encoding: str | None = None


def _read_text(path: Path, encoding: str | None) -> tuple[str, str]:
    """The text of a CSV and its encoding (detected unless given)."""
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableFile(f"{path}: the file is empty")
    if encoding is None:
        encoding = detect_encoding(data[:SAMPLE_BYTES], path)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UnreadableFile(f"unknown encoding {encoding!r}: use utf-8, gb18030, gbk, big5 ...") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise decode_failure(path, encoding, data, exc) from None
    return text.lstrip("\ufeff"), encoding


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as text, as a CSV would give it: ``""`` for missing, integers without
    a decimal point (Excel keeps every number as a float), dates in ISO 8601."""
    out = {}
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_bool_dtype(values):
            text = values.map({True: "true", False: "false"})
        elif pd.api.types.is_integer_dtype(values):
            text = values.astype(str)
        elif pd.api.types.is_float_dtype(values):
            arr = values.to_numpy(dtype=float, na_value=np.nan)
            whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2 ** 53)
            text = pd.Series(np.where(whole, np.where(whole, arr, 0).astype(np.int64).astype(str),
                                      values.astype(str).to_numpy(dtype=object)), index=values.index)
        elif pd.api.types.is_datetime64_any_dtype(values):
            text = pd.Series([v.isoformat() if pd.notna(v) else "" for v in values], index=values.index, dtype=object)
        else:
            text = pd.Series([_cell_text(v) for v in values.to_numpy(dtype=object)], index=values.index, dtype=object)
        out[str(col).strip()] = text.where(values.notna(), "")
    return pd.DataFrame(out, index=frame.index).astype(object)


def _cell_text(v) -> str:
    """One cell of a workbook (or an object column) as text."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return str(int(v))
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _read_xlsx(path: Path, sheet: str | None) -> pd.DataFrame:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise UnreadableFile(f"{path}: not an Excel workbook (.xlsx; an old .xls must be saved as .xlsx): {exc}") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise UnreadableFile(f"{path}: no sheet {sheet!r} (it has {', '.join(book.sheetnames)})")
        rows = list((book[sheet] if sheet is not None else book.worksheets[0]).iter_rows(values_only=True))
    finally:
        book.close()
    rows = [r for r in rows if any(v is not None and str(v).strip() != "" for v in r)]
    if not rows:
        raise UnreadableFile(f"{path}: the sheet {sheet or book.sheetnames[0]!r} is empty")
    header = [f"column{i + 1}" if h is None else str(h).strip() for i, h in enumerate(rows[0])]
    body = pd.DataFrame([list(r) for r in rows[1:]], columns=header, dtype=object)
    return _as_text(body) if len(body) else pd.DataFrame(columns=header, dtype=object)


def read_table(path: str | Path, *, encoding: str | None = None, sheet: str | None = None) -> TextTable:
    """A CSV, an ``.xlsx`` workbook (its first sheet, or ``sheet``) or a plain Parquet file,
    every value as text.

    Raises
    ------
    UnreadableFile
        Missing, empty, not the format its suffix says, or text not in ``encoding`` (or
        in no encoding :func:`detect_encoding` knows): says which file and row.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise UnreadableFile(f"{path}: no such file")
    if path.is_dir():
        raise UnreadableFile(f"{path}: a directory, not a file")
    if suffix == ".csv":
        text, encoding = _read_text(path, encoding)
        import io

        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise UnreadableFile(f"{path}: the file is empty") from None
        except pd.errors.ParserError as exc:
            raise UnreadableFile(f"{path}: cannot read the CSV: {exc}") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        return TextTable(frame, encoding)
    if suffix == ".xlsx":
        return TextTable(_read_xlsx(path, sheet))
    if suffix in (".parquet", ".geoparquet"):
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFile(f"{path}: not a Parquet file ({exc})") from None
        return TextTable(_as_text(table.to_pandas()))
    raise UnreadableFile(f"{path}: not a table; use .csv, .xlsx or .parquet")

@dataclass
class Source:
    """One layer read from one file, with its coordinates already in WGS84."""

    file: str
    layer: str
    frame: pd.DataFrame


def _format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}"
        ) from None


def _layer_for(path: Path, layer: str | None, report: Report) -> str | None:
    name = layer or path.stem.lower()
    if name in LAYERS:
        return name
    report.error(path, layer or "?", None, None,
                 f"cannot tell which layer this file holds: name it one of "
                 f"{', '.join(LAYERS)} or pass --layer")
    return None


def _to_wgs84(geoms: np.ndarray, src: str) -> np.ndarray:
    """Convert geometries from gcj02 / bd09 to WGS84, all coordinates in one call."""
    def fn(xy):
        lon, lat = _crs.convert(xy[:, 0], xy[:, 1], src, "wgs84")
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, fn)


def _declared_crs(name: str | None):
    """A --crs value as ('name', gcj02/bd09 name) or ('pyproj', CRS)."""
    if name is None:
        return None
    try:
        canon = _crs.normalize_name(name)
        return ("name", canon)
    except UnknownCRS:
        pass
    try:
        return ("pyproj", pyproj.CRS.from_user_input(name))
    except pyproj.exceptions.CRSError:
        raise UnknownCRS(
            f"unknown coordinate system {name!r}: use wgs84, cgcs2000, gcj02, bd09 or an EPSG code"
        ) from None


def _reproject(frame: gpd.GeoDataFrame, file_crs, declared, path, layer, report) -> gpd.GeoDataFrame | None:
    """Bring ``frame`` to EPSG:4326 from its file CRS or the declared one."""
    if declared is None and file_crs is None:
        report.error(path, layer, None, "crs",
                     "the file declares no coordinate system: pass --crs (wgs84, cgcs2000, gcj02, bd09 or EPSG:xxxx)")
        return None
    if declared is not None and declared[0] == "name":
        if file_crs is not None and declared[1] in ("wgs84", "cgcs2000"):
            epsg = pyproj.CRS.from_user_input(file_crs).to_epsg()
            if epsg not in (4326, 4490):
                report.warning(path, layer, None, "crs",
                               f"the file says EPSG:{epsg}, --crs says {declared[1]}: --crs wins")
        geoms = frame.geometry.to_numpy()
        if declared[1] in ("gcj02", "bd09"):
            geoms = _to_wgs84(geoms, declared[1])
        return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=4326)
    target = declared[1] if declared is not None else pyproj.CRS.from_user_input(file_crs)
    epsg = target.to_epsg()
    if epsg in (4326, 4490):
        return frame.set_crs(4326, allow_override=True)
    if not target.is_projected and not target.is_geographic:
        report.error(path, layer, None, "crs", f"coordinate system {target.name!r} cannot be used")
        return None
    return frame.set_crs(target, allow_override=True).to_crs(4326)


def _read_csv(path: Path, spec, declared, report, encoding: str | None = None,
              sheet: str | None = None) -> pd.DataFrame | None:
    """A table (CSV, .xlsx, plain Parquet) as a layer: points from lon/lat, else wkt."""
    try:
        df = read_table(path, encoding=encoding, sheet=sheet).frame
    except UnreadableFile as exc:
        report.error(path, spec.name, exc.row, None, str(exc))
        return None
    df.insert(0, "_row", np.arange(1, len(df) + 1))
    if spec.geometry is None:
        return df
    if spec.name == "events":
        return _event_points(df, path, report)
    if {"lon", "lat"} <= set(df.columns):
        lon = pd.to_numeric(df["lon"].replace("", None), errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(df["lat"].replace("", None), errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(lon) | np.isnan(lat)
        given = (df["lon"] != "") | (df["lat"] != "")
        for r, lo, la in zip(df["_row"][bad & given.to_numpy()], df["lon"][bad & given.to_numpy()],
                             df["lat"][bad & given.to_numpy()]):
            report.error(path, spec.name, int(r), "lon", f"({lo!r}, {la!r}) are not numbers")
        geoms = shapely.points(lon, lat)
        geoms[bad] = None
    elif "wkt" in df.columns or "geometry" in df.columns:
        col = "wkt" if "wkt" in df.columns else "geometry"
        text = np.where(df[col].to_numpy(dtype=object) == "", None, df[col].to_numpy(dtype=object))
        geoms = shapely.from_wkt(text, on_invalid="ignore")
        unreadable = pd.notna(text) & shapely.is_missing(geoms)
        for r in df["_row"][unreadable]:
            report.error(path, spec.name, int(r), col, "not a readable WKT geometry")
        df = df.drop(columns=[col])
    else:
        report.error(path, spec.name, None, "lon",
                     "a CSV needs lon and lat columns (points) or a wkt column")
        return None
    frame = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index))
    if "crs" in df.columns and declared is None:
        names = df["crs"].str.strip().str.lower()
        known = names.isin(list(_crs.NAMES))
        for r, v in zip(df["_row"][~known], df["crs"][~known]):
            report.error(path, spec.name, int(r), "crs", f"unknown coordinate system {v!r}")
        geoms = frame.geometry.to_numpy().copy()
        for name in ("gcj02", "bd09"):
            sel = (names == name).to_numpy()
            if sel.any():
                geoms[sel] = _to_wgs84(geoms[sel], name)
        return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=4326)
    return _reproject(frame, None, declared, path, spec.name, report)


def _event_points(df: pd.DataFrame, path, report) -> gpd.GeoDataFrame:
    """Events keep lon/lat/crs as reported; their geometry is the WGS84 position."""
    lon = pd.to_numeric(df.get("lon", pd.Series("", index=df.index)).replace("", None), errors="coerce")
    lat = pd.to_numeric(df.get("lat", pd.Series("", index=df.index)).replace("", None), errors="coerce")
    lon, lat = lon.to_numpy(dtype=float), lat.to_numpy(dtype=float)
    has = ~np.isnan(lon) & ~np.isnan(lat)
    names = df.get("crs", pd.Series("", index=df.index)).str.strip().str.lower()
    names = names.where(names != "", "wgs84")
    known = names.isin(list(_crs.NAMES)).to_numpy()
    for r, v in zip(df["_row"][~known], names[~known]):
        report.error(path, "events", int(r), "crs", f"unknown coordinate system {v!r}")
    x, y = lon.copy(), lat.copy()
    for name in ("gcj02", "bd09"):
        sel = has & (names == name).to_numpy()
        if sel.any():
            x[sel], y[sel] = _crs.convert(lon[sel], lat[sel], name, "wgs84")
    geoms = shapely.points(x, y)
    geoms[~has] = None
    df = df.assign(crs=names.where(has, None))
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index), crs=4326)


def _read_spatial(path: Path, fmt: str, gpkg_layer: str | None, spec, declared, report):
    try:
        if fmt == "GeoParquet":
            frame = gpd.read_parquet(path)
            file_crs = frame.crs
        else:
            frame = pyogrio.read_dataframe(path, layer=gpkg_layer)
            file_crs = frame.crs if isinstance(frame, gpd.GeoDataFrame) else None
    except Exception as exc:  # the reader's own message is the useful part
        report.error(path, spec.name, None, None, f"cannot read the file: {exc}")
        return None
    frame = frame.reset_index(drop=True)
    # Shapefile field names stop at 10 characters: map them back.
    renames = {c.name[:10]: c.name for c in spec.columns if len(c.name) > 10 and c.name[:10] in frame}
    frame = frame.rename(columns=renames)
    frame.insert(0, "_row", np.arange(1, len(frame) + 1))
    if spec.geometry is None:
        return pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    if not isinstance(frame, gpd.GeoDataFrame):
        report.error(path, spec.name, None, "geometry", "the layer has no geometry column")
        return None
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    return _reproject(frame, file_crs, declared, path, spec.name, report)


def read_sources(paths: Iterable[str | Path], *, layer: str | None = None,
                 crs: str | None = None, report: Report | None = None, encoding: str | None = None,
                 sheet: str | None = None) -> tuple[list[Source], Report]:
    """Read files into :class:`Source` layers in WGS84, collecting problems in ``report``.

    Tables (CSV, ``.xlsx``, Parquet without geometry) are read by :func:`read_table`
    with ``encoding`` and ``sheet``. A GeoPackage yields each of its layers whose name is a gridgeo layer (or, with
    ``layer``, its only layer or the one of that name); other files hold one layer,
    named by ``layer`` or by the file name (``households.csv``).
    """
    report = report if report is not None else Report()
    declared = _declared_crs(crs)
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            report.error(path, layer or "?", None, None, "no such file")
            continue
        fmt = _format(path)
        if fmt == "GPKG":
            try:
                names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
            except Exception as exc:
                report.error(path, layer or "?", None, None, f"cannot read the file: {exc}")
                continue
            if layer:
                pick = [(layer if layer in names else names[0], layer)] if (layer in names or len(names) == 1) else []
                if not pick:
                    report.error(path, layer, None, None, f"no layer {layer!r} in the file (it has {', '.join(names)})")
            else:
                pick = [(n, n) for n in names if n in LAYERS]
                skipped = [n for n in names if n not in LAYERS]
                if skipped:
                    report.warning(path, "?", None, None, f"layers ignored: {', '.join(skipped)}")
                if not pick:
                    report.error(path, "?", None, None, f"no gridgeo layer in the file (it has {', '.join(names)})")
            for file_layer, name in pick:
                frame = _read_spatial(path, fmt, file_layer, LAYERS[name], declared, report)
                if frame is not None:
                    sources.append(Source(str(path), name, frame.assign(_file=str(path))))
            continue
        name = _layer_for(path, layer, report)
        if name is None:
            continue
        spec = LAYERS[name]
        try:
            tabular = fmt in ("CSV", "XLSX") or (fmt == "GeoParquet" and not is_geoparquet(path))
        except UnreadableFile as exc:
            report.error(path, name, None, None, str(exc))
            continue
        if tabular:
            frame = _read_csv(path, spec, declared, report, encoding=encoding, sheet=sheet)
        else:
            frame = _read_spatial(path, fmt, None, spec, declared, report)
        if frame is not None:
            sources.append(Source(str(path), name, frame.assign(_file=str(path))))
    return sources, report
