"""uvicorn's HTTP protocol with a deadline for request headers, named by
:func:`gridgeo.config.uvicorn_options`, which ``gridgeo serve`` passes to ``uvicorn.run``."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gridgeo.config import get_settings


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
