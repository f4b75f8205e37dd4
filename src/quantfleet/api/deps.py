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
    "BearerToken",
    "CurrentUser",
    "Data",
    "Jobs",
    "Principal",
    "ReadyCheck",
    "authenticate",
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


async def bearer_token(request: Request) -> str:
    """Return the request's bearer token (no database read: this runs on the event loop); 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send 'Authorization: Bearer <token>'; ask an admin for a token")
    return token.strip()


def authenticate(ctx: ApiContext, token: str) -> Principal:
    """Return the principal of ``token`` (one database read); 401 if it is unknown, revoked or expired."""
    user = ctx.auth.authenticate(token)
    if user is None:
        raise Unauthenticated("the bearer token is unknown, revoked or expired; ask an admin for a new one")
    return user


BearerToken = Annotated[str, Depends(bearer_token)]
"""The bearer token, unchecked: for a sync route that calls :func:`authenticate` itself, on its own thread.

FastAPI runs each sync dependency on a thread of its own, then the sync route
on another: two hand-offs per request. The status poll, the API's hottest
call, authenticates inside its route instead (one hand-off).
"""


def current_user(ctx: Context, token: BearerToken) -> Principal:
    """Return the principal of the request's bearer token; 401 without a valid one."""
    return authenticate(ctx, token)


Jobs = Annotated[JobService, Depends(_jobs)]
Data = Annotated[MarketDataStore, Depends(_data)]
CurrentUser = Annotated[Principal, Depends(current_user)]
