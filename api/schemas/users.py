"""Users, tokens, who am I, and the household register."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema


class Me(Schema):
    """Who a token belongs to: role and scope."""

    username: str | None = None
    name: str | None = None
    role: str | None = None
    role_label: str | None = None
    grids: list[str] = Field(description="A grid worker's grids.")
    department: str | None = None
    platform: str | None = None
    staff_code: str | None = None


class User(Me):
    active: bool
    created_at: str | None = Field(None, description=TIME)


class Token(Schema):
    """A token's record: its prefix, never the token."""

    id: int
    username: str
    prefix: str
    label: str | None = None
    created_at: str | None = Field(None, description=TIME)
    expires_at: str | None = Field(None, description=TIME)
    revoked_at: str | None = Field(None, description=TIME)


class IssuedToken(Token):
    token: str = Field(description="The token: in this answer only.")


class HouseholdPage(Schema):
    plan_version: str | None = None
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]] = Field(description="Households (contacts masked unless the role needs them).")
