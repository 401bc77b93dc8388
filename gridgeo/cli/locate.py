"""``gridgeo locate``: add grid codes to a file of points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gridgeo.cli.common import (SCHEDULER_HELP, AtOpt, DatabaseOpt, SheetOpt, err, open_store, progress,
                                scheduler_from)
from gridgeo.cli.common import out as console
from gridgeo.errors import UnreadableFile
from gridgeo.io.streaming import is_geoparquet

# Only what a streamed locate (CSV or plain Parquet, gridgeo.io.streaming) needs is imported
# here; pandas, geopandas and pyogrio are imported by the paths that read a file whole, so
# that `gridgeo locate` of a large CSV starts in a fraction of the time (issue 20).

app = typer.Typer()

_CHUNK = 200_000


def _read_points(path: Path, lon: str, lat: str, encoding: str | None, sheet: str | None):
    """The rows (a DataFrame), their lon/lat (arrays), and the CRS the file declares
    (spatial formats)."""
    import geopandas as gpd
    import pyarrow as pa
    import pyogrio

    from gridgeo.io.reading import read_table
    from gridgeo.io.streaming import LAT_NAMES, LON_NAMES, _numbers, _pick

    suffix = path.suffix.lower()
    if suffix in (".csv", ".xlsx") or (suffix == ".parquet" and not is_geoparquet(path)):
        frame = read_table(path, encoding=encoding, sheet=sheet).frame
        names = list(frame.columns)
        lon_col = _pick(names, lon, LON_NAMES, "longitude", path)
        lat_col = _pick(names, lat, LAT_NAMES, "latitude", path)
        x = _numbers(pa.array(frame[lon_col].to_numpy(dtype=object), type=pa.string()))
        y = _numbers(pa.array(frame[lat_col].to_numpy(dtype=object), type=pa.string()))
        return frame, x, y, None
    if not path.exists():
        raise UnreadableFile(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".geoparquet"):
            frame = gpd.read_parquet(path)
        elif suffix in (".gpkg", ".geojson", ".json", ".shp"):
            frame = pyogrio.read_dataframe(path)
        else:
            raise typer.BadParameter(f"{path}: use .csv, .xlsx, .parquet, .gpkg, .geojson or .shp", param_hint="INPUT")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError, ValueError) as exc:
        raise UnreadableFile(f"{path}: cannot read the file: {exc}") from None
    if not isinstance(frame, gpd.GeoDataFrame):
        raise UnreadableFile(f"{path}: the layer has no geometry")
    declared = None
    if frame.crs is not None:
        epsg = frame.crs.to_epsg()
        if epsg not in (4326, 4490):
            frame = frame.to_crs(4326)
        declared = "wgs84"
    geoms = frame.geometry.to_numpy()
    import shapely

    if len(geoms) and not (shapely.get_type_id(geoms[~shapely.is_missing(geoms)]) == 0).all():
        raise typer.BadParameter(f"{path}: the layer must hold points", param_hint="INPUT")
    return frame, shapely.get_x(geoms), shapely.get_y(geoms), declared


@app.command()
def locate(
    input: Annotated[Path, typer.Argument(
        help="Points: CSV (lon/lat columns; UTF-8 or GB18030/GBK), Excel .xlsx, Parquet with lon/lat "
             "columns, GeoParquet or GeoPackage/GeoJSON/Shapefile; or a directory of (Geo)Parquet, "
             "located on dask.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output file; same formats, from its suffix. "
                            "A directory for a directory INPUT (one file per partition).")],
    crs: Annotated[Optional[str], typer.Option(help="CRS of the coordinates: wgs84, cgcs2000, gcj02, bd09. CSV needs it; it overrides a file's own.")] = None,
    at: AtOpt = None,
    lon: Annotated[str, typer.Option(help="Longitude column (CSV, .xlsx, plain Parquet); by default "
                                          "lon, lng, longitude or 经度.")] = "lon",
    lat: Annotated[str, typer.Option(help="Latitude column; by default lat, latitude or 纬度.")] = "lat",
    encoding: Annotated[Optional[str], typer.Option(
        help="Text encoding of a CSV input (default: detected; UTF-8 with or without BOM, GB18030/GBK).")] = None,
    sheet: SheetOpt = None,
    out_encoding: Annotated[str, typer.Option(
        help="Text encoding of a CSV output: utf-8-sig (UTF-8 with BOM, which Excel opens as it is), "
             "utf-8, input (the input's), gb18030 ...")] = "utf-8-sig",
    database: DatabaseOpt = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Locate on dask (a directory INPUT always is). " + SCHEDULER_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="On dask: replace an output directory that holds files.")] = False,
) -> None:
    """Add the grid, village and flags (snapped, distance_m, outside, invalid, swapped) to each point.

    A directory of partitioned (Geo)Parquet, or any Parquet with --scheduler, is located on
    dask: one task per partition, the same answers, one output file per partition.
    Example: gridgeo locate points/ --out located/ --scheduler tcp://10.0.0.5:8786
    """
    from gridgeo.io.streaming import batches_in, locate_stream, streams
    from gridgeo.lookup import Lookup

    if input.is_dir() or scheduler is not None:
        _locate_on_dask(input, out, crs=crs, at=at, lon=lon, lat=lat, database=database,
                        scheduler=scheduler_from(scheduler), overwrite=overwrite)
        return
    if not input.exists():
        raise UnreadableFile(f"{input}: no such file")
    if streams(input, out):
        if crs is None:
            raise typer.BadParameter(f"{input} declares no coordinate system: pass --crs", param_hint="--crs")
        lookup = Lookup(open_store(database))
        with progress(batches_in(input) + 1, "locating") as step:
            s = locate_stream(lookup, input, out, crs=crs, at=at, lon=lon, lat=lat, encoding=encoding,
                              out_encoding=out_encoding, progress=step)
        console.print(f"{s.rows:,} points, {s.located:,} in a grid ({s.snapped:,} snapped), "
                      f"{s.rows - s.located:,} outside; plan {s.plan} -> {out}")
        if s.invalid:
            err.print(f"{s.invalid:,} points have invalid coordinates ({s.swapped:,} look swapped)")
        return
    _locate_whole(input, out, crs=crs, at=at, lon=lon, lat=lat, encoding=encoding, sheet=sheet,
                  out_encoding=out_encoding, database=database)


def _locate_whole(input: Path, out: Path, *, crs, at, lon, lat, encoding, sheet, out_encoding,
                  database) -> None:
    """``gridgeo locate`` of a file read whole: a workbook, a spatial file, or an output
    that is neither CSV nor Parquet."""
    import pandas as pd

    from gridgeo.io import write_frame
    from gridgeo.lookup import Lookup

    frame, x, y, declared = _read_points(input, lon, lat, encoding, sheet)
    src = crs or declared
    if src is None:
        raise typer.BadParameter(f"{input} declares no coordinate system: pass --crs", param_hint="--crs")
    lookup = Lookup(open_store(database))
    n = len(frame)
    steps = max(1, -(-n // _CHUNK))
    parts = []
    with progress(steps + 1, "locating") as step:
        for start in range(0, max(n, 1), _CHUNK):
            parts.append(lookup.many(x[start:start + _CHUNK], y[start:start + _CHUNK], crs=src, at=at))
            step(f"located {min(start + _CHUNK, n):,} of {n:,}")
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    plan = parts[0].attrs.get("plan_version") if parts else None
    keep = ["grid_code", "grid_name", "village_code", "village_name", "snapped", "distance_m",
            "outside", "invalid", "swapped"]
    result.index = frame.index
    merged = frame.drop(columns=[c for c in keep if c in frame.columns]).join(result[keep])
    write_frame(merged, out, encoding="utf-8-sig" if out_encoding in ("input", "bom", "utf8-sig") else out_encoding)
    located = int((~result["outside"]).sum()) if n else 0
    console.print(f"{n:,} points, {located:,} in a grid ({int(result['snapped'].sum()) if n else 0:,} snapped), "
                  f"{n - located:,} outside; plan {plan} -> {out}")
    if n and result["invalid"].any():
        err.print(f"{int(result['invalid'].sum()):,} points have invalid coordinates "
                  f"({int(result['swapped'].sum()):,} look swapped)")


def _locate_on_dask(input: Path, out: Path, *, crs, at, lon, lat, database, scheduler,
                    overwrite) -> None:
    """``gridgeo locate`` of partitioned Parquet on dask (:mod:`gridgeo.scale.locate`)."""
    from gridgeo.scale.locate import locate_parquet

    if input.is_file() and input.suffix.lower() not in (".parquet", ".geoparquet"):
        raise typer.BadParameter(f"{input}: dask reads (Geo)Parquet; convert it or drop "
                                 "--scheduler", param_hint="INPUT")
    if out.suffix.lower() in (".csv", ".gpkg", ".geojson", ".json", ".shp"):
        raise typer.BadParameter(f"{out}: on dask the output is a directory of Parquet files",
                                 param_hint="--out")
    store = open_store(database)
    with err.status(f"locating {input} on dask ({scheduler or 'threads'})"):
        s = locate_parquet(input, out, store=store, at=at, crs=crs, lon=lon, lat=lat,
                           client=scheduler, overwrite=overwrite)
    console.print(f"{s['rows']:,} points, {s['located']:,} in a grid ({s['snapped']:,} snapped), "
                  f"{s['outside']:,} outside; plan {s['plan']} -> {out} "
                  f"({s['partitions']} files, {s['seconds']:.1f} s)")
    if s["invalid"]:
        err.print(f"{s['invalid']:,} points have invalid coordinates "
                  f"({s['swapped']:,} look swapped)")
