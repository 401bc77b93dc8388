"""The lookup's hot path: plain ``GET /v1/lookup?lon=&lat=[&crs=]`` answered as pure ASGI.

FastAPI's routing, dependency solving and query validation cost more than the lookup
itself, so the plain, successful case is answered here, inside the rate limit, the body
guard and the metrics (which so see every lookup). Everything else falls through to
the route :func:`gridgeo.api.routers.lookup.lookup_one`, which answers exactly as it
would without this: same body, same problems. Each fall-through is counted by reason
(``gridgeo_lookup_fallthroughs_total`` on ``/metrics``).
"""

from __future__ import annotations

import inspect
import re
from urllib.parse import parse_qsl

from gridgeo.api.resources import _lookup_for, _open_store, get_store
from gridgeo.api.metrics import Metrics
from gridgeo.errors import GridgeoError

PATH = "/v1/lookup"
_FAST_KEYS = frozenset({"lon", "lat", "crs"})
#: A plain decimal number, as the route's validation reads it (no "_", no spaces, no nan).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FallThrough(Exception):
    """This request is the route's to answer; ``reason`` is the counter's label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FastLookup:
    """ASGI middleware answering plain lookups; see the module's docstring.

    Parameters
    ----------
    app
        The ASGI app inside (FastAPI's exception middleware and router).
    metrics
        The app's metrics, where the fall-throughs are counted.

    Notes
    -----
    Falls through (reason in brackets): a query that is not plain ``lon``, ``lat`` and
    an optional non-empty ``crs``, each once, the numbers plain decimals (``query``:
    ``at=``, unknown or repeated parameters, ``nan``, malformed query strings); a store
    dependency overridden by a coroutine, which only the route can await
    (``store_override``); and any :class:`~gridgeo.errors.GridgeoError` the lookup raises,
    by its problem code (``outside-jurisdiction``, ``invalid-coordinates``,
    ``unknown-crs``, ...), which the route turns into its problem document. Any other
    exception is a bug and propagates.
    """

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != PATH:
            return await self.app(scope, receive, send)
        try:
            body = self._answer(scope)
        except FallThrough as ft:
            self.metrics.fell_through(ft.reason)
            return await self.app(scope, receive, send)
        scope["gridgeo.route"] = PATH
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _answer(scope) -> bytes:
        """The answer's JSON bytes; :class:`FallThrough` when the route must answer."""
        try:
            pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                              strict_parsing=True)
        except ValueError:  # a field without "=", as strict parsing reads it
            raise FallThrough("query") from None
        params = dict(pairs)
        if (len(params) != len(pairs) or not params.keys() <= _FAST_KEYS
                or not (_NUMBER.fullmatch(params.get("lon", "")) and _NUMBER.fullmatch(params.get("lat", "")))
                or params.get("crs") == ""):
            raise FallThrough("query")
        fastapi_app = scope.get("app")
        override = getattr(fastapi_app, "dependency_overrides", {}).get(get_store)
        store = override() if override is not None else _open_store()
        if inspect.iscoroutine(store):
            store.close()  # never awaited here: the route calls the override again
            raise FallThrough("store_override")
        try:
            text = _lookup_for(store).one_json(float(params["lon"]), float(params["lat"]),
                                               crs=params.get("crs", "wgs84"))
        except GridgeoError as exc:  # outside, invalid, unknown CRS...: the route's problems
            raise FallThrough(exc.code) from None
        return text.encode()
