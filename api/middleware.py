"""ASGI middleware of the API: request metrics and JSON access logs, the lookup rate
limit, and the body guard (size, JSON depth and NUL characters, checked before anything
parses it).

Plain ASGI classes (not ``BaseHTTPMiddleware``): they add microseconds to a lookup and
never buffer a response.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import html
import json
import logging
import math
import mmap
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

import anyio
import anyio.to_thread
import numpy as np
from fastapi import HTTPException
from fastapi.responses import HTMLResponse

from gridgeo.api.metrics import Metrics
from gridgeo.api.problems import problem
from gridgeo.config import get_settings
from gridgeo.errors import JsonTooDeep, NulCharacter, ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger("gridgeo.api")

access_log = logging.getLogger("gridgeo.access")


# -- structured logs --------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


#: What may carry a secret in a log line: a query or form parameter named like one, an
#: Authorization header's credentials, a gridgeo secret (API token, reporter token, map
#: ticket, console session: see gridgeo.auth's and gridgeo.sessions' prefixes; a webhook or
#: hand-off secret, ``whsec_``) wherever it appears.
_SECRETS = re.compile(
    r"(?P<param>[\w-]*(?:token|api_key|ticket|secret|password)=)[^&\s\"'#]+"
    r"|(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<api>gg[tmrs]_|whsec_)[A-Za-z0-9_.+/=-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every secret :data:`_SECRETS` finds replaced by ``[redacted]``."""
    return _SECRETS.sub(lambda m: (m["param"] or m["scheme"] or m["api"]) + "[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record so that no secret reaches a log: the message (its arguments
    merged in), the string extras and the traceback text. Put on handlers (every
    record they write passes) and on the loggers that format URLs (uvicorn.access)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        for key, value in vars(record).items():
            if key not in JsonFormatter._STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Put :class:`RedactSecrets` on uvicorn's loggers and on the root logger's handlers
    (once), however the app is run: uvicorn's access log formats the URL with its
    query, where tokens may ride."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in
                                       ("uvicorn", "uvicorn.error", "uvicorn.access", "gridgeo")]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(f, RedactSecrets) for f in target.filters):
            target.addFilter(RedactSecrets())


def enable_request_log() -> None:
    """Send ``gridgeo.access`` to stderr as JSON lines (once per process)."""
    if not any(getattr(h, "_gridgeo", False) for h in access_log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RedactSecrets())
        handler._gridgeo = True  # type: ignore[attr-defined]
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)


def _route(scope) -> str:
    """The route template (``/v1/grids/{code}``), never the raw path: bounded label values."""
    if "gridgeo.route" in scope:
        return scope["gridgeo.route"]
    route = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"


class ObserveRequests:
    """Counts and times every request and logs it as one JSON line."""

    def __init__(self, app, metrics: Metrics, log: bool = True) -> None:
        self.app, self.metrics, self.log = app, metrics, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            status = 500
            raise
        finally:
            seconds = time.perf_counter() - started
            method, route = scope["method"], _route(scope)
            self.metrics.observe(method, route, status, seconds)
            if self.log:
                client = scope.get("client")
                access_log.info(
                    "%s %s %d", method, route, status,
                    extra={"method": method, "route": route, "path": scope["path"], "status": status,
                           "duration_ms": round(seconds * 1000, 2), "client": client[0] if client else None},
                )


# -- rate limit -------------------------------------------------------------------------

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0}


def parse_rate(text: str) -> float:
    """Requests per second from ``"100/s"``, ``"6000/min"`` or ``"0"`` (disabled)."""
    text = str(text).strip().lower()
    number, _, unit = text.partition("/")
    try:
        rate = float(number)
        per = _UNITS[unit.strip() or "s"]
    except (ValueError, KeyError):
        raise ValueError(f"rate {text!r}: give N/s, N/min or N/h, or 0 to disable") from None
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate {text!r} must be a finite number >= 0")
    return rate / per


