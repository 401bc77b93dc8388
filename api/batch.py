"""The batch lookup's bodies and answers, as arrays: no Python per point.

Bodies (``POST /v1/lookup``): ``{"points": [[lon, lat], ...]}``, ``{"lon": [...], "lat":
[...]}`` (columns) or a GeoJSON FeatureCollection of points. The first two are parsed by
orjson into lists numpy turns into arrays in C; a FeatureCollection is parsed straight
into columns by Arrow's JSON reader (the feature ids too), skipping the properties. A
body the fast readers do not take (ragged pairs, wrong types, ids of mixed types) is read
again by the plain reader, which says exactly what is wrong and where.

Answers, by :func:`negotiate` (``?format=`` first, else the ``Accept`` header):

====================  ======================================  =================================
form                  media type                              shape
====================  ======================================  =================================
``json`` (default)    ``application/json``                    ``{plan_version, count, located,
                                                              results: [{grid_code, ...}]}``
``columns``           ``application/json``                    ``{plan_version, count, located,
                                                              columns: {grid_code: [...], ...}}``
``geojson``           ``application/geo+json``                a FeatureCollection of the points
``csv``               ``text/csv`` (UTF-8 with BOM)           a row per point
``parquet``           ``application/vnd.apache.parquet``      a row per point
``arrow``             ``application/vnd.apache.arrow.stream`` a row per point
====================  ======================================  =================================

JSON is written by Arrow's string kernels: the JSON of each grid's directory row is made
once per plan, each point's text is that fragment taken by index and joined with its
flags, and the answer is the joined strings' data buffer, written as it is (no joining
copy) into the file the route sends from (:func:`encode`'s ``sink``).
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from gridgeo.errors import BatchTooLarge, GridgeoError, InvalidCoordinates, MalformedBody, UnreadableFile
from gridgeo.io.exporting import neutralise_array
from gridgeo.io.reading import SAMPLE_BYTES, decode_failure, detect_encoding
from gridgeo.io.streaming import LAT_NAMES, LON_NAMES, _numbers, find_column
from gridgeo.lookup import BATCH_COLUMNS, DIRECTORY_COLUMNS, MANY_COLUMNS, MAX_BATCH, Batch

__all__ = ["BODY_TYPES", "FORMS", "Points", "body_kind", "encode", "negotiate", "parse_body", "read_body"]

#: Answer form -> media type.
FORMS = {
    "json": "application/json",
    "columns": "application/json",
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
#: Accept media type -> form (``application/json`` is the records form).
_ACCEPTED = {
    "application/json": "json",
    "application/geo+json": "geojson",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
}


def negotiate(form: str | None, accept: str | None) -> str:
    """The answer form: ``form`` (the ``format`` query parameter) if given, else the first
    type of ``accept`` (by quality, then order) that has one, else records JSON."""
    if form:
        return form
    best, best_q = "json", -1.0
    for position, item in enumerate((accept or "").split(",")):
        media, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        found = _ACCEPTED.get(media.lower())
        if found is not None and q > 0 and q > best_q:
            best, best_q = found, q
    return best


# -- bodies -------------------------------------------------------------------------------------


@dataclass
class Points:
    """A parsed body: coordinates, the CRS the body names, and the features' ids."""

    lon: np.ndarray
    lat: np.ndarray
    crs: str | None = None
    #: The features' ids (a FeatureCollection's; null where a feature has none).
    ids: pa.Array | None = None
    #: ``ids`` holds each id's JSON text (ids of mixed types), not the id.
    ids_json: bool = False


_FC_GEOMETRY = pa.struct([("type", pa.string()), ("coordinates", pa.list_(pa.float64()))])


def _fc_schema(id_type: pa.DataType) -> pa.Schema:
    feature = pa.struct([("type", pa.string()), ("id", id_type),
                         ("properties", pa.struct([("id", id_type)])), ("geometry", _FC_GEOMETRY)])
    crs = pa.struct([("type", pa.string()), ("properties", pa.struct([("name", pa.string())]))])
    return pa.schema([("type", pa.string()), ("crs", crs), ("features", pa.list_(feature))])


