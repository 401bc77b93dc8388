"""Who is calling: the bearer token → a :class:`gridgeo.auth.Principal`.

``Authorization: Bearer <token>`` on every request that needs one. Pages opened in a
browser (the maps, under ``/maps/``) cannot send a header: their URL carries a map
ticket (``?ticket=``, from ``POST /maps/tickets``: valid a few minutes, for the maps
only) or, still accepted there, the token itself (``?access_token=``, RFC 6750 §2.3); a
console user opening a map from a console page is known by their log-in session's cookie
(:mod:`gridgeo.sessions`, GET only). Everywhere else a credential in the URL answers 401: URLs end up in logs, histories and
Referer headers. No log ever records a query string or a secret (see
:class:`gridgeo.api.middleware.RedactSecrets`). No token: the anonymous public, who may
report events, look up points and read public data; everything else answers 401.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridgeo.api.resources import get_store
from gridgeo.auth import ANONYMOUS, Principal, authenticate, check_map_ticket, require
from gridgeo.config import get_settings
from gridgeo.errors import Unauthenticated
from gridgeo.sessions import SESSION_COOKIE, session
from gridgeo.store import Store

_bearer = HTTPBearer(auto_error=False, description="An API token: `gridgeo users token USERNAME`.")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    store: Annotated[Store, Depends(get_store)],
) -> Principal:
    """The caller (anonymous when no token is sent; 401 for a bad one)."""
    if credentials is not None:
        return authenticate(store, credentials.credentials)
    if request.headers.get("authorization"):
        raise Unauthenticated("send the token as Authorization: Bearer <token>")
    query = request.query_params
    in_url = [name for name in URL_CREDENTIALS if query.get(name)]
    if not in_url:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and request.scope["path"].startswith(MAP_PATHS) and request.method == "GET":
            # A console user opening a map from a console page: their log-in session.
            return session(store, cookie).principal
        return ANONYMOUS
    if not request.scope["path"].startswith(MAP_PATHS):
        raise Unauthenticated(f"{in_url[0]} in the URL is accepted by the map pages only; "
                              "send the token as Authorization: Bearer <token>")
    if query.get("ticket"):
        return check_map_ticket(store, query["ticket"], ticket_secret())
    return authenticate(store, query["access_token"])


#: Query parameters that carry a credential (the map pages only).
URL_CREDENTIALS = ("ticket", "access_token")
#: The pages a browser opens by URL, which may carry one.
MAP_PATHS = "/maps/"


@lru_cache(maxsize=1)
def ticket_secret() -> bytes:
    """The key that signs map tickets: GRIDGEO_TICKET_SECRET (``gridgeo serve`` sets one
    per start for its workers), else one made for this process."""
    configured = get_settings().ticket_secret
    return (configured.get_secret_value() if configured else secrets.token_urlsafe(32)).encode()


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def roles(*allowed: str, what: str = "this endpoint"):
    """A dependency that lets only ``allowed`` roles through (401 without a token, 403
    for another role) and gives the principal."""

    async def dependency(principal: PrincipalDep) -> Principal:
        require(principal, allowed, what)
        return principal

    return Depends(dependency)
