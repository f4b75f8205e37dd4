"""Backtests, sweeps and walk-forwards: one router factory, one router per kind.

Every route acts for the bearer token's user: a user sees and touches only
their own jobs (another user's job is 404, as if it did not exist); an admin
sees all, and may filter lists by ``owner``.
"""

import asyncio
import contextvars
import functools
import hashlib
import mimetypes
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from quantfleet.api.accept import accept
from quantfleet.api.deps import BearerToken, Context, CurrentUser, Jobs, Principal, authenticate
from quantfleet.api.errors import Forbidden, SpecInvalid
from quantfleet.api.idempotency import idempotent
from quantfleet.api.schemas import (
    ArtifactPublic,
    BacktestCreate,
    JobDetailPublic,
    JobListPublic,
    JobPublic,
    LogChunkPublic,
    SpecCreate,
    SweepCreate,
    WalkForwardCreate,
)
from quantfleet.api.submission import check_limits, job_spec, parse_spec
from quantfleet.api.uploads import strategy_code
from quantfleet.jobs import Job, JobId, JobKind, JobNotFound, JobService, JobState, parse_job_id

__all__ = ["KINDS", "job_router"]

KINDS: dict[JobKind, tuple[str, type[SpecCreate]]] = {
    JobKind.BACKTEST: ("backtests", BacktestCreate),
    JobKind.SWEEP: ("sweeps", SweepCreate),
    JobKind.WALK_FORWARD: ("walkforwards", WalkForwardCreate),
}
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replaying the same request with this key returns the first response."),
]
_SCAN_ROUNDS = 20  # pages read per list request before answering with what was found and a cursor
_CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".json": "application/json", ".log": "text/plain"}


