"""The one exception hierarchy of gridgeo. ``api`` maps it to HTTP problem responses."""

from __future__ import annotations


class GridgeoError(Exception):
    """Base class of every error gridgeo raises on purpose. Abstract: raise a subclass, which
    says whose fault it is (the caller's input: 4xx; a missing service: 503; a bug: 500)."""

    #: HTTP status the API layer answers with; the core does not use it.
    status = 400
    #: A short machine-readable slug, used as the problem type.
    code = "gridgeo-error"
    #: The same message in Chinese, for the console's users (one per rule, where the rule
    #: raises it); None where the error is for programs only.
    zh: str | None = None


class InvalidInput(GridgeoError, ValueError):
    """An argument or a file that cannot be used as given (a band, a column, a layer kind)."""

    status = 422
    code = "invalid-input"


class UnreadableFile(InvalidInput):
    """A file that cannot be read as what its name says: missing, empty, another format,
    a broken workbook, text in an unknown encoding. The message names the file (and the
    row, where there is one: ``row``)."""

    code = "unreadable-file"

    def __init__(self, message: str, *, row: int | None = None):
        super().__init__(message)
        self.row = row


class InternalError(GridgeoError, RuntimeError):
    """An invariant that should always hold did not: a bug in gridgeo, not the caller's fault.
    The API answers 500 and logs it with its traceback."""

    status = 500
    code = "internal-error"


class ServiceUnavailable(GridgeoError):
    """A service gridgeo needs does not answer (a dask scheduler, a remote store)."""

    status = 503
    code = "service-unavailable"


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

    def __init__(self, message: str = "", *, zh: str | None = None):
        super().__init__(message)
        self.zh = zh


class IllegalTransition(GridgeoError):
    """An action not allowed in the current state.

    ``state`` is the current state, ``allowed`` maps the actions allowed in it to the
    roles that may take them.
    """

    status = 409
    code = "illegal-transition"

    def __init__(self, message: str = "", *, state: str | None = None, allowed: dict | None = None,
                 zh: str | None = None):
        super().__init__(message)
        self.zh = zh
        self.state = state
        self.allowed = allowed or {}


class Unauthenticated(GridgeoError):
    """No token, or one that is not valid, where a token is needed (HTTP 401)."""

    status = 401
    code = "unauthenticated"


