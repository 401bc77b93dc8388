"""Tables in chunks: read a CSV or a plain Parquet file batch by batch, locate each batch,
write it out, so that a file larger than memory goes through in bounded memory.

Used by ``gridgeo locate``. CSV is read with pyarrow's streaming reader (every column as
text, as :func:`gridgeo.io.reading.read_table` gives it; the encoding detected as it
detects it) and written with pyarrow's CSV writer: UTF-8 with BOM by default (so that
Excel opens it as it is), or another encoding (the input's, on request). Text cells a
spreadsheet would run are quoted (:func:`gridgeo.io.exporting.neutralise_array`).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gridgeo.errors import InvalidInput, UnreadableFile
from gridgeo.io.exporting import neutralise_array
from gridgeo.io.reading import SAMPLE_BYTES, decode_failure, detect_encoding, is_geoparquet

__all__ = ["BLOCK_BYTES", "LAT_NAMES", "LOCATE_COLUMNS", "LON_NAMES", "LocateSummary", "find_column", "locate_stream",
           "read_batches", "streams"]

#: Bytes of CSV read at a time (a batch of roughly 200,000 short rows).
BLOCK_BYTES = 16 << 20
#: Rows of Parquet read at a time.
PARQUET_ROWS = 250_000
#: The columns ``gridgeo locate`` adds to each row, in order.
LOCATE_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name", "snapped", "distance_m",
                  "outside", "invalid", "swapped")
#: Column names tried for longitude and latitude when the default ``lon``/``lat`` are absent.
LON_NAMES = ("lon", "lng", "longitude", "经度", "x")
LAT_NAMES = ("lat", "latitude", "纬度", "y")


def streams(src: Path, dst: Path) -> bool:
    """Whether ``gridgeo locate`` of ``src`` into ``dst`` goes through in chunks: CSV or
    plain Parquet in, CSV or Parquet out."""
    suffix = src.suffix.lower()
    if dst.suffix.lower() not in (".csv", ".parquet"):
        return False
    if suffix == ".csv":
        return True
    return suffix == ".parquet" and src.is_file() and not is_geoparquet(src)


@dataclass
class LocateSummary:
    """What a streamed locate did."""

    rows: int = 0
    located: int = 0
    snapped: int = 0
    invalid: int = 0
    swapped: int = 0
    plan: str | None = None
    encoding: str | None = None
    columns: tuple[str, str] = ("lon", "lat")
    batches: int = 0
    extra: dict = field(default_factory=dict)


def _csv_header(path: Path, encoding: str) -> list[str]:
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    first = head.split(b"\n", 1)[0]
    try:
        text = first.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise decode_failure(path, encoding, first, exc) from None
    try:
        return [c.strip() for c in next(csv.reader(io.StringIO(text)))]
    except StopIteration:
        raise UnreadableFile(f"{path}: the file is empty") from None


def read_batches(path: Path, *, encoding: str | None = None,
                 block_bytes: int = BLOCK_BYTES) -> tuple[list[str], str | None, Iterator[pa.RecordBatch]]:
    """The column names, the text encoding (CSV) and the batches of a CSV or plain
    Parquet file, every CSV column as text.

    Raises
    ------
    UnreadableFile
        Missing, empty, not the format its suffix says; text not in the encoding (while
        iterating: says the row).
    """
    if not path.exists():
        raise UnreadableFile(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFile(f"{path}: not a Parquet file ({exc})") from None
        return list(parquet.schema_arrow.names), None, parquet.iter_batches(batch_size=PARQUET_ROWS)
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    if not sample.strip():
        raise UnreadableFile(f"{path}: the file is empty")
    if encoding is None:
        encoding = detect_encoding(sample, path)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UnreadableFile(f"unknown encoding {encoding!r}: use utf-8, gb18030, gbk, big5 ...") from None
    names = _csv_header(path, encoding)
    if len(set(names)) != len(names):
        raise UnreadableFile(f"{path}: the header names a column twice")
    arrow_encoding = "utf8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(encoding=arrow_encoding, block_size=block_bytes),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        raise _csv_failure(path, encoding, exc) from None
    return names, encoding, _guarded(reader, path, encoding)


def _guarded(reader, path: Path, encoding: str) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _csv_failure(path, encoding, exc) from None
        yield batch


def _csv_failure(path: Path, encoding: str, exc: Exception) -> UnreadableFile:
    """The error for a CSV the reader refused: where decoding fails, the row (found by
    decoding the file again, a block at a time); else the reader's message."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = lines = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as bad:
                return decode_failure(path, encoding, block, bad, offset=offset, lines_before=lines)
            offset += len(block)
            lines += block.count(b"\n")
    return UnreadableFile(f"{path}: cannot read the CSV: {exc}")


