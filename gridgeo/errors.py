"""The one exception hierarchy of gridgeo. ``api`` maps it to HTTP problem responses."""

from __future__ import annotations


class GridgeoError(Exception):
    """Base class of every error gridgeo raises on purpose."""

    #: HTTP status the API layer answers with; the core does not use it.
    status = 400
    #: A short machine-readable slug, used as the problem type.
    code = "gridgeo-error"


class UnknownCRS(GridgeoError, ValueError):
    """A coordinate system name or code gridgeo does not know."""

    status = 422
    code = "unknown-crs"


class InvalidCoordinates(GridgeoError, ValueError):
    """NaN, infinite, out-of-range or swapped coordinates."""

    status = 422
    code = "invalid-coordinates"


class InvalidGeometry(GridgeoError, ValueError):
    """A geometry that is not valid (self-intersection, wrong type, empty ...)."""

    status = 422
    code = "invalid-geometry"


class OutsideJurisdiction(GridgeoError):
    """A point or area outside every grid of the plan in force."""

    status = 404
    code = "outside-jurisdiction"


class NotFound(GridgeoError, LookupError):
    """A record asked for by key does not exist."""

    status = 404
    code = "not-found"


class IllegalTransition(GridgeoError):
    """An action not allowed in the current state."""

    status = 409
    code = "illegal-transition"


class StoreError(GridgeoError):
    """The database is missing, not migrated, or refused an operation."""

    status = 503
    code = "store-error"


class ImportFailed(GridgeoError):
    """An import whose validation found errors; nothing was written.

    Attributes
    ----------
    report : gridgeo.validate.Report
        Every problem found, each with file, row, field and message.
    """

    status = 422
    code = "import-failed"

    def __init__(self, report):
        self.report = report
        errors = report.errors
        head = "; ".join(str(p) for p in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} error(s), nothing was written: {head}{more}")
