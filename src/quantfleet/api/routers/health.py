"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: its dependencies answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from quantfleet.api.deps import Context
from quantfleet.api.errors import problem_response
from quantfleet.api.schemas import Alive, Ready

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Alive, summary="The process is alive")
def healthz() -> Alive:
    return Alive(status="alive")


@router.get("/readyz", response_model=Ready, summary="The database, object store (and broker) answer; 503 if not")
def readyz(request: Request, ctx: Context) -> JSONResponse:
    results: dict[str, str] = {}
    failed: list[str] = []
    for name, check in ctx.checks:
        try:
            ok = check()
        except Exception as exc:
            results[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            failed.append(name)
            continue
        if ok is False:
            results[name] = "failed"
            failed.append(name)
        else:
            results[name] = "ok"
    if failed:
        detail = "not ready: " + "; ".join(f"{name} {results[name]}" for name in failed)
        response = problem_response(
            request, 503, detail, headers={"Retry-After": str(ctx.settings.retry_after_seconds)}
        )
        return response
    return JSONResponse(Ready(status="ready", checks=results).model_dump())
