"""How uvicorn runs the API: logging that never writes a secret, and timeouts for slow
clients. ``gridgeo serve`` passes :func:`uvicorn_options` to ``uvicorn.run``; another
runner (``uvicorn gridgeo.api.main:app``, gunicorn) still gets the redaction, which
:func:`gridgeo.api.middleware.install_log_redaction` puts on uvicorn's loggers when the
app is created.

Logging: uvicorn's own access log is off (it writes query strings, where an
``access_token``, an Open311 ``api_key`` or a reporter's ``token`` may ride); gridgeo's
JSON request log (``gridgeo.access``: method, route, path, status, duration, never the
query) takes its place. Every handler redacts secrets whatever the logger.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gridgeo.config import Settings, get_settings


def log_config() -> dict[str, Any]:
    """``logging.config.dictConfig`` for uvicorn: JSON lines on stderr through the
    secret-redacting filter, for uvicorn's loggers, gridgeo's and every other (root)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact"],
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "gridgeo.api.middleware.RedactSecrets"}},
        "formatters": {"json": {"()": "gridgeo.api.middleware.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            # gridgeo.access replaces it; off even if a runner turns it on.
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "INFO"},
    }


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol that closes a connection whose request headers have not
    all arrived within ``GRIDGEO_HEADER_TIMEOUT`` seconds (uvicorn times out idle
    keep-alive connections only: a client sending its headers a byte at a time would
    hold the connection forever). The body has its own deadline in the BodyGuard."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read here, not when serve starts: workers are fresh processes (same environment).
        self.header_timeout = get_settings().header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()


def uvicorn_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` for the API: the logging above (uvicorn's
    access log off), the HTTP protocol with the header deadline, and the timeouts."""
    settings = settings or get_settings()
    return {
        "log_config": log_config(),
        "access_log": False,
        "http": TimedHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout,
        # h11 only (httptools has its own bounds): the largest incomplete request head.
        "h11_max_incomplete_event_size": 64 * 1024,
    }
