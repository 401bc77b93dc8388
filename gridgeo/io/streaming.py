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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gridgeo.errors import InvalidInput, UnreadableFile
from gridgeo.io.arrays import FALSE, floats, strings
from gridgeo.io.text import SAMPLE_BYTES, decode_failure, detect_encoding, neutralise_array

__all__ = ["BLOCK_BYTES", "LAT_NAMES", "LOCATE_COLUMNS", "LON_NAMES", "LocateSummary", "batches_in", "find_column", "is_geoparquet",
           "locate_stream", "read_batches", "streams"]

#: Bytes of CSV read at a time (a batch of about 14,000 short rows). The block, the batch
#: made of it, located and written, are what a streamed locate holds beyond its start-up
#: (about 15 MB at 1 MB); larger blocks are no faster.
BLOCK_BYTES = 1 << 20
#: Rows of Parquet read at a time, at most: fewer where rows are long, so that a batch is
#: about BLOCK_BYTES of data. Parquet is read a page at a time (not a column chunk, nor a
#: row group ahead), so a file of one huge row group streams as well as one of many.
PARQUET_ROWS = 16_384
PARQUET_BUFFER = 1 << 20
#: Rows (or bytes) of Parquet output gathered before a row group is written.
ROW_GROUP_ROWS = 131_072
ROW_GROUP_BYTES = 4 << 20
#: The columns ``gridgeo locate`` adds to each row, in order.
LOCATE_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name", "snapped", "distance_m",
                  "outside", "invalid", "swapped")
#: A number as a cell holds it (blanks around it trimmed); any other cell is no number.
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
NULL_STRING = pa.nulls(1, pa.string())[0]
#: Column names tried for longitude and latitude when the default ``lon``/``lat`` are absent.
LON_NAMES = ("lon", "lng", "longitude", "经度", "x")
LAT_NAMES = ("lat", "latitude", "纬度", "y")


def is_geoparquet(path: str | Path) -> bool:
    """Whether a Parquet file carries GeoParquet metadata (else it is a plain table).

    Raises
    ------
    UnreadableFile
        Not a Parquet file.
    """
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"{path}: not a Parquet file ({exc})") from None
    return b"geo" in meta


