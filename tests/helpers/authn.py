"""Tokens for the tests: a user of a role (with a scope) and its bearer header."""

from __future__ import annotations

import itertools

from gridgeo.auth import create_token, create_user

_n = itertools.count()


def headers_for(store, role: str, *, name: str | None = None, **scope) -> dict[str, str]:
    """Create a user of ``role`` (scope: grids=, department=, platform=, staff_code=) and
    return ``{"Authorization": "Bearer <token>"}`` for it."""
    username = f"{role}-{next(_n)}"
    create_user(store, username, role=role, name=name or username, actor="test", **scope)
    token, _ = create_token(store, username, days=1, actor="test")
    return {"Authorization": f"Bearer {token}"}
