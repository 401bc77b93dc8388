"""Photos of events (附件): decoding (:mod:`.images`), content-addressed storage
(:mod:`.storage`) and the photos of an event under its scope (:mod:`.service`)."""

from gridgeo.photos.images import Decoded, decode_photo
from gridgeo.photos.service import (PHOTO_WRITERS, STAGE_STATES, STAGES, add_photos, delete_photo,
                                    ingest, list_photos, read_photo)

__all__ = ["PHOTO_WRITERS", "STAGES", "STAGE_STATES", "Decoded", "add_photos", "decode_photo",
           "delete_photo", "ingest", "list_photos", "read_photo"]
