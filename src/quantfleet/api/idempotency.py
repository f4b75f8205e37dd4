"""``Idempotency-Key`` on POSTs: a replay returns the first response; another body is 422; in flight is 409.

Records are kept per (owner, key) in the ``http_idempotency`` table for
``idempotency_retention_hours`` (24 h by default); older ones are deleted as
new keys arrive. A request is identified by its method, path and a
fingerprint of its content (for a submission: the parsed spec and the
upload's sha256, so multipart boundaries do not matter). Responses with a 4xx
status are stored and replayed like successes; a 5xx (or 401, 409) is not
stored, so a retry with the same key runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from quantfleet.api.deps import ApiContext, Principal
from quantfleet.api.errors import PROBLEM_JSON, IdempotencyInFlight, IdempotencyMismatch, render_error
from quantfleet.core.errors import QuantfleetError, UserError

__all__ = ["fingerprint", "idempotent"]

_NOT_STORED = frozenset({401, 409})


def fingerprint(request: Request, content: Any = None) -> str:
    """Return the sha256 identifying a request: method, path and ``content`` as canonical JSON."""
    doc = {"method": request.method, "path": request.url.path, "content": content}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def idempotent(
    request: Request,
    ctx: ApiContext,
    user: Principal,
    key: str | None,
    content: Any,
    action: Callable[[], tuple[int, BaseModel, dict[str, str]]],
) -> JSONResponse:
    """Run ``action`` (returning status, body, headers) once per Idempotency-Key; replay its response after."""
    if key is None:
        status, body, headers = action()
        return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)
    if not 0 < len(key) <= 200:
        raise UserError("an Idempotency-Key must have 1 to 200 characters")
    store = ctx.idempotency
    sha = fingerprint(request, content)
    known = store.begin(user.name, key, sha)
    if known is not None:
        if known.status is None:
            raise IdempotencyInFlight(
                f"a request with Idempotency-Key {key!r} is still being processed; retry when it has answered"
            )
        if known.body_sha256 != sha:
            raise IdempotencyMismatch(
                f"Idempotency-Key {key!r} was used for a different request in the last "
                f"{ctx.settings.idempotency_retention_hours:g} h; use a new key for a new request"
            )
        media = PROBLEM_JSON if known.status >= 400 else "application/json"
        return JSONResponse(known.response, status_code=known.status, media_type=media,
                            headers={"Idempotent-Replayed": "true"})  # fmt: skip
    try:
        status, model, headers = action()
    except QuantfleetError as exc:
        status, problem, headers = render_error(exc, request.url.path, retry_after=ctx.settings.retry_after_seconds)
        if status >= 500 or status in _NOT_STORED:
            store.release(user.name, key)
            raise
        store.complete(user.name, key, status=status, response=problem)
        return JSONResponse(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    except BaseException:
        store.release(user.name, key)
        raise
    body = jsonable_encoder(model)
    store.complete(user.name, key, status=status, response=body)
    return JSONResponse(body, status_code=status, headers=headers)