def parse_body(raw: bytes) -> Points:
    """The points of a batch body.

    Raises
    ------
    MalformedBody
        Not JSON, or not one of the three shapes; says where.
    BatchTooLarge
        More than :data:`~gridgeo.lookup.MAX_BATCH` points.
    """
    fast = _by_arrow(raw)
    return fast if fast is not None else _by_parser(raw)


def _by_arrow(raw: bytes) -> Points | None:
    """The body read into columns by Arrow's JSON reader (iterative: no depth harms it);
    None when it does not take it."""
    return _features_by_arrow(raw) if b'"FeatureCollection"' in raw else _points_by_arrow(raw)


def _by_parser(raw: bytes) -> Points:
    """The body read by the plain (recursive) parsers, which say exactly what is wrong."""
    gc.disable()  # a million small objects would run the cyclic collector many times over
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        # NaN and Infinity (points flagged invalid), integers past 64 bits: Python's reader
        body = _python_json(raw)
    finally:
        gc.enable()
    return _parse_object(body)


#: Content type of a bulk body -> its reader's name; every other type is read as JSON.
BODY_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow.file": "arrow",
}


#: JSON bodies from this size are scanned and read by Arrow at once (two threads).
OVERLAP_BYTES = 1 << 20


def body_kind(content_type: str | None) -> tuple[str, str | None]:
    """(``json``, ``csv``, ``parquet`` or ``arrow``; the ``charset`` parameter) of a
    request's Content-Type. Anything not a bulk type (none, ``application/json``,
    ``text/plain``) is JSON, as before bulk bodies."""
    media, *params = [p.strip() for p in (content_type or "").split(";")]
    charset = None
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return BODY_TYPES.get(media.lower(), "json"), charset


def read_body(raw: bytes, content_type: str | None, max_depth: int = 0) -> Points:
    """The points of a batch body of any kind (:func:`body_kind`): a JSON body is
    scanned first (:func:`~gridgeo.api.middleware.check_json`), here, in the process
    that parses it.

    Raises
    ------
    MalformedBody, JsonTooDeep, NulCharacter
        Not readable as its type says, or not points; the message says where.
    BatchTooLarge
        More than :data:`~gridgeo.lookup.MAX_BATCH` points (from a Parquet file's
        metadata, before it is read).
    """
    kind, charset = body_kind(content_type)
    if kind == "csv":
        return _csv_points(raw, charset)
    if kind == "parquet":
        return _parquet_points(raw)
    if kind == "arrow":
        return _arrow_points(raw)
    from gridgeo.api.middleware import check_json

    if len(raw) < OVERLAP_BYTES:
        check_json(raw, max_depth)
        return parse_body(raw)
    # A large body is scanned in a thread while Arrow's reader (iterative, so safe on any
    # depth) reads it: both release the GIL. The scan's verdict comes first, and only a
    # body it passed reaches the recursive parsers.
    with ThreadPoolExecutor(1) as pool:
        scan = pool.submit(check_json, raw, max_depth)
        try:
            fast, error = _by_arrow(raw), None
        except GridgeoError as exc:  # too many points: said after the scan's verdict
            fast, error = None, exc
        scan.result()
    if error is not None:
        raise error
    return fast if fast is not None else _by_parser(raw)


def _coordinate_columns(names: list[str], what: str) -> tuple[str, str, str | None]:
    """The longitude, latitude and id columns of a bulk body (:data:`LON_NAMES`...)."""
    lon, lat = find_column(names, LON_NAMES), find_column(names, LAT_NAMES)
    if lon is None or lat is None:
        missing = " and ".join(w for w, c in (("longitude", lon), ("latitude", lat)) if c is None)
        raise MalformedBody(f"the {what} body has no {missing} column (it has {', '.join(names[:12]) or 'none'}): "
                            f"name them lon and lat ({'/'.join(LON_NAMES)}, {'/'.join(LAT_NAMES)})")
    ids = find_column(names, ("id",))
    return lon, lat, ids