def find_column(names: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``names`` that is one of ``candidates`` (in their order, any case):
    where a table keeps its longitude (:data:`LON_NAMES`) or latitude (:data:`LAT_NAMES`)."""
    for name in candidates:
        for n in names:
            if n.lower() == name:
                return n
    return None


def _pick(names: list[str], given: str, candidates: tuple[str, ...], what: str, path: Path) -> str:
    if given in names:
        return given
    if given == candidates[0]:  # the default: try the usual spellings
        found = find_column(names, candidates)
        if found is not None:
            return found
    raise InvalidInput(f"{path}: no {what} column {given!r} (it has {', '.join(names[:12])}); use --{candidates[0]}")


def _numbers(values: pa.Array) -> np.ndarray:
    """Floats from a text (or number) column; NaN where a cell is not a number."""
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # blanks or words among the numbers
        return pd.to_numeric(pd.Series(values.to_numpy(zero_copy_only=False)).str.strip(),
                             errors="coerce").to_numpy(dtype=float)


class _Writer:
    """Writes batches to a CSV (in ``encoding``; UTF-8 with BOM by default) or Parquet."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self.csv = path.suffix.lower() == ".csv"
        self._out = None
        self._writer = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

    def write(self, table: pa.Table) -> None:
        if not self.csv:
            if self._writer is None:
                # Dictionary columns are written as Parquet's dictionary pages straight away;
                # without the Arrow schema stored, readers see plain text columns.
                self._writer = pq.ParquetWriter(self.path, table.schema, store_schema=False)
            self._writer.write_table(table)
            return
        for i, f in enumerate(table.schema):
            if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, neutralise_array(table.column(i)))
        options = pacsv.WriteOptions(include_header=self._out is None, quoting_style="needed")
        if self._out is None:
            self._out = open(self.path, "wb")
            if codecs.lookup(self.encoding).name == "utf-8-sig" or self.encoding.lower().replace("_", "-") in (
                    "utf-8-sig", "utf8-sig"):
                self._out.write(codecs.BOM_UTF8)
        if self._utf8:
            pacsv.write_csv(table, self._out, write_options=options)
            return
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, write_options=options)
        try:
            self._out.write(buf.getvalue().decode("utf-8").encode(self.encoding))
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{self.path}: {exc.object[exc.start:exc.end]!r} cannot be written in "
                               f"{self.encoding}; write UTF-8 (the default) instead") from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._out is not None:
            self._out.close()


def locate_stream(lookup, src: Path, dst: Path, *, crs: str | None, at=None, lon: str = "lon",
                  lat: str = "lat", encoding: str | None = None, out_encoding: str | None = None,
                  progress: Callable[[str], None] | None = None,
                  block_bytes: int = BLOCK_BYTES) -> LocateSummary:
    """Locate every row of a CSV or plain Parquet file into ``dst`` (CSV or Parquet), a
    batch at a time: the input's columns, then :data:`LOCATE_COLUMNS`.

    Parameters
    ----------
    lookup : gridgeo.lookup.Lookup
    crs : str
        The coordinate system of the columns (a CSV declares none).
    encoding : str, optional
        The input CSV's encoding (default: detected).
    out_encoding : str, optional
        The output CSV's: ``utf-8-sig`` (default: UTF-8 with BOM), ``input`` (the input's)
        or any encoding.
    progress : callable, optional
        Called after each batch with a message.

    Raises
    ------
    UnreadableFile, InvalidInput
        The input cannot be read, lacks the lon/lat columns, or text cannot be written in
        ``out_encoding``. Nothing is left at ``dst``.
    """
    names, found, batches = read_batches(src, encoding=encoding, block_bytes=block_bytes)
    lon_col = _pick(names, lon, LON_NAMES, "longitude", src)
    lat_col = _pick(names, lat, LAT_NAMES, "latitude", src)
    if out_encoding in (None, "", "utf-8-sig", "utf8-sig", "bom"):
        target = "utf-8-sig"
    elif out_encoding == "input":
        target = found or "utf-8-sig"
    else:
        target = out_encoding
    try:
        codecs.lookup(target)
    except LookupError:
        raise InvalidInput(f"unknown output encoding {out_encoding!r}: use utf-8-sig, utf-8, input, gb18030 ...") from None
    summary = LocateSummary(encoding=found, columns=(lon_col, lat_col))
    keep = [n for n in names if n not in LOCATE_COLUMNS]
    writer = _Writer(dst, target)
    try:
        for batch in batches:
            x = _numbers(batch.column(lon_col))
            y = _numbers(batch.column(lat_col))
            located = lookup.batch(x, y, crs=crs, at=at)
            answer = located.table(LOCATE_COLUMNS)
            table = pa.Table.from_batches([batch]).select(keep)
            for name in LOCATE_COLUMNS:  # directory columns stay dictionary-encoded
                table = table.append_column(name, answer.column(name))
            writer.write(table)
            summary.rows += len(located)
            summary.located += located.located
            summary.snapped += int(np.count_nonzero(located.snapped))
            summary.invalid += int(np.count_nonzero(located.invalid))
            summary.swapped += int(np.count_nonzero(located.swapped))
            summary.plan = located.plan_version
            summary.batches += 1
            if progress is not None:
                progress(f"located {summary.rows:,} rows")
        if summary.batches == 0:  # a header and no rows: the header and the columns
            none = lookup.batch(np.array([]), np.array([]), crs=crs, at=at).table(LOCATE_COLUMNS)
            writer.write(pa.table({**{n: pa.array([], pa.string()) for n in keep},
                                   **{n: none.column(n) for n in LOCATE_COLUMNS}}))
    except BaseException:
        writer.close()
        dst.unlink(missing_ok=True)
        raise
    writer.close()
    return summary
