"""Errors as RFC 9457 problems (``application/problem+json``), and the ONE mapping from error class to status.

Every quantfleet :class:`~quantfleet.core.errors.UserError` becomes a 4xx by
its class (the most specific entry of :data:`STATUS_BY_CLASS` wins; 400 when
none matches); every :class:`~quantfleet.core.errors.InfrastructureError` is a
503 with ``Retry-After``. Request validation errors list each field's location
and message under ``errors``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from quantfleet.core.errors import (
    ConfigError,
    DataError,
    InfrastructureError,
    NoDataError,
    QuantfleetError,
    SnapshotNotFound,
    UnknownSymbolError,
    UserError,
)
from quantfleet.jobs.errors import (
    CodeNotFound,
    IdempotencyConflict,
    IllegalTransition,
    JobNotFound,
    ObjectNotFound,
    ParentNotActive,
    QuotaExceeded,
)
from quantfleet.users import InvalidName, TokenNotFound, UserExists, UserNotFound

__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_CLASS",
    "Forbidden",
    "IdempotencyInFlight",
    "IdempotencyMismatch",
    "LimitExceeded",
    "PayloadTooLarge",
    "Problem",
    "ProblemField",
    "SpecInvalid",
    "Unauthenticated",
    "install_handlers",
    "problem_response",
    "render_error",
    "status_of",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE = "https://quantfleet.dev/problems/"


class Unauthenticated(UserError):
    """No bearer token, or one that names nobody."""


class PayloadTooLarge(UserError):
    """An upload or request part is larger than a limit allows."""


class LimitExceeded(UserError):
    """A request is well formed but passes a limit (archive members, parameters, symbols, lengths)."""


class SpecInvalid(UserError):
    """A JSON part of a request does not match its schema; ``errors`` lists each field."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class Forbidden(UserError):
    """The caller may not use this option (an admin-only filter)."""


class IdempotencyMismatch(UserError):
    """An Idempotency-Key was reused with a different request body."""


class IdempotencyInFlight(UserError):
    """A request with this Idempotency-Key is still being processed."""


# The one place domain errors meet HTTP statuses. Order does not matter: the most specific class wins.
STATUS_BY_CLASS: dict[type[QuantfleetError], int] = {
    Unauthenticated: 401,
    JobNotFound: 404,
    ObjectNotFound: 404,
    SnapshotNotFound: 404,
    IllegalTransition: 409,
    ParentNotActive: 409,
    Forbidden: 403,
    IdempotencyInFlight: 409,
    PayloadTooLarge: 413,
    IdempotencyConflict: 422,
    IdempotencyMismatch: 422,
    LimitExceeded: 422,
    SpecInvalid: 422,
    CodeNotFound: 422,
    ConfigError: 422,
    DataError: 422,
    NoDataError: 422,
    UnknownSymbolError: 422,
    QuotaExceeded: 429,
    UserNotFound: 404,
    TokenNotFound: 404,
    UserExists: 409,
    InvalidName: 422,
    UserError: 400,
    InfrastructureError: 503,
}

_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemField(BaseModel):
    """One invalid field: where it is (``["body", "spec", "symbols", 0]``) and what is wrong."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path the problem is about.")
    errors: list[ProblemField] | None = Field(default=None, description="Each invalid field (422 validation).")


def status_of(error: QuantfleetError) -> int:
    """Return the HTTP status of a quantfleet error: its nearest class in :data:`STATUS_BY_CLASS`."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return 500


def _slug(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def render_error(error: QuantfleetError, path: str, *, retry_after: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Return the status, problem body and headers of a quantfleet error."""
    status = status_of(error)
    headers: dict[str, str] = {}
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = Problem(
        type=_TYPE + _slug(type(error).__name__),
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=str(error),
        instance=path,
        errors=validation_fields(error.errors) if isinstance(error, SpecInvalid) else None,
    )
    return status, body.model_dump(mode="json", exclude_none=True), headers


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str = "about:blank",
    errors: list[ProblemField] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Return a problem+json response."""
    body = Problem(
        type=kind,
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def install_handlers(app: FastAPI, *, retry_after: int) -> None:
    """Render every error as a problem."""

    @app.exception_handler(QuantfleetError)
    async def _domain(request: Request, exc: QuantfleetError) -> JSONResponse:
        status, body, headers = render_error(exc, request.url.path, retry_after=retry_after)
        if status >= 500:
            log.warning("infrastructure error on %s: %s", request.url.path, exc)
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, 422, "the request is invalid; see 'errors'", kind=_TYPE + "validation",
                                errors=validation_fields(exc.errors()))  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem_response(request, 500, "an unexpected error occurred; it was logged")


def validation_fields(errors: Any) -> list[ProblemField]:
    """Return pydantic's error list as problem fields."""
    return [
        ProblemField(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in errors
    ]
