"""What a photo is, decided by decoding it: JPEG, PNG, WebP or HEIC, whatever its name or
declared type says; re-encoded as JPEG with no metadata, and a thumbnail made.

What the event needs of the metadata is read first and kept in the database, not in
the file: the EXIF GPS position (WGS84, as phones write it) and the time taken. The
stored image carries none of it (no EXIF, no XMP, no ICC beyond sRGB conversion), so a
photo served to a reader tells nothing the event does not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from gridgeo.config import get_settings
from gridgeo.errors import PhotoTooLarge, UnsupportedPhoto
from gridgeo.store.types import in_time_range
from gridgeo.timezone import CHINA

pillow_heif.register_heif_opener()

__all__ = ["ACCEPTED_FORMATS", "Decoded", "decode_photo", "exif_gps"]

#: Pillow format names taken (HEIF: the HEIC photos of iPhones and many Android phones).
ACCEPTED_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Decoded:
    """A photo decoded and re-encoded: the stored JPEG, its thumbnail, and what the event
    keeps of the metadata."""

    data: bytes
    thumbnail: bytes
    digest: str
    thumb_digest: str
    source_format: str
    width: int
    height: int
    gps: tuple[float, float] | None
    taken_at: dt.datetime | None


def _ratio(value) -> float:
    if isinstance(value, tuple):  # (numerator, denominator) in old EXIF readers
        return value[0] / value[1]
    return float(value)


def exif_gps(gps: dict) -> tuple[float, float] | None:
    """(lon, lat) in degrees from an EXIF GPS IFD; None when absent or not a position
    (missing parts, out of range, exactly 0/0: a phone with no fix)."""
    try:
        lat = sum(_ratio(v) / 60 ** i for i, v in enumerate(gps[2]))
        lon = sum(_ratio(v) / 60 ** i for i, v in enumerate(gps[4]))
        lat_ref = str(gps.get(1, "N")).strip().upper()[:1]
        lon_ref = str(gps.get(3, "E")).strip().upper()[:1]
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90 or abs(lon) > 180 or (lon == 0 and lat == 0):
        return None
    return lon, lat


def _taken_at(exif) -> dt.datetime | None:
    """DateTimeOriginal (local time of the camera: taken as China time)."""
    try:
        text = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
        if not text:
            return None
        when = dt.datetime.strptime(str(text).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").replace(tzinfo=CHINA)
    except (ValueError, TypeError):
        return None
    return when if in_time_range(when) else None  # a camera clock never set says 0001 or 9999


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def decode_photo(data: bytes) -> Decoded:
    """Decode ``data`` as an image, or refuse it.

    Raises
    ------
    UnsupportedPhoto
        Not an image, or an image of another format (GIF, TIFF, SVG ...), or one that
        does not decode whole (truncated, corrupt).
    PhotoTooLarge
        Over GRIDGEO_MAX_PHOTO_BYTES bytes or GRIDGEO_MAX_PHOTO_PIXELS pixels (checked
        from the header, before the pixels are decoded).
    """
    settings = get_settings()
    if len(data) > settings.max_photo_bytes:
        raise PhotoTooLarge(f"photo of {len(data):,} bytes; the limit is {settings.max_photo_bytes:,} "
                            "(GRIDGEO_MAX_PHOTO_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
            fmt = image.format
            width, height = image.size
            if width * height > settings.max_photo_pixels:
                raise PhotoTooLarge(f"photo of {width} × {height} pixels; the limit is "
                                    f"{settings.max_photo_pixels:,} pixels (GRIDGEO_MAX_PHOTO_PIXELS)")
            image.load()
            exif = image.getexif()
            gps = exif_gps(dict(exif.get_ifd(_GPS_IFD)))
            taken = _taken_at(exif)
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                image = flat
            elif image.mode != "RGB":
                image = image.convert("RGB")
    except PhotoTooLarge:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise UnsupportedPhoto("the upload is not a JPEG, PNG, WebP or HEIC image "
                                   "(decided by decoding it, not by its name or type)") from None
        raise PhotoTooLarge(f"the photo decodes to too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnsupportedPhoto(f"the image does not decode ({type(exc).__name__}: {str(exc)[:120]}); "
                               "is the file truncated or corrupt?") from None
    # Re-encode: no metadata survives; the longest side capped.
    image.thumbnail((settings.photo_max_side, settings.photo_max_side), Image.Resampling.LANCZOS)
    body = _jpeg(image)
    thumb = image.copy()
    thumb.thumbnail((settings.thumbnail_side, settings.thumbnail_side), Image.Resampling.LANCZOS)
    small = _jpeg(thumb)
    return Decoded(body, small, hashlib.sha256(body).hexdigest(), hashlib.sha256(small).hexdigest(),
                   ACCEPTED_FORMATS[fmt], image.width, image.height, gps, taken)
