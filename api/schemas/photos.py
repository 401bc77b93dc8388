"""Photos of events (附件)."""

from __future__ import annotations

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema
from gridgeo.api.schemas.events import Position


class Photo(Schema):
    id: int
    stage: str = Field(description="before (处置前) or after (处置后)")
    stage_label: str
    url: str = Field(description="The photo (JPEG, no metadata), read under the event's scope.")
    thumbnail_url: str
    width: int
    height: int
    size: int = Field(description="Bytes of the stored JPEG.")
    source_format: str = Field(description="What was uploaded: jpeg, png, webp or heic.")
    digest: str = Field(description="SHA-256 of the stored JPEG (its content address).")
    taken_at: str | None = Field(None, description=TIME)
    gps: Position | None = Field(None, description="The EXIF GPS of the upload, when it had one.")
    added_at: str = Field(description=TIME)
    added_by: str
    from_event: str | None = Field(None, description="The event it came from, when merged into this one.")


class PhotoList(Schema):
    code: str
    items: list[Photo]


class PhotoAdded(PhotoList):
    photo: Photo
