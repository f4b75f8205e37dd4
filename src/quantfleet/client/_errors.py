"""The client's one exception tree: every HTTP problem becomes a :class:`ClientError` carrying its detail.

Each class is also a quantfleet :class:`~quantfleet.core.errors.UserError` or
:class:`~quantfleet.core.errors.InfrastructureError`, so callers that already
sort errors that way (the CLI's exit codes) need nothing new.
"""

from __future__ import annotations

from typing import Any

from quantfleet.core.errors import InfrastructureError, QuantfleetError, UserError

__all__ = [
    "BadRequest",
    "ClientError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "ServerUnavailable",
    "Unauthorized",
    "error_for",
]


class ClientError(QuantfleetError):
    """A request failed; ``status`` (0: no answer), ``detail`` and the whole ``problem`` say why."""

    def __init__(self, detail: str, *, status: int = 0, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.problem = problem or {}


class BadRequest(ClientError, UserError):
    """400, 413 or 422: the request is wrong (``problem["errors"]`` lists invalid fields)."""


class Unauthorized(ClientError, UserError):
    """401: no token, or one that is unknown, revoked or expired."""


class Forbidden(ClientError, UserError):
    """403: an admin-only option."""


class NotFound(ClientError, UserError):
    """404: no such job (or not yours), artifact or snapshot."""


class Conflict(ClientError, UserError):
    """409: an illegal state change, or the same Idempotency-Key still in flight."""


class RateLimited(ClientError, UserError):
    """429: too many requests, or a quota is exhausted."""


class QuotaExceeded(RateLimited):
    """429: the user already has as many queued jobs as their quota allows."""


class ServerError(ClientError, InfrastructureError):
    """A 5xx other than 503: the server failed (it logged why)."""


class ServerUnavailable(ClientError, InfrastructureError):
    """503, or no connection, after every retry: the server or its database is down; try again later."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
    503: ServerUnavailable,
}


def error_for(status: int, problem: dict[str, Any], fallback: str) -> ClientError:
    """Return the error of a failed response: its class by status, its message the problem's detail."""
    detail = str(problem.get("detail") or fallback)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ClientError)
    if status == 429 and str(problem.get("type", "")).endswith("quota-exceeded"):
        cls = QuotaExceeded
    return cls(f"{detail} (HTTP {status})", status=status, problem=problem)