def _coordinates(values: pa.ChunkedArray | pa.Array, name: str, what: str) -> np.ndarray:
    """Degrees from a column: numbers as they are; text read as numbers, a blank (or
    ``NaN``) cell as NaN (the point is then flagged invalid); any other type, or a word
    among the numbers, a 422 naming the row and the column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.dictionary_decode(), values.type.value_type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise MalformedBody(f"the {what} body's column {name} holds {kind}, not numbers of degrees")
    x = _numbers(values)
    text = pc.utf8_trim_whitespace(values).fill_null("")
    words = pc.and_(pa.array(np.isnan(x)),
                    pc.invert(pc.is_in(pc.utf8_lower(text), pa.array(["", "nan"])))).fill_null(False)
    if pc.any(words).as_py():
        i = int(np.flatnonzero(words.to_numpy(zero_copy_only=False))[0])
        raise MalformedBody(f"the {what} body's row {i + 1}: {name} {values[i].as_py()!r} is not a number")
    return x


def _ids(values: pa.ChunkedArray | None) -> pa.Array | None:
    """An id column as the answers write it: text, integers or numbers as they are."""
    if values is None:
        return None
    values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.int64())
    if pa.types.is_floating(values.type):
        return pc.cast(values, pa.float64())
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MalformedBody(f"the body's id column holds {values.type}, not text or numbers") from None


def _points_of(table: pa.Table, lon: str, lat: str, ids: str | None, what: str) -> Points:
    _check_size(table.num_rows)
    return Points(_coordinates(table.column(lon), lon, what), _coordinates(table.column(lat), lat, what),
                  None, _ids(table.column(ids) if ids else None))


def _csv_points(raw: bytes, charset: str | None) -> Points:
    """A CSV body (a header, then a row per point; UTF-8 with or without BOM, or GB18030/
    GBK, detected as for files, or as ``charset`` says): its lon, lat (and id) columns."""
    if not raw.strip():
        raise MalformedBody("the CSV body is empty: send a header (lon,lat) and a row per point")
    hint = "send UTF-8 or GB18030, or name the encoding: Content-Type: text/csv; charset=gb18030"
    if charset is None:
        try:
            charset = detect_encoding(raw[:SAMPLE_BYTES], "the CSV body", hint=hint)
        except UnreadableFile as exc:
            raise MalformedBody(str(exc)) from None
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise MalformedBody(f"unknown charset {charset!r} in the Content-Type: use utf-8 or gb18030") from None
    if codec not in ("utf-8", "utf-8-sig") or raw.startswith(codecs.BOM_UTF8):
        try:
            raw = raw.decode(codec).lstrip("\ufeff").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBody(str(decode_failure("the CSV body", codec, raw, exc, hint=hint))) from None
    first = raw.split(b"\n", 1)[0]
    try:
        names = [c.strip() for c in next(csv.reader([first.decode("utf-8")]))]
    except UnicodeDecodeError as exc:
        raise MalformedBody(str(decode_failure("the CSV body", "utf-8", first, exc, hint=hint))) from None
    except (StopIteration, csv.Error):
        raise MalformedBody("the CSV body has no header: its first line names the columns (lon,lat)") from None
    lon, lat, ids = _coordinate_columns(names, "CSV")
    wanted = [lon, lat] + ([ids] if ids else [])
    try:
        table = pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=len(raw) + 1, column_names=names,
                                           skip_rows=1),
            convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        try:  # the row where the text is not UTF-8, if that is what is wrong
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise MalformedBody(str(decode_failure("the CSV body", codec, raw, bad, hint=hint))) from None
        raise MalformedBody(f"the CSV body cannot be read: {exc}") from None
    return _points_of(table, lon, lat, ids, "CSV")


def _parquet_points(raw: bytes) -> Points:
    """A Parquet body: its lon, lat (and id) columns. The row count comes from the
    metadata, so a small file of many rows is refused before it is decompressed."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MalformedBody(f"the body is not a Parquet file: {exc}") from None
    _check_size(parquet.metadata.num_rows)
    lon, lat, ids = _coordinate_columns(list(parquet.schema_arrow.names), "Parquet")
    try:
        table = parquet.read(columns=[lon, lat] + ([ids] if ids else []), use_threads=False)
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise MalformedBody(f"the Parquet body cannot be read: {exc}") from None
    return _points_of(table, lon, lat, ids, "Parquet")


