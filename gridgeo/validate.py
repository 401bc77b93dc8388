"""Validation of layers before anything is written.

Every check returns :class:`Problem` rows that name the file, the row (1-based record
number in the file; for a CSV, line = row + 1), the field and what is wrong. The
importer writes nothing while the :class:`Report` holds an error.

Checks on one layer (:func:`check_layer`): required fields and values, lengths
(:data:`gridgeo.layers.MAX_LENGTHS`), formats and allowed values, duplicated keys, geometry presence, type and validity (repaired only
when asked), swapped lon/lat. Checks across layers (:func:`check_grids`,
:func:`check_households`, :func:`check_references`): grids overlapping each other,
grids leaving their village, gaps (village area covered by no grid), grid codes that do
not start with their village's code, households in no grid, unknown references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo import crs as _crs
from gridgeo.layers import MAX_LENGTHS, Layer

__all__ = ["Problem", "Report", "check_layer", "check_grids", "check_households", "metric"]

_GEOM_TYPES = {
    "point": {"Point"},
    "line": {"LineString", "MultiLineString"},
    "polygon": {"Polygon", "MultiPolygon"},
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``error``) or worth knowing (``warning``) about the input."""

    severity: str
    file: str
    layer: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file} [{self.layer}]"
        if self.row is not None:
            where += f" row {self.row}"
        if self.field:
            where += f" field {self.field!r}"
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class Report:
    """All the problems found in one validation or import."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, severity, file, layer, row, fld, message) -> None:
        self.problems.append(Problem(severity, str(file), layer, row, fld, message))

    def error(self, file, layer, row, fld, message) -> None:
        self.add("error", file, layer, row, fld, message)

    def warning(self, file, layer, row, fld, message) -> None:
        self.add("warning", file, layer, row, fld, message)

    def extend(self, other: "Report") -> None:
        self.problems.extend(other.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [p.__dict__ for p in self.problems],
            columns=["severity", "file", "layer", "row", "field", "message"],
        )

    def to_csv(self, path) -> None:
        """Write every problem to a CSV file, neutralised for spreadsheets (the messages
        quote the values of the input)."""
        from gridgeo.io.exporting import neutralise_formulas

        neutralise_formulas(self.to_frame()).to_csv(path, index=False)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems) or "no problems"


def metric(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``frame`` in the CGCS2000 Gauss-Krüger zone of its centre, for areas in m²."""
    if len(frame) == 0:
        return frame.to_crs(4549)
    x0 = float(np.nanmean(frame.total_bounds[[0, 2]]))
    return frame.to_crs(_crs.metric_epsg(x0))


def _rows(frame: pd.DataFrame, mask) -> np.ndarray:
    return frame["_row"].to_numpy()[np.asarray(mask, dtype=bool)]


def _files(frame: pd.DataFrame, mask) -> np.ndarray:
    return frame["_file"].to_numpy()[np.asarray(mask, dtype=bool)]


def _each(report, severity, frame, mask, layer, fld, message):
    """Add one problem for every row where ``mask`` is true.

    ``message`` is a string, or a sequence aligned with the selected rows.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    rows, files = _rows(frame, mask), _files(frame, mask)
    msgs = [message] * len(rows) if isinstance(message, str) else list(message)
    for f, r, m in zip(files, rows, msgs):
        report.add(severity, f, layer, None if r is None or pd.isna(r) else int(r), fld, m)


def _show(value, limit: int = 40) -> str:
    """``repr`` of an input value for a message, cut: the value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


