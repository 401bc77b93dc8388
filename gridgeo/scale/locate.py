"""Batch geolocation on dask: :func:`locate_parquet`.

Every point of a partitioned (Geo)Parquet data set gets the columns ``gridgeo locate``
adds (grid, village, snapped, distance_m, outside, invalid, swapped), by the same
:class:`~gridgeo.locate.Locator`: it is built (or loaded) once, here, and shipped to each
worker once; each partition is located by :meth:`~gridgeo.locate.Locator.locate_detail`
and written by its worker as one GeoParquet file of the output directory.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.assess.facts import _objects
from gridgeo.errors import InvalidGeometry, InvalidInput, UnknownCRS
from gridgeo.scale.archive import InvalidArchive, _prepare_output
from gridgeo.scale.cluster import _compute, _share, _unshare, dask_client

__all__ = ["LOCATE_COLUMNS", "locate_parquet"]

#: Columns ``gridgeo locate`` and :func:`locate_parquet` add to every point.
LOCATE_COLUMNS = [
    "grid_code",
    "grid_name",
    "village_code",
    "village_name",
    "snapped",
    "distance_m",
    "outside",
    "invalid",
    "swapped",
]
_TEXT_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name")
_FLAG_COLUMNS = ("snapped", "outside", "invalid", "swapped")


def _is_geoparquet(path: Path) -> bool:
    import pyarrow.dataset as ds

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise InvalidArchive(f"{path}: no Parquet files")
    meta = ds.dataset(files[0], format="parquet").schema.metadata or {}
    return b"geo" in meta


def _name_table(names: pd.DataFrame | None) -> tuple[pd.Index, dict[str, np.ndarray]] | None:
    """Grid names as plain object arrays, a None appended for "no grid" (built once, shipped
    with the locator: a few rows per grid)."""
    if names is None:
        return None
    index = pd.Index(names.index.to_numpy(dtype=object), dtype=object)
    cols = {}
    for out, col in (
        ("grid_name", "name"),
        ("village_code", "village_code"),
        ("village_name", "village_name"),
    ):
        values = _objects(names[col]).to_numpy(dtype=object)
        cols[out] = np.append(values, np.array([None], dtype=object))
    return index, cols


def _locate_partition(
    part: pd.DataFrame, locator, names, crs: str, lon: str, lat: str, geo: bool
) -> pd.DataFrame:
    """One partition with the columns of ``gridgeo locate`` (as :class:`~gridgeo.lookup.Lookup`'s
    ``many`` and the command make them). ``names`` is from :func:`_name_table`."""
    import shapely

    if geo:
        if part.crs is not None and part.crs.to_epsg() not in (4326, 4490):
            part = part.to_crs(4326)
        geoms = part.geometry.to_numpy()
        missing = shapely.is_missing(geoms)
        kinds = shapely.get_type_id(geoms[~missing])
        if (kinds != 0).any():
            kind = shapely.GeometryType(int(kinds[kinds != 0][0])).name.title()
            raise InvalidGeometry(f"the layer must hold points, not {kind}")
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    else:
        x = pd.to_numeric(part[lon], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        y = pd.to_numeric(part[lat], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    detail = locator.locate_detail(np.asarray(x, dtype=float), np.asarray(y, dtype=float), crs=crs)
    codes = detail["code"].to_numpy(dtype=object)
    added, empty = {"grid_code": codes}, {}
    if names is not None:
        index, cols = names
        found, grids = pd.factorize(codes)  # a few hundred distinct codes: match those
        pos = index.get_indexer(pd.Index(grids, dtype=object))
        pos = np.append(np.where(pos < 0, len(index), pos), len(index))
        at = pos[found]  # "no grid" (-1) takes the None at the end
        used = np.unique(at)
        for col, values in cols.items():
            added[col] = values[at]
            empty[col] = all(v is None for v in values[used])  # per grid, not per point
    else:
        for col in _TEXT_COLUMNS[1:]:
            added[col] = np.full(len(codes), None, dtype=object)
            empty[col] = True
    for col in ("snapped", "distance_m", "outside", "invalid", "swapped"):
        added[col] = detail[col].to_numpy()
    empty["grid_code"] = bool(added["outside"].all())
    out = part.drop(columns=[c for c in LOCATE_COLUMNS if c in part.columns])
    for col in LOCATE_COLUMNS:
        values = added[col]
        if col in _TEXT_COLUMNS:
            # A column with no value at all gets a string dtype, so that every file of the
            # output has the same schema (not Arrow's null type).
            dtype = pd.StringDtype("python") if empty[col] else object
            values = pd.Series(values, index=out.index, dtype=dtype)
        out[col] = values
    return out


_SUMMARY_COLUMNS = ["file", "rows", "located", "snapped", "outside", "invalid", "swapped"]


def _locate_and_write(
    part: pd.DataFrame,
    shared,
    crs: str,
    lon: str,
    lat: str,
    geo: bool,
    dst: str,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Locate one partition and write it as ``part-NNNNN.parquet`` of ``dst``; its counts.
    ``shared`` holds the locator and the names (:func:`_name_table`)."""
    number = (partition_info or {}).get("number", 0)
    locator, names = _unshare(shared)
    out = _locate_partition(part, locator, names, crs, lon, lat, geo)
    path = os.path.join(dst, f"part-{number:05d}.parquet")
    out.to_parquet(path, index=False)
    outside = out["outside"].to_numpy(dtype=bool)
    return pd.DataFrame(
        {
            "file": [path],
            "rows": [len(out)],
            "located": [int((~outside).sum())],
            **{c: [int(out[c].to_numpy(dtype=bool).sum())] for c in _FLAG_COLUMNS},
        }
    )