def _arrow_points(raw: bytes) -> Points:
    """An Arrow IPC body (a stream, or a file: it starts ``ARROW1``): its lon, lat (and
    id) columns, read a record batch at a time until the rows pass the limit."""
    try:
        reader = pa.ipc.open_file(pa.BufferReader(raw)) if raw[:6] == b"ARROW1" else pa.ipc.open_stream(raw)
        lon, lat, ids = _coordinate_columns(list(reader.schema.names), "Arrow")
        wanted = [lon, lat] + ([ids] if ids else [])
        if isinstance(reader, pa.ipc.RecordBatchFileReader):
            parts = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            parts = reader
        batches, rows = [], 0
        for part in parts:
            rows += part.num_rows
            _check_size(rows)
            batches.append(part.select(wanted))
    except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
        raise MalformedBody(f"the body is not an Arrow IPC stream or file: {exc}") from None
    table = pa.Table.from_batches(batches, schema=pa.schema([reader.schema.field(c) for c in wanted]))
    return _points_of(table, lon, lat, ids, "Arrow")


def _python_json(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None


def _read_one(raw: bytes, schema: pa.Schema) -> pa.Table | None:
    """``raw`` as one JSON object read by Arrow into ``schema`` (other fields skipped);
    None when Arrow does not take it so (wrong types, not one object)."""
    options = pajson.ParseOptions(explicit_schema=schema, newlines_in_values=True,
                                  unexpected_field_behavior="ignore")
    try:
        table = pajson.read_json(pa.BufferReader(raw), parse_options=options,
                                 read_options=pajson.ReadOptions(block_size=max(len(raw), 1 << 20) + 1,
                                                                 use_threads=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == 1 else None


_POINTS_SCHEMA = pa.schema([("type", pa.string()), ("crs", pa.string()),
                            ("points", pa.list_(pa.list_(pa.float64()))),
                            ("lon", pa.list_(pa.float64())), ("lat", pa.list_(pa.float64()))])


def _points_by_arrow(raw: bytes) -> Points | None:
    """``{points: [[lon, lat], ...]}`` or ``{lon: [...], lat: [...]}`` read into arrays by
    Arrow; None when it is anything else (the plain reader then says what is wrong)."""
    table = _read_one(raw, _POINTS_SCHEMA)
    if table is None or table["type"][0].is_valid:
        return None
    crs = table["crs"][0].as_py()
    points, lon, lat = (table[c].combine_chunks() for c in ("points", "lon", "lat"))
    if points[0].is_valid:
        pairs = points.flatten()
        _check_size(len(pairs))
        if len(pairs) and (pc.any(pc.less(pc.list_value_length(pairs), 2)).as_py()
                           or pc.any(pc.is_null(pc.list_element(pairs, 0))).as_py()
                           or pc.any(pc.is_null(pc.list_element(pairs, 1))).as_py()):
            return None
        first = np.asarray(pairs.offsets)[:-1]
        values = pairs.values.to_numpy(zero_copy_only=False)
        x, y = values[first], values[first + 1]
    elif lon[0].is_valid and lat[0].is_valid:
        x, y = lon.flatten(), lat.flatten()
        if len(x) != len(y) or x.null_count or y.null_count:
            return None
        _check_size(len(x))
        x, y = x.to_numpy(zero_copy_only=False), y.to_numpy(zero_copy_only=False)
    else:
        return None
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None  # a number too large for a float (JSON has no infinity): the plain reader says
    return Points(x, y, crs)


def _id_types(raw: bytes) -> tuple[pa.DataType, ...]:
    """The id types to try, the likely one first (from the first ``"id":``'s value): a
    wrong guess costs a whole parse."""
    at = raw.find(b'"id":')
    first = raw[at + 5:at + 40].lstrip()[:1] if at >= 0 else b'"'
    if first in b"-0123456789" and first:
        return pa.int64(), pa.float64(), pa.string()
    return pa.string(), pa.int64(), pa.float64()


def _features_by_arrow(raw: bytes) -> Points | None:
    """A FeatureCollection read into columns by Arrow's JSON reader; None when Arrow does
    not take it as one (the plain reader then says what is wrong)."""
    for id_type in _id_types(raw):
        table = _read_one(raw, _fc_schema(id_type))
        if table is not None:
            break
    else:
        return None
    if table["type"][0].as_py() != "FeatureCollection":
        return None
    features = table["features"].combine_chunks()
    if features.null_count:
        return None
    feats = features.flatten()
    n = len(feats)
    _check_size(n)
    geometry = feats.field("geometry")
    coords = geometry.field("coordinates")
    ok = pc.and_(pc.equal(geometry.field("type"), "Point"),
                 pc.greater_equal(pc.list_value_length(coords), 2)).fill_null(False)
    if n and not pc.all(ok).as_py():
        return None  # the plain reader names the first bad feature
    if n and (pc.any(pc.is_null(pc.list_element(coords, 0))).as_py()
              or pc.any(pc.is_null(pc.list_element(coords, 1))).as_py()):
        return None
    # offsets are those of this slice, values the whole child: index the child by them
    first = np.asarray(coords.offsets)[:-1]
    values = coords.values.to_numpy(zero_copy_only=False)
    lon, lat = values[first], values[first + 1]
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return None  # a number too large for a float (JSON has no infinity): the plain reader says
    ids = pc.coalesce(feats.field("id"), feats.field("properties").field("id"))
    crs = table["crs"][0]
    name = crs["properties"]["name"].as_py() if crs.is_valid else None
    if crs.is_valid and not isinstance(name, str):
        return None
    return Points(lon, lat, name, ids)


def _parse_object(body: Any) -> Points:
    """The three shapes from a parsed body, with the plain reader's messages."""
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object: {points: [[lon, lat], ...]}, "
                            "{lon: [...], lat: [...]} or a GeoJSON FeatureCollection")
    crs = body.get("crs")
    if isinstance(crs, dict):  # GeoJSON-style {"type": "name", "properties": {"name": ...}}
        props = crs.get("properties")
        crs = props.get("name") if isinstance(props, dict) else None
        if not isinstance(crs, str):
            raise MalformedBody('crs must be a name or {"type": "name", "properties": {"name": ...}}')
    if crs is not None and not isinstance(crs, str):
        raise MalformedBody("crs must be a name such as wgs84 or gcj02")
    if body.get("type") == "FeatureCollection":
        feats = body.get("features")
        if not isinstance(feats, list):
            raise MalformedBody("a FeatureCollection needs a features array")
        _check_size(len(feats))
        # The plain reader: Arrow's did not take this body (mixed id types, or an error
        # to name), so this loop runs for odd bodies only.
        coords, ids = [], []
        for i, f in enumerate(feats):
            geom = f.get("geometry") if isinstance(f, dict) else None
            if not isinstance(geom, dict) or geom.get("type") != "Point" or not _pair(geom.get("coordinates")):
                raise MalformedBody(f"features[{i}]: each feature must have a Point geometry")
            coords.append(geom["coordinates"][:2])
            props = f.get("properties")
            ids.append(f.get("id", props.get("id") if isinstance(props, dict) else None))
        arr = _floats(coords).reshape(-1, 2)
        return Points(arr[:, 0], arr[:, 1], crs, *_ids_array(ids))
    if "points" in body:
        pts = body["points"]
        if not isinstance(pts, list):
            raise MalformedBody("points must be an array of [lon, lat] pairs")
        _check_size(len(pts))
        bad = next((i for i, p in enumerate(pts) if not _pair(p)), None)  # odd bodies only
        if bad is not None:
            raise MalformedBody(f"points[{bad}] is not a [lon, lat] pair of numbers")
        arr = _floats([p[:2] for p in pts]).reshape(-1, 2)
        return Points(arr[:, 0], arr[:, 1], crs)
    if "lon" in body and "lat" in body:
        lon, lat = body["lon"], body["lat"]
        if not isinstance(lon, list) or not isinstance(lat, list) or len(lon) != len(lat):
            raise MalformedBody("lon and lat must be arrays of the same length")
        _check_size(len(lon))
        try:
            return Points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), crs)
        except (TypeError, ValueError, OverflowError):
            raise MalformedBody("lon and lat must hold numbers") from None
    raise MalformedBody("give points: [[lon, lat], ...], lon and lat arrays, or a GeoJSON FeatureCollection")


