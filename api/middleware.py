"""ASGI middleware of the API: request metrics and JSON access logs, the lookup rate
limit, and the body guard (size, JSON depth and NUL characters, checked before anything
parses it).

Plain ASGI classes (not ``BaseHTTPMiddleware``): they add microseconds to a lookup and
never buffer a response.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import time

import numpy as np
from fastapi import HTTPException

from gridgeo.api.metrics import Metrics
from gridgeo.api.problems import problem

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
        return json.dumps(out, ensure_ascii=False, default=str)


def enable_request_log() -> None:
    """Send ``gridgeo.access`` to stderr as JSON lines (once per process)."""
    if not any(getattr(h, "_gridgeo", False) for h in access_log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
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
    methods; with ``anonymous_only``, only requests that carry no Authorization header)."""

    def __init__(self, app, paths: tuple[str, ...], rate: str, burst: int,
                 methods: tuple[str, ...] | None = None, anonymous_only: bool = False) -> None:
        self.app, self.paths, self.methods, self.anonymous_only = app, paths, methods, anonymous_only
        per_second = parse_rate(rate)
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None

    def _applies(self, scope) -> bool:
        if self.buckets is None or scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
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
        scope["gridgeo.route"] = scope["path"].rstrip("/")
        retry = max(1, math.ceil(wait))
        response = problem(429, "too many requests",
                           f"rate limit of this endpoint exceeded; retry in {retry} s",
                           "/problems/rate-limited")
        response.headers["Retry-After"] = str(retry)
        await response(scope, receive, send)


# -- body guard -------------------------------------------------------------------------

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in a JSON text, without parsing it
    (strings removed by a regex, brackets counted by numpy: milliseconds for 20 MB)."""
    if b"[" not in body and b"{" not in body:
        return 0
    raw = np.frombuffer(_STRING.sub(b'""', body), dtype=np.uint8)
    opens, closes = np.isin(raw, _OPEN), np.isin(raw, _CLOSE)
    idx = np.flatnonzero(opens | closes)
    if not len(idx):
        return 0
    steps = np.where(opens[idx], 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


#: A JSON ``\u0000`` escape (not an escaped backslash followed by "u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _has_nul(scope) -> bool:
    """A NUL character in the path or the query: no gridgeo text holds one, and
    PostgreSQL refuses them in queries (a 500 if they got that far)."""
    query = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


def _nul_problem():
    return problem(422, "nul character", "text must not contain NUL characters (%00, \\u0000)",
                   "/problems/nul-character")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; FastAPI re-raises
    HTTPExceptions from body parsing, and the problem handler answers 413."""


class BodyGuard:
    """413 for bodies over ``max_bytes`` (from Content-Length at once, or while
    streaming); 422 for JSON bodies nested deeper than ``max_depth``, and for NUL
    characters in the path, the query or a JSON body. JSON bodies are read here
    (bounded by the limit) and replayed to the app."""

    def __init__(self, app, max_bytes: int, max_depth: int) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    def _too_large(self, size: str) -> str:
        return f"request body of {size} bytes; the limit is {self.max_bytes:,} (GRIDGEO_MAX_BODY_BYTES)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if _has_nul(scope):
            return await _nul_problem()(scope, receive, send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await problem(400, "bad request", "Content-Length is not a number")(scope, receive, send)
            if declared > self.max_bytes:
                return await problem(413, "body too large", self._too_large(f"{declared:,}"),
                                     "/problems/body-too-large")(scope, receive, send)
        if b"json" not in headers.get(b"content-type", b"").lower():
            return await self.app(scope, self._counting(receive), send)
        # JSON: read it all (bounded), check its depth, replay it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await problem(413, "body too large", self._too_large(f"more than {self.max_bytes:,}"),
                                     "/problems/body-too-large")(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if self.max_depth and json_depth(body) > self.max_depth:
            return await problem(422, "json too deep",
                                 f"JSON nested deeper than {self.max_depth} levels",
                                 "/problems/json-too-deep")(scope, receive, send)
        if b"\\u0000" in body and _NUL_ESCAPE.search(body):
            return await _nul_problem()(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _counting(self, receive):
        size = 0

        async def counted():
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise BodyTooLarge(413, self._too_large(f"more than {self.max_bytes:,}"))
            return message

        return counted