def locate_parquet(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    store=None,
    locator=None,
    names: pd.DataFrame | None = None,
    at: dt.date | None = None,
    plan: int | str | None = None,
    crs: str | None = None,
    lon: str = "lon",
    lat: str = "lat",
    client: Any = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Add grid codes to every point of a partitioned (Geo)Parquet data set, on dask.

    The columns are those of ``gridgeo locate``: ``grid_code``, ``grid_name``,
    ``village_code``, ``village_name``, ``snapped``, ``distance_m``, ``outside``,
    ``invalid``, ``swapped`` (see :mod:`gridgeo.locate` for the rules); the result is the
    same, row for row, as the command on the same points.

    Parameters
    ----------
    src : path
        A GeoParquet file or a directory of them (read with ``dask_geopandas.read_parquet``;
        a layer in a projected CRS is reprojected to lon/lat), or Parquet with ``lon`` and
        ``lat`` columns (read with ``dask.dataframe.read_parquet``; ``crs`` is needed).
        Each file (or row group of a large file) is a partition.
    dst : path
        A directory; one GeoParquet (or Parquet) file per partition, ``part-NNNNN.parquet``.
    store : Store, optional
        Locate with the plan in force on ``at`` (default today), or ``plan``, of this
        store, with its grid and village names.
    locator : Locator, optional
        Or locate with this locator (then ``names``, a frame indexed by grid code with
        ``name``, ``village_code`` and ``village_name``, gives the names; else they are
        empty).
    crs : str, optional
        The coordinates' system (``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09``); it
        overrides a GeoParquet's own, as ``--crs`` does.
    lon, lat : str
        Coordinate columns of plain Parquet.
    client
        Where dask runs (see the module notes).
    overwrite : bool
        Replace a ``dst`` that holds files.

    Returns
    -------
    dict
        ``rows``, ``located``, ``snapped``, ``outside``, ``invalid``, ``swapped``,
        ``partitions``, ``plan``, ``files`` and ``seconds``.

    Raises
    ------
    UnknownCRS
        Plain Parquet without ``crs``.
    InvalidArchive
        No Parquet in ``src``, or ``dst`` not empty without ``overwrite``.
    """
    import dask.dataframe as dd

    t0 = time.perf_counter()
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if (store is None) == (locator is None):
        raise InvalidInput("give a store or a locator, not both or neither")
    if store is not None:
        from gridgeo.lookup import Lookup

        lookup = Lookup(store)
        p = store.plan(plan) if plan is not None else lookup.plan_at(at)
        locator = lookup.locator(p)
        names = lookup.directory(p)[["name", "village_code", "village_name"]]
    if not src.exists():
        raise InvalidArchive(f"{src} does not exist")
    geo = _is_geoparquet(src)
    if geo:
        import dask_geopandas

        frame = dask_geopandas.read_parquet(src)
        declared = "wgs84" if frame.crs is not None else None
    else:
        frame = dd.read_parquet(src)
        declared = None
        for col in (lon, lat):
            if col not in frame.columns:
                raise InvalidArchive(f"{src}: no column {col!r} and no geometry")
    source_crs = crs or declared
    if source_crs is None:
        raise UnknownCRS(
            f"{src} declares no coordinate system: give crs (wgs84, cgcs2000, gcj02, bd09)"
        )
    from gridgeo import crs as _crs

    source_crs = _crs.normalize_name(source_crs)  # an unknown name fails here, not on a worker
    _prepare_output(dst, overwrite)
    meta = pd.DataFrame(
        {c: pd.Series(dtype=object if c == "file" else np.int64) for c in _SUMMARY_COLUMNS}
    )
    with dask_client(client) as scheduler:
        shared = _share((locator, _name_table(names)), scheduler)  # to each worker, once
        parts = frame.map_partitions(
            _locate_and_write,
            shared,
            source_crs,
            lon,
            lat,
            geo,
            str(dst),
            meta=meta,
            enforce_metadata=False,
            align_dataframes=False,
        )
        (counts,) = _compute(parts, scheduler=scheduler)
    summary = {c: int(counts[c].sum()) for c in _SUMMARY_COLUMNS[1:]}
    summary.update(
        partitions=len(counts),
        plan=locator.plan,
        files=sorted(counts["file"]),
        seconds=round(time.perf_counter() - t0, 3),
        dst=str(dst),
    )
    return summary