class TokenBuckets:
    """Per-key token buckets in memory (so per process): ``rate`` tokens a second, at
    most ``burst`` saved up. Idle buckets are forgotten when there are many keys."""

    MAX_KEYS = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, max(1.0, float(burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a request may go ahead (and a token is taken), else seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        if len(self._buckets) > self.MAX_KEYS:
            self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        with self._lock:
            full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
            for k in full:
                del self._buckets[k]


class RateLimit:
    """429 with Retry-After when a client IP exceeds its bucket on the given paths (and
    methods; with ``anonymous_only``, only requests that carry no Authorization header).

    ``paths`` are exact paths; ``pattern`` (a regular expression matched against the
    whole path, e.g. the reporter's ``/v1/events/{code}/status``) names the route in
    ``route`` for the metrics.
    """

    def __init__(self, app, paths: tuple[str, ...] = (), rate: str = "0", burst: int = 1,
                 methods: tuple[str, ...] | None = None, anonymous_only: bool = False,
                 pattern: str | None = None, route: str | None = None) -> None:
        self.app, self.paths, self.methods, self.anonymous_only = app, paths, methods, anonymous_only
        self.pattern, self.route = (re.compile(pattern) if pattern else None), route
        per_second = parse_rate(rate)
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None

    def _applies(self, scope) -> bool:
        if self.buckets is None or scope["type"] != "http":
            return False
        path = scope["path"].rstrip("/")
        if path not in self.paths and not (self.pattern and self.pattern.fullmatch(path)):
            return False
        if self.methods is not None and scope["method"] not in self.methods:
            return False
        if self.anonymous_only and any(k == b"authorization" and v.strip() for k, v in scope["headers"]):
            return False
        return True

    async def __call__(self, scope, receive, send):
        if not self._applies(scope):
            return await self.app(scope, receive, send)
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "-")
        if not wait:
            return await self.app(scope, receive, send)
        scope["gridgeo.route"] = self.route or scope["path"].rstrip("/")
        retry = max(1, math.ceil(wait))
        response = problem(429, "too many requests",
                           f"rate limit of this endpoint exceeded; retry in {retry} s",
                           "/problems/rate-limited")
        response.headers["Retry-After"] = str(retry)
        await response(scope, receive, send)


# -- body guard -------------------------------------------------------------------------

#: Bytes scanned at a time by :func:`scan_json` (bounded memory, early exit when too deep).
_CHUNK = 1 << 22
#: +1 for an opening bracket, -1 for a closing one, 0 for every other byte.
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
#: Every byte but quotes and brackets (deleted before the scan).
_NOT_SPECIAL = bytes(b for b in range(256) if b not in b'"[]{}')


def scan_json(body: bytes, max_depth: int = 0) -> tuple[int, bool]:
    """(deepest nesting of arrays and objects, whether a ``\\u0000`` escape occurs) of
    a JSON text, without parsing it, in time linear in its size.

    Escapes are removed first (``bytes.replace``: an escaped backslash, then an escaped
    quote; skipped when the text has no backslash), so what is left has plain ``"``
    delimiting strings; a bracket counts when an even number of quotes precede it (numpy,
    4 MiB at a time, on the quotes and brackets alone). Backslashes occur only in strings
    in valid JSON, so for any text the parser would accept up to some point, the depth
    found here up to that point is the parser's. With ``max_depth``, the scan stops as
    soon as the depth passes it.
    """
    if b"\\" in body:
        text = body.replace(b"\\\\", b"")
        nul = b"\\u0000" in text
        text = text.replace(b'\\"', b"")
    else:
        text, nul = body, False
    # Only quotes and brackets matter: bytes.translate keeps those alone in one C pass,
    # then numpy walks them 4 MiB at a time.
    kept = np.frombuffer(text.translate(None, _NOT_SPECIAL), dtype=np.uint8)
    in_string, depth, deepest = 0, 0, 0
    for start in range(0, len(kept), _CHUNK):
        special = kept[start:start + _CHUNK]
        # inside a string: an odd count of quotes so far (a uint8 sum wraps at 256 and
        # keeps its parity)
        inside = (np.cumsum(special == ord('"'), dtype=np.uint8) & 1) ^ in_string
        in_string = int(inside[-1])
        steps = _STEP[special]
        steps[inside.view(bool)] = 0
        levels = np.cumsum(steps, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        if max_depth and deepest > max_depth:
            break
        depth += int(levels[-1])
    return deepest, nul


def check_json(body: bytes, max_depth: int) -> None:
    """Refuse a JSON text nested deeper than ``max_depth`` or holding a ``\\u0000``
    escape (:func:`scan_json`), before any parser sees it.

    Raises
    ------
    JsonTooDeep, NulCharacter
    """
    depth, nul = scan_json(body, max_depth)
    if max_depth and depth > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    if nul:
        raise NulCharacter(NUL_DETAIL)


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in a JSON text (see :func:`scan_json`)."""
    return scan_json(body)[0]


def _has_nul(scope) -> bool:
    """A NUL character in the path or the query: no gridgeo text holds one, and
    PostgreSQL refuses them in queries (a 500 if they got that far)."""
    query = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


#: What a NUL character in a request is told.
NUL_DETAIL = "text must not contain NUL characters (%00, \\u0000)"


def _nul_problem():
    return problem(422, "nul character", NUL_DETAIL, "/problems/nul-character")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; FastAPI re-raises
    HTTPExceptions from body parsing, and the problem handler answers 413."""


class BodyTimeout(HTTPException):
    """Raised from ``receive`` when the body has not arrived within the deadline (a
    client sending it a byte at a time); the problem handler answers 408."""


#: Bodies up to this size are scanned on the event loop (a hop elsewhere costs more);
#: larger ones in a thread, and from PROCESS_SCAN_BYTES in the process pool.
INLINE_SCAN_BYTES = 64 * 1024
PROCESS_SCAN_BYTES = 2_000_000


#: Room for a multipart body's boundaries, headers and small fields around its files.
MULTIPART_OVERHEAD = 256 * 1024
_PHOTO_PATH = re.compile(r"(/v1)?/events/[^/]+/photos")  # the API's, and the console's event page


_FIELD_ACTION_PATH = re.compile(r"/field/events/[^/]+/actions")


def upload_limit(scope) -> tuple[int, str] | None:
    """The body limit of the upload routes (None for the others): one photo for
    ``POST /v1/events/{code}/photos`` and the console's ``POST /events/{code}/photos``;
    a report's photos for a multipart
    ``POST /v1/events`` and for the phone app's ``POST /field/events`` and
    ``POST /field/events/{code}/actions`` (gridgeo.console.field); a track for ``POST /v1/patrols``
    and ``POST /field/patrols``. Decided from the path and the
    content type, so an oversized upload gets its 413 before anything is buffered."""
    settings = get_settings()
    path = scope["path"].rstrip("/")
    if path in ("/v1/patrols", "/field/patrols"):  # a track, from the API or the phone app
        return settings.max_track_bytes, "GRIDGEO_MAX_TRACK_BYTES"
    if _PHOTO_PATH.fullmatch(path):
        return settings.max_photo_bytes + MULTIPART_OVERHEAD, "GRIDGEO_MAX_PHOTO_BYTES"
    if path == "/field/events" or _FIELD_ACTION_PATH.fullmatch(path):  # the phone app's reports and checks
        return (settings.max_photo_bytes * settings.max_photos_per_report + MULTIPART_OVERHEAD,
                "GRIDGEO_MAX_PHOTO_BYTES × GRIDGEO_MAX_PHOTOS_PER_REPORT")
    if path == "/v1/events":
        ctype = dict(scope["headers"]).get(b"content-type", b"").lower()
        if ctype.startswith(b"multipart/form-data"):
            return (settings.max_photo_bytes * settings.max_photos_per_report + MULTIPART_OVERHEAD,
                    "GRIDGEO_MAX_PHOTO_BYTES × GRIDGEO_MAX_PHOTOS_PER_REPORT")
    return None


class BodyGuard:
    """413 for bodies over the limit of their path (from Content-Length at once, or while
    streaming); 408 for a body that does not arrive within ``timeout`` seconds; 422 for
    JSON bodies nested deeper than ``max_depth``, and for NUL characters in the path,
    the query or a JSON body. JSON bodies are read here (bounded by the limit), scanned
    in time linear in their size (in a worker thread when large) and replayed to the app.

    ``max_bytes`` is the limit of ``big_paths`` (the batch lookup, whose 100,000 points
    need it); every other path has ``small_bytes``: nothing else takes a big body, and
    parsing and validating one would hold the event loop.

    The bodies of ``self_checking`` paths (the batch lookup) are only bounded here (size
    and time, as they stream): their route runs :func:`check_json` itself, in the process
    that parses the body, so a 13 MB body crosses to the process pool once, not twice.
    """

    def __init__(self, app, max_bytes: int, max_depth: int, small_bytes: int | None = None,
                 big_paths: tuple[str, ...] = ("/v1/lookup",), timeout: float | None = None,
                 self_checking: tuple[str, ...] = ("/v1/lookup",)) -> None:
        settings = get_settings()
        self.app, self.max_bytes, self.max_depth, self.big_paths = app, max_bytes, max_depth, big_paths
        self.self_checking = frozenset(self_checking)
        self.small_bytes = min(max_bytes, settings.max_small_body_bytes if small_bytes is None else small_bytes)
        self.timeout = settings.body_timeout if timeout is None else timeout

    def _limit(self, scope) -> tuple[int, str]:
        path = scope["path"].rstrip("/")
        upload = upload_limit(scope)
        if upload is not None:
            return upload
        if path in self.big_paths or self.small_bytes >= self.max_bytes:
            return self.max_bytes, "GRIDGEO_MAX_BODY_BYTES"
        return self.small_bytes, "GRIDGEO_MAX_SMALL_BODY_BYTES"

    @staticmethod
    def _too_large(size: str, limit: tuple[int, str]) -> str:
        return f"request body of {size} bytes; the limit of this endpoint is {limit[0]:,} ({limit[1]})"

    def _timed_out(self) -> str:
        return f"the request body did not arrive within {self.timeout:g} s (GRIDGEO_BODY_TIMEOUT)"

    @staticmethod
    def _too_large_zh(limit: tuple[int, str]) -> str:
        return f"提交的内容过大：此处最多接受 {limit[0] / 1e6:.1f} MB。请压缩照片或减少内容后重试。"

    def _timed_out_zh(self) -> str:
        return f"提交超时：内容未能在 {self.timeout:g} 秒内送达。请检查网络后重试。"

    @staticmethod
    def _refusal(scope, status: int, title: str, detail: str, type_: str, zh: str):
        """A problem answer with its Chinese detail (the phone app shows ``detail_zh``); to a
        browser's form post outside the API, which shows the answer as a page, a page in
        Chinese instead of raw JSON (the console's photo upload, say)."""
        accept = dict(scope["headers"]).get(b"accept", b"").lower()
        if b"text/html" in accept and not scope["path"].startswith(("/v1/", "/ogc", "/open311")):
            page = (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>未能提交</title>'
                    f'<main><h1>未能提交</h1><p role="alert">{html.escape(zh)}</p>'
                    f'<p>请用浏览器的“返回”回到上一页，或<a href="/">回到首页</a>。</p></main></html>')
            return HTMLResponse(page, status_code=status)
        return problem(status, title, detail, type_, detail_zh=zh)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if _has_nul(scope):
            return await _nul_problem()(scope, receive, send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await problem(400, "bad request", "Content-Length is not a number")(scope, receive, send)
            if declared > limit[0]:
                return await self._refusal(scope, 413, "body too large", self._too_large(f"{declared:,}", limit),
                                           "/problems/body-too-large", self._too_large_zh(limit))(scope, receive, send)
        deadline = time.monotonic() + self.timeout
        if (b"json" not in headers.get(b"content-type", b"").lower()
                or scope["path"].rstrip("/") in self.self_checking):
            late = _Late()
            return await self.app(scope, self._guarded(receive, limit, deadline, late), late.closing(send))
        # JSON: read it all (bounded in size and time), check it, replay it.
        chunks, size, more = [], 0, True
        while more:
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                return await self._timeout_problem(scope, receive, send)
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit[0]:
                return await self._refusal(scope, 413, "body too large",
                                           self._too_large(f"more than {limit[0]:,}", limit),
                                           "/problems/body-too-large", self._too_large_zh(limit))(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            if len(body) <= INLINE_SCAN_BYTES:
                check_json(body, self.max_depth)
            elif len(body) <= PROCESS_SCAN_BYTES:
                await run_heavy(check_json, body, self.max_depth)
            else:
                await run_in_process(check_json, body, self.max_depth)
        except (JsonTooDeep, NulCharacter) as exc:
            return await problem(exc.status, exc.code.replace("-", " "), str(exc),
                                 f"/problems/{exc.code}")(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _timeout_problem(self, scope, receive, send):
        response = self._refusal(scope, 408, "request timeout", self._timed_out(), "/problems/request-timeout",
                                 self._timed_out_zh())
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def _guarded(self, receive, limit: tuple[int, str], deadline: float, late: _Late):
        """``receive`` that counts the body's bytes and enforces the deadline."""
        size = 0

        async def guarded():
            nonlocal size
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                late.late = True
                raise BodyTimeout(408, self._timed_out()) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit[0]:
                    raise BodyTooLarge(413, self._too_large(f"more than {limit[0]:,}", limit))
            return message

        return guarded


class _Late:
    """Whether a body arrived too late; then the answer closes the connection (the rest
    of the body may still be on its way, and the client is not waited for)."""

    late = False

    def closing(self, send):
        async def closing_send(message):
            if self.late and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        return closing_send


# -- pools for heavy work -------------------------------------------------------------------
# Threads for work that is mostly Python bytecode (map building): the interpreter hands the
# GIL back to the event loop every few milliseconds. Processes for work dominated by long
# C calls that hold the GIL throughout (parsing, scanning and serialising megabytes of
# JSON): in a thread they would stall the event loop as surely as on it.

_HEAVY: anyio.CapacityLimiter | None = None
_PROCESS_SLOTS: anyio.CapacityLimiter | None = None
_PROCESSES: ProcessPoolExecutor | None = None


def heavy_limiter() -> anyio.CapacityLimiter:
    """The limiter of CPU-heavy threads (GRIDGEO_HEAVY_THREADS at once), apart from the
    default thread pool that runs the plain sync routes: a burst of maps waits its turn
    and never takes the threads that /health needs."""
    global _HEAVY
    if _HEAVY is None:
        _HEAVY = anyio.CapacityLimiter(get_settings().heavy_threads)
    return _HEAVY


async def run_heavy(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread of the heavy-work pool, off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=heavy_limiter())


def _process_pool() -> tuple[ProcessPoolExecutor, anyio.CapacityLimiter]:
    global _PROCESSES, _PROCESS_SLOTS
    if _PROCESSES is None:
        size = get_settings().heavy_processes
        # spawn, not fork: the server has threads (a fork could copy a held lock).
        _PROCESSES = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))
        _PROCESS_SLOTS = anyio.CapacityLimiter(size)
    return _PROCESSES, _PROCESS_SLOTS


async def run_in_process(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the process pool (GRIDGEO_HEAVY_PROCESSES processes; callers wait
    their turn here rather than queue without bound). ``fn`` and its arguments and
    result must pickle; exceptions come back as raised."""
    global _PROCESSES
    pool, slots = _process_pool()
    async with slots:
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the pool is unusable from now on, so
            # the next call makes a new one; this one is answered 503.
            log.error("the process pool broke running %s; starting a new one", fn.__name__)
            if _PROCESSES is pool:
                _PROCESSES = None
            raise ServiceUnavailable("a worker process died; retry the request") from None


# -- bytes across the process pool ------------------------------------------------------


class SharingFailed(Exception):
    """A worker process could not open a :class:`SharedFile` (no ``/proc`` to reach it
    by): the caller hands the bytes over pickled instead, from then on."""


class SharedFile:
    """An anonymous in-memory file (a Linux ``memfd``) that a process of the pool opens by
    its name, ``/proc/<pid>/fd/<fd>``: a body written here as it arrives, or an answer
    a worker writes there, crosses to the other process without being pickled through
    the pool's pipe (which copies megabytes four or five times, each copy into fresh
    pages). The memory goes when the descriptor is closed and the last mapping
    (:meth:`view`) is released.

    Only where memfd exists (Linux) and only while no worker has failed to open one
    (:func:`sharing`); elsewhere the bytes are pickled as before.
    """

    def __init__(self) -> None:
        self.fd = os.memfd_create("gridgeo", os.MFD_CLOEXEC)
        self.name = f"/proc/{os.getpid()}/fd/{self.fd}"
        self.size = 0

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        while view:
            view = view[os.write(self.fd, view):]

    def view(self, size: int) -> memoryview:
        """The first ``size`` bytes, mapped (not copied): the memoryview keeps the
        mapping, which is unmapped when the last reference to it goes."""
        if size <= 0:
            return memoryview(b"")
        # not MAP_POPULATE: faulting 40 MB in at once would hold the event loop 4-8 ms; the
        # pages come in as the socket takes them
        return memoryview(mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SharedFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SHARING = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def sharing() -> bool:
    """Whether bodies and answers cross to the process pool as :class:`SharedFile`."""
    return _SHARING


def stop_sharing(reason: BaseException) -> None:
    """Hand bytes to the process pool pickled from now on (a worker could not open a
    :class:`SharedFile`)."""
    global _SHARING
    if _SHARING:
        log.warning("process pool: shared files unavailable (%s); pickling bodies and answers",
                    reason)
    _SHARING = False


def read_shared(name: str) -> bytes:
    """The whole of a :class:`SharedFile`, read by name (in a process of the pool)."""
    try:
        with open(name, "rb", buffering=0) as f:
            return f.read()
    except OSError as exc:
        raise SharingFailed(str(exc)) from None


def write_shared(name: str):
    """A :class:`SharedFile` opened by name for writing from its start (an Arrow
    ``NativeFile``: Arrow's writers write into it natively)."""
    import pyarrow as pa

    try:
        return pa.OSFile(name, mode="w")
    except OSError as exc:
        raise SharingFailed(str(exc)) from None
