"""``gridgeo locate``: add grid codes to a file of points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import typer

from gridgeo.cli.common import (SCHEDULER_HELP, AtOpt, DatabaseOpt, err, open_store, progress,
                                scheduler_from)
from gridgeo.cli.common import out as console

app = typer.Typer()

_CHUNK = 200_000


def _read_points(path: Path, lon: str, lat: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str | None]:
    """The rows, their lon/lat, and the CRS the file declares (spatial formats)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        for col in (lon, lat):
            if col not in frame:
                raise typer.BadParameter(f"{path}: no column {col!r} (use --lon/--lat)", param_hint="INPUT")
        x = pd.to_numeric(frame[lon].replace("", None), errors="coerce").to_numpy(float)
        y = pd.to_numeric(frame[lat].replace("", None), errors="coerce").to_numpy(float)
        return frame, x, y, None
    if suffix in (".parquet", ".geoparquet"):
        frame = gpd.read_parquet(path)
    elif suffix in (".gpkg", ".geojson", ".json", ".shp"):
        frame = pyogrio.read_dataframe(path)
    else:
        raise typer.BadParameter(f"{path}: use .csv, .parquet, .gpkg, .geojson or .shp", param_hint="INPUT")
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
        help="Points: CSV (lon/lat columns), GeoParquet or GeoPackage/GeoJSON/Shapefile; "
             "or a directory of (Geo)Parquet, located on dask.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output file; same formats, from its suffix. "
                            "A directory for a directory INPUT (one file per partition).")],
    crs: Annotated[Optional[str], typer.Option(help="CRS of the coordinates: wgs84, cgcs2000, gcj02, bd09. CSV needs it; it overrides a file's own.")] = None,
    at: AtOpt = None,
    lon: Annotated[str, typer.Option(help="Longitude column (CSV, plain Parquet).")] = "lon",
    lat: Annotated[str, typer.Option(help="Latitude column (CSV, plain Parquet).")] = "lat",
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
    from gridgeo.io import write_frame
    from gridgeo.lookup import Lookup

    if input.is_dir() or scheduler is not None:
        _locate_on_dask(input, out, crs=crs, at=at, lon=lon, lat=lat, database=database,
                        scheduler=scheduler_from(scheduler), overwrite=overwrite)
        return
    frame, x, y, declared = _read_points(input, lon, lat)
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
    write_frame(merged, out)
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
