"""Users and tokens (the administrator), who am I (anyone with a token), and the
household register by grid (masked for roles that do not need the contacts)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from gridgeo.api.deps import Admin, AtQuery, HouseholdReader, LookupDep, PrincipalDep, StoreDep
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.users import HouseholdPage, IssuedToken, Me, Token, User
from gridgeo import auth
from gridgeo.auth import ACCOUNT_ROLES
from gridgeo.households import MAX_LIMIT, households_in
from gridgeo.layers import PLATFORMS
from gridgeo.store import schema

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "username": "wangwei", "name": "王伟", "role": "grid_worker", "staff_code": "P00051"}})

    username: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=100)
    role: Literal[tuple(ACCOUNT_ROLES)]  # type: ignore[valid-type]
    grids: list[str] | None = Field(None, max_length=200, description="A grid worker's grids.")
    staff_code: str | None = Field(None, max_length=64, description="A grid worker's code in the staff register (gives the grids).")
    department: str | None = Field(None, max_length=200, description="A department's name, as in the catalogue.")
    platform: Literal[tuple(PLATFORMS)] | None = None  # type: ignore[valid-type]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field("", max_length=100)
    days: float | None = Field(90, gt=0, le=3650, description="Valid for this many days; null: no end.")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool


@router.get("/v1/me", summary="Who the token belongs to: role and scope", response_model=Me, **VALIDATED)
async def me(principal: PrincipalDep):
    auth.require(principal, ACCOUNT_ROLES, "who am I")
    return principal.describe()


@router.get("/v1/users", summary="Every user (administrator)", response_model=list[User], **VALIDATED)
def list_users(store: StoreDep, principal: Admin):
    return auth.list_users(store)


@router.post("/v1/users", status_code=201, summary="Add a user (administrator)", response_model=User, **VALIDATED)
def create_user(body: UserIn, store: StoreDep, principal: Admin):
    return auth.create_user(store, **body.model_dump(), actor=principal.actor)


@router.patch("/v1/users/{username}", summary="Switch a user off or on (administrator)", response_model=User,
              **VALIDATED)
def patch_user(username: str, body: UserPatch, store: StoreDep, principal: Admin):
    return auth.set_active(store, username, body.active, actor=principal.actor)


@router.post("/v1/users/{username}/tokens", status_code=201,
             summary="Issue a token (administrator); the token is in this answer only",
             response_model=IssuedToken, **VALIDATED)
def issue_token(username: str, body: TokenIn, store: StoreDep, principal: Admin):
    token, record = auth.create_token(store, username, label=body.label, days=body.days, actor=principal.actor)
    return {**record, "token": token}


@router.get("/v1/tokens", summary="Tokens (administrator): prefixes, never the tokens",
            response_model=list[Token], **VALIDATED)
def list_tokens(store: StoreDep, principal: Admin, username: str | None = None):
    return auth.list_tokens(store, username)


@router.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a token (administrator)")
def revoke_token(token_id: Annotated[int, Path(ge=1, le=schema.MAX_INTEGER)], store: StoreDep,
                 principal: Admin):
    auth.revoke_token(store, token_id, actor=principal.actor)


@router.get("/v1/households", tags=["households"],
            summary="Households by grid, with contacts for those who need them",
            response_model=HouseholdPage, **VALIDATED)
def households(
    store: StoreDep,
    lookup: LookupDep,
    principal: HouseholdReader,
    grid: Annotated[list[str] | None, Query(description="Grid code(s).")] = None,
    village: Annotated[str | None, Query(description="Village or township code (prefix).")] = None,
    at: AtQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    """The households of some grids (or a village) under the plan in force. A grid
    worker sees the households of their own grids, with contacts; the command room sees
    contacts too; the planner, the leadership and the administrator see them masked."""
    if principal.role == "grid_worker":
        grid = auth.narrow(grid, sorted(principal.grids)) if grid else sorted(principal.grids)
    page = households_in(store, grids=grid, village=village, at=at, limit=limit, offset=offset,
                         lookup=lookup)
    page["items"] = [auth.mask_household(h, principal) for h in page["items"]]
    return page
