"""The HTTP API application: ``create_app`` wires settings, services and routers once, at start."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from quantfleet.api.deps import ApiContext, Authenticator, ReadyCheck
from quantfleet.api.errors import PROBLEM_JSON, Problem, install_handlers, problem_response
from quantfleet.api.metrics import FleetMetrics, JobLogContext, ObservabilitySettings, metrics_router
from quantfleet.api.routers import bars, data, deployments, fleet, health
from quantfleet.api.routers.jobs import KINDS, job_router
from quantfleet.api.settings import ApiSettings
from quantfleet.core.logging import LogFormat
from quantfleet.core.logging import configure as configure_logging
from quantfleet.core.settings import Settings, load_settings
from quantfleet.data import MarketDataStore
from quantfleet.dispatch.notify import Dispatch, submit_gate
from quantfleet.jobs import JobService
from quantfleet.store.idempotency import IdempotencyStore
from quantfleet.users import UserService

__all__ = ["create_app", "default_checks"]

log = logging.getLogger(__name__)

_ERROR_STATUSES = {
    "400": "Bad request (a user error the message explains)",
    "401": "No valid bearer token",
    "403": "An admin-only option",
    "404": "No such job (or not yours), artifact or snapshot",
    "409": "Conflict: an illegal state change, or the same Idempotency-Key still in flight",
    "413": "An upload or archive passes a size limit",
    "422": "Invalid request: fields (see 'errors'), a limit, or an Idempotency-Key reused with another body",
    "429": "A quota is exhausted",
    "503": "A database, object store or broker is unavailable; retry after Retry-After seconds",
}


def default_checks(service: JobService, dispatch: Dispatch | None = None) -> list[ReadyCheck]:
    """Return the readiness checks: the job service's database and object store, and the broker if there is one."""

    def database() -> None:
        service.queue_depth()

    def object_store() -> None:
        service.objects.exists("readyz")  # raises StorageUnavailable when the store cannot be reached

    checks: list[ReadyCheck] = [("database", database), ("object_store", object_store)]
    if dispatch is not None:
        checks.append(("broker", dispatch.check))  # asked afresh at every probe, never from the cache
    return checks


class _BodyLimit:
    """ASGI middleware: refuse a request whose declared body passes the upload limit before reading it (413).

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs every
    request (status polls included) through an extra task and memory streams:
    about a fifth of a status call's CPU in a profile of the load test.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = Headers(scope=scope).get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                detail = (f"the request has {declared} bytes; the limit is {self.limit} "
                          "(max_upload_bytes plus max_spec_bytes and 64 KiB of framing)")  # fmt: skip
                response = problem_response(Request(scope), 413, detail)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    service: JobService | None = None,
    auth: Authenticator | None = None,
    store: MarketDataStore | None = None,
    api_settings: ApiSettings | None = None,
    checks: Sequence[ReadyCheck] | None = None,
    extra_checks: Sequence[ReadyCheck] = (),
    observability: ObservabilitySettings | None = None,
    dispatch: Dispatch | None = None,
) -> FastAPI:
    """Return the HTTP API over a job service, an authenticator and a market-data store.

    Whatever is not given is opened from ``settings`` (default: the environment,
    validated now, and refused in production without a real secret and a
    server database): the job service (its schema upgraded), the user service as
    the authenticator, the market-data store, and (with ``QUANTFLEET_BROKER_URL``)
    the broker's ``dispatch`` gate: submissions are published through it, and
    refused with 503 while it is down (:mod:`quantfleet.api.accept`). A given
    ``service`` should not notify a broker itself; pass ``dispatch`` with it.
    ``checks`` replaces the readiness checks (default: database, object store and
    the broker, if any); ``extra_checks`` adds to them. ``observability`` (default:
    the environment) mounts ``/metrics`` and, when a log format is set, installs logging.
    """
    core = settings or load_settings()
    core.check_production()
    limits = api_settings or ApiSettings()
    if service is None:
        dispatch = dispatch if dispatch is not None else submit_gate(core)
    jobs = service or JobService.from_settings(core)  # the API publishes through ``dispatch`` itself
    ctx = ApiContext(
        settings=limits,
        service=jobs,
        auth=auth if auth is not None else UserService(jobs.db),
        store=store or MarketDataStore.from_settings(core),
        idempotency=IdempotencyStore(jobs.db, retention=timedelta(hours=limits.idempotency_retention_hours)),
        checks=[*(checks if checks is not None else default_checks(jobs, dispatch)), *extra_checks],
        calendar=core.calendar,
        dispatch=dispatch,
    )
    app = FastAPI(
        title="quantfleet",
        version="1",
        summary="Submit, follow and fetch backtests, sweeps and walk-forwards.",
        responses={},
    )
    app.state.quantfleet = ctx
    install_handlers(app, retry_after=limits.retry_after_seconds)
    seen = observability or ObservabilitySettings()
    if seen.log_format is not None:
        configure_logging(json=seen.log_format is LogFormat.JSON, level=seen.log_level)
    app.add_middleware(JobLogContext)
    if seen.metrics_enabled:
        app.include_router(metrics_router(FleetMetrics(jobs, broker=dispatch)))
    app.add_middleware(_BodyLimit, limit=limits.max_upload_bytes + limits.max_spec_bytes + 64 * 1024)
    app.include_router(health.router)
    for kind in KINDS:
        app.include_router(job_router(kind))
    app.include_router(data.router)
    app.include_router(fleet.router)
    app.include_router(bars.router)
    app.include_router(deployments.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_problems(
                get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _with_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every error status of every operation as ``application/problem+json`` with the Problem schema."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in _ERROR_STATUSES.items():
                if status in ("401", "403") and not path.startswith("/v1/"):
                    continue
                responses[status] = {"description": description, "content": content}
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
    return schema
