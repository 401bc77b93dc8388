"""HTTP problem responses (RFC 9457) for gridgeo's exceptions, mapped in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridgeo.errors import (GridgeoError, ImportFailed, InternalError, InvalidPlan, RoleNotAllowed, StaffStranded,
                            Unauthenticated)

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("gridgeo.api")


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(GridgeoError)
    async def _gridgeo(request: Request, exc: GridgeoError):
        if isinstance(exc, InternalError):
            # A broken invariant is a bug: logged with its traceback, and the caller learns
            # nothing of the internals.
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
            return problem(500, "internal error", "an internal error occurred; it has been logged",
                           "/problems/internal-error")
        extra = {}
        if getattr(exc, "zh", None):  # the same in Chinese, for people (the phone app shows it)
            extra["detail_zh"] = exc.zh
        if isinstance(exc, ImportFailed):
            extra["problems"] = [p.__dict__ for p in exc.report.problems]
        if isinstance(exc, RoleNotAllowed):
            extra["allowed_roles"] = exc.roles
        if isinstance(exc, StaffStranded):
            extra["stranded"] = exc.stranded
        if isinstance(exc, InvalidPlan):
            extra["problems"] = exc.problems
            extra["reasons"] = exc.reasons
        response = problem(exc.status, exc.code.replace("-", " "), str(exc), f"/problems/{exc.code}", **extra)
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer realm="gridgeo"'
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "invalid request", detail, "/problems/invalid-request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail), str(exc.detail))