class LoginThrottled(GridgeoError):
    """Too many wrong passwords lately for this account or from this client (HTTP 429);
    ``retry_after`` is the number of seconds until the next try is taken."""

    status = 429
    code = "login-throttled"

    def __init__(self, message: str = "", *, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = retry_after


class InvalidPassword(GridgeoError, ValueError):
    """A new password that does not meet the rules (length, not the user name, ...)."""

    status = 422
    code = "invalid-password"


class InvalidUser(GridgeoError, ValueError):
    """A user that cannot be created as asked (unknown role, missing scope, taken name).
    ``zh`` says the same in Chinese, for the console's administrator."""

    status = 422
    code = "invalid-user"

    def __init__(self, message: str, *, zh: str | None = None):
        super().__init__(message)
        self.zh = zh


class RoleNotAllowed(GridgeoError):
    """An action the caller's role may not take (``roles`` lists those that may)."""

    status = 403
    code = "role-not-allowed"

    def __init__(self, message: str = "", *, roles: list | None = None, zh: str | None = None):
        super().__init__(message)
        self.zh = zh
        self.roles = roles or []


class StaleVersion(GridgeoError):
    """An update based on an old version of a record (optimistic concurrency)."""

    status = 409
    code = "stale-version"

    def __init__(self, message: str = "", *, current: int | None = None, zh: str | None = None):
        super().__init__(message)
        self.zh = zh
        self.current = current


class InvalidEvent(GridgeoError, ValueError):
    """An event (or an action's data) that cannot be taken: unknown category, bad value.
    ``zh`` says the same in Chinese, for the console (one message per rule, as InvalidUser)."""

    status = 422
    code = "invalid-event"

    def __init__(self, message: str, *, zh: str | None = None):
        super().__init__(message)
        self.zh = zh


class VersionRequired(GridgeoError):
    """An update that does not say which version of the record it is based on."""

    status = 428
    code = "version-required"


class IdempotencyKeyReused(GridgeoError):
    """An Idempotency-Key sent again with a different request."""

    status = 422
    code = "idempotency-key-reused"


class BatchTooLarge(GridgeoError):
    """More items in one request than a batch takes (e.g. 100,000 lookup points)."""

    status = 413
    code = "batch-too-large"


class MalformedBody(GridgeoError, ValueError):
    """A request body of the wrong shape (not the JSON the endpoint takes)."""

    status = 422
    code = "malformed-body"


class JsonTooDeep(MalformedBody):
    """A JSON body nested deeper than the service takes (``GRIDGEO_MAX_JSON_DEPTH``)."""

    code = "json-too-deep"


class NulCharacter(MalformedBody):
    """Text holding a NUL character (``%00``, ``\\u0000``): no gridgeo text holds one."""

    code = "nul-character"


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


class InfeasibleBand(GridgeoError):
    """A workload band (or a number of grids) that some village cannot meet; says which and why.

    Attributes
    ----------
    reasons : list of str
        One line per village (or village part) that cannot be divided as asked.
    """

    status = 422
    code = "infeasible-band"

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        head = "; ".join(self.reasons[:5])
        more = f" (and {len(self.reasons) - 5} more)" if len(self.reasons) > 5 else ""
        super().__init__(f"the band cannot be met: {head}{more}")


class InvalidPlan(GridgeoError):
    """A plan (or a manual edit of one) that breaks a rule; nothing was written.

    Attributes
    ----------
    problems : list of str
        What is wrong, one line each.
    reasons : list of dict
        The same, for a program (the console words them for people): one dict per
        problem, ``rule`` (a slug, e.g. ``grid_in_pieces``; ``other`` when none was given)
        and the values the message names (``grid``, ``block``, ``village`` ...).
    """

    status = 422
    code = "invalid-plan"

    def __init__(self, problems: list[str], reasons: list[dict] | None = None):
        self.problems = list(problems)
        self.reasons = list(reasons) if reasons is not None else [{"rule": "other"} for _ in self.problems]
        head = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{head}{more}")


class StaffStranded(GridgeoError):
    """Publishing a plan would leave staff without a grid; nothing was written. Publish with
    ``allow_stranded`` (``--allow-stranded``) to go ahead anyway.

    Attributes
    ----------
    stranded : list of dict
        code, name, role, from_grid and why of each post left without a grid.
    """

    status = 409
    code = "staff-stranded"

    def __init__(self, stranded: list[dict]):
        self.stranded = list(stranded)
        shown = "; ".join(f"{s.get('name')} ({s.get('code')}, {s.get('role')}, grid {s.get('from_grid')})"
                          for s in self.stranded[:5])
        more = f" (and {len(self.stranded) - 5} more)" if len(self.stranded) > 5 else ""
        super().__init__(f"{len(self.stranded)} staff post(s) would be left without a grid: {shown}{more}; "
                         "publish with allow_stranded to go ahead")


class InvalidCalendar(InvalidInput):
    """The county's holiday file (GRIDGEO_HOLIDAYS_FILE) cannot be read as written."""

    code = "invalid-calendar"


class InvalidSignature(GridgeoError):
    """A signed callback whose signature, timestamp or message id does not check (HTTP 401)."""

    status = 401
    code = "invalid-signature"


class ReplayedMessage(GridgeoError):
    """A signed message whose id was taken already (HTTP 409)."""

    status = 409
    code = "replayed-message"


class UnsupportedPhoto(GridgeoError, ValueError):
    """An upload that does not decode as a JPEG, PNG, WebP or HEIC image, whatever its
    name or declared type says (HTTP 415)."""

    status = 415
    code = "unsupported-photo"


class PhotoTooLarge(GridgeoError):
    """A photo over the size or pixel limit (GRIDGEO_MAX_PHOTO_BYTES, GRIDGEO_MAX_PHOTO_PIXELS)."""

    status = 413
    code = "photo-too-large"


class InvalidTrack(GridgeoError, ValueError):
    """A patrol track that cannot be taken: not GPX or the app's JSON, no points, too
    few points left once cleaned, times missing."""

    status = 422
    code = "invalid-track"
