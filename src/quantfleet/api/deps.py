"""Dependencies of the routers: who is calling (bearer token), and the services, as typed aliases.

Until the user service is wired, any :class:`Authenticator` will do: an object
whose ``authenticate(token)`` returns a :class:`Principal` (anything with a
``name`` and an ``admin`` flag) or None. The user service's ``User`` satisfies
:class:`Principal` as it is, so it plugs in without an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, Request

from quantfleet.api.errors import Unauthenticated
from quantfleet.api.settings import ApiSettings
from quantfleet.data import MarketDataStore
from quantfleet.dispatch.notify import Dispatch
from quantfleet.jobs import JobService
from quantfleet.store.idempotency import IdempotencyStore

__all__ = [
    "ApiContext",
    "Authenticator",
    "CurrentUser",
    "Data",
    "Jobs",
    "Principal",
    "ReadyCheck",
    "context",
]


@runtime_checkable
class Principal(Protocol):
    """Who a request acts for: a user name (the owner of what they submit) and whether they are an admin."""

    @property
    def name(self) -> str: ...

    @property
    def admin(self) -> bool: ...


class Authenticator(Protocol):
    """The port to the user service: a bearer token to the principal it belongs to, or None."""

    def authenticate(self, token: str) -> Principal | None: ...


ReadyCheck = tuple[str, Callable[[], Any]]
"""A readiness check: a name, and a callable that raises (or returns False) when the dependency is down."""


@dataclass(kw_only=True)
class ApiContext:
    """What one app serves with, built once by ``create_app``."""

    settings: ApiSettings
    service: JobService
    auth: Authenticator
    store: MarketDataStore
    idempotency: IdempotencyStore
    calendar: str = "XNYS"
    checks: Sequence[ReadyCheck] = field(default_factory=tuple)
    dispatch: Dispatch | None = None
    """The Celery fleet's broker, when one is configured: submissions are published through it (or refused)."""
    writers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="quantfleet-submit")
    )
    """The threads submissions run on, apart from the server's pool (reads never wait behind queued writers)."""


def context(request: Request) -> ApiContext:
    """Return the app's context."""
    ctx: ApiContext = request.app.state.quantfleet
    return ctx


Context = Annotated[ApiContext, Depends(context)]


def _jobs(ctx: Context) -> JobService:
    return ctx.service


def _data(ctx: Context) -> MarketDataStore:
    return ctx.store


def current_user(request: Request, ctx: Context) -> Principal:
    """Return the principal of the request's bearer token; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send 'Authorization: Bearer <token>'; ask an admin for a token")
    user = ctx.auth.authenticate(token.strip())
    if user is None:
        raise Unauthenticated("the bearer token is unknown, revoked or expired; ask an admin for a new one")
    return user


Jobs = Annotated[JobService, Depends(_jobs)]
Data = Annotated[MarketDataStore, Depends(_data)]
CurrentUser = Annotated[Principal, Depends(current_user)]
