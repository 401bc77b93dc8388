"""The single settings object, read from the environment (``GRIDGEO_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_REPO = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Settings of gridgeo; each field can be set as ``GRIDGEO_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRIDGEO_", env_file=None, extra="ignore")

    #: SQLAlchemy URL. SQLite (one file, WAL) by default; for production use
    #: ``postgresql+psycopg://user@host:5432/db`` with PostGIS installed.
    database_url: str = "sqlite:///gridgeo.db"
    #: Where the sample data set lives (``data/sample`` of the source tree).
    sample_dir: Path = _REPO / "data" / "sample"
    #: Tolerance, in square metres, under which an overlap or gap is numerical noise.
    area_tolerance_m2: float = 1.0
    #: Distance, in metres, within which a point outside every grid is snapped to one.
    snap_tolerance_m: float = 50.0
    #: Staffing rule of the planner: one grid worker per this many households (rounded up).
    households_per_worker: int = 200
    #: Assessment rankings rank a unit only with at least this many events in the
    #: indicator's denominator (received, accepted, due or rated), so that a unit with
    #: one lucky event cannot top the table.
    ranking_min_volume: int = 20
    #: Households band of a grid, ``FLOOR:CEILING`` (the planner's default band): the
    #: workload tables flag grids outside it. A plan made by the planner uses its own.
    grid_band: Annotated[tuple[float, float], NoDecode] = (300.0, 500.0)  # plan.bands.DEFAULT_BAND
    #: Seconds to wait for a dask scheduler named by address (``tcp://host:port``) before
    #: the work is refused as a missing service (503).
    dask_connect_timeout: float = 10.0
    #: Where built indexes (locators) are saved so that new workers load them.
    cache_dir: Path = Path(".gridgeo-cache")
    #: Echo SQL statements (debugging).
    echo_sql: bool = False
    #: Largest request body the API accepts, in bytes (413 above it). 20 MB holds a
    #: 100,000-point lookup with room to spare.
    max_body_bytes: int = 20_000_000
    #: Deepest JSON nesting the API accepts in a request body (422 above it).
    max_json_depth: int = 64
    #: Rate of the public lookup endpoints per client IP and process: ``N/s``, ``N/min``
    #: or ``N/h``; ``0`` disables the limit.
    lookup_rate: str = "100/s"
    #: Burst of the lookup rate limit: requests a client may make at once.
    lookup_burst: int = 200
    #: Anonymous event reports (POST /v1/events with no token) per client IP and process.
    public_intake_rate: str = "30/min"
    #: Anonymous event reports a client may send at once.
    public_intake_burst: int = 60
    #: One JSON log line per request on the ``gridgeo.access`` logger.
    request_log: bool = True
    #: Largest request body of every endpoint but the batch lookup, in bytes (413 above
    #: it): nothing else takes a big body, and parsing one would hold the event loop.
    max_small_body_bytes: int = 1_000_000
    #: Seconds a client has to send a request body (408 and the connection closed after):
    #: a client trickling its body a byte at a time cannot hold the server.
    body_timeout: float = 60.0
    #: Seconds an idle keep-alive connection is kept open (uvicorn's timeout_keep_alive).
    keep_alive_timeout: int = 5
    #: Seconds a worker process (``gridgeo serve --workers N``) may take to answer the
    #: supervisor's health check before it is killed and replaced. uvicorn's 5 s is less
    #: than a worker needs to import gridgeo on a busy 2-core machine, where it killed every
    #: worker before it started, over and over.
    worker_healthcheck_timeout: int = 60
    #: Seconds a client has to send a request's headers (the connection is closed after).
    header_timeout: float = 10.0
    #: Threads that run CPU-heavy work at once (batch lookups, map pages, large JSON
    #: checks), apart from the pool that answers the other routes.
    heavy_threads: int = 2
    #: Processes that run work dominated by long GIL-holding C calls (batch lookups,
    #: scans of multi-megabyte bodies), which in a thread would stall the event loop.
    heavy_processes: int = 1
    #: The reporter's status page (GET /v1/events/{code}/status) per client IP and process:
    #: against guessing tokens. ``N/s``, ``N/min`` or ``N/h``; ``0`` disables the limit.
    reporter_status_rate: str = "30/min"
    #: Status requests a client may send at once.
    reporter_status_burst: int = 20
    #: Secret that signs map tickets (POST /v1/maps/tickets). ``gridgeo serve`` makes
    #: one per start when unset (shared by its workers); set it when several servers
    #: answer behind one address.
    ticket_secret: SecretStr | None = None
    #: Seconds a map ticket stays valid.
    ticket_seconds: int = 300

    #: Console sessions end after this many minutes without a request (idle time-out) ...
    session_idle_minutes: float = 30.0
    #: ... and this many hours after the log-in, whatever happens (absolute time-out).
    session_hours: float = 12.0
    #: Wrong passwords allowed per account within ``login_window_minutes``; further tries
    #: are refused (429) until the oldest failure leaves the window.
    login_failures_per_account: int = 5
    #: Wrong passwords allowed per client address within the window (many accounts tried).
    login_failures_per_client: int = 20
    #: The window of the two limits above, in minutes.
    login_window_minutes: float = 15.0
    #: argon2id costs of new password hashes (gridgeo.sessions): memory in KiB, passes and
    #: lanes. The defaults are pwdlib's (RFC 9106); OWASP's minimum is 19456 KiB and 2 passes.
    password_memory_kib: int = Field(65536, ge=19456)
    password_time_cost: int = Field(3, ge=2)
    password_parallelism: int = Field(4, ge=1)
    #: Send the console's cookies with ``Secure`` (only over HTTPS). Set it when the
    #: service is behind TLS, as it should be beyond a closed intranet.
    secure_cookies: bool = False
    #: Where photos are kept, content-addressed: a directory (default) or an fsspec URL of
    #: an S3-compatible store, e.g. ``s3://bucket/photos``, for several workers or machines.
    photo_store: str = "gridgeo-photos"
    #: fsspec options of the photo store as JSON, e.g. ``{"endpoint_url": "http://minio:9000",
    #: "key": "...", "secret": "..."}`` (s3fs also reads the usual AWS_* variables).
    photo_store_options: SecretStr | None = None
    #: Largest photo, in bytes (413 above it).
    max_photo_bytes: int = 15_000_000
    #: Largest photo, in pixels (413 above it: a small file may decode to a huge image).
    max_photo_pixels: int = 60_000_000
    #: Photos in one report (multipart POST /v1/events).
    max_photos_per_report: int = 6
    #: Largest patrol track upload (GPX or JSON), in bytes: a day at 1 Hz is about 10 MB of GPX.
    max_track_bytes: int = 50_000_000
    #: Longest side of a stored photo and of its thumbnail, in pixels.
    photo_max_side: int = 2560
    thumbnail_side: int = 320
    #: A patrol point reached faster than this from the previous one is a GPS jump, dropped.
    patrol_max_speed_mps: float = 40.0
    #: Households and road length within this distance of a track count as covered.
    patrol_coverage_m: float = 50.0
    #: A check-in (签到) is verified inside its grid or within this distance of it.
    checkin_distance_m: float = 100.0

    #: The county's holiday file: CSV ``date,kind,note`` (kind ``holiday`` or ``workday``),
    #: over the official calendar of ``chinesecalendar`` (gridgeo.events.deadlines).
    holidays_file: Path | None = None
    #: Early warning (临期预警): an open event is yellow once it has used this share of its
    #: time (working time for a deadline in working days) ...
    warning_share: float = 0.75
    #: ... or has fewer than this many hours (working hours) left; 0: the share alone.
    warning_hours: float = 0.0
    #: The outbox worker (gridgeo.notify): seconds between looks for work when idle.
    outbox_poll_seconds: float = 1.0
    #: Seconds before the first retry of a failed delivery; doubled each time (with up to
    #: 25 % jitter), capped at ``outbox_backoff_max``.
    outbox_backoff_seconds: float = 10.0
    outbox_backoff_max: float = 3600.0
    #: Attempts after which a delivery is dead (dead-letter: listed, retried by hand).
    outbox_max_attempts: int = 8
    #: Seconds a receiver has to answer one delivery.
    outbox_timeout: float = 10.0
    #: Run the outbox worker (and the deadline sweeper) inside ``gridgeo serve``; off, run
    #: ``gridgeo notify run`` as a process of its own.
    outbox_worker: bool = True
    #: Fill the tile cache at start with the grid tiles a province map opens on (only above
    #: GRIDGEO_MAP_TILED_GRIDS grids; gridgeo.tiles.warm), in a background thread.
    tiles_warm: bool = True
    #: Seconds between sweeps for events turning yellow or red.
    sweep_seconds: float = 60.0
    #: The hand-off (上报): the county platform / 12345 endpoint escalations are sent to,
    #: and the secret (``whsec_`` + base64) both sides sign with (Standard Webhooks).
    handoff_url: str | None = None
    handoff_secret: SecretStr | None = None
    #: Public address of this service, for photo links in hand-offs.
    public_url: str = "http://127.0.0.1:8000"
    #: Where webhooks and people's channels may point (the server fetches those URLs):
    #: loopback addresses (127.0.0.0/8, ::1, 0.0.0.0) only when this is true (tests, a
    #: receiver on the same machine) ...
    notify_allow_loopback: bool = False
    #: ... and link-local / cloud metadata addresses (169.254.0.0/16, fe80::/10,
    #: fd00:ec2::254, 100.100.100.200) only when this is true.
    notify_allow_link_local: bool = False
    #: Feedback to the reporter (双反馈): the SMS gateway as an apprise URL template with
    #: ``{phone}`` (e.g. ``json://sms.gateway.internal/send?:to={phone}``), filled with the
    #: number of a reporter who agreed (``notify_reporter``) when their event is closed or
    #: not accepted. Unset: reporters are not told. A secret: gateway URLs carry keys.
    reporter_channel: SecretStr | None = None
    #: Hours (China time, ``HH:MM-HH:MM``) in which no SMS goes to reporters; they wait for
    #: the end. Unset: any time.
    reporter_quiet_hours: str | None = None

    @field_validator("reporter_channel", mode="after")
    @classmethod
    def _reporter_channel(cls, value):
        if value is not None and "{phone}" not in value.get_secret_value():
            raise ValueError("GRIDGEO_REPORTER_CHANNEL must hold {phone}, where the reporter's number goes")
        return value

    @field_validator("reporter_quiet_hours", mode="after")
    @classmethod
    def _quiet(cls, value):
        import re

        if value is not None and value != "" and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("GRIDGEO_REPORTER_QUIET_HOURS is HH:MM-HH:MM in China time, e.g. 21:00-08:00")
        return value or None

    @field_validator("grid_band", mode="before")
    @classmethod
    def _band(cls, value):
        # GRIDGEO_GRID_BAND=300:500, read as the planner's --band. Imported here: the
        # planner package imports these settings. The default is a band as written, and not
        # parsed: the planner package brings scipy, which a lookup or `gridgeo locate` never needs.
        if value == cls.model_fields["grid_band"].default:
            return value
        from gridgeo.plan.bands import parse_band

        return parse_band(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()


def uvicorn_options(settings: Settings | None = None) -> dict:
    """Keyword arguments of ``uvicorn.run`` for the API (``gridgeo serve``); the API's
    classes are named, not imported (the core imports neither uvicorn nor the API).

    Logging: uvicorn's own access log is off (it writes query strings, where an
    ``access_token``, an Open311 ``api_key`` or a reporter's ``token`` may ride); gridgeo's
    JSON request log (``gridgeo.access``: method, route, path, status, duration, never the
    query) takes its place. Every record, whatever its logger, goes through one stderr
    handler writing JSON lines through the secret-redacting filter. Another runner
    (``uvicorn gridgeo.api.main:app``) still gets the filter on uvicorn's loggers and the
    root handlers, put there when the app is created.

    Slow clients: the HTTP protocol closes connections whose headers do not arrive within
    ``header_timeout``; idle keep-alive connections close after ``keep_alive_timeout``
    (the body has its deadline in the API's body guard).
    """
    settings = settings or get_settings()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact"],
               "stream": "ext://sys.stderr"}
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "gridgeo.api.middleware.RedactSecrets"}},
        "formatters": {"json": {"()": "gridgeo.api.middleware.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "INFO"},
    }
    return {
        "log_config": log_config,
        "access_log": False,
        "http": "gridgeo.api.server:TimedHttpToolsProtocol",
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_worker_healthcheck": settings.worker_healthcheck_timeout,
        # h11 only (httptools bounds its own): the largest incomplete request head.
        "h11_max_incomplete_event_size": 64 * 1024,
    }