def _ids_array(ids: list) -> tuple[pa.Array, bool]:
    """Feature ids as an array of one type (text, integers or numbers), or, when they mix
    types (or are objects), as their JSON texts (and True)."""
    kinds = {type(v) for v in ids if v is not None}
    for allowed, kind in (({str}, pa.string()), ({int}, pa.int64()), ({int, float}, pa.float64())):
        if kinds <= allowed:
            try:
                return pa.array(ids, type=kind), False
            except (pa.ArrowInvalid, OverflowError):
                break
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in ids], type=pa.string()), True


def _floats(values: list) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except OverflowError:  # an integer with hundreds of digits
        raise InvalidCoordinates("a coordinate is too large to be a number of degrees") from None


def _pair(p) -> bool:
    return (isinstance(p, (list, tuple)) and len(p) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2]))


def _check_size(n: int) -> None:
    if n > MAX_BATCH:
        raise BatchTooLarge(f"{n:,} points in one request; the limit is {MAX_BATCH:,}")


# -- answers ------------------------------------------------------------------------------------


def encode(batch: Batch, points: Points, form: str, sink=None) -> bytes | int:
    """The answer to a batch in ``form`` (see :data:`FORMS`); written into ``sink`` (a
    writable file, e.g. an Arrow ``NativeFile``) when one is given, then its size."""
    if form in ("json", "columns", "geojson"):
        parts = {"json": _records, "columns": _columns, "geojson": _geojson}[form](batch, points)
        if sink is None:
            return b"".join(parts)
        for part in parts:
            sink.write(part)
        return sum(len(part) for part in parts)
    if form not in FORMS:  # the route validates form
        raise MalformedBody(f"unknown format {form!r}; use one of {', '.join(FORMS)}")
    table = _table(batch, points, spreadsheet=form == "csv")
    out = io.BytesIO() if sink is None else sink
    start = out.tell()
    if form == "csv":
        out.write("\ufeff".encode())  # so that Excel reads it as UTF-8
        pacsv.write_csv(table, out)
    elif form == "parquet":
        table = table.replace_schema_metadata({"plan_version": batch.plan_version})
        pq.write_table(table, out)
    else:  # arrow
        table = table.replace_schema_metadata({"plan_version": batch.plan_version})
        with pa.ipc.new_stream(out, table.schema) as writer:
            writer.write_table(table)
    return out.getvalue() if sink is None else out.tell() - start


