"""Content-addressed storage of photos: a directory, or an S3-compatible object store.

A blob's name is the SHA-256 of its bytes (``ab/abcdef....jpg``): storing the same photo
twice stores it once, a name never points at other bytes, and several workers or
machines writing the same photo at once cannot conflict. ``GRIDGEO_PHOTO_STORE`` is a
directory (the default, ``gridgeo-photos``) or an fsspec URL (``s3://bucket/prefix``,
through s3fs; ``GRIDGEO_PHOTO_STORE_OPTIONS`` holds its options as JSON, such as the
``endpoint_url`` of a MinIO or other S3-compatible server).
"""

from __future__ import annotations

import json
import os
import threading
import uuid

import fsspec

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput, NotFound, ServiceUnavailable

__all__ = ["PhotoStorage", "get_storage"]


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"the photo store does not answer ({type(exc).__name__}); retry later")


def _remote_errors() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - s3fs is a dependency
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


class PhotoStorage:
    """Blobs by digest under ``url`` (a path or an fsspec URL)."""

    def __init__(self, url: str, options: dict | None = None):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **(options or {}))
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.local:
            os.makedirs(self.root, exist_ok=True)
        self._errors = _remote_errors()

    def path(self, digest: str) -> str:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise NotFound("no such photo")
        return f"{self.root.rstrip('/')}/{digest[:2]}/{digest}.jpg"

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest`` unless it is there (idempotent)."""
        path = self.path(digest)
        try:
            if self.fs.exists(path):
                return
            if self.local:
                # Whole or not at all: a crash mid-write leaves a temporary file, never a
                # truncated photo under a content address.
                folder = os.path.dirname(path)
                os.makedirs(folder, exist_ok=True)
                tmp = os.path.join(folder, f".{digest}.{uuid.uuid4().hex}.tmp")
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, data)  # an object PUT is atomic
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def get(self, digest: str) -> bytes:
        path = self.path(digest)
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFound("the photo's file is missing from the photo store") from None
        except self._errors as exc:
            raise _unavailable(exc) from exc


_STORAGES: dict[tuple[str, str], PhotoStorage] = {}
_LOCK = threading.Lock()


def get_storage() -> PhotoStorage:
    """The photo store of the settings (one per URL and options, per process)."""
    settings = get_settings()
    raw = settings.photo_store_options.get_secret_value() if settings.photo_store_options else ""
    key = (settings.photo_store, raw)
    with _LOCK:
        found = _STORAGES.get(key)
        if found is None:
            try:
                options = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise InvalidInput("GRIDGEO_PHOTO_STORE_OPTIONS is not JSON") from None
            found = _STORAGES[key] = PhotoStorage(settings.photo_store, options)
    return found