def coerce(frame: pd.DataFrame, spec: Layer, report: Report) -> pd.DataFrame:
    """Check the columns of ``frame`` against ``spec`` and convert their types.

    Values come in as text (CSV) or as typed columns (GeoPackage ...); both end as the
    layer's types, with empty strings as missing.
    """
    out = frame.copy()
    present = set(out.columns)
    file0 = out["_file"].iloc[0] if len(out) else ""
    for col in spec.columns:
        if col.name not in present:
            if col.required:
                report.error(file0, spec.name, None, col.name, "required column is missing")
            out[col.name] = None
            continue
        raw = out[col.name]
        text = raw.astype("string").str.strip()
        empty = raw.isna().to_numpy() | (text.fillna("") == "").to_numpy()
        if col.required:
            _each(report, "error", out, empty, spec.name, col.name, "value is required")
        if col.kind == "str":
            value = text.where(~empty, None).astype(object)
            length = text.str.len().fillna(0).to_numpy()
            limit = MAX_LENGTHS[spec.name][col.name]
            long = ~empty & (length > limit)
            _each(report, "error", out, long, spec.name, col.name,
                  [f"{n:,} characters, more than the {limit:,} allowed" for n in length[long]])
            if col.pattern:
                bad = ~empty & ~long & ~text.fillna("").str.fullmatch(col.pattern).to_numpy(dtype=bool)
                _each(report, "error", out, bad, spec.name, col.name,
                      [f"{_show(v)} does not match the format {col.pattern}" for v in text[bad]])
            if col.choices:
                bad = ~empty & ~long & ~text.isin(col.choices).to_numpy(dtype=bool)
                _each(report, "error", out, bad, spec.name, col.name,
                      [f"{_show(v)} is not one of {', '.join(col.choices)}" for v in text[bad]])
        elif col.kind in ("int", "float"):
            num = pd.to_numeric(text.where(~empty, None), errors="coerce")
            bad = ~empty & num.isna().to_numpy()
            if col.kind == "int":
                bad |= ~empty & ~num.isna().to_numpy() & (num.fillna(0) % 1 != 0).to_numpy()
            _each(report, "error", out, bad, spec.name, col.name,
                  [f"{_show(v)} is not a{'n integer' if col.kind == 'int' else ' number'}" for v in text[bad]])
            if col.kind == "int":
                bad_neg = ~bad & ~empty & (num.fillna(0) < 0).to_numpy()
                _each(report, "error", out, bad_neg, spec.name, col.name, "must not be negative")
            value = num
        elif col.kind == "bool":
            low = text.str.lower()
            truthy = low.isin(["1", "true", "yes", "y", "t", "是"]).to_numpy(dtype=bool)
            falsy = low.isin(["0", "false", "no", "n", "f", "否"]).to_numpy(dtype=bool)
            bad = ~empty & ~truthy & ~falsy
            _each(report, "error", out, bad, spec.name, col.name,
                  [f"{_show(v)} is not true/false" for v in text[bad]])
            value = pd.Series(np.where(truthy, True, False), index=out.index)
        elif col.kind == "datetime":
            value = pd.to_datetime(text.where(~empty, None), errors="coerce", utc=False, format="ISO8601")
            bad = ~empty & value.isna().to_numpy()
            _each(report, "error", out, bad, spec.name, col.name,
                  [f"{_show(v)} is not an ISO 8601 date and time" for v in text[bad]])
            if not bad.all() and value.notna().any():
                if getattr(value.dt, "tz", None) is None:
                    naive = ~empty & ~bad
                    _each(report, "error", out, naive, spec.name, col.name,
                          "has no time zone offset (write e.g. 2026-03-01T09:30:00+08:00)")
        else:  # pragma: no cover - layer definitions only use the kinds above
            raise AssertionError(col.kind)
        out[col.name] = value
    extra = sorted(present - set(spec.column_names) - {"_row", "_file", "geometry", "lon", "lat", "crs", "wkt"})
    if extra:
        report.warning(file0, spec.name, None, None, f"columns ignored: {', '.join(map(str, extra))}")
    return out


def check_keys(frame, spec: Layer, report: Report, existing: set[str] | None, replace: bool) -> None:
    """Duplicated keys inside the input, and keys already in the store."""
    if not spec.key or spec.key not in frame:
        return
    keys = frame[spec.key].astype("string")
    cols = [spec.key] + (["grid_code", "role"] if spec.name == "staff" else [])
    dup = frame.duplicated(subset=cols, keep=False).to_numpy() & keys.notna().to_numpy()
    if dup.any():
        first = frame.loc[dup].groupby(cols, sort=False)["_row"].transform("min").to_numpy()
        _each(report, "error", frame, dup, spec.name, spec.key,
              [f"duplicated code {_show(k)} (also in row {f})" if f != r else f"duplicated code {_show(k)}"
               for k, f, r in zip(keys[dup], first, frame["_row"].to_numpy()[dup])])
    if existing and spec.name == "events":
        # An event's state and history are the workflow's: an import never overwrites them.
        clash = keys.isin(existing).to_numpy(dtype=bool)
        _each(report, "error", frame, clash, spec.name, spec.key,
              [f"event {k!r} is already in the store; an import does not replace events"
               for k in keys[clash]])
    elif existing and not replace and spec.name not in ("grids", "staff"):
        clash = keys.isin(existing).to_numpy(dtype=bool)
        _each(report, "error", frame, clash, spec.name, spec.key,
              [f"code {k!r} is already in the store (import with --replace to update it)"
               for k in keys[clash]])