def _parquet_rows(meta: pq.FileMetaData) -> int:
    """Rows of a Parquet file per batch: :data:`PARQUET_ROWS`, or fewer so that a batch
    holds about :data:`BLOCK_BYTES` of data (from the row groups' uncompressed sizes)."""
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    per_row = size / meta.num_rows if meta.num_rows else 1.0
    return int(min(PARQUET_ROWS, max(256, BLOCK_BYTES // max(per_row, 1.0))))


def batches_in(src: Path) -> int:
    """About how many batches :func:`read_batches` makes of ``src`` (for a progress bar)."""
    if src.suffix.lower() == ".parquet":
        try:
            meta = pq.read_metadata(src)
        except (pa.ArrowInvalid, OSError):
            return 1
        return max(1, -(-meta.num_rows // _parquet_rows(meta)))
    return max(1, -(-src.stat().st_size // BLOCK_BYTES))


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
            parquet = pq.ParquetFile(path, buffer_size=PARQUET_BUFFER, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFile(f"{path}: not a Parquet file ({exc})") from None
        batches = parquet.iter_batches(batch_size=_parquet_rows(parquet.metadata), use_threads=False)
        return list(parquet.schema_arrow.names), None, batches
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
    return names, encoding, _csv_batches(path, names, encoding, block_bytes)


def _csv_batches(path: Path, names: list[str], encoding: str, block_bytes: int) -> Iterator[pa.RecordBatch]:
    """The rows of a CSV, ``block_bytes`` of the file at a time, each block cut after its
    last line break (the rest goes with the next) and parsed by Arrow as UTF-8.

    Not Arrow's streaming reader: that one reads up to 32 blocks ahead of the batch in
    hand, so its memory grew with the file up to 32 blocks. Here one block (and the batch
    made of it) is all that is held. Text in another encoding is decoded a block at a
    time (an incremental decoder: a character cut by the block's end is kept for the
    next). A quoted value may hold line breaks (a cell with Alt+Enter in Excel): a block
    is cut only at a line break after an even number of quotes (:func:`_record_end`).
    """
    utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    decoder = None if utf8 else codecs.getincrementaldecoder(encoding)()
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    carry, first, lines = b"", True, 0
    parse = pacsv.ParseOptions(newlines_in_values=True)
    with open(path, "rb") as f:
        while True:
            raw = f.read(block_bytes)
            end = not raw
            if decoder is not None:
                try:
                    raw = decoder.decode(raw, final=end).encode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _csv_failure(path, encoding, exc) from None
            data = carry + raw if carry else raw
            if end:
                carry = b""
            else:
                cut = _record_end(data)
                if not cut:  # a record longer than a block: read on
                    if len(data) > MAX_RECORD_BYTES:
                        raise UnreadableFile(
                            f"{path}: line {lines + 1}: a record of over {MAX_RECORD_BYTES >> 20} MB; "
                            "a quote (\") opened there is probably never closed")
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
                lines += data.count(b"\n")
            if first:
                data = data.removeprefix(codecs.BOM_UTF8)
            if data.strip():
                options = pacsv.ReadOptions(column_names=names, skip_rows=1 if first else 0,
                                            block_size=len(data) + 1, use_threads=False)
                try:
                    table = pacsv.read_csv(pa.py_buffer(data), read_options=options, parse_options=parse,
                                           convert_options=convert)
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise _csv_failure(path, encoding, exc) from None
                del data
                yield from table.combine_chunks().to_batches()
            first = False
            if end:
                return


#: A CSV record (a row, with the line breaks of its quoted values) longer than this is taken
#: for a quote never closed: the file is refused rather than read into memory whole.
MAX_RECORD_BYTES = 16 << 20


def _record_end(data: bytes) -> int:
    """Where the last whole record of ``data`` (which starts at a record) ends: after its
    last line break outside quotes, i.e. preceded by an even number of ``"`` (an escaped
    quote, ``""``, counts two); 0 if there is none. The quotes are counted by
    ``bytes.count`` (memchr speed) up to the last break, then back over the breaks inside
    a quoted value, if the block ends in one."""
    cut = data.rfind(b"\n")
    if cut < 0 or b'"' not in data:
        return cut + 1
    quotes = data.count(b'"', 0, cut)
    while quotes % 2:  # this break is inside a quoted value: try the one before
        before = data.rfind(b"\n", 0, cut)
        if before < 0:
            return 0
        quotes -= data.count(b'"', before, cut)
        cut = before
    return cut + 1


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


def _numbers(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Floats from a text (or number) column; NaN where a cell is not a number."""
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        return floats(pc.cast(values, pa.float64()))
    try:
        return floats(pc.cast(values, pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # blanks or words among the numbers
        values = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        number = pc.match_substring_regex(values, _NUMBER).fill_null(FALSE)
        return floats(pc.cast(pc.if_else(number, values, NULL_STRING), pa.float64()))


def _row_bytes(table: pa.Table) -> int:
    """The bytes of ``table``'s rows: a dictionary column's indices, not its dictionary
    (the plan's directory, the same in every batch)."""
    return sum(sum(chunk.indices.nbytes for chunk in column.chunks) if pa.types.is_dictionary(column.type)
               else column.nbytes for column in table.columns)


class _Writer:
    """Writes batches to a CSV (in ``encoding``; UTF-8 with BOM by default) or Parquet."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self.csv = path.suffix.lower() == ".csv"
        self._out = None
        self._writer = None
        self._pending: list[pa.Table] = []  # Parquet: rows gathered for the next row group
        path.parent.mkdir(parents=True, exist_ok=True)
        self._utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

    def write(self, table: pa.Table) -> None:
        if not self.csv:
            if self._writer is None:
                # Dictionary columns are written as Parquet's dictionary pages straight away;
                # without the Arrow schema stored, readers see plain text columns.
                self._writer = pq.ParquetWriter(self.path, table.schema, store_schema=False)
            self._pending.append(table)
            if (sum(t.num_rows for t in self._pending) >= ROW_GROUP_ROWS
                    or sum(map(_row_bytes, self._pending)) >= ROW_GROUP_BYTES):
                self._flush()
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

    def _flush(self) -> None:
        """The gathered rows as one row group (not one per block: readers of the file pay
        for many small row groups)."""
        if self._pending:
            table = pa.concat_tables(self._pending).unify_dictionaries()
            self._pending = []
            self._writer.write_table(table, row_group_size=table.num_rows)

    def close(self, *, complete: bool = True) -> None:
        if self._writer is not None:
            if complete:
                self._flush()
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
            empty = lookup.batch(np.array([]), np.array([]), crs=crs, at=at)
            summary.plan = empty.plan_version
            none = empty.table(LOCATE_COLUMNS)
            writer.write(pa.table({**{n: strings([]) for n in keep},
                                   **{n: none.column(n) for n in LOCATE_COLUMNS}}))
    except BaseException:
        writer.close(complete=False)
        dst.unlink(missing_ok=True)
        raise
    writer.close()
    return summary
