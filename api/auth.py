"""Who is calling: the bearer token → a :class:`gridgeo.auth.Principal`.

``Authorization: Bearer <token>`` on every request that needs one. Pages opened in a
browser (the maps) may carry the token as ``?access_token=`` instead (RFC 6750 §2.3);
the request log never records query strings. No token: the anonymous public, who may
report events, look up points and read public data; everything else answers 401.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridgeo.api.deps import get_store
from gridgeo.auth import ANONYMOUS, Principal, authenticate, require
from gridgeo.errors import Unauthenticated
from gridgeo.store import Store

_bearer = HTTPBearer(auto_error=False, description="An API token: `gridgeo users token USERNAME`.")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    store: Annotated[Store, Depends(get_store)],
) -> Principal:
    """The caller (anonymous when no token is sent; 401 for a bad one)."""
    if credentials is not None:
        token = credentials.credentials
    elif request.headers.get("authorization"):
        raise Unauthenticated("send the token as Authorization: Bearer <token>")
    else:
        token = request.query_params.get("access_token")
    if not token:
        return ANONYMOUS
    return authenticate(store, token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def roles(*allowed: str, what: str = "this endpoint"):
    """A dependency that lets only ``allowed`` roles through (401 without a token, 403
    for another role) and gives the principal."""

    async def dependency(principal: PrincipalDep) -> Principal:
        require(principal, allowed, what)
        return principal

    return Depends(dependency)