def check_geometry(frame: gpd.GeoDataFrame, spec: Layer, report: Report, repair: bool):
    """Presence, type, validity and position of the geometries; returns the frame.

    With ``repair`` invalid polygons are made valid (``shapely.make_valid``, keeping
    the polygonal part) and reported as warnings; without it they are errors.
    """
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if spec.geometry_required:
        _each(report, "error", frame, missing, spec.name, "geometry", "geometry is missing or empty")
    types = shapely.get_type_id(geoms)
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                      "MultiLineString", "MultiPolygon", "GeometryCollection"], dtype=object)
    tname = np.where(types >= 0, names[np.clip(types, 0, 7)], "")
    wrong = ~missing & ~np.isin(tname, list(_GEOM_TYPES[spec.geometry]))
    _each(report, "error", frame, wrong, spec.name, "geometry",
          [f"is a {t}, a {spec.geometry} is expected" for t in tname[wrong]])
    ok = ~missing & ~wrong
    if spec.name == "divisions" and "level" in frame:
        needs = frame["level"].isin(["village", "community"]).to_numpy(dtype=bool) & missing
        _each(report, "error", frame, needs, spec.name, "geometry",
              "a village or community needs its boundary polygon")
    # Coordinates: finite, in range, in China, not swapped. Checked on one coordinate per
    # feature (its first vertex), which is what a swap or a wrong CRS moves.
    first = np.full((len(geoms), 2), np.nan)
    if ok.any():
        coords, index = shapely.get_coordinates(geoms[ok], return_index=True)
        _, start = np.unique(index, return_index=True)
        first[np.flatnonzero(ok)] = coords[start]
    x, y = first[:, 0], first[:, 1]
    swapped = ok & _crs.looks_swapped(x, y)
    _each(report, "error", frame, swapped, spec.name, "geometry",
          [f"lon/lat look swapped: ({a:.6f}, {b:.6f}) is outside China, ({b:.6f}, {a:.6f}) inside"
           for a, b in zip(x[swapped], y[swapped])])
    bad_range = ok & ~swapped & ~_crs.lonlat_valid(x, y)
    _each(report, "error", frame, bad_range, spec.name, "geometry",
          [f"coordinates ({a:.6g}, {b:.6g}) are not lon/lat degrees: is the CRS right?"
           for a, b in zip(x[bad_range], y[bad_range])])
    checkable = ok & ~bad_range & ~swapped
    outside = checkable & ~_crs.in_china(x, y)
    _each(report, "warning", frame, outside, spec.name, "geometry",
          [f"({a:.6f}, {b:.6f}) is outside China" for a, b in zip(x[outside], y[outside])])
    # Validity.
    valid = shapely.is_valid(geoms)
    invalid = ok & ~valid
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid])
        if repair and spec.geometry == "polygon":
            fixed = shapely.make_valid(geoms[invalid])
            fixed = np.array([_polygonal(g) for g in fixed], dtype=object)
            still = shapely.is_empty(fixed) | ~shapely.is_valid(fixed)
            frame = frame.copy()
            col = frame.geometry.name
            vals = frame[col].to_numpy().copy()
            idx = np.flatnonzero(invalid)
            vals[idx[~still]] = fixed[~still]
            frame[col] = gpd.GeoSeries(vals, index=frame.index, crs=frame.crs)
            sel = np.zeros(len(frame), bool)
            sel[idx[~still]] = True
            _each(report, "warning", frame, sel, spec.name, "geometry",
                  [f"invalid geometry ({r}) repaired" for r in reasons[~still]])
            sel = np.zeros(len(frame), bool)
            sel[idx[still]] = True
            _each(report, "error", frame, sel, spec.name, "geometry",
                  [f"invalid geometry ({r}) could not be repaired" for r in reasons[still]])
        else:
            hint = " (import with --repair to fix it)" if spec.geometry == "polygon" else ""
            _each(report, "error", frame, invalid, spec.name, "geometry",
                  [f"invalid geometry: {r}{hint}" for r in reasons])
    return frame


def _polygonal(geom):
    """The polygonal part of ``geom`` (make_valid may add lines and points)."""
    if geom is None:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def check_layer(frame, spec: Layer, report: Report, *, existing=None, repair=False, replace=False):
    """Every single-layer check; returns the typed (and possibly repaired) frame."""
    frame = coerce(frame, spec, report)
    check_keys(frame, spec, report, existing, replace)
    if spec.geometry and isinstance(frame, gpd.GeoDataFrame):
        frame = check_geometry(frame, spec, report, repair)
    return frame


def _usable(frame: gpd.GeoDataFrame) -> np.ndarray:
    g = frame.geometry.to_numpy()
    return ~(shapely.is_missing(g) | shapely.is_empty(g)) & shapely.is_valid(g)


