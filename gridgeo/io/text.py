"""Text files and text cells, read without the geo stack: a CSV's text encoding (the
one rule every importer, ``gridgeo locate`` and the batch lookup follow), where decoding
failed, and the rule that quotes a cell a spreadsheet would run, for Arrow columns.

Imported by :mod:`gridgeo.io.reading` and :mod:`gridgeo.io.exporting` (which give these
names too) and by :mod:`gridgeo.io.streaming`, which ``gridgeo locate`` of a CSV loads
without pandas or geopandas.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gridgeo.errors import UnreadableFile
from gridgeo.io.arrays import EMPTY, FALSE, strings

__all__ = ["FORMULA_STARTS", "SAMPLE_BYTES", "decode_failure", "detect_encoding", "neutralise_array"]

#: How much of a text file :func:`detect_encoding` looks at.
SAMPLE_BYTES = 1 << 20

#: What charset-normalizer may name, as the codec read with: the GB family is read as
#: GB18030 (a superset of GB2312 and GBK); anything else is no office's CSV.
_KNOWN_ENCODINGS = {"utf_8": "utf-8", "ascii": "utf-8", "gb18030": "gb18030", "gbk": "gb18030",
                    "gb2312": "gb18030", "hz": None, "big5": "big5", "big5hkscs": "big5hkscs"}


def detect_encoding(sample: bytes, path: str | Path = "", *, hint: str | None = None) -> str:
    """The encoding of a CSV from its first bytes: a BOM says it; else strict UTF-8; else
    strict GB18030 (which GBK and GB2312 are part of); else what charset-normalizer finds
    among the encodings offices use (Big5).

    Raises
    ------
    UnreadableFile
        Neither: the message names the file and the row where UTF-8 decoding failed.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3 and len(sample) >= SAMPLE_BYTES:
            return "utf-8"  # the sample cut a character in two
        utf8_failure = exc
    try:  # what Excel and WPS save on a mainland desktop (GBK is a subset)
        sample.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4 and len(sample) >= SAMPLE_BYTES:
            return "gb18030"
    from charset_normalizer import from_bytes

    # Else charset-normalizer, among the encodings offices use only: on a short file it
    # would otherwise pick a single-byte Cyrillic or Thai page that decodes anything.
    best = from_bytes(sample, cp_isolation=["utf_8", "gb18030", "big5", "big5hkscs"]).best()
    found = _KNOWN_ENCODINGS.get(best.encoding) if best is not None else None
    if found is None:
        raise decode_failure(path, "utf-8", sample, utf8_failure,
                             hint=hint or "it is neither UTF-8 nor GB18030/GBK: save it as UTF-8 or pass --encoding")
    return found


def decode_failure(path, encoding: str, data: bytes, exc: UnicodeDecodeError, *, hint: str | None = None,
                   offset: int = 0, lines_before: int = 0) -> UnreadableFile:
    """The error for text that is not ``encoding``: the file, the row (the header is
    line 1, the first data row is row 1) and the byte where decoding failed. ``data``
    starts at byte ``offset`` of the file, after ``lines_before`` line breaks."""
    line = lines_before + data[:exc.start].count(b"\n") + 1
    row = line - 1
    where = f"row {row} (line {line}, byte {offset + exc.start:,})" if row >= 1 else \
        f"the header (byte {offset + exc.start:,})"
    return UnreadableFile(f"{path}: not {encoding} text at {where}: "
                          f"{hint or 'pass --encoding (utf-8, gb18030, ...)'}", row=row if row >= 1 else None)


#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV
#: injection"): such a cell is written with a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: A plain number written as text (``-12.5``, ``+8613800000000``, ``-1e3``): a spreadsheet
#: reads it as that number, never as a formula, so it is written as it is.
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def neutralise_array(values):
    """:func:`neutralise_formulas` for one Arrow text column (vectorised in Arrow): the
    same rule, for the writers that stream Arrow tables (``gridgeo locate``, the batch
    lookup's CSV)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):  # the dictionary's values, once each
        return pa.DictionaryArray.from_arrays(values.indices, neutralise_array(values.dictionary))
    first = pc.utf8_slice_codeunits(values, 0, 1)
    hit = pc.is_in(first, value_set=strings(FORMULA_STARTS)).fill_null(FALSE)
    if not pc.any(hit).as_py():  # the common case: one pass over the first characters
        return values
    hit = pc.and_(hit, pc.invert(pc.match_substring_regex(values, f"^{_PLAIN_NUMBER}$").fill_null(FALSE)))
    return pc.if_else(hit, pc.binary_join_element_wise(_QUOTE, values, EMPTY), values)


_QUOTE = strings(["'"])[0]
