"""``/health``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gridgeo.api.schemas.base import Schema


class Health(Schema):
    status: Literal["ok", "error"]
    version: str = Field(description="gridgeo's version.")
    database: str = Field(description="sqlite or postgresql.")
    schema_: str | None = Field(None, alias="schema", description="The database schema's revision.")
    plan_in_force: str | None = Field(None, description="Version of the plan in force today.")
    database_ms: float | None = Field(None, description="Time the database took to answer.")
    detail: str | None = Field(None, description="What is wrong (503).")