def check_grids(grids: gpd.GeoDataFrame, villages: gpd.GeoDataFrame, report: Report, *,
                tolerance_m2: float = 1.0) -> None:
    """Grid codes against villages, overlaps, grids leaving their village, and gaps.

    ``villages`` holds every village and community (code, geometry). Every village must
    be covered by grids: a plan divides the whole jurisdiction.
    """
    layer = "grids"
    g = grids[_usable(grids)]
    known = set(villages["code"])
    vc = g["village_code"].astype("string")
    unknown = ~vc.isin(known).to_numpy(dtype=bool) & vc.notna().to_numpy()
    _each(report, "error", g, unknown, layer, "village_code",
          [f"village {v!r} is not a known village or community" for v in vc[unknown]])
    code = g["code"].astype("string").fillna("")
    prefix_bad = ~unknown & vc.notna().to_numpy() & ~np.array(
        [c.startswith(v) for c, v in zip(code, vc.fillna(""))], dtype=bool)
    _each(report, "error", g, prefix_bad, layer, "code",
          [f"grid code {c!r} does not start with its village code {v!r}"
           for c, v in zip(code[prefix_bad], vc[prefix_bad])])
    if len(g) == 0:
        return
    # Topology is computed in lon/lat, where the data lives: reprojecting first would bend
    # straight edges and invent slivers where a vertex sits on a neighbour's edge. Only
    # the resulting pieces are projected, to measure their area in m².
    epsg = _crs.metric_epsg(float(np.mean(g.total_bounds[[0, 2]])))

    def area_m2(geoms):
        # Densified first (~10 m): an edge is straight in lon/lat, so a sliver whose
        # vertices all lie on one long straight edge has no area; projected as is, the
        # chord and the vertices on the curve would enclose a lens of square metres.
        return gpd.GeoSeries(shapely.segmentize(geoms, 1e-4), crs=4326).to_crs(epsg).area.to_numpy()

    geoms = g.geometry.to_numpy()
    rows, files, codes = g["_row"].to_numpy(), g["_file"].to_numpy(), g["code"].to_numpy()
    # Overlaps: candidate pairs from the tree, then exact intersection areas.
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left):
        area = area_m2(shapely.intersection(geoms[left], geoms[right]))
        over = area > tolerance_m2
        for i, j, a in zip(left[over], right[over], area[over]):
            report.error(files[i], layer, None if pd.isna(rows[i]) else int(rows[i]), "geometry",
                         f"grid {codes[i]} overlaps grid {codes[j]} (row {rows[j]}) by {a:,.1f} m²")
    v = villages[_usable(villages)].drop_duplicates("code", keep="last").set_index("code")
    if len(v) == 0:
        return
    # Grids leaving their village.
    inside = g["village_code"].isin(v.index).to_numpy(dtype=bool)
    if inside.any():
        vgeom = v.geometry.reindex(g["village_code"][inside]).to_numpy()
        outside_area = area_m2(shapely.difference(geoms[inside], vgeom))
        bad = np.zeros(len(g), bool)
        bad[np.flatnonzero(inside)[outside_area > tolerance_m2]] = True
        _each(report, "error", g, bad, layer, "geometry",
              [f"grid {c} leaves its village {vc_} by {a:,.1f} m²" for c, vc_, a in
               zip(g["code"][bad], g["village_code"][bad], outside_area[outside_area > tolerance_m2])])
    # Gaps: village area covered by no grid.
    cover = g[["village_code", "geometry"]].dissolve("village_code").geometry
    covered = cover.reindex(v.index)
    have = covered.notna().to_numpy()
    vgeoms = v.geometry.to_numpy()
    gap = vgeoms.copy()
    gap[have] = shapely.difference(vgeoms[have], covered.to_numpy()[have])
    gap_area = area_m2(gap)
    file0 = grids["_file"].iloc[0]
    points = shapely.point_on_surface(gap)
    for code, a, has, pt in zip(v.index, gap_area, have, points):
        if a > tolerance_m2:
            what = "has no grid at all" if not has else f"has {a:,.1f} m² covered by no grid"
            report.error(file0, layer, None, "geometry",
                         f"gap: village {code} {what} (e.g. near {pt.x:.6f}, {pt.y:.6f})")


def check_households(households: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, report: Report,
                     *, severity: str = "error") -> None:
    """Households in no grid; ``grids`` is the plan the households will belong to."""
    h = households[_usable(households)]
    if len(h) == 0 or len(grids) == 0:
        return
    tree = shapely.STRtree(grids.geometry.to_numpy())
    hit, _ = tree.query(h.geometry.to_numpy(), predicate="intersects")
    covered = np.zeros(len(h), bool)
    covered[hit] = True
    addr = h["address"].astype("string").fillna("") if "address" in h else [""] * len(h)
    _each(report, severity, h, ~covered, "households", "geometry",
          [f"household {c} ({a}) is in no grid" for c, a in
           zip(h["code"].to_numpy()[~covered], np.asarray(addr)[~covered])])


def check_references(frame, layer: str, fld: str, known: set, what: str, report: Report) -> None:
    """Values of ``frame[fld]`` that are not in ``known``."""
    if fld not in frame or len(frame) == 0:
        return
    vals = frame[fld].astype("string")
    bad = vals.notna().to_numpy() & ~vals.isin(known).to_numpy(dtype=bool)
    _each(report, "error", frame, bad, layer, fld, [f"{_show(v)} is not a known {what}" for v in vals[bad]])
