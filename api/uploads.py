"""Files in multipart requests: read with their size checked (the body guard has
already bounded the whole body by the route's limit, GRIDGEO_MAX_PHOTO_BYTES and the like)."""

from __future__ import annotations

from starlette.datastructures import UploadFile

from gridgeo.config import get_settings
from gridgeo.errors import MalformedBody, PhotoTooLarge


async def read_upload(part, *, limit: int | None = None, what: str = "photo") -> bytes:
    """The bytes of one file part; 413 over ``limit`` (default GRIDGEO_MAX_PHOTO_BYTES),
    checked from the spooled size before the bytes are read into memory."""
    if not isinstance(part, UploadFile):
        raise MalformedBody(f"the {what} must be sent as a file part (multipart/form-data with a filename)")
    limit = get_settings().max_photo_bytes if limit is None else limit
    if part.size is not None and part.size > limit:
        raise PhotoTooLarge(f"{what} {part.filename!r} has {part.size:,} bytes; the limit is {limit:,}")
    data = await part.read(limit + 1)
    if len(data) > limit:
        raise PhotoTooLarge(f"{what} {part.filename!r} has more than {limit:,} bytes")
    return data