def _head(batch: Batch) -> bytes:
    return orjson.dumps({"plan_version": batch.plan_version, "count": len(batch),
                         "located": batch.located})[:-1]


def _joined(*pieces, sep: str = ",") -> memoryview:
    """Row by row, ``pieces`` (string arrays, or text for every row) concatenated; the
    rows joined by ``sep``: a view of Arrow's data buffer, copied once by the caller."""
    arr = pc.binary_join_element_wise(*pieces, sep, "")
    if len(arr) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    return memoryview(arr.buffers()[2])[start:end - len(sep.encode())]


def _json_texts(values: pa.Array) -> pa.Array:
    """The JSON text of each value of a string array (``null`` for nulls), vectorised:
    backslashes and quotes escaped; control characters (rare) by orjson."""
    values = values.cast(pa.string())
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    texts = pc.binary_join_element_wise('"', escaped, '"', "")
    odd = pc.match_substring_regex(values, r"[\x00-\x1f]").fill_null(False)
    if pc.any(odd).as_py():
        where = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
        fixed = texts.to_numpy(zero_copy_only=False).astype(object)
        for i in where:  # only the values holding control characters
            fixed[i] = orjson.dumps(values[int(i)].as_py()).decode()
        texts = pa.array(fixed, type=pa.string())
    return texts.fill_null("null")


def _number_texts(values: np.ndarray) -> pa.Array:
    """JSON numbers (shortest round-trip text), ``null`` for NaN."""
    return pc.cast(pa.array(values, mask=np.isnan(values)), pa.string()).fill_null("null")


_TF = pa.array(["false", "true"])


def _bool_texts(values: np.ndarray) -> pa.Array:
    return _TF.take(pa.array(values.astype(np.int8)))


def _id_texts(points: Points) -> pa.Array | None:
    """The JSON text of each feature's id, or None when the body had no ids."""
    ids = points.ids
    if ids is None:
        return None
    if points.ids_json:
        return ids.fill_null("null")
    if pa.types.is_integer(ids.type) or pa.types.is_floating(ids.type):
        return pc.cast(ids, pa.string()).fill_null("null")
    return _json_texts(ids)