def _content_type(name: str) -> str:
    for suffix, kind in _CONTENT_TYPES.items():
        if name.endswith(suffix):
            return kind
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def job_router(kind: JobKind) -> APIRouter:
    """Return the router of one job kind under ``/v1/<plural>``."""
    plural, create = KINDS[kind]
    router = APIRouter(prefix=f"/v1/{plural}", tags=[plural])
    noun = kind.value

    def mine(job: Job, job_id: str, user: Principal) -> Job:
        # Another user's job, or a job of another kind, does not exist for this caller.
        if job.kind != kind.value or (job.owner != user.name and not user.admin):
            raise JobNotFound(f"no {noun} job {job_id}; list yours with GET /v1/{plural}")
        return job

    def owned(service: JobService, job_id: str, user: Principal) -> Job:
        return mine(service.get(parse_job_id(job_id)), job_id, user)

    @router.post("", status_code=201, response_model=JobPublic, summary=f"Submit a {noun} job")
    async def submit(
        request: Request,
        ctx: Context,
        user: CurrentUser,
        strategy: Annotated[UploadFile, File(description="The strategy: a .py file, or a zip with an entry file.")],
        spec: Annotated[str, Form(description=f"The job's spec as JSON: a {create.__name__} object.")],
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        limits = ctx.settings
        if len(spec.encode()) > limits.max_spec_bytes:
            raise SpecInvalid(f"the spec part passes the limit (max_spec_bytes) of {limits.max_spec_bytes} bytes", [
                {"loc": ["body", "spec"], "msg": "too large", "type": "too_long"}])  # fmt: skip
        data = await strategy.read(limits.max_upload_bytes + 1)
        parsed = parse_spec(spec, create)
        check_limits(parsed, limits)
        code = strategy_code(strategy.filename, data, entry=parsed.entry, limits=limits)
        content = {"spec": parsed.model_dump(mode="json"), "code": code.name, "sha256": _sha(code.data)}

        def queue() -> Job:
            ref = ctx.service.put_code(code.data, code.name, class_name=parsed.class_name)
            job_spec_ = job_spec(parsed, kind=kind, code=ref, owner=user.name, store=ctx.store,
                                 default_calendar=ctx.calendar)  # fmt: skip
            return ctx.service.submit(job_spec_)

        def act() -> tuple[int, JobPublic, dict[str, str]]:
            job = accept(ctx, queue)
            return 201, JobPublic.of(job), {"Location": f"/v1/{plural}/{job.id}"}

        # Submissions write (and on SQLite queue for the one write lock): a few threads of their own,
        # so that waiting writers never take the threads that status reads are served on.
        call = contextvars.copy_context().run
        answer = functools.partial(idempotent, request, ctx, user, idempotency_key, content, act)
        return await asyncio.get_running_loop().run_in_executor(ctx.writers, call, answer)

    @router.get("", response_model=JobListPublic, summary=f"List {noun} jobs, newest first")
    def list_jobs(
        service: Jobs,
        user: CurrentUser,
        state: Annotated[list[JobState] | None, Query(description="Only jobs in these states.")] = None,
        owner: Annotated[str | None, Query(max_length=200, description="Only this owner's (admins only).")] = None,
        submitted_after: Annotated[datetime | None, Query(description="Only jobs submitted at or after.")] = None,
        submitted_before: Annotated[datetime | None, Query(description="Only jobs submitted before.")] = None,
        include_children: Annotated[bool, Query(description="Include sweeps' child jobs.")] = False,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=40, description="A previous page's next_cursor.")] = None,
    ) -> JobListPublic:
        if owner is not None and owner != user.name and not user.admin:
            raise Forbidden("only admins may list other users' jobs; leave out 'owner'")
        who = owner if user.admin else user.name
        after = _aware(submitted_after)
        before = _aware(submitted_before)
        items: list[Job] = []
        next_cursor = cursor
        for _ in range(_SCAN_ROUNDS):
            page = service.list(state=state or None, owner=who, limit=limit - len(items), cursor=next_cursor)
            next_cursor = page.next_cursor
            for job in page.items:
                if after is not None and job.submitted_at < after:
                    next_cursor = None  # newest first: nothing older can match
                    break
                if job.kind != kind.value or (job.parent is not None and not include_children):
                    continue
                if before is not None and job.submitted_at >= before:
                    continue
                items.append(job)
            if next_cursor is None or len(items) >= limit:
                break
        return JobListPublic(items=[JobPublic.of(j) for j in items], next_cursor=next_cursor)

    @router.get("/{job_id}", response_model=JobDetailPublic, summary=f"Show a {noun} job")
    def show(job_id: str, ctx: Context, token: BearerToken) -> JobDetailPublic:
        # The status poll is the hot path: the token checked on this thread (one hand-off), the job read in one go.
        user = authenticate(ctx, token)
        service = ctx.service
        found, tries = service.with_attempts(parse_job_id(job_id))
        job = mine(found, job_id, user)
        children = service.children(job.id) if kind is not JobKind.BACKTEST else None
        return JobDetailPublic.detail(job, tries, children)

    @router.get(
        "/{job_id}/logs",
        response_model=LogChunkPublic,
        summary="Read a job's log (JSON), or follow it as text while it runs",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def logs(
        job_id: str,
        ctx: Context,
        user: CurrentUser,
        offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
        attempt: Annotated[int | None, Query(ge=1, le=1000, description="Default: the latest.")] = None,
        follow: Annotated[bool, Query(description="Stream text/plain until the job ends.")] = False,
    ) -> Any:
        job = owned(ctx.service, job_id, user)
        if follow:
            return StreamingResponse(
                _follow(ctx.service, job.id, attempt=attempt, offset=offset, poll=ctx.settings.log_follow_poll_seconds),
                media_type="text/plain; charset=utf-8",
            )
        return LogChunkPublic.of(ctx.service.read_log(job.id, attempt=attempt, offset=offset))

    @router.get("/{job_id}/artifacts", response_model=list[ArtifactPublic], summary="List a job's result files")
    def artifacts(job_id: str, service: Jobs, user: CurrentUser) -> list[ArtifactPublic]:
        job = owned(service, job_id, user)
        return [
            ArtifactPublic.of(a, content_type=_content_type(a.name), href=f"/v1/{plural}/{job.id}/artifacts/{a.name}")
            for a in service.artifacts(job.id)
        ]

    @router.get(
        "/{job_id}/artifacts/{name:path}",
        response_class=Response,
        summary="Download one result file",
        responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    def artifact(job_id: str, name: str, service: Jobs, user: CurrentUser) -> Response:
        job = owned(service, job_id, user)
        data = service.artifact_bytes(job.id, name)
        filename = name.rsplit("/", 1)[-1].replace('"', "")
        return Response(data, media_type=_content_type(name),
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip

    @router.post("/{job_id}/cancel", response_model=JobPublic, summary=f"Cancel a {noun} job")
    def cancel(
        job_id: str, request: Request, ctx: Context, user: CurrentUser, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        def act() -> tuple[int, JobPublic, dict[str, str]]:
            job = owned(ctx.service, job_id, user)
            return 200, JobPublic.of(ctx.service.cancel(job.id, by=user.name)), {}

        return idempotent(request, ctx, user, idempotency_key, None, act)

    @router.post("/{job_id}/rerun", status_code=201, response_model=JobPublic, summary="Run the same spec again")
    def rerun(
        job_id: str, request: Request, ctx: Context, user: CurrentUser, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        def act() -> tuple[int, JobPublic, dict[str, str]]:
            job = owned(ctx.service, job_id, user)
            # A sweep's child reruns on its own: re-attaching it to the old sweep would change that sweep.
            again = accept(
                ctx, lambda: ctx.service.submit(job.spec.model_copy(update={"owner": user.name, "parent": None}))
            )
            return 201, JobPublic.of(again), {"Location": f"/v1/{plural}/{again.id}"}

        return idempotent(request, ctx, user, idempotency_key, None, act)

    return router


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _aware(at: datetime | None) -> datetime | None:
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


def _follow(service: JobService, job_id: JobId, *, attempt: int | None, offset: int, poll: float) -> Iterator[bytes]:
    pause = threading.Event()
    while True:
        chunk = service.read_log(job_id, attempt=attempt, offset=offset)
        if chunk.text:
            yield chunk.text.encode("utf-8")
        offset = chunk.next_offset
        if chunk.complete:
            return
        if chunk.attempt:
            attempt = chunk.attempt  # follow the attempt that is running now to its end
        pause.wait(poll)
