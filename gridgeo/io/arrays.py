"""numpy arrays and Python strings into Arrow, and Arrow numbers back, from buffers.

pyarrow converts numpy arrays and Python values through a layer that imports pandas the
first time it runs: the first ``pa.array(...)``, ``pa.scalar(...)``, ``Array.to_numpy()``,
or a Python value handed to a compute function (``pc.equal(a, 1.0)``). Importing pandas
costs about half a second on a quiet machine and over two on a loaded one, and a streamed
``gridgeo locate`` of a CSV needs it nowhere else. So the streamed path
(:mod:`gridgeo.io.streaming`, :meth:`gridgeo.lookup.Lookup.batch`,
:meth:`gridgeo.lookup.Batch.table`) builds its arrays with these, which give the same
arrays as pyarrow's converters; ``tests/cli/test_locate_start.py`` checks that the command
imports no pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["EMPTY", "FALSE", "NULL_INT32", "floats", "from_numpy", "strings"]


def _validity(valid: np.ndarray | None) -> pa.Buffer | None:
    if valid is None or valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def from_numpy(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A numeric or boolean numpy array as an Arrow array, null where ``mask`` is true
    (``pa.array(values, mask=mask)``)."""
    values = np.ascontiguousarray(values)
    valid = None if mask is None else ~np.asarray(mask, dtype=bool)
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), len(values), [_validity(valid), data])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [_validity(valid), pa.py_buffer(values)])


def strings(values: Sequence[str | None]) -> pa.Array:
    """Python strings (None: null) as an Arrow string array (``pa.array(values, pa.string())``).

    For short lists only (a plan's directory, a few constants): it encodes each value."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("more than 2 GB of text in one string array")
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded), [
        _validity(valid), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))])


def floats(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A float64 Arrow column as a writable numpy array, NaN where null
    (``values.to_numpy(zero_copy_only=False)``)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    if not n:
        return np.empty(0, dtype=np.float64)
    validity, data = values.buffers()[:2]
    out = np.frombuffer(data, dtype=np.float64, count=n, offset=values.offset * 8).copy()
    if values.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        out[~bits[values.offset:values.offset + n].astype(bool)] = np.nan
    return out


#: The Arrow scalars the streamed path hands to compute functions (a Python value would
#: be converted, and import pandas): the empty string, false, and a null int32.
EMPTY = strings([""])[0]
FALSE = from_numpy(np.zeros(1, dtype=bool))[0]
NULL_INT32 = pa.nulls(1, pa.int32())[0]