def _directory_json(batch: Batch, columns: tuple[str, ...]) -> dict[str, pa.Array]:
    """The JSON text of each directory column's values (a row per grid; per plan)."""
    return {c: _json_texts(batch.directory.column(c).combine_chunks()) for c in columns}


def _records(batch: Batch, points: Points) -> list:
    """``{plan_version, count, located, results: [{...}, ...]}``, a record per point with
    the columns of :data:`~gridgeo.lookup.MANY_COLUMNS` (and the feature's ``id``)."""
    return [_head(batch), b',"results":[', _joined(*_record_pieces(batch, points)), b"]}"]


def _record_pieces(batch: Batch, points: Points, columns=MANY_COLUMNS) -> list:
    """The pieces whose row-wise concatenation is each point's JSON object."""
    directory = [c for c in columns if c in DIRECTORY_COLUMNS]
    texts = _directory_json(batch, tuple(directory))
    parts = []
    for i, c in enumerate(directory):
        parts += [("{" if i == 0 else ",") + f'"{c}":', texts[c]]
    grid = pc.binary_join_element_wise(*parts, "") if parts else None
    index = pa.array(batch.index)
    pieces = [grid.take(index)] if grid is not None else []
    first = not pieces
    for c in columns:
        if c in DIRECTORY_COLUMNS:
            continue
        value = _number_texts(batch.distance()) if c == "distance_m" else _bool_texts(getattr(batch, c))
        pieces += [("{" if first else ",") + f'"{c}":', value]
        first = False
    ids = _id_texts(points)
    if ids is not None:
        pieces += [',"id":', ids]
    pieces.append("}")
    return pieces


def _columns(batch: Batch, points: Points) -> list:
    """``{plan_version, count, located, columns: {name: [...]}}``: every column of
    :data:`~gridgeo.lookup.BATCH_COLUMNS` as one array, in input order."""
    index = pa.array(batch.index)
    texts = _directory_json(batch, DIRECTORY_COLUMNS)
    out = [_head(batch), b',"columns":{']
    first = True
    for c in BATCH_COLUMNS:
        if c in DIRECTORY_COLUMNS:
            body = _joined(texts[c].take(index))
        elif c == "distance_m":
            body = _joined(_number_texts(batch.distance()))
        else:
            body = orjson.dumps(getattr(batch, c), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        out += [b"" if first else b",", f'"{c}":['.encode(), body, b"]"]
        first = False
    ids = _id_texts(points)
    if ids is not None:
        out += [b',"id":[', _joined(ids), b"]"]
    out.append(b"}}")
    return out


def _geojson(batch: Batch, points: Points) -> list:
    """A FeatureCollection: each point as given, the record of the point as properties."""
    ids = _id_texts(points)
    parts = ['{"type":"Feature",']
    if ids is not None:
        parts += ['"id":', ids, ","]
    parts += ['"geometry":{"type":"Point","coordinates":[', _number_texts(points.lon), ",",
              _number_texts(points.lat), ']},"properties":',
              *_record_pieces(batch, Points(points.lon, points.lat), BATCH_COLUMNS), "}"]
    head = orjson.dumps({"type": "FeatureCollection", "plan_version": batch.plan_version,
                         "count": len(batch), "located": batch.located})[:-1]
    return [head, b',"features":[', _joined(*parts), b"]}"]


def _table(batch: Batch, points: Points, *, spreadsheet: bool) -> pa.Table:
    """The bulk forms' table: id (if the body had ids), lon, lat as given, then every
    column of the batch. For a spreadsheet, text cells are neutralised."""
    table = batch.table()
    lead = {}
    if points.ids is not None:
        lead["id"] = points.ids
    lead["lon"] = pa.array(points.lon)
    lead["lat"] = pa.array(points.lat)
    for i, (name, values) in enumerate(lead.items()):
        table = table.add_column(i, name, values)
    if spreadsheet:
        for i, field in enumerate(table.schema):
            if pa.types.is_string(field.type):
                table = table.set_column(i, field.name, neutralise_array(table.column(i)))
    return table
